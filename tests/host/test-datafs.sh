# kos datafs erase (lib/device/datafs-erase.c): the LUKS2 DataFS's headers
# and key slots overwritten, as a factory reset does on the device, on
# images made here by cryptsetup (no device-mapper is needed to format or
# to test a passphrase).

# luks_image FILE LABEL [TYPE]: a 40 MiB image filled with a pattern, then
# formatted as LUKS (luks2 by default) with key.bin.
luks_image() {
        yes KOSDATA | head -c $((40 << 20)) >"$1"
        [ -s key.bin ] || head -c 64 /dev/urandom >key.bin
        cryptsetup luksFormat -q --type "${3:-luks2}" ${2:+--label "$2"} --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
                --key-file key.bin "$1" 2>/dev/null ||
                cryptsetup luksFormat -q --type "${3:-luks2}" --pbkdf-force-iterations 1000 --key-file key.bin "$1"
}

test_datafs_erase_zeroes_the_luks2_headers_and_key_slots_and_nothing_after_them() {
        luks_image d.img KOS-DATA
        cryptsetup open --test-passphrase --key-file key.bin d.img || fail "the fresh image does not open"
        local offset; offset=$(cryptsetup luksDump d.img | sed -n 's/^[[:space:]]*offset: \([0-9]*\) \[bytes\]/\1/p' | head -1)
        [ "$offset" -gt 0 ] || fail "no data offset"
        local data_before; data_before=$(tail -c +$((offset + 1)) d.img | sha256sum)
        "$KOS" datafs erase d.img >out.txt || fail "erase failed: $(cat out.txt)"
        grep -q "d.img: LUKS2 headers and key slots erased ($offset bytes)" out.txt || fail "$(cat out.txt)"
        cmp -n "$offset" d.img /dev/zero || fail "the headers and key slots are not all zeros"
        [ "$(tail -c +$((offset + 1)) d.img | sha256sum)" = "$data_before" ] || fail "the data area changed"
        ! cryptsetup isLuks d.img || fail "still LUKS"
        ! cryptsetup open --test-passphrase --key-file key.bin d.img 2>/dev/null || fail "the key still opens it"
        [ -z "$(blkid -p -o value -s TYPE d.img)" ] || fail "libblkid still finds $(blkid -p d.img)"
}

test_datafs_erase_refuses_what_is_not_the_kos_luks2_datafs_and_writes_nothing() {
        luks_image other.img OTHER
        luks_image luks1.img "" luks1
        yes KOSDATA | head -c $((40 << 20)) >ext4.img && mkfs.ext4 -q -F -L KOS-DATA ext4.img
        local f sum
        for f in other.img luks1.img ext4.img; do
                sum=$(sha256sum <"$f")
                "$KOS" datafs erase "$f" 2>err.txt && fail "$f was erased"
                [ $? = 1 ] || fail "$f: not refused as invalid: $(cat err.txt)"
                [ "$(sha256sum <"$f")" = "$sum" ] || fail "$f changed"
                grep -q "nothing erased" err.txt || fail "$f: $(cat err.txt)"
        done
        grep -q 'its LUKS2 label is "OTHER", not "KOS-DATA"' <("$KOS" datafs erase other.img 2>&1) || fail "label not named"
        "$KOS" datafs erase --any-label other.img >/dev/null || fail "--any-label refused a LUKS2"
        ! cryptsetup isLuks other.img || fail "other.img still LUKS"
}
