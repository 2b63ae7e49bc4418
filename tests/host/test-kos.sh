# Host tests of the kos tool on real files: one per validation rule, named
# after it. Sourced by tests/host/run.sh; each test_* runs in a fresh directory.

test_selects_first_valid_manifest_and_skips_the_rest() {
        fixture; manifest a; manifest b
        activate a b
        expect_selected a
        [ "$(select_json | jq -r '.manifests[1].verdict')" = skipped ] || fail "b not skipped"
        [ "$(select_json | jq -r '.selected.id')" = "$(sha img/manifests/a.json)" ] || fail "id is not sha256 of the manifest bytes"
}

test_rejects_manifest_missing_then_selects_next() {
        fixture; manifest a
        activate ghost a
        expect_reason ghost manifest-missing
        expect_selected a
        [ "$(select_json | jq -c '.manifests[0].id')" = null ] || fail "missing manifest has an id"
}

test_rejects_active_entry_with_path_traversal() {
        fixture; manifest a
        cp img/manifests/a.json ./escape.json; cp img/manifests/a.json.sig ./escape.json.sig
        activate "../../escape" a
        expect_reason "../../escape" manifest-missing
        select_json | jq -r '.manifests[0].detail' | grep -q 'not a valid manifest name' || fail "detail"
        expect_selected a
}

test_rejects_manifest_too_large() {
        fixture; manifest a
        # Valid JSON padded with spaces to exactly 1 MiB is accepted; one byte more is not.
        local size; size=$(stat -c %s a.json)
        { cat a.json; head -c $((1048576 - size)) /dev/zero | tr '\0' ' '; } >big.json
        sed -i 's/"name": "a"/"name": "big"/' big.json
        [ "$(stat -c %s big.json)" = 1048578 ] && truncate -s 1048576 big.json
        size=$(stat -c %s big.json); [ "$size" = 1048576 ] || fail "fixture is $size bytes"
        openssl_sign secret.pem big.json
        cp big.json big.json.sig img/manifests/
        activate big
        expect_selected big
        printf ' ' >>img/manifests/big.json
        openssl_sign secret.pem img/manifests/big.json
        expect_reason big manifest-too-large
}

test_rejects_signature_missing() {
        fixture; manifest a
        rm img/manifests/a.json.sig
        activate a
        expect_reason a signature-missing
}

test_rejects_truncated_signature() {
        fixture; manifest a
        head -c 60 a.json.sig >img/manifests/a.json.sig
        activate a
        expect_reason a signature-malformed
}

test_rejects_signature_file_with_garbage_line() {
        fixture; manifest a
        { cat a.json.sig; echo "rsa 0000 AAAA"; } >img/manifests/a.json.sig
        activate a
        expect_reason a signature-malformed
}

test_rejects_manifest_signed_by_unknown_key() {
        fixture; manifest a
        "$KOS" manifest sign --key stranger.pem img/manifests/a.json >/dev/null
        grep -v "$("$KOS" key-id public.pem)" img/manifests/a.json.sig >tmp.sig && mv tmp.sig img/manifests/a.json.sig
        activate a
        expect_reason a key-untrusted
}

test_rejects_forged_manifest_signature_invalid() {
        fixture; manifest a
        sed -i 's/kos.test=a/kos.test=evil/' img/manifests/a.json
        activate a
        expect_reason a signature-invalid
}

test_rejects_signature_of_another_manifest() {
        fixture; manifest a; manifest b
        cp img/manifests/b.json.sig img/manifests/a.json.sig
        activate a
        expect_reason a signature-invalid
}

test_accepts_one_trusted_line_among_several_for_key_rotation() {
        fixture; manifest a
        "$KOS" manifest sign --key stranger.pem img/manifests/a.json >/dev/null
        [ "$(wc -l <img/manifests/a.json.sig)" = 2 ] || fail "expected two signature lines"
        activate a
        expect_selected a
}

# Writes NAME.json from a transformed copy of a.json, signs it with the
# trusted key so that only the parser can reject it, installs and activates it.
signed_variant() {
        local name=$1; shift
        sed "$@" a.json >"$name.json"
        openssl_sign secret.pem "$name.json"
        cp "$name.json" "$name.json.sig" img/manifests/
        activate "$name"
}

