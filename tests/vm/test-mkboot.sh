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
        # Each module after what modules.dep says it needs.
        [ "$(grep -n 'jbd2.ko' order | cut -d: -f1)" -lt "$(grep -n '/ext4.ko' order | cut -d: -f1)" ] || fail "$(cat order)"
        [ "$(grep -n '/virtio.ko' order | cut -d: -f1)" -lt "$(grep -n 'virtio_blk.ko' order | cut -d: -f1)" ] || fail "$(cat order)"
        cmp one/vmlinuz "$kd"/boot/vmlinuz-* || fail "vmlinuz is not Debian's"
}
