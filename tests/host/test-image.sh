# kos image: the factory disk image (docs/format.md, "The disk").

# partition IMAGE N OUT: copies partition N of IMAGE to OUT.
partition() {
        local start size
        start=$(sfdisk -d "$1" | sed -n "s/^$1$2 : start= *\([0-9]*\),.*/\1/p")
        size=$(sfdisk -d "$1" | sed -n "s/^$1$2 : .*size= *\([0-9]*\),.*/\1/p")
        [ -n "$start" ] || fail "no partition $2 in $1: $(sfdisk -d "$1")"
        dd if="$1" of="$3" bs=512 skip="$start" count="$size" status=none
}

test_image_is_a_gpt_of_esp_imagefs_and_datafs_and_its_bmap_copies_it_exactly() {
        fixture; manifest a
        "$KOS" activate img a
        head -c 100000 /dev/urandom >uki.efi
        mkdir -p extra/loader && echo 'timeout 0' >extra/loader/loader.conf
        "$KOS" image --imagefs img --imagefs-uuid 6d1e3c52-8a47-4a8e-9a57-0f4b1e2c3d4e --uki uki.efi --esp-dir extra \
                --data-size 600M --data-format --bmap disk.bmap disk.img >out 2>err || fail "kos image: $(cat err)"
        sfdisk -d disk.img >table
        grep -q 'disk.img1 : .*type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B.*name="EFI system"' table || fail "no ESP: $(cat table)"
        grep -q 'disk.img2 : .*type=0FC63DAF-8483-4772-8E79-3D69D8477DE4.*name="kos-imagefs"' table || fail "no ImageFS: $(cat table)"
        grep -q 'disk.img3 : .*name="KOS-DATA"' table || fail "no DataFS: $(cat table)"
        [ "$(grep -c 'start=' table)" = 3 ] || fail "not three partitions: $(cat table)"
        # Every partition starts on a MiB.
        sed -n 's/.*start= *\([0-9]*\),.*/\1/p' table | while read -r s; do [ $((s % 2048)) = 0 ] || fail "start $s"; done
        partition disk.img 1 esp.part
        mcopy -i esp.part ::/EFI/BOOT/BOOTX64.EFI got.efi && cmp got.efi uki.efi || fail "the UKI is not BOOTX64.EFI"
        mcopy -i esp.part ::/loader/loader.conf got.conf && cmp got.conf extra/loader/loader.conf || fail "--esp-dir not copied"
        partition disk.img 2 imagefs.part
        [ "$(blkid -o value -s LABEL imagefs.part)" = KOS-IMAGEFS ] || fail "ImageFS label: $(blkid imagefs.part)"
        [ "$(blkid -o value -s UUID imagefs.part)" = 6d1e3c52-8a47-4a8e-9a57-0f4b1e2c3d4e ] || fail "ImageFS UUID"
        debugfs -R 'cat /manifests/a.json' imagefs.part 2>/dev/null | cmp - img/manifests/a.json || fail "manifest differs"
        debugfs -R 'cat /active' imagefs.part 2>/dev/null | cmp - img/active || fail "active differs"
        e2fsck -fn imagefs.part >/dev/null 2>&1 || fail "the ImageFS does not check clean"
        partition disk.img 3 data.part
        [ "$(blkid -o value -s LABEL data.part)" = KOS-DATA ] || fail "DataFS not ext4 KOS-DATA"
        # UEFI's ESP: FAT32, also on a disk far larger than the ESP.
        [ "$(dd if=esp.part bs=1 skip=82 count=5 status=none)" = FAT32 ] || fail "the ESP is not FAT32: $(blkid esp.part)"
        fsck.vfat -n esp.part >/dev/null || fail "the ESP does not check clean"
        # bmaptool checks each range's sha256 and the bmap's own checksum.
        bmaptool copy --bmap disk.bmap disk.img copy.img 2>bmap.err || fail "bmaptool copy: $(cat bmap.err)"
        cmp disk.img copy.img || fail "the bmap copy differs from the image"
        [ ! -e disk.img.partial ] || fail "left disk.img.partial"
}

test_image_without_uki_has_the_imagefs_first_and_an_empty_datafs() {
        fixture; manifest a
        "$KOS" image --imagefs img --data-size 16M disk.img >/dev/null 2>err || fail "kos image: $(cat err)"
        sfdisk -d disk.img >table
        grep -q 'disk.img1 : .*name="kos-imagefs"' table || fail "ImageFS not first: $(cat table)"
        grep -q 'disk.img2 : .*name="KOS-DATA"' table || fail "no DataFS: $(cat table)"
        partition disk.img 2 data.part
        [ -z "$(blkid -o value -s TYPE data.part)" ] || fail "the DataFS was formatted; the System Kernel formats it"
}

test_image_refuses_an_existing_output_without_force_and_leaves_nothing_when_it_fails() {
        fixture
        echo precious >disk.img
        local rc=0
        "$KOS" image --imagefs img disk.img >/dev/null 2>err || rc=$?
        [ "$rc" = 2 ] || fail "exit $rc over an existing file"
        grep -q -- '--force' err || fail "the error does not say what to do: $(cat err)"
        [ "$(cat disk.img)" = precious ] || fail "the existing file was changed"
        rc=0; "$KOS" image --force --imagefs img --uki missing.efi disk.img >/dev/null 2>err || rc=$?
        [ "$rc" = 2 ] && grep -q 'missing.efi' err || fail "exit $rc with a missing UKI: $(cat err)"
        # A failure half-way (the tree does not fit the ImageFS partition):
        # the old file stays as it was and no partial one is left.
        head -c 3000000 /dev/urandom >img/components/big
        rc=0; "$KOS" image --force --imagefs img --imagefs-size 2M disk.img >/dev/null 2>err || rc=$?
        [ "$rc" = 2 ] && grep -q 'mkfs.ext4 failed' err || fail "exit $rc with a tree too large: $(cat err)"
        [ "$(cat disk.img)" = precious ] && [ ! -e disk.img.partial ] || fail "a failed image touched disk.img or left a partial file"
        rc=0; "$KOS" image --imagefs img --data-format new.img >/dev/null 2>err || rc=$?
        [ "$rc" = 2 ] && [ ! -e new.img ] || fail "--data-format without --data-size: exit $rc"
}
