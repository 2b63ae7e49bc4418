# Anti-rollback: security_version and the device's rollback floor
# (docs/format.md, "Anti-rollback"), on real ImageFS trees.

# release NAME VERSION SECURITY_VERSION: a signed manifest NAME.json with
# its own cmdline (so its own bytes) and a bundle NAME.kosb of it.
release() {
        "$KOS" manifest create --name "$1" --version "$2" --security-version "$3" --kernel vmlinuz --initrd initrd \
                --cmdline "kos.test=$1" --component base=base.img --component app=app.img -o "$1.json"
        "$KOS" manifest sign --key secret.pem "$1.json" >/dev/null
        "$KOS" bundle create -o "$1.kosb" "$1.json" vmlinuz >/dev/null
}

install_bundle() { "$KOS" bundle install --keyring keyring --keep 9 "$@"; }
mark_good() { "$KOS" mark-good --keyring keyring img "$1"; }
floor_file() { cat img/boot-state/rollback-floor; }
state_of() { ls img/boot-state | grep "^$(sha "img/manifests/$1.json")\." | cut -d. -f2; }

# The reported bug: v2 and v3 installed, v3 marked good, then a bundle of v1
# went first in active and was selected.
test_bundle_below_the_floor_is_refused_as_rollback_and_changes_nothing() {
        fixture
        release v1 1 1; release v2 2 1; release v3 3 2
        install_bundle img v2.kosb >/dev/null
        install_bundle img v3.kosb >/dev/null
        mark_good v3 >/dev/null
        [ "$(floor_file)" = 2 ] || fail "floor: $(floor_file)"
        local before; before=$(snapshot)
        local rc=0; install_bundle img v1.kosb >out 2>err || rc=$?
        [ "$rc" = 1 ] || fail "exit $rc: $(cat out err)"
        grep -qF "rollback: security_version 1 is below this device's floor 2" err || fail "$(cat err)"
        [ "$(snapshot)" = "$before" ] || fail "the ImageFS changed"
        expect_selected v3
}

test_selection_skips_a_manifest_below_the_floor_and_boots_the_next() {
        fixture
        release low 1 1; release high 2 2
        install_bundle img low.kosb >/dev/null
        install_bundle img high.kosb >/dev/null
        cp img/manifests/low.json img/manifests/low.json.sig .
        mark_good high >/dev/null
        # Put back (marking high good uninstalled it) and activated by hand,
        # first: the host tool does not judge.
        cp low.json low.json.sig img/manifests/
        "$KOS" activate img low
        expect_reason low rollback
        expect_selected high
        local out; out=$(select_json) || true
        [ "$(jq -r '.manifests[0].detail' <<<"$out")" = "security_version 1 is below this device's floor 2" ] ||
                fail "detail: $out"
        [ "$(jq -c '[.floor, .floor_source, .floor_warning]' <<<"$out")" = '[2,"stored",null]' ] || fail "floor: $out"
        "$KOS" select img --keyring keyring --explain >explain
        grep -q '^rollback floor: security_version 2 (stored)$' explain || fail "$(cat explain)"
        grep -qF "rejected  rollback: security_version 1 is below this device's floor 2" explain || fail "$(cat explain)"
}

test_mark_good_raises_the_floor_and_takes_lower_manifests_out_of_active() {
        fixture
        release a 1 1; release b 2 1; release c 3 2
        for r in a b c; do install_bundle img $r.kosb >/dev/null; done
        [ "$(tr '\n' ' ' <img/active)" = "c b a " ] || fail "active: $(cat img/active)"
        [ ! -e img/boot-state/rollback-floor ] || fail "a floor before anything was marked good"
        mark_good b >out
        [ "$(floor_file)" = 1 ] || fail "floor after b: $(floor_file)"
        [ "$(tr '\n' ' ' <img/active)" = "c b a " ] || fail "same security_version dropped: $(cat img/active)"
        mark_good c >out
        grep -q "rollback floor raised from 1 to 2" out || fail "$(cat out)"
        [ "$(floor_file)" = 2 ] || fail "floor after c: $(floor_file)"
        [ "$(tr '\n' ' ' <img/active)" = "c " ] || fail "active: $(cat img/active)"
        grep -q "uninstalled a: below the rollback floor 2 and not in active" out &&
                grep -q "uninstalled b: below the rollback floor 2 and not in active" out || fail "$(cat out)"
        [ ! -e img/manifests/a.json ] && [ ! -e img/manifests/b.json.sig ] || fail "below the floor and out of active, yet installed"
        [ "$(state_of c)" = good ] || fail "c is $(state_of c)"
}

