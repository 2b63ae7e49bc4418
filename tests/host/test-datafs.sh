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

# kos datafs recover, the vendor's side: a kos-recovery token made with the
# openssl CLI (CMS EnvelopedData to the recovery certificate, as the device
# makes it) in a LUKS2 header; the passphrase it prints opens the key slot,
# and another private key is refused.
test_datafs_recover_decrypts_the_recovery_token_with_the_vendor_key_only() {
        luks_image d.img KOS-DATA
        openssl req -x509 -newkey rsa:2048 -nodes -keyout rec.key -out rec.pem -subj /CN=kos-recovery -days 1 2>/dev/null
        openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.pem -subj /CN=other -days 1 2>/dev/null
        local pass; pass=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
        printf %s "$pass" >pass.bin
        cryptsetup luksAddKey -q --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file key.bin --new-keyfile pass.bin \
                --new-key-slot 1 d.img || fail "luksAddKey"
        local cms; cms=$(printf %s "$pass" | openssl cms -encrypt -binary -aes-256-cbc -outform DER rec.pem | base64 -w0)
        printf '{"type":"kos-recovery","keyslots":["1"],"kos-cms-cipher":"aes-256-cbc","kos-cms":"%s"}' "$cms" >token.json
        cryptsetup token import --json-file token.json --token-id 1 d.img || fail "token import"
        "$KOS" datafs recover --key rec.key d.img >out.txt 2>err.txt || fail "recover: $(cat err.txt)"
        [ "$(cat out.txt)" = "$pass" ] || fail "printed $(cat out.txt), not the passphrase"
        grep -q 'opens its key slot 1' err.txt || fail "$(cat err.txt)"
        tr -d '\n' <out.txt >out.bin
        cryptsetup open --test-passphrase --key-slot 1 --key-file out.bin d.img || fail "the passphrase does not open slot 1"
        "$KOS" datafs recover --key rec.key --cert rec.pem token.json >out2.txt || fail "recover from an exported token"
        cmp -s out.txt out2.txt || fail "the token file gave another passphrase"
        ! "$KOS" datafs recover --key other.key d.img >/dev/null 2>err.txt || fail "another key recovered it"
        grep -q 'the private key does not decrypt its CMS' err.txt || fail "$(cat err.txt)"
}
