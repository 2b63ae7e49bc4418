# The manifest-key revocation list (docs/format.md, "Revocation list";
# docs/trust-chain.md): a list signed by a revocation key of the keyring
# narrows the keyring without a new UKI, and its freshness is bound to the
# release's security_version, so deleting or replacing it frees no key.

# revocation_fixture: keyring {K1 = secret.pem, K2 = k2.pem} plus the
# revocation key revoker.pem in keyring/revocation/.
revocation_fixture() {
        fixture
        "$KOS" keygen k2.pem k2.pub >/dev/null
        "$KOS" keygen revoker.pem revoker.pub >/dev/null
        cp k2.pub keyring/k2.pem
        mkdir keyring/revocation && cp revoker.pub keyring/revocation/vendor.pem
}

revocation_key_id() { openssl pkey -pubin -in "$1" -outform DER | tail -c 32 | sha256sum | cut -c1-16; }

# signed_release NAME SECURITY_VERSION KEY...: NAME.json signed by each KEY, installed.
signed_release() {
        local name=$1 sv=$2; shift 2
        "$KOS" manifest create --name "$name" --version "$sv" --security-version "$sv" --kernel vmlinuz --initrd initrd \
                --cmdline "kos.test=$name" --component base=base.img --component app=app.img -o "$name.json"
        for key; do "$KOS" manifest sign --key "$key" "$name.json" >/dev/null; done
        "$KOS" install img "$name.json" >/dev/null
}

# revocation_list SECURITY_VERSION SIGNING-KEY [REVOKED-PUBLIC-KEY...]: img/revocation.json
# written and signed by hand (jq, openssl: the format of docs/format.md).
revocation_list() {
        local sv=$1 key=$2; shift 2
        local ids=() pub
        for pub; do ids+=("$(revocation_key_id "$pub")"); done
        jq -n --argjson sv "$sv" '{format: 1, security_version: $sv, revoked_keys: $ARGS.positional}' \
                --args "${ids[@]}" >img/revocation.json
        openssl_sign "$key" img/revocation.json
}

test_manifest_signed_only_by_a_key_the_revocation_list_names_is_rejected_as_key_revoked() {
        revocation_fixture
        signed_release r1 1 secret.pem
        signed_release r2 2 k2.pem
        revocation_list 2 revoker.pem public.pem
        activate r1 r2
        expect_reason r1 key-revoked
        expect_selected r2
        "$KOS" select img --keyring keyring --explain >out || true
        grep -q "key-revoked: signed by key $(revocation_key_id public.pem), which revocation.json (security_version 2) revokes" out ||
                fail "$(cat out)"
}

test_manifest_also_signed_by_a_key_still_trusted_boots_despite_the_revoked_one() {
        revocation_fixture
        signed_release both 2 secret.pem k2.pem
        revocation_list 2 revoker.pem public.pem
        activate both
        expect_selected both
}

# The leaked key signs a release above every list the vendor issued before
# the leak: it needs a list at least as new, and every such list names it.
test_manifest_newer_than_the_revocation_list_is_rejected_as_revocation_list_stale() {
        revocation_fixture
        revocation_list 1 revoker.pem
        signed_release leaked 5 secret.pem
        activate leaked
        expect_reason leaked revocation-list-stale
        expect_nothing_valid
}

test_deleting_the_revocation_list_frees_no_revoked_key() {
        revocation_fixture
        signed_release r1 1 secret.pem
        revocation_list 2 revoker.pem public.pem
        rm img/revocation.json img/revocation.json.sig
        activate r1
        expect_reason r1 revocation-list-stale
        expect_nothing_valid
}

# A list signed by a manifest key (the leaked one, un-revoking itself) is
# no list at all: nothing boots, rather than the leaked key.
test_revocation_list_signed_by_a_manifest_key_is_not_honoured() {
        revocation_fixture
        signed_release r1 1 secret.pem
        revocation_list 9 secret.pem
        activate r1
        expect_reason r1 revocation-list-stale
        "$KOS" select img --keyring keyring --explain >out || true
        grep -q "which is not a revocation key" out || fail "$(cat out)"
}

test_keyring_without_revocation_keys_selects_as_before_and_ignores_a_list() {
        fixture
        "$KOS" keygen revoker.pem revoker.pub >/dev/null
        signed_release r1 1 secret.pem
        revocation_list 1 revoker.pem public.pem
        activate r1
        expect_selected r1
}

