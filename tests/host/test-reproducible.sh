# Reproducible components (docs/format.md, "Reproducible components"):
# kos component build makes the same bytes from the same tree, for every
# type, with and without dm-verity, whatever the source's times, owners and
# creation order; a changed file changes the image. An encrypted component
# keeps its data area (everything past its LUKS2 header) when its plaintext
# and key are the same, and its header is 288 KiB, not 16 MiB.

LUKS_HEADER_BYTES=294912 # 2 x 16 KiB metadata + 256 KiB keyslots

# repro_tree DIR: a small tree with a symlink, a hard link, an empty file, a
# subdirectory and odd modes.
repro_tree() {
        mkdir -p "$1/etc/sub" "$1/bin"
        head -c 70000 /dev/urandom >"$1/bin/tool"
        chmod 755 "$1/bin/tool"
        echo 'name=app' >"$1/etc/app.conf"
        : >"$1/etc/empty"
        printf 'x%.0s' $(seq 1 5000) >"$1/etc/sub/text"
        chmod 600 "$1/etc/sub/text"
        ln -s ../bin/tool "$1/etc/tool-link"
        ln "$1/etc/app.conf" "$1/etc/app-hardlink.conf"
}

# copy_tree_reordered SRC DST: SRC rebuilt file by file in reverse order (so
# readdir and inode numbers differ), hard link kept, every time set to 2001
# and the owner to nobody.
copy_tree_reordered() {
        local f
        (cd "$1" && find . -type d | sort) | while read -r f; do mkdir -p "$2/$f"; done
        (cd "$1" && find . ! -type d ! -name app-hardlink.conf | sort -r) | while read -r f; do cp -a "$1/$f" "$2/$f"; done
        ln "$2/etc/app.conf" "$2/etc/app-hardlink.conf"
        (cd "$1" && find . -type d) | while read -r f; do chmod --reference="$1/$f" "$2/$f"; done
        if [ "$(id -u)" = 0 ]; then chown -hR nobody: "$2"; fi
        find "$2" -exec touch -h -d '2001-02-03 04:05:06' {} +
}

test_component_build_of_the_same_tree_is_byte_identical_for_every_type_whatever_source_times_owners_and_order() {
        local type verity opts
        repro_tree a
        copy_tree_reordered a b
        for type in squashfs erofs; do
                for verity in "" --verity; do
                        opts=(--type "$type" $verity)
                        "$KOS" component build "${opts[@]}" a "a-$type$verity.img" >/dev/null
                        sleep 1 # a build time would differ now
                        "$KOS" component build "${opts[@]}" b "b-$type$verity.img" >/dev/null
                        cmp "a-$type$verity.img" "b-$type$verity.img" >/dev/null ||
                                fail "$type $verity: two builds of the same tree differ from byte $(cmp "a-$type$verity.img" "b-$type$verity.img" | awk '{print $5}')"
                        cmp "a-$type$verity.img.meta" "b-$type$verity.img.meta" >/dev/null ||
                                fail "$type $verity: the .meta files differ"
                done
        done
        # The erofs UUID is derived, not left nil (blkid names none for nil).
        blkid -p -s UUID -o value a-erofs.img | grep -Eq '^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$' ||
                fail "erofs UUID is not a version 8 UUID: $(blkid -p a-erofs.img)"
}

