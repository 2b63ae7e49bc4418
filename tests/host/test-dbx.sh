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

# kos dbx apply on a directory standing in for efivarfs: what the firmware
# receives is one write of the attributes (0x67: NV, BS, RT, time-based
# authenticated, APPEND_WRITE) and the .auth as kos dbx create wrote it.
test_dbx_update_is_appended_through_efivarfs_with_the_append_attribute_once_the_check_passes() {
        local keys; keys=$(dbx_keys)
        dbx_ukis "$keys"
        "$KOS" dbx create --kek-key "$keys/KEK.key" --kek-cert "$keys/KEK.crt" --uki old.efi -o old.auth >/dev/null
        mkdir efivars
        "$KOS" dbx apply old.auth --uki running.efi --efivars efivars >out || fail "not applied: $(cat out)"
        grep -q '^appended: ' out || fail "$(cat out)"
        local var=efivars/dbx-d719b2cb-3d3a-4596-a3bc-dad00e67656f
        [ "$(od -An -tx1 -N4 "$var" | tr -d ' ')" = 67000000 ] || fail "attributes $(od -An -tx1 -N4 "$var")"
        tail -c +5 "$var" | cmp - old.auth || fail "the .auth was not written as it is"
        # The firmware's dbx now holds the lists (efivarfs shows them after
        # the attributes): the same update again writes nothing.
        local cert_len; cert_len=$(od -An -tu4 -j16 -N4 old.auth | tr -d ' ')
        { printf '\x07\x00\x00\x00'; tail -c +$((16 + cert_len + 1)) old.auth; } >"$var"
        cp "$var" before
        "$KOS" dbx apply old.auth --uki running.efi --efivars efivars >out || fail "$(cat out)"
        grep -q '^present: dbx holds every entry already' out || fail "$(cat out)"
        cmp -s "$var" before || fail "written again"
        # A dbx with other entries but not these: appended.
        "$KOS" dbx create --kek-key "$keys/KEK.key" --kek-cert "$keys/KEK.crt" --uki old.efi --cert "$keys/db.crt" \
                -o both.auth >/dev/null
        "$KOS" dbx apply both.auth --uki unsigned-is-not-needed.efi --efivars efivars 2>/dev/null &&
                fail "a missing UKI was accepted as needed"
        printf 'other release' >>unsigned.efi
        sbsign --key "$keys/db.key" --cert "$keys/db.crt" --output other.efi unsigned.efi 2>/dev/null
        "$KOS" dbx create --kek-key "$keys/KEK.key" --kek-cert "$keys/KEK.crt" --uki other.efi -o other.auth >/dev/null
        "$KOS" dbx apply other.auth --uki running.efi --efivars efivars >out || fail "$(cat out)"
        grep -q '^appended: ' out || fail "an update with a new entry was not written: $(cat out)"
}

test_dbx_update_that_would_revoke_a_needed_uki_is_not_written() {
        local keys; keys=$(dbx_keys)
        dbx_ukis "$keys"
        "$KOS" dbx create --kek-key "$keys/KEK.key" --kek-cert "$keys/KEK.crt" --uki running.efi -o running.auth >/dev/null
        "$KOS" dbx create --kek-key "$keys/KEK.key" --kek-cert "$keys/KEK.crt" --cert "$keys/db.crt" -o db.auth >/dev/null
        mkdir efivars
        local rc=0
        "$KOS" dbx apply running.auth --uki old.efi --uki running.efi --efivars efivars 2>err || rc=$?
        [ "$rc" = 1 ] && grep -q 'dbx update refused: revokes-uki-hash: .* of UKI 1' err || fail "exit $rc: $(cat err)"
        rc=0; "$KOS" dbx apply db.auth --uki running.efi --efivars efivars 2>err || rc=$?
        [ "$rc" = 1 ] && grep -q 'dbx update refused: revokes-uki-signer' err || fail "exit $rc: $(cat err)"
        [ -z "$(ls efivars)" ] || fail "something was written: $(ls efivars)"
        # Once in dbx (applied before the slot was rewritten, say), nothing
        # is written and nothing is refused: the firmware refuses that UKI already.
        local cert_len; cert_len=$(od -An -tu4 -j16 -N4 running.auth | tr -d ' ')
        { printf '\x07\x00\x00\x00'; tail -c +$((16 + cert_len + 1)) running.auth; } >efivars/dbx-d719b2cb-3d3a-4596-a3bc-dad00e67656f
        "$KOS" dbx apply running.auth --uki running.efi --efivars efivars >out || fail "$(cat out)"
        grep -q '^present: dbx holds every entry already' out || fail "$(cat out)"
}