test_rejects_duplicate_keys() {
        fixture; manifest a
        signed_variant dup -e 's/"name": "a",/"name": "dup", "version": 7,/'
        expect_reason dup manifest-malformed
}

test_rejects_trailing_garbage() {
        fixture; manifest a
        signed_variant tail -e 's/"name": "a"/"name": "tail"/' -e '$ s/}/}}/'
        expect_reason tail manifest-malformed
}

test_rejects_unknown_format() {
        fixture; manifest a
        signed_variant fmt -e 's/"name": "a"/"name": "fmt"/' -e 's/"format": 1/"format": 2/'
        expect_reason fmt manifest-malformed
        select_json | jq -r '.manifests[0].detail' | grep -q 'unknown "format" 2' || fail "detail"
}

test_rejects_wrong_type() {
        fixture; manifest a
        signed_variant typ -e 's/"name": "a"/"name": "typ"/' -e 's/"version": 1/"version": "1"/'
        expect_reason typ manifest-malformed
}

test_rejects_component_name_with_dotdot() {
        fixture; manifest a
        signed_variant dots -e 's/"name": "a"/"name": "dots"/' -e 's/"name": "app"/"name": "..\/app"/'
        expect_reason dots manifest-malformed
}

test_rejects_name_mismatch() {
        fixture; manifest a
        cp img/manifests/a.json img/manifests/other.json
        cp img/manifests/a.json.sig img/manifests/other.json.sig
        activate other a
        expect_reason other name-mismatch
        expect_selected a
}

test_rejects_component_missing() {
        fixture; manifest a
        rm "img/components/$(sha app.img)"
        activate a
        expect_reason a component-missing
}

test_rejects_component_replaced_by_symlink() {
        fixture; manifest a
        local c; c="img/components/$(sha app.img)"
        mv "$c" "$c.real" && ln -s "$(basename "$c").real" "$c"
        activate a
        expect_reason a component-not-regular
}

test_rejects_component_that_is_a_directory_or_fifo() {
        fixture; manifest a
        local c; c="img/components/$(sha app.img)"
        rm "$c" && mkdir "$c"
        activate a
        expect_reason a component-not-regular
        rmdir "$c" && mkfifo "$c"
        expect_reason a component-not-regular
}

test_rejects_component_size_mismatch() {
        fixture; manifest a
        printf x >>"img/components/$(sha base.img)"
        activate a
        expect_reason a component-size-mismatch
}

test_rejects_one_flipped_byte_in_component() {
        fixture; manifest a
        flip_byte "img/components/$(sha base.img)" 2000
        activate a
        expect_reason a component-hash-mismatch
        select_json | jq -r '.manifests[0].detail' | grep -q '^base:' || fail "detail does not name base"
}

test_rejects_one_flipped_byte_in_kernel() {
        fixture; manifest a
        flip_byte "img/components/$(sha vmlinuz)" 123456
        activate a
        expect_reason a component-hash-mismatch
        select_json | jq -r '.manifests[0].detail' | grep -q '^kernel:' || fail "detail does not name the kernel"
}

test_flipped_component_falls_back_to_manifest_without_it() {
        fixture; manifest a
        mkdir -p base2/etc && echo other >base2/etc/layer && mksquashfs base2 base2.img -quiet -noappend >/dev/null
        "$KOS" component add img base2.img >/dev/null
        "$KOS" manifest create --name b --version 1 --kernel vmlinuz --initrd initrd --component base=base2.img -o b.json
        "$KOS" manifest sign --key secret.pem b.json >/dev/null && "$KOS" install img b.json >/dev/null
        flip_byte "img/components/$(sha base.img)" 100
        activate a b
        expect_reason a component-hash-mismatch
        expect_selected b
}

test_nothing_valid_exits_1_and_explains_every_reason() {
        fixture; manifest a
        rm img/manifests/a.json.sig
        activate ghost a
        expect_nothing_valid
        local out; out=$("$KOS" select img --keyring keyring --explain 2>&1) && fail "exit 0"
        grep -q 'manifest-missing' <<<"$out" && grep -q 'signature-missing' <<<"$out" || fail "reasons missing: $out"
}

test_missing_active_file_is_nothing_valid() {
        fixture; manifest a
        rm img/active
        expect_nothing_valid
}