test_component_build_of_a_tree_with_one_changed_byte_changes_the_image_its_uuid_and_verity_salt() {
        local type offset_a offset_b salt_a salt_b
        repro_tree a
        cp -a a b
        printf 'y' | dd of=b/bin/tool bs=1 seek=1234 conv=notrunc status=none
        for type in squashfs erofs; do
                "$KOS" component build --type "$type" --verity a "a-$type.img" >/dev/null
                "$KOS" component build --type "$type" --verity b "b-$type.img" >/dev/null
                ! cmp -s "a-$type.img" "b-$type.img" || fail "$type: a changed file left the image unchanged"
                [ "$(jq -r .verity.root_hash "a-$type.img.meta")" != "$(jq -r .verity.root_hash "b-$type.img.meta")" ] ||
                        fail "$type: same root hash for different content"
                offset_a=$(jq .verity.hash_offset "a-$type.img.meta")
                offset_b=$(jq .verity.hash_offset "b-$type.img.meta")
                salt_a=$(veritysetup dump --hash-offset="$offset_a" "a-$type.img" | sed -n 's/^Salt:[[:space:]]*//p')
                salt_b=$(veritysetup dump --hash-offset="$offset_b" "b-$type.img" | sed -n 's/^Salt:[[:space:]]*//p')
                [ "${#salt_a}" = 64 ] || fail "$type: salt '$salt_a' is not 32 bytes"
                [ "$salt_a" != "$salt_b" ] || fail "$type: the verity salt did not change with the content"
        done
        [ "$(blkid -p -s UUID -o value a-erofs.img)" != "$(blkid -p -s UUID -o value b-erofs.img)" ] ||
                fail "erofs: the UUID did not change with the content"
}

# data_area FILE: the bytes of FILE past its LUKS2 header.
data_area() { tail -c +$((LUKS_HEADER_BYTES + 1)) "$1"; }

# volume_key FILE KEY: the volume key LUKS2 FILE holds, opened with KEY.
volume_key() {
        cryptsetup luksDump --dump-volume-key --batch-mode --key-file "$2" "$1" 2>/dev/null |
                sed -n '/^MK dump:/,$p' | sed 's/^MK dump://' | tr -d ' \t\n'
}

test_encrypted_component_keeps_its_data_area_when_plaintext_and_key_are_the_same() {
        local type
        repro_tree app
        for type in squashfs erofs; do
                "$KOS" component build --type "$type" --verity --encrypt appkey --keystore ks app "one-$type.img" 2>/dev/null >/dev/null
                "$KOS" component build --type "$type" --verity --encrypt appkey --keystore ks app "two-$type.img" 2>/dev/null >/dev/null
                cmp <(data_area "one-$type.img") <(data_area "two-$type.img") >/dev/null ||
                        fail "$type: the encrypted data areas of two builds differ: $(cmp <(data_area "one-$type.img") <(data_area "two-$type.img"))"
                [ "$(volume_key "one-$type.img" ks/appkey)" = "$(volume_key "two-$type.img" ks/appkey)" ] ||
                        fail "$type: the volume key is not pinned to the key"
                cmp -s "one-$type.img.meta" "two-$type.img.meta" || fail "$type: the .meta files differ"
        done
        # Another key id gets another volume key, so another data area.
        "$KOS" component build --type erofs --verity --encrypt otherkey --keystore ks app other.img 2>/dev/null >/dev/null
        [ "$(volume_key other.img ks/otherkey)" != "$(volume_key one-erofs.img ks/appkey)" ] ||
                fail "two key ids share one volume key"
        ! cmp -s <(data_area other.img) <(data_area one-erofs.img) || fail "two key ids gave the same data area"
}

test_encrypted_component_of_a_small_app_has_a_288_KiB_luks2_header_that_opens_with_its_key() {
        local plain enc
        mkdir app && head -c 4096 /dev/urandom >app/payload
        "$KOS" component build --type squashfs app plain.img >/dev/null
        "$KOS" component build --type squashfs --encrypt appkey --keystore ks app enc.img 2>err >/dev/null
        # cryptsetup's warning that the keyslot area is small is expected, not shown.
        [ ! -s err ] || fail "the build printed: $(cat err)"
        plain=$(stat -c %s plain.img)
        enc=$(stat -c %s enc.img)
        echo "4 KiB app: squashfs $plain bytes, encrypted $enc bytes"
        [ "$enc" = $((plain + LUKS_HEADER_BYTES)) ] || fail "encrypted size $enc, expected $plain + $LUKS_HEADER_BYTES"
        cryptsetup luksDump enc.img | grep -A1 '^Data segments' >/dev/null || fail "not LUKS2"
        cryptsetup luksDump enc.img | grep -q "offset: $LUKS_HEADER_BYTES \[bytes\]" ||
                fail "data offset is not $LUKS_HEADER_BYTES: $(cryptsetup luksDump enc.img | grep offset)"
        cryptsetup luksDump enc.img | grep -q 'sector: 512 \[bytes\]' || fail "sector size not pinned to 512"
        cryptsetup open --test-passphrase --key-file ks/appkey enc.img || fail "the keyslot does not open with the key"
        head -c 64 /dev/urandom >wrong
        ! cryptsetup open --test-passphrase --key-file wrong enc.img 2>/dev/null || fail "a wrong key opened it"
        # No volume key file is left behind in the key store.
        [ "$(ls -A ks)" = appkey ] || fail "key store holds more than the key: $(ls -A ks)"
        [ "$(echo enc.img*)" = "enc.img enc.img.meta" ] || fail "temporary files left beside the image: $(echo enc.img*)"
}

