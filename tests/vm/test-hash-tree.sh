# "verify": "hash-tree" in the whole chain (docs/format.md, "Boot counting"):
# the Boot Kernel checks the components by their dm-verity trees, records
# the boot as unconfirmed, the System Kernel maps them with
# restart_on_corruption, Node Manager confirms the boot. A data block
# corrupted afterwards restarts the device when it is read, and the next
# boot, finding the boot unconfirmed, hashes in full and falls back. Uses the
# node fixture of test-node.sh (three boots in all).

# NODE_EXTRA for v1's app layer: a unit that reads /etc/kos-tree-victim (only
# the hash-tree runtime layer has it) before Node Manager starts, so a
# corrupt block there is read before the boot could be confirmed.
hash_tree_victim_unit() { # APP_DIR
        mkdir -p "$1/etc/systemd/system/multi-user.target.wants"
        cat >"$1/etc/systemd/system/kos-test-read-victim.service" <<'UNIT'
[Unit]
Description=KOS test: read /etc/kos-tree-victim before Node Manager starts
Before=kos-node-manager.service

[Service]
Type=oneshot
ExecStart=/bin/sh -c '[ -e /etc/kos-tree-victim ] || exit 0; \
  if head -c 64 /etc/kos-tree-victim >/dev/null 2>&1; then echo "KOS-TEST tree victim read" >/dev/console; \
  else echo "KOS-TEST tree victim unreadable" >/dev/console; fi'

[Install]
WantedBy=multi-user.target
UNIT
        ln -s ../kos-test-read-victim.service "$1/etc/systemd/system/multi-user.target.wants/"
}

# The ImageFS's boot-state/ as the guest left it (journal replayed).
boot_state_listing() {
        imagefs_listing >/dev/null
        debugfs -R 'ls -l /boot-state' p1.img 2>/dev/null
}

test_hash_tree_manifest_boots_and_after_a_corrupt_block_restarts_the_next_boot_falls_back() {
        NODE_EXTRA=hash_tree_victim_unit node_fixture # v1: base, runtime, app1, all sha256
        cp -a runtime runtime-tree
        for _ in $(seq 512); do printf 'KOS-TREE-VICTIM-0123456789abcdef'; done >runtime-tree/etc/kos-tree-victim
        "$KOS" component build --type erofs --verity --hash-tree runtime-tree runtime-tree.img >/dev/null 2>&1
        "$KOS" component add img runtime-tree.img >/dev/null
        # base (45 MB, verity) and the runtime layer checked by their trees.
        "$KOS" manifest create --name tree --version 2 --kernel vmlinuz --initrd initrd --cmdline "$NODE_CMDLINE" \
                --component base=base.img --component runtime=runtime-tree.img --component app=app1.img \
                --hash-tree base -o tree.json
        "$KOS" manifest sign --key secret.pem tree.json >/dev/null
        "$KOS" install img tree.json >/dev/null
        activate tree v1
        local id; id=$(sha img/manifests/tree.json)
        node_disk
        local done_re='marked good|BOOT FAILED|reboot: Restarting|reboot: Power down|System halted'

        # Boot 1: by the trees, to kos-app; marked good, and so confirmed.
        DONE_RE=$done_re node_boot boot-1.log
        grep -qa 'manifest tree: 2 of 3 components checked by their dm-verity hash tree' boot-1.log ||
                fail "boot 1: not checked by the trees"
        grep -qa 'component runtime: erofs, dm-verity (restart_on_corruption' boot-1.log ||
                fail "boot 1: runtime not mapped with restart_on_corruption"
        grep -qa 'KOS-TEST tree victim read' boot-1.log || fail "boot 1: the victim file was not read"
        grep -qa 'kos-node .*boot of manifest tree marked good' boot-1.log || fail "boot 1: tree not marked good"
        local listing; listing=$(boot_state_listing)
        ! grep -q "$id.unconfirmed" <<<"$listing" || fail "boot 1: the marker is still there: $listing"

        # A data block of the runtime layer goes bad on the disk.
        local offsets; offsets=$(grep -obUa "KOS-TREE-VICTIM-0123456789abcdef" disk.img | cut -d: -f1)
        [ -n "$offsets" ] || fail "victim not found in disk.img"
        for o in $offsets; do printf 'X' | dd of=disk.img bs=1 seek="$o" conv=notrunc status=none; done

        # Boot 2: the tree still passes (by design); dm-verity restarts the
        # device when the block is read, before the boot is confirmed.
        DONE_RE=$done_re node_boot boot-2.log
        grep -qa 'booting manifest tree' boot-2.log || fail "boot 2: tree not booted"
        grep -qaE 'verity.*(corrupted|corruption)' boot-2.log || fail "boot 2: dm-verity reported no corruption"
        grep -qa 'reboot: Restarting' boot-2.log || fail "boot 2: no restart"
        ! grep -qa 'KOS-TEST tree victim read' boot-2.log || fail "boot 2: corrupt data was returned"
        ! grep -qa 'marked good' boot-2.log || fail "boot 2: confirmed"
        listing=$(boot_state_listing)
        grep -q "$id.unconfirmed" <<<"$listing" || fail "boot 2: no marker: $listing"

        # Boot 3: the marker makes it a full check: tree is rejected, v1 boots.
        DONE_RE=$done_re node_boot boot-3.log
        grep -qa 'manifest tree: rejected: component-hash-mismatch: runtime' boot-3.log ||
                fail "boot 3: tree not rejected by a full check"
        grep -qa 'hash-tree components were checked with full sha256: its last boot was never confirmed' boot-3.log ||
                fail "boot 3: no reason for the full check"
        grep -qa 'booting manifest v1' boot-3.log || fail "boot 3: no fallback to v1"
        grep -qa 'kos-node .*boot of manifest v1 marked good' boot-3.log || fail "boot 3: v1 not marked good"
}
