# Chunked components (docs/format.md, "Chunked components") and digest
# references, against Debian's docker-registry on 127.0.0.1.

# chunk_tree DIR: 8 files of 1 MiB of random data and a version file.
chunk_tree() {
        mkdir -p "$1/lib" "$1/etc"
        for i in 1 2 3 4 5 6 7 8; do head -c 1M /dev/urandom >"$1/lib/lib$i.so"; done
        echo "$1" >"$1/etc/version"
}

# chunk_release NAME VERSION DIR [PUSH_OPTION...]: a manifest NAME whose base
# is a squashfs of DIR (uncompressed, fixed times: as kos component build
# makes it reproducible), installed in img/ and pushed to kos/device:NAME.
chunk_release() {
        local name=$1 version=$2 dir=$3
        shift 3
        mksquashfs "$dir" "$name-base.img" -quiet -noappend -noI -noD -noF -noX -all-root -mkfs-time 0 -all-time 0 >/dev/null
        "$KOS" component add img "$name-base.img" >/dev/null
        "$KOS" manifest create --name "$name" --version "$version" --kernel vmlinuz --initrd initrd --cmdline "kos.test=$name" \
                --component base="$name-base.img" --component app=app.img -o "$name.json"
        "$KOS" manifest sign --key secret.pem "$name.json" >/dev/null
        "$KOS" install img "$name.json" >/dev/null
        "$KOS" push "$@" img "$name" "$REGISTRY/kos/device:$name" >"push-$name" || fail "push $name: $(cat "push-$name")"
}

# registry_bytes_after LINE: the bytes of every response body the registry
# served after line LINE of its access log.
registry_bytes_after() {
        tail -n +"$(($1 + 1))" "$REGISTRY_DIR/log" | grep -oE '" [0-9]{3} [0-9]+ "' | awk '{ s += $3 } END { print s + 0 }'
}

registry_log_lines() { wc -l <"$REGISTRY_DIR/log"; }

# base_index NAME: the chunk index of the base component of kos/device:NAME.
base_index() {
        local index; index=$(curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$REGISTRY/v2/kos/device/manifests/$1" |
                jq -r '.layers[] | select(.annotations["io.kos.role"] == "component:base") | .annotations["io.kos.chunk-index"]')
        curl -sf "$REGISTRY/v2/kos/device/blobs/$index"
}

# index_blob_digests FILE: the hex digest of each chunk blob an index names.
index_blob_digests() {
        od -An -v -tx1 -j 56 "$1" | tr -d ' \n' | fold -w 144 | cut -c 65-128
}

# v1 and v2 (one library of eight replaced, the version file changed), both
# pushed with the options given (v2 also with $V2_PUSH), v1 pulled into dev/.
chunk_fixture() {
        fixture
        registry_start
        chunk_tree v1
        cp -a v1 v2 && head -c 1M /dev/urandom >v2/lib/lib3.so && echo v2 >v2/etc/version
        chunk_release v1 1 v1 "$@"
        chunk_release v2 2 v2 "$@" ${V2_PUSH:-}
        "$KOS" imagefs init dev
        "$KOS" pull --keyring keyring "$REGISTRY/kos/device:v1" dev >pull-v1 || fail "pull v1: $(cat pull-v1)"
}

