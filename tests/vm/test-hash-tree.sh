# "verify": "hash-tree" in the whole chain (docs/format.md, "Boot counting"):
# the Boot Kernel checks the components by their dm-verity trees, records
# the boot as unconfirmed, the System Kernel maps them with
# restart_on_corruption, Node Manager scrubs every hash-tree block through
# dm-verity, and only then marks the boot good and confirms it. A data
# block corrupted afterwards in a file nothing reads restarts the device
# when the scrub of the next boot reads it, and the boot after that, finding
# the boot unconfirmed, hashes in full and falls back. Uses the node fixture
# of test-node.sh (three boots in all).

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

# A file of the hash-tree runtime layer that nothing opens: 1 MiB of filler
# around one unique 32-byte line, the block the test corrupts on the disk.
cold_file() { # FILE
        mkdir -p "$(dirname "$1")"
        {
                for _ in $(seq 16384); do printf 'KOS-TREE-COLD-FILLER-0123456789a'; done
                printf 'KOS-TREE-COLD-MIDDLE-0123456789ab'
                for _ in $(seq 16384); do printf 'KOS-TREE-COLD-FILLER-0123456789a'; done
        } >"$1"
}

# The line number of the first line of LOG matching REGEX, or "" (grep -n).
first_line() { grep -anE "$2" "$1" | head -1 | cut -d: -f1; }

# The node fixture's v1 (base, runtime, app1, all sha256) and "tree" v2:
# base and a runtime layer with a cold file, both checked by their trees,
# with security_version SV (default 0); active: tree, v1. The disk is made.
tree_fixture() { # [SV]
        NODE_EXTRA=hash_tree_victim_unit node_fixture
        cp -a runtime runtime-tree
        for _ in $(seq 512); do printf 'KOS-TREE-VICTIM-0123456789abcdef'; done >runtime-tree/etc/kos-tree-victim
        cold_file runtime-tree/usr/share/kos-test/cold
        "$KOS" component build --type erofs --verity --hash-tree runtime-tree runtime-tree.img >/dev/null 2>&1
        "$KOS" component add img runtime-tree.img >/dev/null
        # base (45 MB, verity) and the runtime layer checked by their trees.
        "$KOS" manifest create --name tree --version 2 --security-version "${1:-0}" --kernel vmlinuz --initrd initrd \
                --cmdline "$NODE_CMDLINE" --component base=base.img --component runtime=runtime-tree.img \
                --component app=app1.img --hash-tree base -o tree.json
        "$KOS" manifest sign --key secret.pem tree.json >/dev/null
        "$KOS" install img tree.json >/dev/null
        activate tree v1
        node_disk
}

# Flips one byte of the cold file's middle line on disk.img: a data block
# of the hash-tree runtime layer that no boot reads.
corrupt_cold_block() {
        local offsets; offsets=$(grep -obUa "KOS-TREE-COLD-MIDDLE-0123456789ab" disk.img | cut -d: -f1)
        [ "$(wc -w <<<"$offsets")" = 1 ] || fail "the cold block is not on disk.img once: $offsets"
        printf 'X' | dd of=disk.img bs=1 seek="$offsets" conv=notrunc status=none
}

