# Host tests: signing keys in an HSM, through PKCS#11 (kos manifest sign
# --key 'pkcs11:...', kos key-id, kos key export-public). The HSM is a real
# SoftHSM2 token in the test's directory; the key pair is generated inside it
# and its private half never leaves it.

URI_KEY='pkcs11:token=kos;object=signer'
URI_SIGN="$URI_KEY?pin-value=1234"

# hsm_manifest NAME: NAME.json, unsigned, for the fixture's files.
hsm_manifest() {
        "$KOS" manifest create --name "$1" --version 1 --kernel vmlinuz --initrd initrd \
                --cmdline "kos.test=$1" --component base=base.img --component app=app.img -o "$1.json"
}

test_hsm_signed_manifest_verifies_and_is_selected() {
        fixture; softhsm_token
        # The keyring holds only the HSM key's exported public half.
        rm keyring/*
        local id; id=$("$KOS" key export-public "$URI_KEY" keyring/hsm.pem)
        [ "$("$KOS" key-id "$URI_KEY")" = "$id" ] || fail "key-id of the URI differs from export-public's"
        [ "$("$KOS" key-id keyring/hsm.pem)" = "$id" ] || fail "key-id of the exported PEM differs"
        hsm_manifest a
        "$KOS" manifest sign --key "$URI_SIGN" a.json | grep -q "signed a.json with key $id" || fail "sign output"
        [ "$(wc -l <a.json.sig)" = 1 ] && grep -q "^ed25519 $id " a.json.sig || fail "sig line: $(cat a.json.sig)"
        "$KOS" manifest verify --keyring keyring a.json | grep -q "signed by key $id" || fail "verify"
        "$KOS" install img a.json >/dev/null
        activate a
        expect_selected a
        "$KOS" select img --keyring keyring --explain | grep -q "signed by $id" || fail "select does not name the HSM key"
}

test_hsm_signature_verifies_with_openssl_alone() {
        fixture; softhsm_token
        "$KOS" key export-public "$URI_KEY" hsm.pem >/dev/null
        hsm_manifest a
        "$KOS" manifest sign --key "$URI_SIGN" a.json >/dev/null
        # docs/format.md: the key id from the DER public key, the signature is base64 of 64 bytes.
        local id; id=$(openssl pkey -pubin -in hsm.pem -outform DER | tail -c 32 | sha256sum | cut -c1-16)
        [ "$(cut -d' ' -f2 a.json.sig)" = "$id" ] || fail "key id is not openssl's"
        cut -d' ' -f3 a.json.sig | base64 -d >sig.bin
        [ "$(stat -c %s sig.bin)" = 64 ] || fail "signature is not 64 bytes"
        openssl pkeyutl -verify -pubin -inkey hsm.pem -rawin -in a.json -sigfile sig.bin | grep -q 'Verified Successfully' ||
                fail "openssl does not verify the HSM's signature"
        printf ' ' >>a.json
        ! openssl pkeyutl -verify -pubin -inkey hsm.pem -rawin -in a.json -sigfile sig.bin >/dev/null 2>&1 ||
                fail "openssl verifies a changed manifest"
}

test_hsm_wrong_pin_fails_clearly_and_writes_no_sig() {
        fixture; softhsm_token
        hsm_manifest a
        local rc=0
        "$KOS" manifest sign --key "$URI_KEY?pin-value=98765" a.json >out 2>err || rc=$?
        [ "$rc" = 2 ] || fail "exit $rc, wanted 2"
        grep -q "wrong PIN for token 'kos'" err || fail "message: $(cat err)"
        ! grep -q 98765 err out || fail "the PIN is printed"
        [ ! -e a.json.sig ] || fail "a .sig was written"
}

test_hsm_missing_pin_says_how_to_give_one() {
        fixture; softhsm_token
        hsm_manifest a
        ! "$KOS" manifest sign --key "$URI_KEY" a.json 2>err || fail "signed without a PIN"
        grep -q "needs the user PIN: add pin-source=file:PATH" err || fail "message: $(cat err)"
        [ ! -e a.json.sig ] || fail "a .sig was written"
}

test_hsm_missing_object_fails_clearly() {
        fixture; softhsm_token
        hsm_manifest a
        ! "$KOS" manifest sign --key 'pkcs11:token=kos;object=nosuchkey?pin-value=1234' a.json 2>err || fail "signed"
        grep -q "no public key matching token 'kos', object 'nosuchkey'" err || fail "message: $(cat err)"
        ! grep -q 1234 err || fail "the PIN is printed"
        ! "$KOS" key-id 'pkcs11:token=kos;id=%02' 2>err || fail "key-id of a missing id"
        grep -q "no public key matching token 'kos', object (any), id 02" err || fail "message: $(cat err)"
        [ ! -e a.json.sig ] || fail "a .sig was written"
}

test_hsm_missing_token_fails_clearly() {
        fixture; softhsm_token
        hsm_manifest a
        ! "$KOS" manifest sign --key 'pkcs11:token=other;object=signer?pin-value=1234' a.json 2>err || fail "signed"
        grep -q "token 'other' not found in .*libsofthsm2.so (tokens present: 'kos')" err || fail "message: $(cat err)"
}

test_hsm_refuses_a_key_that_is_not_ed25519() {
        fixture; softhsm_token
        hsm_keypair EC:prime256v1 p256 02
        hsm_manifest a
        ! "$KOS" manifest sign --key 'pkcs11:token=kos;object=p256?pin-value=1234' a.json 2>err || fail "signed"
        grep -q "is not an Ed25519 key" err || fail "message: $(cat err)"
        ! "$KOS" key export-public 'pkcs11:token=kos;object=p256' p256.pem 2>err || fail "exported"
        grep -q "is not an Ed25519 key" err && [ ! -e p256.pem ] || fail "export: $(cat err)"
}

test_hsm_pin_source_file_id_and_module_option() {
        fixture; softhsm_token
        unset KOS_PKCS11_MODULE
        printf '1234\n' >pin
        hsm_manifest a
        "$KOS" manifest sign --pkcs11-module "$SOFTHSM_MODULE" --key "pkcs11:token=kos;id=%01?pin-source=file:$PWD/pin" a.json |
                grep -q "signed a.json" || fail "pin-source, id and --pkcs11-module"
        "$KOS" manifest sign --key "pkcs11:token=kos;id=%01?pin-source=$PWD/pin&module-path=$SOFTHSM_MODULE" a.json |
                grep -q "signed a.json" || fail "module-path in the URI"
        [ "$(wc -l <a.json.sig)" = 1 ] || fail "the same key signed twice: $(cat a.json.sig)"
        ! "$KOS" manifest sign --pkcs11-module /nonexistent/module.so --key "$URI_SIGN" a.json 2>err || fail "bad module"
        grep -q "cannot load PKCS#11 module /nonexistent/module.so" err || fail "message: $(cat err)"
}

test_hsm_and_pem_signatures_live_side_by_side() {
        fixture; softhsm_token
        "$KOS" key export-public "$URI_KEY" keyring/hsm.pem >/dev/null
        hsm_manifest a
        "$KOS" manifest sign --key secret.pem a.json >/dev/null
        "$KOS" manifest sign --key "$URI_SIGN" a.json >/dev/null
        [ "$(wc -l <a.json.sig)" = 2 ] || fail "wanted two lines: $(cat a.json.sig)"
        rm keyring/dev.pem
        "$KOS" manifest verify --keyring keyring a.json >/dev/null || fail "HSM line does not verify"
}

test_hsm_uri_errors_never_echo_the_pin() {
        fixture; softhsm_token
        hsm_manifest a
        local uri
        for uri in "$URI_KEY?pin-value=SECRET%zz" "$URI_KEY;pin-value=SECRET" "$URI_KEY?pin-value=SECRET&pin-value=SECRET" \
                "$URI_KEY?pin-value=SECRET&frobnicate=1" "$URI_KEY?pin-value=SECRET&pin-source=/x"; do
                ! "$KOS" manifest sign --key "$uri" a.json 2>err || fail "accepted $uri"
                grep -q "PKCS#11 URI" err || fail "message for $uri: $(cat err)"
                ! grep -q SECRET err || fail "the PIN is printed: $(cat err)"
        done
}

# A URI scheme is case-insensitive: PKCS11: is the token, never a file
# whose "cannot read" message would print the whole argument, PIN included.
# Nothing a message shows of a --key argument ever holds a PIN.
test_hsm_uri_scheme_in_any_case_is_a_uri_and_no_message_prints_the_pin() {
        fixture; softhsm_token
        hsm_manifest a
        "$KOS" manifest sign --key 'PKCS11:token=kos;object=signer?pin-value=1234' a.json >out 2>err ||
                fail "PKCS11: not taken as a URI: $(cat err)"
        grep -q "signed a.json" out || fail "$(cat out)"
        local key
        for key in 'PKCS11:token=kos;object=nosuchkey?pin-value=SECRET' 'Pkcs11:token=kos?pin-value=SECRET%zz' \
                'pkcs:token=kos;object=signer?pin-value=SECRET' 'PKCS11;token=kos?PIN-VALUE=SECRET'; do
                ! "$KOS" manifest sign --key "$key" a.json >out 2>err || fail "signed with $key"
                ! grep -q SECRET err out || fail "the PIN is printed for $key: $(cat err)"
                ! "$KOS" key-id "$key" >out 2>err || fail "key-id of $key"
                ! grep -q SECRET err out || fail "key-id prints the PIN for $key: $(cat err)"
        done
}

test_hsm_default_module_is_p11_kit_proxy() {
        fixture; softhsm_token
        local proxy=/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so
        [ -r "$proxy" ] || fail "p11-kit's proxy module is not installed ($proxy; scripts/deps.sh check installs p11-kit)"
        [ -r /usr/share/p11-kit/modules/softhsm2.module ] || fail "softhsm2 is not registered with p11-kit"
        unset KOS_PKCS11_MODULE
        local id; id=$("$KOS" key export-public "$URI_KEY" hsm.pem)
        hsm_manifest a
        "$KOS" manifest sign --key "$URI_SIGN" a.json | grep -q "signed a.json with key $id" || fail "sign through the proxy"
        ! "$KOS" key-id 'pkcs11:token=nosuchtoken' 2>err || fail "found a missing token"
        grep -q "token 'nosuchtoken' not found in $proxy" err || fail "message: $(cat err)"
}
