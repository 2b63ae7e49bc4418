# dbx updates (docs/trust-chain.md, "dbx updates"): kos dbx create writes a
# KEK-signed append with efitools, and kos dbx check is the device's refusal
# of an update that would revoke a UKI it needs. The PE images are
# systemd's stub signed here with sbsign by the development db key.

dbx_keys() { "$ROOT/scripts/secureboot-keys.sh" "$ROOT/$BUILD/secureboot/dev-keys" && echo "$ROOT/$BUILD/secureboot/dev-keys"; }

# dbx_ukis KEYS: running.efi and old.efi, two signed PE images with different
# bytes, and unsigned.efi.
dbx_ukis() {
        local stub=/usr/lib/systemd/boot/efi/linuxx64.efi.stub
        cp "$stub" unsigned.efi
        sbsign --key "$1/db.key" --cert "$1/db.crt" --output running.efi unsigned.efi 2>/dev/null
        cp "$stub" old-unsigned.efi && printf 'old release' >>old-unsigned.efi
        sbsign --key "$1/db.key" --cert "$1/db.crt" --output old.efi old-unsigned.efi 2>/dev/null
}

test_dbx_hash_is_the_authenticode_hash_efitools_computes() {
        local keys; keys=$(dbx_keys)
        dbx_ukis "$keys"
        local f want
        # Signed images only: efitools (like sbsign) pads an unsigned image
        # to 8 bytes before hashing, where EDK2, which decides, hashes the
        # file as it is; once signed, the padding is in the file.
        for f in running.efi old.efi; do
                want=$(hash-to-efi-sig-list "$f" x.esl | sed -n 's/^HASH IS //p')
                [ -n "$want" ] || fail "no hash from hash-to-efi-sig-list for $f"
                [ "$("$KOS" dbx hash "$f")" = "$want" ] || fail "$f: kos $("$KOS" dbx hash "$f"), efitools $want"
        done
        [ "$("$KOS" dbx hash old.efi)" != "$("$KOS" dbx hash running.efi)" ] || fail "two images, one hash"
        ! "$KOS" dbx hash x.esl 2>/dev/null || fail "a signature list hashed as a PE image"
}

test_dbx_create_writes_a_kek_signed_append_of_the_uki_hash_and_the_certificate() {
        local keys; keys=$(dbx_keys)
        dbx_ukis "$keys"
        "$KOS" dbx create --kek-key "$keys/KEK.key" --kek-cert "$keys/KEK.crt" --uki old.efi --cert "$keys/db.crt" \
                -o dbx.auth >out
        grep -q "revokes UKI old.efi: Authenticode sha256 $("$KOS" dbx hash old.efi)" out || fail "$(cat out)"
        # The signature lists after the authentication header are efitools'
        # own, and the PKCS#7 in it verifies with the KEK certificate.
        hash-to-efi-sig-list old.efi h.esl >/dev/null
        cert-to-efi-sig-list -g 4b4f5300-6462-7800-8000-000000000001 "$keys/db.crt" c.esl
        local cert_len; cert_len=$(od -An -tu4 -j16 -N4 dbx.auth | tr -d ' ')
        tail -c +$((16 + cert_len + 1)) dbx.auth >lists
        cat h.esl c.esl | cmp - lists || fail "the lists differ from efitools'"
        # (UEFI's CertData is a bare SignedData, not a ContentInfo: asn1parse.)
        head -c $((16 + cert_len)) dbx.auth | tail -c +$((16 + 24 + 1)) >p7.der
        openssl asn1parse -inform DER -in p7.der >asn1 || fail "the certificate data is not DER"
        grep -q ":pkcs7-data" asn1 && grep -q ":KOS development KEK" asn1 || fail "not signed by the KEK: $(cat asn1)"
}

test_dbx_update_that_would_revoke_the_running_uki_is_refused_with_a_reason() {
        local keys; keys=$(dbx_keys)
        dbx_ukis "$keys"
        "$KOS" dbx create --kek-key "$keys/KEK.key" --kek-cert "$keys/KEK.crt" --uki old.efi -o old.auth >/dev/null
        "$KOS" dbx create --kek-key "$keys/KEK.key" --kek-cert "$keys/KEK.crt" --uki running.efi -o running.auth >/dev/null
        "$KOS" dbx create --kek-key "$keys/KEK.key" --kek-cert "$keys/KEK.crt" --cert "$keys/db.crt" -o db.auth >/dev/null
        "$KOS" dbx check old.auth --uki running.efi >out || fail "revoking the old UKI refused: $(cat out)"
        local rc=0; "$KOS" dbx check running.auth --uki running.efi 2>err || rc=$?
        [ "$rc" = 1 ] && grep -q "dbx update refused: revokes-uki-hash: list 0 entry 0 is the Authenticode hash" err ||
                fail "exit $rc: $(cat err)"
        rc=0; "$KOS" dbx check db.auth --uki running.efi 2>err || rc=$?
        [ "$rc" = 1 ] && grep -q "dbx update refused: revokes-uki-signer" err || fail "exit $rc: $(cat err)"
        # Both slots count: revoking the other slot's UKI is refused too.
        rc=0; "$KOS" dbx check old.auth --uki running.efi --uki old.efi 2>err || rc=$?
        [ "$rc" = 1 ] && grep -q "of UKI 1" err || fail "exit $rc: $(cat err)"
        rc=0; "$KOS" dbx check old.auth --uki unsigned.efi 2>err || rc=$?
        [ "$rc" = 2 ] && grep -q "not signed" err || fail "exit $rc: $(cat err)"
}
