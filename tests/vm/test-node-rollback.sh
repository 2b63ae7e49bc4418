# Anti-rollback through Node Manager (no TPM attached: the floor is the one
# in the ImageFS's boot-state/). Uses the node fixture of test-node.sh.

# The device runs v1 (security_version 2) on a floor of 1. A bundle of an
# older release (security_version 0) waits in the inbox: Node Manager must
# refuse it before writing anything, then mark v1 good, which raises the
# floor to 2. The boot is the inbox boot of test-node.sh (boot_inbox).
test_node_manager_refuses_a_rollback_bundle_and_marking_good_raises_the_floor() {
        vm_shared_boot inbox boot_inbox
        grep -qa "bundle old.kosb refused: rollback: security_version 0 is below this device's floor 1" boot.log ||
                fail "the old bundle was not refused as a rollback"
        grep -qa 'kos-node .*boot of manifest v1 marked good' boot.log || fail "v1 was not marked good"
        grep -qa 'kos-node .*rollback floor raised from 1 to 2' boot.log || fail "marking good did not raise the floor"
        # Nothing of the old release reached the ImageFS: only v1's boot state
        # and the floor changed.
        [ "$(grep -v -e '\.good' -e 'rollback-floor' listing-after)" = "$(grep -v -e '\.good' -e 'rollback-floor' listing-before)" ] ||
                fail "the ImageFS changed: $(diff listing-before listing-after)"
        debugfs -R 'cat /boot-state/rollback-floor' p1.img 2>/dev/null | grep -qx 2 || fail "the stored floor is not 2"
}
