# dm-verity parameters (docs/format.md, "Manifest", verity): a component
# marked "verity" is mapped by the System Kernel only with the superblock
# veritysetup writes for sha256 and 4096-byte blocks. An image made with
# other parameters is refused when the manifest is created, installed and
# selected, naming why (verity-superblock-mismatch), not first at the
# System Kernel's 'open dm-verity', which would cost a boot.

# odd_verity_image KIND: KIND.img, an erofs image with a dm-verity tree
# veritysetup made with parameters the System Kernel refuses, and its
# KIND.img.meta as kos component build writes it (root hash cut to the 64
# digits a manifest holds). KIND: nosb (no superblock), format0 (hash type 0,
# Chrome OS), sha512, blocks1024 (1024-byte data blocks).
odd_verity_image() {
        local kind=$1 offset args root
        mkdir -p "data-$kind/etc" && head -c 300000 /dev/urandom >"data-$kind/etc/blob"
        mkfs.erofs "$kind.img" "data-$kind" >/dev/null 2>&1
        offset=$(( ($(stat -c %s "$kind.img") + 4095) / 4096 * 4096 ))
        truncate -s "$offset" "$kind.img"
        case $kind in
        nosb) args=(--hash=sha256 --no-superblock) ;;
        format0) args=(--hash=sha256 --format=0) ;;
        sha512) args=(--hash=sha512) ;;
        blocks1024) args=(--hash=sha256 --data-block-size=1024) ;;
        esac
        root=$(veritysetup format "${args[@]}" --hash-offset="$offset" "$kind.img" "$kind.img" |
                sed -n 's/^Root hash:[[:space:]]*//p')
        [ -n "$root" ] || fail "veritysetup format ${args[*]} failed"
        printf '{"type": "erofs", "verity": {"root_hash": "%s", "hash_offset": %d}}\n' "${root:0:64}" "$offset" \
                >"$kind.img.meta"
}

VERITY_KINDS="nosb format0 sha512 blocks1024"

# What the refusal names for each kind.
verity_why() {
        case $1 in
        nosb) echo 'no dm-verity superblock at the signed hash offset' ;;
        format0) echo 'hash type' ;;
        sha512) echo 'hash algorithm' ;;
        blocks1024) echo 'data block size' ;;
        esac
}

test_manifest_create_refuses_verity_parameters_the_system_kernel_refuses_and_names_them() {
        fixture
        local kind rc
        for kind in $VERITY_KINDS; do
                odd_verity_image "$kind"
                rc=0
                "$KOS" manifest create --name "$kind" --version 1 --kernel vmlinuz --initrd initrd \
                        --component "root=$kind.img" -o "$kind.json" 2>err || rc=$?
                [ "$rc" = 2 ] || fail "$kind: exit $rc: $(cat err)"
                grep -q "component root: $kind.img: verity-superblock-mismatch: .*$(verity_why "$kind")" err ||
                        fail "$kind: $(cat err)"
                [ ! -e "$kind.json" ] || fail "$kind: a manifest was written"
                # Checked by its tree, the same image is refused for the same
                # named reason, not for a size that follows from it.
                rc=0
                "$KOS" manifest create --name "$kind" --version 1 --kernel vmlinuz --initrd initrd \
                        --component "root=$kind.img" --hash-tree root -o "$kind.json" 2>err || rc=$?
                [ "$rc" = 2 ] || fail "$kind --hash-tree: exit $rc: $(cat err)"
                grep -q "verity-superblock-mismatch: .*$(verity_why "$kind")" err || fail "$kind --hash-tree: $(cat err)"
        done
        # What kos component build --verity writes is accepted.
        mkdir -p good/etc && echo good >good/etc/layer
        "$KOS" component build --type erofs --verity good good.img >/dev/null
        "$KOS" manifest create --name good --version 1 --kernel vmlinuz --initrd initrd --component root=good.img \
                -o good.json || fail "a good verity image was refused"
}

# verity_manifest_by_hand KIND: KIND.json, signed, for KIND.img as it is (a
# tool other than kos manifest create could write it), and the image in img/.
verity_manifest_by_hand() {
        local kind=$1
        jq --arg s "$(sha "$kind.img")" --argjson z "$(stat -c %s "$kind.img")" --slurpfile m "$kind.img.meta" \
                '.name = $ARGS.named.n | .components[0].sha256 = $s | .components[0].size = $z
                 | .components[0].verity = $m[0].verity' --arg n "$kind" good.json >"$kind.json"
        "$KOS" manifest sign --key secret.pem "$kind.json" >/dev/null
        "$KOS" component add img "$kind.img" >/dev/null
}

# Signed anyway, the manifests are refused by kos install and by selection
# (which reads the one superblock block, after the sha256 of every byte
# matched), and selection goes on to the next manifest.
test_verity_parameters_the_system_kernel_refuses_are_rejected_at_install_and_selection() {
        fixture
        mkdir -p good/etc && echo good >good/etc/layer
        "$KOS" component build --type erofs --verity good good.img >/dev/null
        "$KOS" component add img good.img >/dev/null
        "$KOS" manifest create --name good --version 1 --kernel vmlinuz --initrd initrd --component root=good.img \
                -o good.json
        "$KOS" manifest sign --key secret.pem good.json >/dev/null
        "$KOS" install --keyring keyring img good.json >/dev/null
        local kind rc
        for kind in $VERITY_KINDS; do
                odd_verity_image "$kind"
                verity_manifest_by_hand "$kind"
                rc=0
                "$KOS" install --keyring keyring img "$kind.json" >out 2>err || rc=$?
                [ "$rc" = 1 ] || fail "$kind: kos install exit $rc: $(cat out err)"
                grep -q "verity-superblock-mismatch: root: components/$(sha "$kind.img"): .*$(verity_why "$kind")" err ||
                        fail "$kind: install: $(cat err)"
                # On the device it got there some other way.
                cp "$kind.json" "$kind.json.sig" img/manifests/
        done
        activate $VERITY_KINDS good
        for kind in $VERITY_KINDS; do
                expect_reason "$kind" verity-superblock-mismatch
                select_json | jq -r --arg n "$kind" '.manifests[] | select(.name == $n) | .detail' |
                        grep -q "$(verity_why "$kind")" || fail "$kind: detail: $(select_json)"
        done
        expect_selected good
}