test_malformed_inputs_never_crash() {
        fixture; manifest a
        for i in 1 2 3 4 5 6 7 8; do
                head -c $((RANDOM * 3)) /dev/urandom >img/manifests/a.json
                head -c $((RANDOM % 300)) /dev/urandom >img/manifests/a.json.sig
                head -c $((RANDOM % 2000)) /dev/urandom >img/active
                local rc=0; "$KOS" select img --keyring keyring --json >/dev/null 2>&1 || rc=$?
                [ "$rc" = 1 ] || fail "select on garbage exited $rc (wanted 1)"
                rc=0; "$KOS" manifest show img/manifests/a.json >/dev/null 2>&1 || rc=$?
                [ "$rc" = 1 ] || fail "show on garbage exited $rc (wanted 1)"
        done
}

test_imagefs_built_with_openssl_and_shell_alone() {
        # docs/format.md, "Building an ImageFS by hand", step by step.
        openssl genpkey -algorithm ed25519 -out vendor.key
        mkdir -p keys && openssl pkey -in vendor.key -pubout -out keys/vendor.pem
        mkdir -p hand/components hand/manifests
        head -c 5000 /dev/urandom >k; head -c 3000 /dev/urandom >i
        mkdir -p r/etc && echo hi >r/etc/hi && mksquashfs r r.img -quiet -noappend >/dev/null
        for f in k i r.img; do cp "$f" "hand/components/$(sha256sum "$f" | cut -d' ' -f1)"; done
        cat >hand/manifests/byhand.json <<JSON
{"format": 1, "name": "byhand", "version": 4,
 "kernel": {"sha256": "$(sha k)", "size": $(stat -c %s k)},
 "initrd": {"sha256": "$(sha i)", "size": $(stat -c %s i)},
 "cmdline": "console=ttyS0",
 "components": [{"name": "root", "type": "squashfs", "sha256": "$(sha r.img)", "size": $(stat -c %s r.img)}]}
JSON
        openssl_sign vendor.key hand/manifests/byhand.json
        echo byhand >hand/active
        local out; out=$("$KOS" select hand --keyring keys --json) || fail "select failed: $out"
        [ "$(jq -r .selected.id <<<"$out")" = "$(sha hand/manifests/byhand.json)" ] || fail "$out"
        [ "$("$KOS" key-id keys/vendor.pem)" = "$(cut -d' ' -f2 hand/manifests/byhand.json.sig)" ] || fail "key id"
}

test_install_refuses_manifest_whose_components_are_missing() {
        fixture
        "$KOS" manifest create --name a --version 1 --kernel vmlinuz --initrd initrd --component base=base.img -o a.json
        "$KOS" manifest sign --key secret.pem a.json >/dev/null
        rm "img/components/$(sha initrd)"
        local rc=0; "$KOS" install img a.json 2>err || rc=$?
        [ "$rc" = 1 ] && grep -q component-missing err || fail "install exited $rc: $(cat err)"
        [ ! -e img/manifests/a.json ] || fail "manifest was installed"
}

test_install_refuses_other_bytes_under_an_installed_name() {
        fixture; manifest a
        "$KOS" manifest create --name a --version 2 --kernel vmlinuz --initrd initrd --component base=base.img -o a2.json
        "$KOS" manifest sign --key secret.pem a2.json >/dev/null
        local rc=0; "$KOS" install img a2.json 2>err || rc=$?
        [ "$rc" = 2 ] && grep -q 'new name' err || fail "install exited $rc: $(cat err)"
        cmp -s a.json img/manifests/a.json || fail "installed manifest changed"
        "$KOS" install img a.json >/dev/null || fail "re-installing the same bytes must succeed"
}

test_install_with_keyring_refuses_untrusted_signature() {
        fixture
        "$KOS" manifest create --name a --version 1 --kernel vmlinuz --initrd initrd --component base=base.img -o a.json
        "$KOS" manifest sign --key stranger.pem a.json >/dev/null
        local rc=0; "$KOS" install --keyring keyring img a.json 2>/dev/null || rc=$?
        [ "$rc" = 1 ] || fail "install exited $rc"
}

