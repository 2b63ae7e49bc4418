# kos mkboot and kos mkinitrd on real kernels: Debian's kernel package
# (scripts/fetch-kernel.sh, fetched once per machine) and the Boot Kernel's
# own (scripts/build-boot-kernel.sh, which make check builds). No VM boots
# here: these check what the commands write. The init programs are named
# with --init, since the kos under test may be the ASan build, which has
# none beside it (the VM tests use the default, the init beside kos).

mkboot_debian_kernel() { "$ROOT/scripts/fetch-kernel.sh"; }
mkboot_kos_kernel() { "$ROOT/scripts/build-boot-kernel.sh"; }
mkboot_sb_keys() {
        local dir=$ROOT/$BUILD/secureboot/dev-keys
        "$ROOT/scripts/secureboot-keys.sh" "$dir" && echo "$dir"
}
MKBOOT_INIT=(--init "$ROOT/$BUILD/kos-boot-init")
MKINITRD_INIT=(--init "$ROOT/$BUILD/kos-system-init")

test_mkboot_initramfs_is_reproducible_small_and_complete() {
        local kd; kd=$(mkboot_debian_kernel)
        "$KOS" keygen s.pem p.pem >/dev/null && mkdir keyring && cp p.pem keyring/vendor.pem
        "$KOS" mkboot "${MKBOOT_INIT[@]}" --kernel-dir "$kd" --keyring keyring --output one >/dev/null
        touch keyring/vendor.pem # a new mtime must not change the bytes
        "$KOS" mkboot "${MKBOOT_INIT[@]}" --kernel-dir "$kd" --keyring keyring --output two >/dev/null
        cmp one/initramfs.img two/initramfs.img || fail "two builds differ"
        local size; size=$(stat -c %s one/initramfs.img)
        [ "$size" -lt $((4 << 20)) ] || fail "initramfs is $size bytes, over 4 MiB"
        zcat one/initramfs.img | cpio -t --quiet >list
        grep -qx init list && grep -qx etc/kos/keyring/vendor.pem list || fail "init or keyring missing"
        ! grep -q -e '^bin' -e 'sh$' list || fail "the initramfs holds a shell"
        zcat one/initramfs.img | cpio -i --quiet --to-stdout etc/kos/modules >order
        # Each module after what modules.dep says it needs, and naming it.
        line_of() { grep -n "^kernel/$1:" order | cut -d: -f1; }
        [ "$(line_of fs/jbd2/jbd2.ko)" -lt "$(line_of fs/ext4/ext4.ko)" ] || fail "$(cat order)"
        [ "$(line_of drivers/virtio/virtio.ko)" -lt "$(line_of drivers/block/virtio_blk.ko)" ] || fail "$(cat order)"
        grep -q '^kernel/fs/ext4/ext4.ko:.* kernel/fs/jbd2/jbd2.ko' order || fail "ext4 does not wait for jbd2: $(cat order)"
        grep -q '^kernel/drivers/block/virtio_blk.ko:.* kernel/drivers/virtio/virtio.ko' order || fail "$(cat order)"
        # The soft dependency (modules.softdep: ext4 pre: crypto-crc32c, an
        # alias of crc32c_generic) is there too, and nothing waits for
        # modules it does not need: virtio_blk does not wait for ext4's stack.
        grep -q '^kernel/fs/ext4/ext4.ko:.* kernel/crypto/crc32c_generic.ko' order || fail "$(cat order)"
        ! grep -q '^kernel/drivers/block/virtio_blk.ko:.*jbd2' order || fail "$(cat order)"
        cmp one/vmlinuz "$kd"/boot/vmlinuz-* || fail "vmlinuz is not Debian's"
}

# A kernel with its drivers built in (the Boot Kernel's own): the initramfs
# holds the init and the keyring, no modules and no module list.
test_mkboot_for_a_kernel_with_drivers_built_in_has_no_modules() {
        local kernel; kernel=$(mkboot_kos_kernel)
        "$KOS" keygen s.pem p.pem >/dev/null && mkdir keyring && cp p.pem keyring/vendor.pem
        "$KOS" mkboot "${MKBOOT_INIT[@]}" --kernel "$kernel" --keyring keyring --output out >/dev/null
        lz4 -dc out/initramfs.img | cpio -t --quiet >list # LZ4 by default for such a kernel
        grep -qx init list && grep -qx etc/kos/keyring/vendor.pem list || fail "init or keyring missing: $(cat list)"
        ! grep -q -e '^lib' -e 'etc/kos/modules' list || fail "modules in a built-in kernel's initramfs: $(cat list)"
        cmp out/vmlinuz "$kernel" || fail "vmlinuz is not the kernel given"
        local rc=0
        "$KOS" mkboot "${MKBOOT_INIT[@]}" --kernel "$kernel" --module ext4 --keyring keyring --output out2 2>/dev/null || rc=$?
        [ "$rc" = 2 ] || fail "--module with --kernel: exit $rc, wanted 2"
}