test_oci_chunks_pull_rebuilds_a_component_from_the_installed_ones_and_fetches_only_what_changed() {
        chunk_fixture
        grep -q 'chunks: .* chunk blobs uploaded' push-v2 || fail "no chunks pushed: $(cat push-v2)"
        local before; before=$(registry_log_lines)
        "$KOS" pull --keyring keyring "$REGISTRY/kos/device:v2" dev >pull-v2 || fail "pull v2: $(cat pull-v2)"
        cat pull-v2
        local served size; served=$(registry_bytes_after "$before"); size=$(stat -c %s v2-base.img)
        echo "v1 -> v2: the registry served $served bytes for a base of $size bytes" >&2
        grep -q 'rebuilding base from' pull-v2 || fail "base was not rebuilt from chunks: $(cat pull-v2)"
        grep -qE 'chunks: [0-9.]+ MiB rebuilt from the device' pull-v2 || fail "no chunk summary: $(cat pull-v2)"
        # One library of eight changed: about 1 MiB of 8, and the index.
        [ "$served" -lt $((size / 4)) ] || fail "the registry served $served bytes for a base of $size"
        [ "$served" -gt $((1024 * 1024)) ] || fail "$served bytes cannot hold the 1 MiB that changed"
        cmp v2-base.img "dev/components/$(sha v2-base.img)" || fail "the rebuilt base differs"
        [ "$("$KOS" select dev --keyring keyring --json | jq -r .selected.name)" = v2 ] || fail "v2 is not selected"
        # The layer of base was never asked for.
        ! grep -q "GET /v2/kos/device/blobs/sha256:$(sha v2-base.img) " registry/log || fail "base's whole layer was fetched"
}

# A fresh device has no seeds: it fetches each layer whole, the chunk
# index at most once per component (issue 24: at most 2% over the component).
test_oci_chunks_fresh_install_costs_at_most_two_percent_over_the_components() {
        fixture
        registry_start
        chunk_tree v1
        chunk_release v1 1 v1
        "$KOS" imagefs init dev
        local before; before=$(registry_log_lines)
        "$KOS" pull --keyring keyring "$REGISTRY/kos/device:v1" dev >pull || fail "pull: $(cat pull)"
        local served total; served=$(registry_bytes_after "$before")
        total=$(($(stat -c %s vmlinuz) + $(stat -c %s initrd) + $(stat -c %s app.img) + $(stat -c %s v1-base.img) +
                $(stat -c %s img/manifests/v1.json) + $(stat -c %s img/manifests/v1.json.sig)))
        echo "fresh install: $served bytes served for $total bytes of release" >&2
        [ "$served" -le $((total * 102 / 100)) ] || fail "$served bytes served for $total"
}

