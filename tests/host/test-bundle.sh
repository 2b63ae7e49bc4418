# Update bundles: kos bundle create / install on real ImageFS trees.

# A second release "b": same kernel and initrd, a new base layer of 10 MiB.
release_b() {
        mkdir -p base-b/etc && echo b >base-b/etc/layer && head -c 10M /dev/urandom >base-b/etc/blob
        mksquashfs base-b base-b.img -quiet -noappend -noI -noD -noF -noX >/dev/null # uncompressed: 10 MiB
        "$KOS" manifest create --name "${1:-b}" --version 2 --kernel vmlinuz --initrd initrd --component base=base-b.img \
                --component app=app.img -o "${1:-b}.json"
        "$KOS" manifest sign --key "${2:-secret.pem}" "${1:-b}.json" >/dev/null
        "$KOS" bundle create -o "${1:-b}.kosb" "${1:-b}.json" vmlinuz base-b.img >/dev/null # vmlinuz: already there
}

test_bundle_installs_new_manifest_first_on_trial_with_previous_as_fallback() {
        fixture; manifest a; "$KOS" activate img a
        release_b
        "$KOS" bundle install --keyring keyring img b.kosb >out || fail "install failed"
        grep -q "1 component(s) added" out && grep -q "1 already present" out || fail "$(cat out)"
        [ "$(tr '\n' ' ' <img/active)" = "b a " ] || fail "active: $(cat img/active)"
        [ -e "img/boot-state/$(sha img/manifests/b.json).tries-3" ] || fail "b not on trial"
        expect_selected b
}

test_bundle_with_untrusted_signature_changes_nothing() {
        fixture; manifest a; "$KOS" activate img a
        release_b b stranger.pem
        local before; before=$(snapshot)
        local rc=0; "$KOS" bundle install --keyring keyring img b.kosb 2>err || rc=$?
        [ "$rc" = 1 ] && grep -q 'key-untrusted' err || fail "exit $rc: $(cat err)"
        [ "$(snapshot)" = "$before" ] || fail "the ImageFS changed"
}

test_bundle_with_one_flipped_byte_in_a_component_changes_nothing() {
        fixture; manifest a; "$KOS" activate img a
        release_b
        flip_byte b.kosb 5000000
        local before; before=$(snapshot)
        local rc=0; "$KOS" bundle install --keyring keyring img b.kosb 2>err || rc=$?
        [ "$rc" = 1 ] && grep -q 'component-hash-mismatch' err || fail "exit $rc: $(cat err)"
        [ "$(snapshot)" = "$before" ] || fail "the ImageFS changed"
}

test_truncated_or_foreign_bundle_changes_nothing() {
        fixture; manifest a; "$KOS" activate img a
        release_b
        local before; before=$(snapshot)
        head -c 3000000 b.kosb >short.kosb
        local rc=0; "$KOS" bundle install --keyring keyring img short.kosb 2>err || rc=$?
        [ "$rc" = 1 ] && grep -q 'truncated' err || fail "exit $rc: $(cat err)"
        rc=0; "$KOS" bundle install --keyring keyring img vmlinuz 2>err || rc=$?
        [ "$rc" = 1 ] && grep -q 'not a bundle' err || fail "exit $rc: $(cat err)"
        [ "$(snapshot)" = "$before" ] || fail "the ImageFS changed"
}

test_bundle_keeps_two_manifests_and_retires_the_oldest() {
        fixture; manifest a; "$KOS" activate img a
        local a_only; a_only=$(sha base.img)
        release_b b
        "$KOS" bundle install --keyring keyring img b.kosb >/dev/null
        "$KOS" mark-good --keyring keyring img b # b booted fine: now the newest good one, a is just old
        release_b c
        "$KOS" bundle install --keyring keyring img c.kosb >/dev/null
        [ "$(tr '\n' ' ' <img/active)" = "c b " ] || fail "active: $(cat img/active)"
        [ ! -e img/manifests/a.json ] || fail "a was not uninstalled"
        [ ! -e "img/components/$a_only" ] || fail "a's own component was not removed"
        [ -e "img/components/$(sha app.img)" ] || fail "a shared component was removed"
}

