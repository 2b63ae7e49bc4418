# "verify": "hash-tree" (docs/format.md): a component the vendor marks so is
# checked by its dm-verity tree up to the signed root hash, not by every
# byte; a boot that was never confirmed (boot-state/<id>.unconfirmed) checks
# it in full again. Every selection runs under `timeout 5`.

# fixture, plus root.img (erofs with 2 MB of data and a dm-verity tree,
# marked hash-tree by kos component build) in manifest "tree", first in
# active, and manifest "full" (base and app, sha256) after it.
hash_tree_fixture() {
        fixture
        mkdir -p root/etc
        head -c 2000000 /dev/urandom >root/etc/blob
        echo tree >root/etc/layer
        "$KOS" component build --type erofs --verity --hash-tree root root.img >/dev/null
        "$KOS" component add img root.img >/dev/null
        "$KOS" manifest create --name tree --version 2 --kernel vmlinuz --initrd initrd --component root=root.img -o tree.json
        "$KOS" manifest sign --key secret.pem tree.json >/dev/null
        "$KOS" install img tree.json >/dev/null
        manifest full 1
        activate tree full
        ROOT_FILE=img/components/$(sha root.img)
        HASH_OFFSET=$(jq -r .verity.hash_offset root.img.meta)
        TREE_ID=$(sha img/manifests/tree.json)
}

# tree_select: kos select --json into sel.json, under a 5 s timeout.
tree_select() {
        local rc=0
        timeout 5 "$KOS" select img --keyring keyring --json >sel.json 2>sel.err || rc=$?
        [ "$rc" != 124 ] || fail "kos select hung (killed after 5 s)"
        return 0
}

tree_field() { # JQ-EXPRESSION on manifest "tree" of sel.json
        jq -r "[.manifests[] | select(.name == \"tree\")][0] | $1" sel.json
}

test_hash_tree_component_is_selected_by_its_tree_and_shown_so() {
        hash_tree_fixture
        grep -q '"verify": "hash-tree"' tree.json || fail "tree.json lacks verify: $(cat tree.json)"
        tree_select
        [ "$(jq -r .selected.name sel.json)" = tree ] || fail "tree not selected: $(cat sel.json)"
        [ "$(tree_field '.checks | join(",")')" = hash-tree ] || fail "checks: $(cat sel.json)"
        [ "$(tree_field .full_check_why)" = null ] || fail "full check: $(cat sel.json)"
        "$KOS" select img --keyring keyring --explain >explain
        grep -q 'root .*hash-tree: dm-verity tree up to the signed root hash' explain || fail "explain: $(cat explain)"
        "$KOS" manifest show --keyring keyring tree.json >show
        grep -q 'checked by its dm-verity hash tree' show || fail "show: $(cat show)"
        "$KOS" manifest verify --keyring keyring tree.json >verify
        grep -qx '  component root: verify hash-tree' verify || fail "verify: $(cat verify)"
        # The host never records anything: only the Boot Kernel does.
        [ ! -e "img/boot-state/$TREE_ID.unconfirmed" ] || fail "kos select wrote a marker"
}

test_flipped_byte_in_the_tree_is_hash_tree_mismatch_and_the_next_manifest_is_selected() {
        hash_tree_fixture
        flip_byte "$ROOT_FILE" $((HASH_OFFSET + 4096 + 4096 + 10)) # a level-0 block (top block first)
        tree_select
        expect_reason tree hash-tree-mismatch
        tree_field .detail | grep -q 'level 0' || fail "detail: $(cat sel.json)"
        [ "$(jq -r .selected.name sel.json)" = full ] || fail "full not selected: $(cat sel.json)"
        flip_byte "$ROOT_FILE" $((HASH_OFFSET + 4096 + 4096 + 10))
        flip_byte "$ROOT_FILE" $((HASH_OFFSET + 4096 + 3)) # the top block
        tree_select
        expect_reason tree hash-tree-mismatch
        flip_byte "$ROOT_FILE" $((HASH_OFFSET + 4096 + 3))
        flip_byte "$ROOT_FILE" $((HASH_OFFSET + 72)) # the superblock's data_blocks
        tree_select
        expect_reason tree hash-tree-mismatch
        tree_field .detail | grep -q 'data blocks' || fail "detail: $(cat sel.json)"
}

test_truncated_hash_tree_component_is_rejected() {
        hash_tree_fixture
        truncate -s -4096 "$ROOT_FILE"
        tree_select
        expect_reason tree component-size-mismatch
        [ "$(jq -r .selected.name sel.json)" = full ] || fail "full not selected: $(cat sel.json)"
}