# Found by the soak (seed 1, cycle 3: "the ImageFS holds 3 manifests, active
# names 1"): a manifest below the floor that active no longer names (the
# factory release an earlier raise took out of active, or one a crash left
# between steps 4 and 5) was kept for the device's life. Marking good
# uninstalls it; an unsigned file, and a manifest at the floor that active
# does not name, stay.
test_mark_good_uninstalls_manifests_below_the_floor_that_active_no_longer_names() {
        fixture
        release a 1 1; release b 2 2; release c 3 3
        for r in a b; do install_bundle img $r.kosb >/dev/null; done
        mark_good b >out
        [ "$(tr '\n' ' ' <img/active)" = "b " ] || fail "active: $(cat img/active)"
        grep -q "deactivated a: below the rollback floor 2" out && grep -q "uninstalled a: below the rollback floor 2" out ||
                fail "taken out of active, a stayed installed: $(cat out)"
        # As a crash between taking it out of active and uninstalling it would.
        cp img/manifests/b.json img/b.json.keep && cp img/manifests/b.json.sig img/b.json.sig.keep
        install_bundle img c.kosb >/dev/null
        echo '{"not": "signed"}' >img/manifests/planted.json
        printf 'c\n' >img/active.new && mv img/active.new img/active
        mv img/b.json.keep img/manifests/b.json && mv img/b.json.sig.keep img/manifests/b.json.sig
        mark_good c >out
        grep -q "uninstalled b: below the rollback floor 3 and not in active" out || fail "$(cat out)"
        [ ! -e img/manifests/a.json ] && [ ! -e img/manifests/b.json ] && [ ! -e img/manifests/b.json.sig ] ||
                fail "left: $(ls img/manifests | tr '\n' ' ')"
        [ -e img/manifests/c.json ] && [ -e img/manifests/planted.json ] || fail "removed: $(ls img/manifests | tr '\n' ' ')"
        [ "$(ls img/manifests | grep -c '\.json$')" -le $(($(grep -c . img/active) + 1)) ] ||
                fail "the bound: $(ls img/manifests | tr '\n' ' '), active $(cat img/active)"
}

test_rollback_floor_never_goes_down() {
        fixture
        release a 1 1; release c 2 2
        install_bundle img a.kosb >/dev/null
        install_bundle img c.kosb >/dev/null
        cp img/manifests/a.json img/manifests/a.json.sig .
        mark_good c >/dev/null
        cp a.json a.json.sig img/manifests/ # put back: marking c good uninstalled it
        "$KOS" activate img a
        local rc=0; mark_good a >out 2>err || rc=$?
        [ "$rc" = 1 ] && grep -qF "rollback: security_version 1 is below this device's floor 2" err || fail "exit $rc: $(cat err)"
        [ "$(floor_file)" = 2 ] || fail "floor went to $(floor_file)"
        [ "$(state_of a)" = tries-3 ] || fail "a was marked $(state_of a)"
        mark_good c >/dev/null # again: equal, stays
        [ "$(floor_file)" = 2 ] || fail "floor: $(floor_file)"
}

# An ordinary release (same security_version) that fails on trial falls back
# to the previous one: anti-rollback does not get in the way.
test_failed_update_of_the_same_security_version_falls_back_to_the_previous() {
        fixture
        release a 1 2; release b 2 2
        install_bundle img a.kosb >/dev/null
        mark_good a >/dev/null
        install_bundle --tries 1 img b.kosb >/dev/null
        expect_selected b
        local id; id=$(sha img/manifests/b.json)
        mv "img/boot-state/$id.tries-1" "img/boot-state/$id.tries-0" # the Boot Kernel used the try; never marked good
        expect_reason b tries-exhausted
        expect_selected a
        [ "$(floor_file)" = 2 ] || fail "floor: $(floor_file)"
}