# Power-loss safety: kill the installer (SIGKILL) at every write, fsync,
# rename and unlink it makes; after each, selection still finds a valid
# manifest (the old or the new), and a retried install completes. The
# installer is the test build with fault points ($KOS_FAULTS).
test_bundle_install_killed_at_every_point_never_leaves_nothing_to_boot() {
        fixture; manifest a; "$KOS" activate img a
        release_b
        cp -a img pristine
        local point=0 rc selected killed=0
        while :; do
                point=$((point + 1))
                rm -rf img && cp -a pristine img
                rc=0; KOS_FAULT_AT=$point "$KOS_FAULTS" bundle install --keyring keyring img b.kosb >/dev/null 2>&1 || rc=$?
                [ "$rc" = 0 ] && break # past the last point: the install ran to its end
                [ "$rc" = 137 ] || fail "point $point: exit $rc, not a kill"
                killed=$((killed + 1))
                selected=$(select_json | jq -r .selected.name)
                [ "$selected" = a ] || [ "$selected" = b ] || fail "point $point: nothing bootable ($selected)"
                "$KOS" bundle install --keyring keyring img b.kosb >/dev/null || fail "point $point: retry failed"
                [ "$(select_json | jq -r .selected.name)" = b ] || fail "point $point: retry did not activate b"
                # The install that completes removes what the cut one left (make soak found a manifest's).
                [ -z "$(find img/components img/manifests -name '.tmp-*')" ] ||
                        fail "point $point: left after the retry: $(find img -name '.tmp-*')"
                [ "$point" -lt 500 ] || fail "no end in sight"
        done
        echo "killed at $killed points" >&2
        [ "$killed" -ge 50 ] || fail "only $killed kill points"
}

# The fault points are a test hook: in a program a vendor ships, a word
# KOS_FAULT_AT=N on the kernel's command line (which the kernel hands to
# init as its environment) must not be able to kill PID 1. The shipped
# programs hold no trace of it and ignore it; the test build honours it.
test_shipped_programs_have_no_fault_points_and_the_test_build_has() {
        local p rc
        for p in kos kos-static kos-boot-init kos-system-init kos-node-manager kos-node-pull; do
                [ -x "$ROOT/$BUILD/$p" ] || fail "$BUILD/$p is not built (make all)"
                ! grep -q KOS_FAULT "$ROOT/$BUILD/$p" || fail "$BUILD/$p holds a KOS_FAULT_AT or KOS_FAULT_SLOTS_AT hook"
        done
        fixture; manifest a; "$KOS" activate img a
        release_b
        cp -a img pristine
        for p in kos kos-static; do
                rm -rf img && cp -a pristine img
                rc=0; KOS_FAULT_AT=1 "$ROOT/$BUILD/$p" bundle install --keyring keyring img b.kosb >/dev/null 2>&1 || rc=$?
                [ "$rc" = 0 ] || fail "$BUILD/$p with KOS_FAULT_AT=1: exit $rc"
                expect_selected b
        done
        rm -rf img && cp -a pristine img
        rc=0; KOS_FAULT_AT=1 "$KOS_FAULTS" bundle install --keyring keyring img b.kosb >/dev/null 2>&1 || rc=$?
        [ "$rc" = 137 ] || fail "the test build $KOS_FAULTS ignored KOS_FAULT_AT=1 (exit $rc)"
}

test_bundle_installed_and_active_again_is_a_no_op() {
        fixture; manifest a; "$KOS" activate img a
        release_b
        "$KOS" bundle install --keyring keyring img b.kosb >/dev/null
        local before; before=$(snapshot)
        "$KOS" bundle install --keyring keyring img b.kosb >out || fail "second install failed"
        grep -q 'already' out || fail "$(cat out)"
        [ "$(snapshot)" = "$before" ] || fail "the ImageFS changed (the trial must not restart)"
}