# The dbx update travels in a signed release (docs/format.md, "dbx update"):
# the manifest names it by its sha256, a bundle carries it to the device's
# components/ like any blob, and a file no device's check could accept is
# refused when the release is made.
test_release_carries_its_dbx_update_as_a_signed_blob_and_refuses_one_no_device_could_apply() {
        local keys; keys=$(dbx_keys)
        dbx_ukis "$keys"
        "$KOS" dbx create --kek-key "$keys/KEK.key" --kek-cert "$keys/KEK.crt" --uki old.efi -o old.auth >/dev/null
        echo k >vmlinuz && echo i >initrd && echo b >base.img
        "$KOS" keygen secret.pem public.pem >/dev/null && mkdir keyring && cp public.pem keyring/
        "$KOS" manifest create --name r --version 1 --kernel vmlinuz --initrd initrd --component base=base.img:squashfs \
                --dbx-update old.auth -o r.json
        [ "$(jq -r .dbx_update.sha256 r.json)" = "$(sha256sum <old.auth | cut -c1-64)" ] || fail "$(cat r.json)"
        [ "$(jq -r .dbx_update.size r.json)" = "$(stat -c %s old.auth)" ] || fail "size"
        [ "$(jq -r 'keys_unsorted | last' r.json)" = dbx_update ] || fail "dbx_update is not the last key"
        "$KOS" manifest sign --key secret.pem r.json >/dev/null
        "$KOS" bundle create -o r.kosb r.json vmlinuz initrd base.img old.auth >/dev/null || fail "no bundle"
        "$KOS" imagefs init img
        "$KOS" bundle install --keyring keyring img r.kosb >/dev/null || fail "the bundle did not install"
        cmp -s "img/components/$(sha256sum <old.auth | cut -c1-64)" old.auth || fail "the dbx update did not reach components/"
        # Selection neither opens nor hashes it: the release boots without it.
        echo r >img/active && rm "img/components/$(sha256sum <old.auth | cut -c1-64)"
        "$KOS" select img --keyring keyring | grep -q '^selected r ' || fail "selection needed the dbx update"
        # Not an authenticated append, or an entry type no device compares.
        head -c 100 old.auth >short.auth
        ! "$KOS" manifest create --name s --version 1 --kernel vmlinuz --initrd initrd \
                --component base=base.img:squashfs --dbx-update short.auth -o s.json 2>err || fail "a truncated .auth was taken"
        grep -q 'dbx-update: short.auth: malformed' err || fail "$(cat err)"
        local cert_len; cert_len=$(od -An -tu4 -j16 -N4 old.auth | tr -d ' ')
        { head -c $((16 + cert_len)) old.auth; printf '\x00%.0s' $(seq 16); tail -c +$((16 + cert_len + 17)) old.auth; } >zero-type.auth
        ! "$KOS" manifest create --name s --version 1 --kernel vmlinuz --initrd initrd \
                --component base=base.img:squashfs --dbx-update zero-type.auth -o s.json 2>err || fail "an unknown type was taken"
        grep -q 'dbx-update: zero-type.auth: unknown-signature-type' err || fail "$(cat err)"
}