test_activate_orders_and_deactivate_removes() {
        fixture; manifest a; manifest b; manifest c
        "$KOS" activate img a; "$KOS" activate img b; "$KOS" activate img c --last
        [ "$(tr '\n' ' ' <img/active)" = "b a c " ] || fail "order: $(cat img/active)"
        "$KOS" activate img c --first; "$KOS" deactivate img a
        [ "$(tr '\n' ' ' <img/active)" = "c b " ] || fail "order: $(cat img/active)"
        "$KOS" list img | grep -q -- '-  a' || fail "list does not show a as inactive"
}

test_activate_refuses_uninstalled_or_invalid_name() {
        fixture
        local rc=0; "$KOS" activate img nothere 2>/dev/null || rc=$?
        [ "$rc" = 2 ] || fail "exit $rc"
        rc=0; "$KOS" activate img ../x 2>/dev/null || rc=$?
        [ "$rc" = 2 ] || fail "exit $rc"
        [ ! -s img/active ] || fail "active changed"
}

test_gc_removes_only_unreferenced_components() {
        fixture
        "$KOS" manifest create --name a --version 1 --kernel vmlinuz --initrd initrd --component base=base.img -o a.json
        "$KOS" manifest sign --key secret.pem a.json >/dev/null && "$KOS" install img a.json >/dev/null
        touch img/components/.tmp-add-99
        "$KOS" gc img --keyring keyring --dry-run >/dev/null
        [ -e "img/components/$(sha app.img)" ] || fail "dry run removed something"
        "$KOS" gc img --keyring keyring >/dev/null
        [ ! -e "img/components/$(sha app.img)" ] || fail "unreferenced app.img kept"
        [ ! -e img/components/.tmp-add-99 ] || fail "temporary file kept"
        [ -e "img/components/$(sha base.img)" ] && [ -e "img/components/$(sha vmlinuz)" ] || fail "referenced removed"
}

# gc trusts only what it can authenticate: junk, an unsigned manifest or one
# signed by an unknown key neither protects a component nor blocks gc, and a
# component a valid manifest references is never removed.
test_gc_ignores_manifests_it_cannot_authenticate() {
        fixture
        "$KOS" manifest create --name a --version 1 --kernel vmlinuz --initrd initrd --component base=base.img -o a.json
        "$KOS" manifest sign --key secret.pem a.json >/dev/null && "$KOS" install img a.json >/dev/null
        "$KOS" manifest create --name evil --version 9 --kernel vmlinuz --initrd initrd --component app=app.img -o evil.json
        "$KOS" manifest sign --key stranger.pem evil.json >/dev/null && cp evil.json evil.json.sig img/manifests/
        echo '{' >img/manifests/broken.json
        head -c 100 /dev/urandom >img/manifests/junk.json
        local rc=0; "$KOS" gc img --keyring keyring >out 2>err || rc=$?
        [ "$rc" = 0 ] || fail "gc exit $rc: $(cat err)"
        for m in evil broken junk; do
                grep -q "ignoring manifests/$m.json" err || fail "$m not reported: $(cat err)"
                [ -e "img/manifests/$m.json" ] || fail "gc removed manifests/$m.json"
        done
        [ ! -e "img/components/$(sha app.img)" ] || fail "an unauthenticated manifest protected app.img"
        for f in vmlinuz initrd base.img; do
                [ -e "img/components/$(sha $f)" ] || fail "$f, referenced by the valid a, was removed"
        done
}

test_keygen_refuses_to_overwrite() {
        "$KOS" keygen s.pem p.pem >/dev/null
        cp s.pem s.bak
        local rc=0; "$KOS" keygen s.pem p.pem 2>/dev/null || rc=$?
        [ "$rc" = 2 ] && cmp -s s.pem s.bak || fail "key overwritten or wrong exit $rc"
        [ "$(stat -c %a s.pem)" = 600 ] || fail "secret key mode $(stat -c %a s.pem)"
        [ "$("$KOS" key-id s.pem)" = "$("$KOS" key-id p.pem)" ] || fail "ids differ"
}