# A junk file in manifests/ must not turn an install into "refused" after
# active already names the new manifest, nor block gc from then on.
test_bundle_install_with_junk_manifest_on_device_is_installed_and_gc_ignores_it() {
        fixture; manifest a; "$KOS" activate img a
        release_b
        head -c 200 /dev/urandom >img/manifests/junk.json
        local rc=0; "$KOS" bundle install --keyring keyring img b.kosb >out 2>err || rc=$?
        [ "$rc" = 0 ] || fail "exit $rc: $(cat err)"
        grep -q '^installed b' out || fail "$(cat out)"
        [ "$(tr '\n' ' ' <img/active)" = "b a " ] || fail "active: $(cat img/active)"
        for f in vmlinuz initrd base.img app.img base-b.img; do
                [ -e "img/components/$(sha $f)" ] || fail "$f was removed"
        done
        "$KOS" gc img --keyring keyring >/dev/null 2>&1 || fail "gc blocked by the junk manifest"
        [ -e img/manifests/junk.json ] || fail "gc removed the junk file (it only ignores it)"
        expect_selected b
}

# Errors after the commit point (active names the new manifest) are reported
# as such: installed (exit 0), "cleanup failed", never "refused, nothing changed".
test_bundle_install_failing_after_commit_point_reports_installed_not_refused() {
        fixture; manifest a; "$KOS" activate img a
        release_b
        # An unreferenced "component" gc cannot unlink: a non-empty directory.
        local stuck=img/components/0000000000000000000000000000000000000000000000000000000000000000
        mkdir "$stuck" && touch "$stuck/x"
        local rc=0; "$KOS" bundle install --keyring keyring img b.kosb >out 2>err || rc=$?
        [ "$rc" = 0 ] || fail "exit $rc: $(cat out err)"
        grep -q 'installed b, but cleanup failed' err || fail "no cleanup warning: $(cat err)"
        ! grep -q 'refused' err || fail "reported refused: $(cat err)"
        [ "$(head -1 img/active)" = b ] || fail "active: $(cat img/active)"
        expect_selected b
}

# mark_b_exhausted NAME: every try of NAME was used, it was never marked good.
mark_exhausted() {
        local id; id=$(sha "img/manifests/$1.json")
        mv "img/boot-state/$id".tries-* "img/boot-state/$id.tries-0"
}

# a is marked good and the device runs it; b failed (tries-0). Installing c
# must not retire a, whatever the order of active: if c fails too, a is all
# that boots.
test_bundle_install_never_retires_the_newest_manifest_marked_good() {
        fixture; manifest a; "$KOS" activate img a; "$KOS" mark-good --keyring keyring img a
        release_b b
        "$KOS" bundle install --keyring keyring img b.kosb >/dev/null
        mark_exhausted b
        release_b c
        "$KOS" bundle install --keyring keyring img c.kosb >/dev/null || fail "installing c failed"
        [ -e img/manifests/a.json ] && [ -e img/manifests/a.json.sig ] || fail "a was uninstalled"
        grep -qx a img/active || fail "a is not in active: $(cat img/active)"
        for f in vmlinuz initrd base.img app.img; do
                [ -e "img/components/$(sha $f)" ] || fail "a's $f was removed"
        done
        [ "$(tr '\n' ' ' <img/active)" = "c a " ] || fail "active: $(cat img/active) (b, which failed, should go)"
        mark_exhausted c
        expect_selected a
}

# The running manifest (--running, Node Manager passes /run/kos/boot.json's
# id) stays too, even when it is neither first nor good: here the device fell
# back to a while b, newer and marked good, is first.
test_bundle_install_never_retires_the_running_manifest() {
        fixture; manifest a; "$KOS" activate img a --tries 3
        release_b b
        "$KOS" bundle install --keyring keyring img b.kosb >/dev/null
        "$KOS" mark-good --keyring keyring img b
        release_b c
        "$KOS" bundle install --keyring keyring --running "$(sha img/manifests/a.json)" img c.kosb >/dev/null ||
                fail "installing c failed"
        [ "$(tr '\n' ' ' <img/active)" = "c b a " ] || fail "active: $(cat img/active)"
        [ -e img/manifests/a.json ] && [ -e "img/components/$(sha base.img)" ] || fail "a was retired"
        local rc=0; "$KOS" bundle install --keyring keyring --running nosuch img c.kosb 2>err || rc=$?
        [ "$rc" = 2 ] && grep -q 'running nosuch' err || fail "unknown --running accepted: exit $rc $(cat err)"
}