test_hash_tree_block_corrupt_after_confirmation_is_found_by_the_scrub_and_the_next_boot_falls_back() {
        tree_fixture
        local id; id=$(sha img/manifests/tree.json)
        local scrubbed='scrub of the hash-tree components (done|failed)'
        local stopped='BOOT FAILED|reboot: Restarting|reboot: Power down|System halted'

        # Boot 1: by the trees, to kos-app; scrubbed, and only then marked
        # good and confirmed.
        DONE_RE="kos-node .*boot of manifest tree confirmed|scrub of the hash-tree components failed|$stopped" node_boot boot-1.log
        grep -qa 'manifest tree: 2 of 3 components checked by their dm-verity hash tree' boot-1.log ||
                fail "boot 1: not checked by the trees"
        grep -qa 'component runtime: erofs, dm-verity (restart_on_corruption' boot-1.log ||
                fail "boot 1: runtime not mapped with restart_on_corruption"
        grep -qa 'KOS-TEST tree victim read' boot-1.log || fail "boot 1: the victim file was not read"
        local good started scrub_done confirmed
        good=$(first_line boot-1.log 'kos-node .*boot of manifest tree marked good')
        started=$(first_line boot-1.log 'kos-node .*scrubbing 2 hash-tree component\(s\)')
        scrub_done=$(first_line boot-1.log 'kos-node .*scrub of the hash-tree components done: [0-9]+ bytes of 2 device')
        confirmed=$(first_line boot-1.log 'kos-node .*boot of manifest tree confirmed')
        [ -n "$good" ] && [ -n "$started" ] && [ -n "$scrub_done" ] && [ -n "$confirmed" ] ||
                fail "boot 1: marked good ($good), scrub started ($started), done ($scrub_done), confirmed ($confirmed)"
        [ "$started" -lt "$scrub_done" ] && [ "$scrub_done" -lt "$good" ] && [ "$good" -lt "$confirmed" ] ||
                fail "boot 1: not scrubbed, then marked good, then confirmed, in that order"
        grep -qaE 'KOS-STATUS .*"scrub": \{ *"state": "(pending|running|done)", *"bytes": [0-9]+, *"total": [0-9]+' \
                boot-1.log || fail "boot 1: kos node status has no scrub"
        local listing; listing=$(boot_state_listing)
        ! grep -q "$id.unconfirmed" <<<"$listing" || fail "boot 1: the marker is still there: $listing"

        # A data block of the runtime layer that no boot reads goes bad on the disk.
        corrupt_cold_block

        # Boot 2: the tree still passes (by design) and the boot comes up;
        # the scrub reads the block and dm-verity restarts the device before
        # the boot is marked good (no floor raised, no manifest taken out of
        # active on the strength of a tree check), the marker still on the
        # ImageFS.
        DONE_RE="$scrubbed|$stopped" node_boot boot-2.log
        grep -qa 'booting manifest tree' boot-2.log || fail "boot 2: tree not booted"
        grep -qa 'kos-node .*scrubbing 2 hash-tree component' boot-2.log || fail "boot 2: no scrub"
        ! grep -qa 'kos-node .*boot of manifest tree marked good' boot-2.log || fail "boot 2: marked good before the scrub ended"
        grep -qaE 'verity.*(corrupted|corruption)' boot-2.log || fail "boot 2: dm-verity reported no corruption"
        grep -qa 'reboot: Restarting' boot-2.log || fail "boot 2: no restart"
        ! grep -qaE "$scrubbed|manifest tree confirmed" boot-2.log || fail "boot 2: the scrub finished"
        listing=$(boot_state_listing)
        grep -q "$id.unconfirmed" <<<"$listing" || fail "boot 2: no marker: $listing"
        grep -q "$id.good" <<<"$listing" || fail "boot 2: boot 1's good mark is gone: $listing"

        # Boot 3: the marker makes it a full check: tree, though marked good,
        # is rejected and v1 boots.
        DONE_RE='kos-node .*boot of manifest v1 marked good|BOOT FAILED|reboot: Restarting|System halted' \
                node_boot boot-3.log
        grep -qa 'manifest tree: rejected: component-hash-mismatch: runtime' boot-3.log ||
                fail "boot 3: tree not rejected by a full check"
        grep -qa 'hash-tree components were checked with full sha256: its last boot was never confirmed' boot-3.log ||
                fail "boot 3: no reason for the full check"
        grep -qa 'booting manifest v1' boot-3.log || fail "boot 3: no fallback to v1"
        ! grep -qa 'booting manifest tree' boot-3.log || fail "boot 3: tree booted again"
        grep -qa 'kos-node .*Node Manager started on manifest v1' boot-3.log || fail "boot 3: v1 is not what runs"
        grep -qa 'kos-node .*boot of manifest v1 marked good' boot-3.log || fail "boot 3: v1 not marked good"
}

# A new release (security_version 1, above v1's 0) whose hash-tree data went
# bad before its first boot: the scrub finds the block before the boot is
# marked good, so the floor is not raised and v1 stays in active, and the
# next boot falls back to it. Marking good before the scrub would have
# raised the floor and retired v1, leaving nothing to boot.
test_hash_tree_release_corrupt_before_its_first_boot_is_never_marked_good_and_v1_still_boots() {
        tree_fixture 1
        local id; id=$(sha img/manifests/tree.json)
        corrupt_cold_block
        local scrubbed='scrub of the hash-tree components (done|failed)'
        local stopped='BOOT FAILED|reboot: Restarting|reboot: Power down|System halted'

        DONE_RE="$scrubbed|$stopped" node_boot boot-1.log
        grep -qa 'booting manifest tree' boot-1.log || fail "boot 1: tree not booted"
        grep -qa 'kos-node .*scrubbing 2 hash-tree component' boot-1.log || fail "boot 1: no scrub"
        grep -qaE 'verity.*(corrupted|corruption)' boot-1.log || fail "boot 1: dm-verity reported no corruption"
        ! grep -qaE 'kos-node .*(marked good|rollback floor raised|taken out of active)' boot-1.log ||
                fail "boot 1: marked good before the scrub ended: $(grep -a 'kos-node' boot-1.log | tail -5)"
        local listing; listing=$(boot_state_listing)
        grep -q "$id.unconfirmed" <<<"$listing" || fail "boot 1: no marker: $listing"
        ! grep -q "$id.good" <<<"$listing" || fail "boot 1: tree marked good on the disk: $listing"

        DONE_RE='kos-node .*boot of manifest v1 marked good|BOOT FAILED|reboot: Restarting|System halted' \
                node_boot boot-2.log
        grep -qa 'manifest tree: rejected: component-hash-mismatch: runtime' boot-2.log ||
                fail "boot 2: tree not rejected by a full check"
        grep -qa 'booting manifest v1' boot-2.log || fail "boot 2: no fallback to v1: $(grep -a kos-boot boot-2.log | tail -5)"
        grep -qa 'kos-node .*boot of manifest v1 marked good' boot-2.log || fail "boot 2: v1 not marked good"
}
