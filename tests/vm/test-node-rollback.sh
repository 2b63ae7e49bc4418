# Anti-rollback through Node Manager (no TPM attached: the floor is the one
# in the ImageFS's boot-state/). Uses the node fixture of test-node.sh.

# The device runs v1 (security_version 2) on a floor of 1. A bundle of an
# older release (security_version 0) waits in the inbox: Node Manager must
# refuse it before writing anything, then mark v1 good, which raises the
# floor to 2.
test_node_manager_refuses_a_rollback_bundle_and_marking_good_raises_the_floor() {
        SECURITY=2 node_fixture
        mkdir -p img/boot-state && echo 1 >img/boot-state/rollback-floor
        VERSION=0 SECURITY=0 node_manifest old app2.img
        "$KOS" bundle create -o data/kos/inbox/old.kosb old.json app2.img >/dev/null
        node_disk
        local before; before=$(imagefs_listing)
        DONE_RE='marked good|BOOT FAILED|System halted|reboot: Restarting' node_boot boot.log
        grep -qa "bundle old.kosb refused: rollback: security_version 0 is below this device's floor 1" boot.log ||
                fail "the old bundle was not refused as a rollback"
        grep -qa 'kos-node .*boot of manifest v1 marked good' boot.log || fail "v1 was not marked good"
        grep -qa 'kos-node .*rollback floor raised from 1 to 2' boot.log || fail "marking good did not raise the floor"
        # Nothing of the old release reached the ImageFS: only v1's boot state
        # and the floor changed.
        local after; after=$(imagefs_listing)
        [ "$(grep -v -e '\.good' -e 'rollback-floor' <<<"$after")" = "$(grep -v -e '\.good' -e 'rollback-floor' <<<"$before")" ] ||
                fail "the ImageFS changed: $(diff <(echo "$before") <(echo "$after"))"
        debugfs -R 'cat /boot-state/rollback-floor' p1.img 2>/dev/null | grep -qx 2 || fail "the stored floor is not 2"
}