test_flipped_data_byte_passes_by_tree_and_is_caught_once_a_boot_was_never_confirmed() {
        hash_tree_fixture
        flip_byte "$ROOT_FILE" 100000
        tree_select
        # By design: the data is dm-verity's to check, as it is read.
        [ "$(jq -r .selected.name sel.json)" = tree ] || fail "tree not selected: $(cat sel.json)"
        : >"img/boot-state/$TREE_ID.unconfirmed"
        "$KOS" list img | grep -q 'tree.*(last boot unconfirmed' || fail "kos list: $("$KOS" list img)"
        tree_select
        expect_reason tree component-hash-mismatch
        tree_field .full_check_why | grep -q 'never confirmed' || fail "full_check_why: $(cat sel.json)"
        [ "$(tree_field '.checks | join(",")')" = sha256 ] || fail "checks: $(cat sel.json)"
        [ "$(jq -r .selected.name sel.json)" = full ] || fail "full not selected: $(cat sel.json)"
        "$KOS" select img --keyring keyring --explain >explain || true
        grep -q 'checked with full sha256: its last boot was never confirmed' explain || fail "explain: $(cat explain)"
}

test_marker_planted_as_fifo_symlink_directory_or_device_hangs_nothing_and_only_forces_a_full_check() {
        hash_tree_fixture
        echo keep >victim
        for kind in fifo symlink dangling directory device; do
                local marker=img/boot-state/$TREE_ID.unconfirmed
                case $kind in
                device) mknod "$marker" c 1 3 2>/dev/null || { echo "no mknod (not root): device skipped" >&2; continue; } ;;
                fifo) mkfifo "$marker" ;;
                symlink) ln -s ../../victim "$marker" ;;
                dangling) ln -s /nonexistent "$marker" ;;
                directory) mkdir "$marker" && touch "$marker/x" ;;
                esac
                tree_select
                [ "$(jq -r .selected.name sel.json)" = tree ] || fail "$kind: tree not selected: $(cat sel.json)"
                [ "$(tree_field '.checks | join(",")')" = sha256 ] || fail "$kind: not a full check: $(cat sel.json)"
                rm -rf "$marker"
        done
        [ "$(cat victim)" = keep ] || fail "the symlink's target changed"
}

test_manifest_create_marks_hash_tree_only_where_verity_allows_it() {
        hash_tree_fixture
        # --hash-tree on a component built without --hash-tree: allowed with verity.
        "$KOS" component build --type erofs --verity root plain.img >/dev/null
        "$KOS" manifest create --name p --version 1 --kernel vmlinuz --initrd initrd --component root=plain.img \
                --hash-tree root -o p.json
        grep -q '"verify": "hash-tree"' p.json || fail "p.json: $(cat p.json)"
        "$KOS" manifest create --name q --version 1 --kernel vmlinuz --initrd initrd --component root=plain.img -o q.json
        ! grep -q verify q.json || fail "default written: $(cat q.json)"
        local rc=0
        "$KOS" manifest create --name r --version 1 --kernel vmlinuz --initrd initrd --component app=app.img \
                --hash-tree app -o r.json 2>err || rc=$?
        [ "$rc" = 2 ] || fail "exit $rc for --hash-tree without verity"
        grep -q 'needs verity data and no encryption' err || fail "unclear error: $(cat err)"
        [ ! -e r.json ] || fail "r.json written"
        rc=0
        "$KOS" manifest create --name r --version 1 --kernel vmlinuz --initrd initrd --component app=app.img \
                --hash-tree nosuch -o r.json 2>err || rc=$?
        [ "$rc" = 2 ] && grep -q 'no --component of that name' err || fail "exit $rc: $(cat err)"
        rc=0
        "$KOS" component build --type erofs --hash-tree root x.img 2>err || rc=$?
        [ "$rc" = 2 ] && grep -q -- '--hash-tree needs --verity' err || fail "exit $rc: $(cat err)"
}

# kos install checks every byte, hash-tree or not: the file must be what its
# content address says.
test_install_checks_a_hash_tree_component_in_full() {
        hash_tree_fixture
        "$KOS" imagefs init img2
        "$KOS" component add img2 vmlinuz initrd root.img >/dev/null
        flip_byte "img2/components/$(sha root.img)" 100000
        local rc=0
        "$KOS" install img2 tree.json >out 2>err || rc=$?
        [ "$rc" = 1 ] || fail "exit $rc: $(cat out err)"
        grep -q component-hash-mismatch err || fail "unclear error: $(cat err)"
}