# tree_digests IMAGE: the 32-byte digests of IMAGE's dm-verity tree, one hex
# line each (zero slots left out).
tree_digests() {
        local offset
        offset=$(jq .verity.hash_offset "$1.meta")
        tail -c +$((offset + 4096 + 1)) "$1" | od -An -v -tx1 -w32 | tr -d ' ' | grep -v '^0*$'
}

test_verity_salt_from_a_name_keeps_the_salt_and_the_digests_of_unchanged_blocks_across_versions() {
        local rc changed
        repro_tree v1
        cp -a v1 v2
        printf 'y' | dd of=v2/bin/tool bs=1 seek=1234 conv=notrunc status=none # one data block changes
        for v in v1 v2; do
                "$KOS" component build --type erofs --verity --verity-salt-from runtime "$v" "$v-named.img" >/dev/null
                "$KOS" component build --type erofs --verity "$v" "$v-content.img" >/dev/null
        done
        [ "$(jq -r .verity.root_hash v1-named.img.meta)" != "$(jq -r .verity.root_hash v2-named.img.meta)" ] ||
                fail "same root hash for different content"
        changed=$(comm -13 <(tree_digests v1-named.img | sort) <(tree_digests v2-named.img | sort) | wc -l)
        echo "tree digests new in v2: $changed with --verity-salt-from, $(comm -13 <(tree_digests v1-content.img | sort) <(tree_digests v2-content.img | sort) | wc -l) of $(tree_digests v2-content.img | wc -l) without"
        # The block with the changed byte, and the first (the erofs superblock:
        # its UUID follows the content).
        [ "$changed" = 2 ] || fail "$changed digests changed for one changed block"
        # Without it the salt follows the content: every digest is new.
        [ -z "$(comm -12 <(tree_digests v1-content.img | sort) <(tree_digests v2-content.img | sort))" ] ||
                fail "a content-derived salt kept digests of the old tree"
        rc=0; "$KOS" component build --verity-salt-from runtime v1 x.img 2>err || rc=$?
        [ "$rc" = 2 ] && grep -q -- '--verity-salt-from needs --verity' err || fail "exit $rc without --verity: $(cat err)"
        rc=0; "$KOS" component build --verity --verity-salt-from 'a/b' v1 x.img 2>err || rc=$?
        [ "$rc" = 2 ] || fail "exit $rc for a salt name with a slash"
}

test_encrypted_component_build_that_fails_leaves_no_volume_key_or_temporary_file_and_shows_why() {
        local rc
        mkdir app bin && echo x >app/f
        printf '#!/bin/sh\necho "cryptsetup: device too small" >&2\nexit 1\n' >bin/cryptsetup
        chmod +x bin/cryptsetup
        rc=0; PATH=$PWD/bin:$PATH "$KOS" component build --encrypt appkey --keystore ks app enc.img 2>err || rc=$?
        [ "$rc" = 2 ] || fail "exit $rc when cryptsetup fails"
        grep -q 'cryptsetup: device too small' err || fail "cryptsetup's own error is not shown: $(cat err)"
        [ "$(ls -A ks)" = appkey ] || fail "key store holds more than the key: $(ls -A ks)"
        [ "$(ls -A)" = "$(printf '%s\n' app bin err ks)" ] || fail "left behind: $(ls -A | tr '\n' ' ')"
}