# boot-state/ is writable by whoever has the disk: a floor file that is junk
# or not a regular file makes the floor one derived from the manifests in
# active (docs/format.md), loudly; nothing hangs; the fallback still works;
# marking good repairs it.
test_junk_or_fifo_floor_file_fails_safe_to_a_floor_derived_from_active() {
        fixture
        release old 1 1; release a 2 2; release b 3 3
        install_bundle img a.kosb >/dev/null
        mark_good a >/dev/null
        install_bundle img b.kosb >/dev/null # on trial: the floor stays 2
        for kind in junk fifo; do
                rm -f img/boot-state/rollback-floor
                if [ $kind = junk ]; then echo 'two' >img/boot-state/rollback-floor; else mkfifo img/boot-state/rollback-floor; fi
                local out; out=$(timeout 20 "$KOS" select img --keyring keyring --json) || fail "$kind: select failed or hung"
                [ "$(jq -c '[.selected.name, .floor, .floor_source]' <<<"$out")" = '["b",2,"derived"]' ] || fail "$kind: $out"
                jq -r .floor_warning <<<"$out" | grep -q 'rollback-floor .*using 2, derived from the manifests in active' || fail "$kind: $out"
                timeout 20 "$KOS" select img --keyring keyring 2>err >/dev/null || true
                grep -q 'WARNING: .*rollback-floor' err || fail "$kind: not said loudly: $(cat err)"
                local before; before=$(snapshot)
                local rc=0; timeout 20 "$KOS" bundle install --keyring keyring img old.kosb 2>err >/dev/null || rc=$?
                [ "$rc" = 1 ] && grep -qF "rollback: security_version 1 is below this device's floor 2" err ||
                        fail "$kind: exit $rc: $(cat err)"
                [ "$(snapshot)" = "$before" ] || fail "$kind: the ImageFS changed"
        done
        # A manifest below the floor put back in active by hand does not pull
        # the derived floor down: a was marked good at 2.
        "$KOS" install img old.json >/dev/null
        "$KOS" activate img old --last
        rm -f img/boot-state/rollback-floor && echo junk >img/boot-state/rollback-floor
        out=$("$KOS" select img --keyring keyring --json) || true
        [ "$(jq -c .floor <<<"$out")" = 2 ] || fail "derived floor with a below-floor manifest in active: $out"
        "$KOS" deactivate img old
        rm -f img/boot-state/rollback-floor && mkfifo img/boot-state/rollback-floor
        # b on trial failed: the fallback to a still works with the derived floor.
        local id; id=$(sha img/manifests/b.json)
        mv "img/boot-state/$id.tries-3" "img/boot-state/$id.tries-0"
        timeout 20 "$KOS" select img --keyring keyring >out 2>/dev/null || fail "no fallback"
        grep -q '^selected a ' out || fail "$(cat out)"
        # Marking good replaces the unusable file with the new floor.
        timeout 20 "$KOS" mark-good --keyring keyring img a >/dev/null || fail "mark-good over a FIFO"
        [ -f img/boot-state/rollback-floor ] && [ "$(floor_file)" = 2 ] || fail "not repaired"
}

test_manifest_create_takes_security_version_strictly_and_show_prints_it() {
        fixture
        local args=(--name m --version 1 --kernel vmlinuz --initrd initrd --component base=base.img)
        "$KOS" manifest create "${args[@]}" -o plain.json
        ! grep -q security_version plain.json || fail "written when 0: $(cat plain.json)"
        "$KOS" manifest create "${args[@]}" --security-version 4294967295 -o max.json
        grep -q '^  "security_version": 4294967295,$' max.json || fail "$(cat max.json)"
        "$KOS" manifest show max.json | grep -q '^security  4294967295 (security_version)$' || fail "show"
        "$KOS" manifest show plain.json | grep -q '^security  0 (security_version)$' || fail "show plain"
        for bad in 4294967296 -1 '' abc 1x ' 1' +1; do
                local rc=0; "$KOS" manifest create "${args[@]}" --security-version "$bad" -o bad.json 2>err || rc=$?
                [ "$rc" = 2 ] && grep -q 'security-version' err || fail "'$bad': exit $rc: $(cat err)"
        done
}