# The UKI: the same inputs give the same bytes before signing; its sections
# are exactly the kernel, the initramfs, the command line and an os-release;
# signed, it verifies against the db certificate and no other.
test_mkboot_uki_is_reproducible_before_signing_and_signed_by_the_db_key() {
        local kernel keys; kernel=$(mkboot_kos_kernel) keys=$(mkboot_sb_keys)
        "$KOS" keygen s.pem p.pem >/dev/null && mkdir keyring && cp p.pem keyring/vendor.pem
        "$KOS" mkboot "${MKBOOT_INIT[@]}" --kernel "$kernel" --keyring keyring --output one --uki one.efi --cmdline "console=ttyS0 x=1" >/dev/null
        sleep 1.1 # a time stamp would now differ
        "$KOS" mkboot "${MKBOOT_INIT[@]}" --kernel "$kernel" --keyring keyring --output two --uki two.efi --cmdline "console=ttyS0 x=1" >/dev/null
        cmp one.efi two.efi || fail "two unsigned UKIs differ"
        section() { objcopy -O binary --only-section="$1" one.efi "$2"; }
        section .linux linux && cmp linux "$kernel" || fail ".linux is not the kernel"
        section .initrd initrd && cmp initrd one/initramfs.img || fail ".initrd is not the initramfs"
        section .cmdline cmdline && [ "$(cat cmdline)" = "console=ttyS0 x=1" ] || fail ".cmdline: $(cat cmdline)"
        section .osrel osrel && grep -qx 'ID=kos-boot' osrel || fail ".osrel: $(cat osrel)"
        "$KOS" mkboot "${MKBOOT_INIT[@]}" --kernel "$kernel" --keyring keyring --output three --uki signed.efi --cmdline "console=ttyS0 x=1" \
                --sign-key "$keys/db.key" --sign-cert "$keys/db.crt" >/dev/null 2>&1
        sbverify --cert "$keys/db.crt" signed.efi >/dev/null 2>&1 || fail "sbverify rejects the signed UKI"
        ! sbverify --cert "$keys/KEK.crt" signed.efi >/dev/null 2>&1 || fail "sbverify accepts another certificate"
        # (sbsign puts a signing time in: signed UKIs differ, build to build.)
        objcopy -O binary --only-section=.initrd signed.efi signed-initrd
        cmp signed-initrd one/initramfs.img || fail "the signed UKI holds another initramfs"
}

# The System Kernel's initrd: zstd by default (kexec hashes it twice and the
# kernel unpacks it, so its size and unpacking cost count), the same bytes
# from the same inputs, smaller than the gzip form, and complete.
test_mkinitrd_is_zstd_reproducible_and_smaller_than_gzip() {
        local kd; kd=$(mkboot_debian_kernel)
        "$KOS" keygen s.pem p.pem >/dev/null && mkdir keyring && cp p.pem keyring/vendor.pem
        "$KOS" mkinitrd "${MKINITRD_INIT[@]}" --kernel-dir "$kd" --keyring keyring --output one >/dev/null
        touch keyring/vendor.pem
        "$KOS" mkinitrd "${MKINITRD_INIT[@]}" --kernel-dir "$kd" --keyring keyring --output two >/dev/null
        cmp one two || fail "two builds differ"
        [ "$(head -c 4 one | od -An -tx1 | tr -d ' \n')" = 28b52ffd ] || fail "not a zstd frame: $(head -c 4 one | od -An -tx1)"
        "$KOS" mkinitrd "${MKINITRD_INIT[@]}" --kernel-dir "$kd" --keyring keyring --output gz --compress gzip >/dev/null
        [ "$(head -c 2 gz | od -An -tx1 | tr -d ' \n')" = 1f8b ] || fail "--compress gzip wrote no gzip"
        [ "$(stat -c %s one)" -lt "$(stat -c %s gz)" ] || fail "zstd $(stat -c %s one) bytes, gzip $(stat -c %s gz)"
        zstd -dc one | cpio -t --quiet | sort >list
        zcat gz | cpio -t --quiet | sort >list-gz
        cmp list list-gz || fail "the two forms hold different files"
        grep -qx init list && grep -qx etc/kos/keyring/vendor.pem list && grep -q '/dm-verity.ko$' list ||
                fail "init, keyring or dm-verity missing: $(cat list)"
        local rc=0
        "$KOS" mkinitrd "${MKINITRD_INIT[@]}" --kernel-dir "$kd" --keyring keyring --output x --compress xz 2>/dev/null || rc=$?
        [ "$rc" = 2 ] && [ ! -e x ] || fail "--compress xz: exit $rc, wanted 2 and no file"
}