test_manifest_create_detects_filesystem_types() {
        fixture
        mkdir -p e && echo e >e/f && mkfs.ext4 -q -d e ext.img 4M
        "$KOS" manifest create --name t --version 0 --kernel vmlinuz --initrd initrd \
                --component s=base.img --component e=app.img --component x=ext.img -o t.json
        [ "$(jq -r '[.components[].type] | join(",")' t.json)" = squashfs,erofs,ext4 ] || fail "$(cat t.json)"
        local rc=0; "$KOS" manifest create --name t --version 0 --kernel vmlinuz --initrd initrd \
                --component k=vmlinuz -o u.json 2>/dev/null || rc=$?
        [ "$rc" = 2 ] || fail "a non-filesystem component was accepted"
}

test_manifest_verify_exit_codes() {
        fixture; manifest a
        "$KOS" manifest verify --keyring keyring a.json >/dev/null || fail "valid manifest rejected"
        echo ' ' >>a.json
        local rc=0; "$KOS" manifest verify --keyring keyring a.json 2>/dev/null || rc=$?
        [ "$rc" = 1 ] || fail "exit $rc"
}

test_every_command_has_help() {
        local c
        for c in keygen key-id imagefs component "manifest create" "manifest sign" "manifest verify" \
                "manifest show" manifest install activate deactivate list gc select; do
                # shellcheck disable=SC2086
                "$KOS" $c --help | grep -q Usage || fail "kos $c --help"
        done
        "$KOS" --help | grep -q select || fail "kos --help"
}

test_usage_errors_exit_2() {
        local rc
        for args in "" "nope" "select" "select img" "activate" "manifest create --name x" "gc" "keygen one"; do
                rc=0
                # shellcheck disable=SC2086
                "$KOS" $args >/dev/null 2>&1 || rc=$?
                [ "$rc" = 2 ] || fail "kos $args exited $rc"
        done
}

test_select_on_a_directory_that_is_not_an_imagefs() {
        fixture; mkdir empty
        local rc=0; "$KOS" select empty --keyring keyring 2>err || rc=$?
        [ "$rc" = 2 ] && grep -q 'not an ImageFS' err || fail "exit $rc: $(cat err)"
}

test_activate_with_tries_puts_manifest_on_trial_and_mark_good_ends_it() {
        fixture; manifest a
        "$KOS" activate img a --tries 3
        local id; id=$(sha img/manifests/a.json)
        [ -e "img/boot-state/$id.tries-3" ] || fail "no trial state: $(ls img/boot-state)"
        "$KOS" select img --keyring keyring --explain | grep -q 'on trial, 3 tries left' || fail "explain"
        [ -e "img/boot-state/$id.tries-3" ] || fail "kos select on a host must not consume a try"
        "$KOS" mark-good --keyring keyring img a
        [ -e "img/boot-state/$id.good" ] && [ ! -e "img/boot-state/$id.tries-3" ] || fail "$(ls img/boot-state)"
        "$KOS" list img | grep -q 'a  (marked good)' || fail "list"
}

test_rejects_manifest_whose_tries_are_exhausted() {
        fixture; manifest a; manifest b
        "$KOS" activate img b
        "$KOS" activate img a --tries 2
        local id; id=$(sha img/manifests/a.json)
        mv "img/boot-state/$id.tries-2" "img/boot-state/$id.tries-0"
        expect_reason a tries-exhausted
        expect_selected b
}

test_boot_state_names_that_are_not_ours_are_ignored() {
        fixture; manifest a
        "$KOS" activate img a
        local id; id=$(sha img/manifests/a.json)
        touch "img/boot-state/$id.tries-x" "img/boot-state/$id.tries-100" "img/boot-state/$id.tries-"
        expect_selected a
}

# A component without FILE.meta is neither encrypted nor verity-checked,
# however many there are (the fields were once left uninitialised).
test_manifest_create_of_64_components_without_meta_has_no_encryption_or_verity() {
        fixture
        local args=() i
        for i in $(seq 1 64); do args+=(--component "c$i=base.img"); done
        "$KOS" manifest create --name many --version 1 --kernel vmlinuz --initrd initrd "${args[@]}" -o many.json
        [ "$(jq '.components | length' many.json)" = 64 ] || fail "not 64 components"
        [ "$(jq '[.components[] | select(has("encryption") or has("verity"))] | length' many.json)" = 0 ] ||
                fail "components without .meta got encryption or verity: $(jq -c '[.components[] | select(has("encryption") or has("verity"))][0]' many.json)"
}