# The index says only where bytes may be found: an index that is not the
# blob its digest names is of no use, and the layer is fetched whole.
test_oci_chunks_index_that_does_not_hash_to_its_digest_costs_bytes_and_the_layer_is_fetched() {
        chunk_fixture
        local index; index=$(curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$REGISTRY/v2/kos/device/manifests/v2" |
                jq -r '.layers[] | select(.annotations["io.kos.role"] == "component:base") | .annotations["io.kos.chunk-index"]')
        local data=registry/data/docker/registry/v2/blobs/sha256/${index:7:2}/${index#sha256:}/data
        [ -f "$data" ] || fail "no index blob $data"
        flip_byte "$data" 100
        "$KOS" pull --keyring keyring "$REGISTRY/kos/device:v2" dev >pull-v2 || fail "pull v2: $(cat pull-v2)"
        grep -q "the chunk index of base is of no use (it does not hash to $index)" pull-v2 || fail "$(cat pull-v2)"
        grep -q "GET /v2/kos/device/blobs/sha256:$(sha v2-base.img) " registry/log || fail "base's layer was not fetched"
        cmp v2-base.img "dev/components/$(sha v2-base.img)"
}

# A chunk whose bytes are not what the index says stops the rebuild; the
# rest of the component comes from its layer, from where the rebuild stopped.
test_oci_chunks_chunk_that_does_not_match_its_index_entry_falls_back_to_the_layer() {
        chunk_fixture
        local before; before=$(registry_log_lines)
        # A chunk v2 has and v1 lacks.
        base_index v1 >index-v1 && base_index v2 >index-v2
        local chunk; chunk=$(index_blob_digests index-v2 | grep -vxFf <(index_blob_digests index-v1) | head -1)
        local data=registry/data/docker/registry/v2/blobs/sha256/${chunk:0:2}/$chunk/data
        [ -f "$data" ] || fail "no chunk blob $data"
        flip_byte "$data" 20
        "$KOS" pull --keyring keyring "$REGISTRY/kos/device:v2" dev >pull-v2 || fail "pull v2: $(cat pull-v2)"
        cat pull-v2
        grep -q "is not the chunk its index names" pull-v2 || fail "the bad chunk went unnoticed: $(cat pull-v2)"
        grep -q "fetching the rest of base from its layer" pull-v2 || fail "$(cat pull-v2)"
        grep -qE "\"GET /v2/kos/device/blobs/sha256:$(sha v2-base.img) HTTP/1.1\" 206 " registry/log || fail "no ranged GET of the rest"
        cmp v2-base.img "dev/components/$(sha v2-base.img)"
        echo "served: $(registry_bytes_after "$before")" >&2
}

# An index whose chunks all hash to its entries, in the wrong order: it
# rebuilds other bytes, which the signed sha256 refuses. Nothing is installed.
test_oci_chunks_lying_index_is_refused_by_the_signed_sha256_and_installs_nothing() {
        chunk_fixture
        curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$REGISTRY/v2/kos/device/manifests/v2" >m.json
        local index; index=$(jq -r '.layers[] | select(.annotations["io.kos.role"] == "component:base") | .annotations["io.kos.chunk-index"]' m.json)
        curl -sf "$REGISTRY/v2/kos/device/blobs/$index" >index
        # Swap the entries of chunks 1 and 2 (72 bytes each after a 56-byte header).
        { head -c $((56 + 72)) index; tail -c +$((56 + 2 * 72 + 1)) index | head -c 72
          tail -c +$((56 + 72 + 1)) index | head -c 72; tail -c +$((56 + 3 * 72 + 1)) index; } >lying
        [ "$(stat -c %s lying)" = "$(stat -c %s index)" ] && ! cmp -s lying index || fail "the swap failed"
        local lying_digest; lying_digest=sha256:$(sha lying)
        curl -sf -X POST -D headers -o /dev/null "$REGISTRY/v2/kos/device/blobs/uploads/"
        local location; location=$(tr -d '\r' <headers | sed -n 's/^[Ll]ocation: //p')
        curl -sf -X PUT -H 'Content-Type: application/octet-stream' --data-binary @lying "$location&digest=$lying_digest" ||
                fail "upload of the lying index"
        jq --arg d "$lying_digest" --arg s "$(stat -c %s lying)" -c \
                '(.layers[] | select(.annotations["io.kos.role"] == "component:base") | .annotations) |= (.["io.kos.chunk-index"] = $d | .["io.kos.chunk-index.size"] = $s)' \
                m.json >lying.json
        curl -sf -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary @lying.json \
                "$REGISTRY/v2/kos/device/manifests/v2" || fail "PUT of the lying artifact"
        local before; before=$(device_snapshot)
        local rc=0; "$KOS" pull --keyring keyring "$REGISTRY/kos/device:v2" dev >out 2>err || rc=$?
        cat out err
        grep -q 'rebuilding base from' out || fail "the lying index was not used: $(cat out)"
        [ "$rc" = 1 ] && grep -q 'component-hash-mismatch: component base' err || fail "exit $rc: $(cat out err)"
        [ "$(device_snapshot)" = "$before" ] || fail "the ImageFS changed"
}

# Releases pushed without chunks (as kos did before them, or with
# --no-chunks) install as before, seeds or not.
test_oci_chunks_release_without_chunks_is_pulled_whole() {
        chunk_fixture --no-chunks
        ! grep -q 'chunks:' push-v2 || fail "chunks pushed: $(cat push-v2)"
        curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$REGISTRY/v2/kos/device/manifests/v2" >m.json
        [ "$(jq '[.layers[].annotations | select(has("io.kos.chunk-index"))] | length' m.json)" = 0 ] || fail "$(cat m.json)"
        "$KOS" pull --keyring keyring "$REGISTRY/kos/device:v2" dev >pull-v2 || fail "pull v2: $(cat pull-v2)"
        grep -q 'fetching base' pull-v2 || fail "$(cat pull-v2)"
        cmp v2-base.img "dev/components/$(sha v2-base.img)"
}

# A client that knows nothing of chunks sees the layers it always saw: the
# chunk index is an annotation of the component layer, the chunks are no
# layers of the release (a kos-chunks-<sha256> manifest keeps them from a
# registry's garbage collection), and every component layer has a title.
test_oci_chunks_leave_the_release_layers_as_old_clients_know_them() {
        chunk_fixture
        curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$REGISTRY/v2/kos/device/manifests/v2" >m.json
        [ "$(jq '.layers | length' m.json)" = 6 ] || fail "$(cat m.json)"
        [ "$(jq -r '[.layers[2:][].mediaType] | unique | join(" ")' m.json)" = application/vnd.kos.component.v1 ] || fail "$(cat m.json)"
        [ "$(jq -r '[.layers[2:][].annotations["org.opencontainers.image.title"]] | join(" ")' m.json)" = "kernel initrd base app" ] ||
                fail "titles: $(cat m.json)"
        curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
                "$REGISTRY/v2/kos/device/manifests/kos-chunks-$(sha v2-base.img)" >c.json || fail "no kos-chunks manifest"
        [ "$(jq -r .artifactType c.json)" = application/vnd.kos.chunks.v1 ] || fail "$(head -c 500 c.json)"
        local index; index=$(jq -r '.layers[] | select(.annotations["io.kos.role"] == "component:base") | .annotations["io.kos.chunk-index"]' m.json)
        [ "$(jq -r '.layers[0].digest' c.json)" = "$index" ] || fail "the kos-chunks manifest does not name the index"
}

test_oci_pull_and_push_by_digest_reference() {
        fixture
        registry_start
        chunk_tree v1
        chunk_release v1 1 v1
        local digest; digest=$(sed -n 's/^digest: //p' push-v1)
        [ "$digest" = "sha256:$(curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
                "$REGISTRY/v2/kos/device/manifests/v1" | sha256sum | cut -d' ' -f1)" ] || fail "push printed $digest"
        "$KOS" imagefs init dev
        "$KOS" pull --keyring keyring "$REGISTRY/kos/device@$digest" dev >pull || fail "pull by digest: $(cat pull)"
        grep -q 'pulled v1' pull || fail "$(cat pull)"
        # The same artifact pushed to its digest (to another repository) is accepted ...
        "$KOS" push img v1 "$REGISTRY/kos/pinned@$digest" >out || fail "push to its digest: $(cat out)"
        curl -sf -o /dev/null -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$REGISTRY/v2/kos/pinned/manifests/$digest" ||
                fail "kos/pinned@$digest is not there"
        # ... and to another digest refused, saying why.
        local rc=0; "$KOS" push img v1 "$REGISTRY/kos/pinned@sha256:$(printf %064d 0)" >out 2>err || rc=$?
        [ "$rc" = 1 ] && grep -q "the artifact is $digest, not sha256:0000" err || fail "exit $rc: $(cat out err)"
        rc=0; "$KOS" pull --keyring keyring "$REGISTRY/kos/device@sha256:ABC" dev >out 2>err || rc=$?
        [ "$rc" != 0 ] && grep -q 'is not sha256: and 64 lowercase hex digits' err || fail "exit $rc: $(cat out err)"
}

# v2 pushed with a delta from v1 (zstd with v1's base as its prefix): a
# device holding v1 fetches the delta, not chunks, and the result must
# still hash to the signed sha256.
delta_fixture() {
        V2_PUSH='--delta-from v1' chunk_fixture
        grep -q 'deltas: 1 component' push-v2 || fail "no delta pushed: $(cat push-v2)"
}

test_oci_delta_from_the_installed_component_is_fetched_instead_of_chunks() {
        delta_fixture
        local before; before=$(registry_log_lines)
        "$KOS" pull --keyring keyring "$REGISTRY/kos/device:v2" dev >pull-v2 || fail "pull v2: $(cat pull-v2)"
        cat pull-v2
        local served; served=$(registry_bytes_after "$before")
        echo "v1 -> v2 by delta: the registry served $served bytes for a base of $(stat -c %s v2-base.img)" >&2
        grep -q 'fetching the delta of base' pull-v2 || fail "no delta: $(cat pull-v2)"
        ! grep -q 'rebuilding base from' pull-v2 || fail "chunks were fetched as well: $(cat pull-v2)"
        [ "$served" -lt $((1024 * 1024 + 300 * 1024)) ] || fail "the registry served $served bytes"
        ! grep -q "GET /v2/kos/device/blobs/sha256:$(sha v2-base.img) " registry/log || fail "base's whole layer was fetched"
        cmp v2-base.img "dev/components/$(sha v2-base.img)"
}

test_oci_delta_that_does_not_hash_to_its_digest_falls_back_to_chunks() {
        delta_fixture
        local delta; delta=$(curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$REGISTRY/v2/kos/device/manifests/v2" |
                jq -r '.layers[] | select(.annotations["io.kos.role"] == "component:base") | .annotations["io.kos.delta"]')
        local data=registry/data/docker/registry/v2/blobs/sha256/${delta:7:2}/${delta#sha256:}/data
        [ -f "$data" ] || fail "no delta blob $data"
        flip_byte "$data" 100
        "$KOS" pull --keyring keyring "$REGISTRY/kos/device:v2" dev >pull-v2 || fail "pull v2: $(cat pull-v2)"
        grep -q "the delta of base is of no use (it does not hash to $delta)" pull-v2 || fail "$(cat pull-v2)"
        grep -q 'rebuilding base from' pull-v2 || fail "no fallback to chunks: $(cat pull-v2)"
        cmp v2-base.img "dev/components/$(sha v2-base.img)"
}

# A registry that trickles one chunk below the minimum rate: the chunk's
# request is abandoned like any other (30 s window, shortened here to 2 s),
# the pull fails and keeps nothing, and it ends within seconds. The fake
# registry forwards everything else to the real one.
test_oci_chunks_a_registry_trickling_a_chunk_is_abandoned_and_the_pull_keeps_nothing() {
        chunk_fixture
        base_index v1 >index-v1 && base_index v2 >index-v2
        index_blob_digests index-v2 | grep -vxFf <(index_blob_digests index-v1) | head -1 >slow-chunks
        [ -s slow-chunks ] || fail "no chunk of v2 that v1 lacks"
        cat >registry.handler <<SH
if [[ \$TARGET == */blobs/sha256:* ]] && grep -qx "\${TARGET##*sha256:}" "$PWD/slow-chunks"; then
        printf 'HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n'
        while printf '%100s' ''; do sleep 1; done
else
        curl -s -o "$PWD/fwd.\$\$" -w '%{http_code}' -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$REGISTRY\$TARGET" >"$PWD/fwd.\$\$.status"
        printf 'HTTP/1.1 %s X\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n' \
                "\$(cat "$PWD/fwd.\$\$.status")" "\$(stat -c %s "$PWD/fwd.\$\$")"
        cat "$PWD/fwd.\$\$"
        rm -f "$PWD/fwd.\$\$" "$PWD/fwd.\$\$.status"
fi
SH
        local port start=$SECONDS rc=0 before; port=$(free_port); before=$(device_snapshot)
        fake_server proxy "$port"
        cp registry.handler proxy.handler
        KOS_OCI_TEST_STALL_SECONDS=2 timeout 60 "$KOS" pull --keyring keyring "http://127.0.0.1:$port/kos/device:v2" dev >out 2>err || rc=$?
        local took=$((SECONDS - start))
        cat out err
        grep -q 'rebuilding base from' out || fail "no chunked rebuild: $(cat out err)"
        [ "$rc" = 2 ] && grep -q 'Operation too slow' err || fail "exit $rc (124: still running after 60 s): $(cat err)"
        [ "$took" -le 20 ] || fail "took $took s"
        [ "$(device_snapshot)" = "$before" ] || fail "the ImageFS changed"
}