test_a_key_both_manifest_and_revocation_key_makes_the_keyring_unusable() {
        revocation_fixture
        cp public.pem keyring/revocation/also.pem
        local rc=0; "$KOS" select img --keyring keyring >out 2>err || rc=$?
        [ "$rc" = 2 ] || fail "exit $rc"
        grep -q "also.pem is also a manifest key" err || fail "$(cat err)"
}

test_revocation_create_sign_install_and_an_older_list_is_refused() {
        revocation_fixture
        signed_release r2 2 k2.pem
        "$KOS" revocation create --security-version 2 --revoke public.pem -o new.json
        "$KOS" manifest sign --key revoker.pem new.json >/dev/null
        "$KOS" revocation install img new.json --keyring keyring >/dev/null
        cmp new.json img/revocation.json || fail "not installed"
        [ "$(jq -c . img/revocation.json)" = "{\"format\":1,\"revoked_keys\":[\"$(revocation_key_id public.pem)\"],\"security_version\":2}" ] ||
                fail "$(cat img/revocation.json)"
        activate r2
        expect_selected r2
        "$KOS" revocation create --security-version 1 --revoke "$(revocation_key_id k2.pub)" -o old.json
        "$KOS" manifest sign --key revoker.pem old.json >/dev/null
        local rc=0; "$KOS" revocation install img old.json --keyring keyring 2>err || rc=$?
        [ "$rc" = 1 ] || fail "exit $rc"
        grep -q "vouches for security_version 2, newer than 1: not replaced" err || fail "$(cat err)"
        cmp new.json img/revocation.json || fail "the newer list was replaced"
        # Signed by a manifest key: refused before anything is written.
        rm old.json.sig; "$KOS" manifest sign --key k2.pem old.json >/dev/null
        rc=0; "$KOS" revocation install img old.json --keyring keyring 2>err || rc=$?
        [ "$rc" = 1 ] && grep -q "not a revocation key" err || fail "exit $rc: $(cat err)"
}

# The window a leaked key stays usable (docs/trust-chain.md): up to the last
# list issued before the leak; once the device marks good a release past it,
# the rollback floor shuts the old list's releases out, and every newer list
# names the key, so restoring the old list gives the attacker nothing.
test_leaked_key_is_shut_out_once_the_floor_passes_the_last_list_before_the_leak() {
        revocation_fixture
        signed_release pre 1 secret.pem
        revocation_list 1 revoker.pem
        cp img/revocation.json pre-leak.json && cp img/revocation.json.sig pre-leak.json.sig
        signed_release leaked1 1 secret.pem
        activate leaked1
        expect_selected leaked1 # the window: the pre-leak list vouches for security_version 1
        signed_release fixed 2 k2.pem
        revocation_list 2 revoker.pem public.pem
        activate fixed
        cp img/manifests/leaked1.json img/manifests/leaked1.json.sig .
        "$KOS" mark-good --keyring keyring img fixed >/dev/null
        [ "$(cat img/boot-state/rollback-floor)" = 2 ] || fail "floor $(cat img/boot-state/rollback-floor)"
        cp leaked1.json leaked1.json.sig img/manifests/ # put back: marking fixed good uninstalled it
        cp pre-leak.json img/revocation.json && cp pre-leak.json.sig img/revocation.json.sig
        signed_release leaked2 2 secret.pem
        activate leaked1 leaked2 fixed
        expect_reason leaked1 rollback
        expect_reason leaked2 revocation-list-stale
        expect_nothing_valid
}

# The Boot Kernel honours only the revocation keys its UKI carries.
test_mkboot_puts_the_revocation_keys_in_the_boot_kernel_keyring() {
        local kernel; kernel=$("$ROOT/scripts/build-boot-kernel.sh")
        revocation_fixture
        "$KOS" mkboot --init "$ROOT/$BUILD/kos-boot-init" --kernel "$kernel" --keyring keyring --output out >/dev/null
        lz4 -dc out/initramfs.img | cpio -t --quiet >list
        grep -qx etc/kos/keyring/dev.pem list && grep -qx etc/kos/keyring/k2.pem list || fail "$(cat list)"
        grep -qx etc/kos/keyring/revocation/vendor.pem list || fail "no revocation key: $(cat list)"
        lz4 -dc out/initramfs.img | cpio -i --quiet --to-stdout etc/kos/keyring/revocation/vendor.pem | cmp - revoker.pub ||
                fail "another revocation key"
}
