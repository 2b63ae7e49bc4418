# kos mkboot on Debian's real kernel package (no QEMU needed).

test_mkboot_initramfs_is_reproducible_small_and_complete() {
        local kd; kd=$(vm_kernel_dir)
        "$KOS" keygen s.pem p.pem >/dev/null && mkdir keyring && cp p.pem keyring/vendor.pem
        "$KOS" mkboot --kernel-dir "$kd" --keyring keyring --output one >/dev/null
        touch keyring/vendor.pem # a new mtime must not change the bytes
        "$KOS" mkboot --kernel-dir "$kd" --keyring keyring --output two >/dev/null
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
