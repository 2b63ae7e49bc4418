# kos push / kos pull against a real OCI registry (Debian's docker-registry,
# Distribution 2.8) on 127.0.0.1; nothing leaves this machine.

# oci_release NAME VERSION [KEY] [SECURITY_VERSION]: a manifest NAME
# installed in img/, sharing kernel, initrd and app with every other release,
# with a base layer of its own (4 MiB of random data, uncompressed).
oci_release() {
        mkdir -p "base-$1/etc" && echo "$1" >"base-$1/etc/layer" && head -c 4M /dev/urandom >"base-$1/etc/blob"
        mksquashfs "base-$1" "base-$1.img" -quiet -noappend -noI -noD -noF -noX >/dev/null
        "$KOS" component add img "base-$1.img" >/dev/null
        "$KOS" manifest create --name "$1" --version "$2" --security-version "${4:-1}" --kernel vmlinuz --initrd initrd \
                --cmdline "kos.test=$1" --component base="base-$1.img" --component app=app.img -o "$1.json"
        "$KOS" manifest sign --key "${3:-secret.pem}" "$1.json" >/dev/null
        "$KOS" install img "$1.json" >/dev/null
}

# Hex digests of the components of manifest NAME (kernel, initrd, components).
component_digests() {
        jq -r '.kernel.sha256, .initrd.sha256, (.components[].sha256)' "img/manifests/$1.json" | sort -u
}

device_snapshot() { (cd dev && find . -type f | LC_ALL=C sort | xargs -r sha256sum); }

test_oci_second_pull_fetches_only_the_components_that_differ() {
        fixture; oci_release a 1; oci_release b 2
        registry_start
        "$KOS" push img a "$REGISTRY/kos/device:a" >push-a || fail "push a: $(cat push-a)"
        "$KOS" push img b "$REGISTRY/kos/device:b" >push-b || fail "push b: $(cat push-b)"
        cat push-a push-b
        # b shares the empty config, kernel, initrd and app with a: 3 of its 7 blobs are new.
        grep -q 'pushed b .*: 3 of 7 blobs uploaded' push-b || fail "push b re-sent shared blobs: $(cat push-b)"
        "$KOS" imagefs init dev
        local gets0; gets0=$(registry_blob_gets $(component_digests a) $(component_digests b))
        "$KOS" pull --keyring keyring "$REGISTRY/kos/device:a" dev >pull-a || fail "pull a: $(cat pull-a)"
        local gets1; gets1=$(registry_blob_gets $(component_digests a) $(component_digests b))
        "$KOS" pull --keyring keyring "$REGISTRY/kos/device:b" dev >pull-b || fail "pull b: $(cat pull-b)"
        local gets2; gets2=$(registry_blob_gets $(component_digests a) $(component_digests b))
        cat pull-a pull-b
        grep -q 'fetched 4 of 4 components' pull-a || fail "first pull: $(cat pull-a)"
        grep -q 'fetched 1 of 4 components' pull-b && grep -q '3 reused' pull-b || fail "second pull: $(cat pull-b)"
        [ $((gets1 - gets0)) = 4 ] || fail "the registry served $((gets1 - gets0)) component GETs for the first pull, not 4"
        [ $((gets2 - gets1)) = 1 ] || fail "the registry served $((gets2 - gets1)) component GETs for the second pull, not 1"
        local b_only; b_only=$(sha base-b.img)
        grep -qE "\"GET /v2/kos/device/blobs/sha256:$b_only HTTP/1.1\" 200 $(stat -c %s base-b.img) " registry/log ||
                fail "the second pull's GET was not of b's own base layer"
        echo "second pull: $(stat -c %s base-b.img) bytes of $(($(stat -c %s vmlinuz) + $(stat -c %s initrd) + $(stat -c %s base-b.img) + $(stat -c %s app.img))) fetched" >&2
        [ "$(tr '\n' ' ' <dev/active)" = "b a " ] || fail "active: $(cat dev/active)"
        [ -e "dev/boot-state/$(sha img/manifests/b.json).tries-3" ] || fail "b is not on trial"
        [ "$("$KOS" select dev --keyring keyring --json | jq -r .selected.name)" = b ] || fail "b is not selected"
        # Installed exactly as a bundle: the manifest's exact bytes.
        cmp img/manifests/b.json dev/manifests/b.json && cmp img/manifests/b.json.sig dev/manifests/b.json.sig
        "$KOS" pull --keyring keyring "$REGISTRY/kos/device:b" dev >again || fail "pull again: $(cat again)"
        grep -q 'already' again || fail "a pull of what is active changed something: $(cat again)"
}

test_oci_pull_of_manifest_signed_by_unknown_key_is_refused_before_any_component_is_fetched() {
        fixture; oci_release x 1 stranger.pem
        registry_start
        "$KOS" push img x "$REGISTRY/kos/device:x" >/dev/null
        "$KOS" imagefs init dev
        local before; before=$(device_snapshot)
        local rc=0; "$KOS" pull --keyring keyring "$REGISTRY/kos/device:x" dev >out 2>err || rc=$?
        [ "$rc" = 1 ] && grep -q 'refused, nothing changed: key-untrusted' err || fail "exit $rc: $(cat out err)"
        [ "$(registry_blob_gets $(component_digests x))" = 0 ] || fail "a component was fetched: $(grep GET registry/log)"
        [ "$(registry_blob_gets)" = 2 ] || fail "wanted 2 blob GETs (manifest, signature): $(grep '"GET' registry/log)"
        [ "$(device_snapshot)" = "$before" ] || fail "the ImageFS changed"
}

test_oci_pull_below_the_rollback_floor_is_refused_before_any_component_is_fetched() {
        fixture; oci_release old 1 secret.pem 2
        registry_start
        "$KOS" push img old "$REGISTRY/kos/device:old" >/dev/null
        "$KOS" imagefs init dev
        mkdir -p dev/boot-state && echo 3 >dev/boot-state/rollback-floor
        local before; before=$(device_snapshot)
        local rc=0; "$KOS" pull --keyring keyring "$REGISTRY/kos/device:old" dev >out 2>err || rc=$?
        [ "$rc" = 1 ] && grep -qF "rollback: security_version 2 is below this device's floor 3" err ||
                fail "exit $rc: $(cat out err)"
        [ "$(registry_blob_gets $(component_digests old))" = 0 ] || fail "a component was fetched"
        [ "$(device_snapshot)" = "$before" ] || fail "the ImageFS changed"
}

test_oci_pull_of_blob_whose_bytes_do_not_match_its_digest_installs_nothing() {
        fixture; oci_release a 1
        registry_start
        "$KOS" push img a "$REGISTRY/kos/device:a" >/dev/null
        local hex; hex=$(sha base-a.img)
        local data=registry/data/docker/registry/v2/blobs/sha256/${hex:0:2}/$hex/data
        [ -f "$data" ] || fail "no blob file $data"
        flip_byte "$data" 2000000
        "$KOS" imagefs init dev
        local before; before=$(device_snapshot)
        local rc=0; "$KOS" pull --keyring keyring "$REGISTRY/kos/device:a" dev >out 2>err || rc=$?
        [ "$rc" = 1 ] && grep -q 'component-hash-mismatch: component base' err || fail "exit $rc: $(cat out err)"
        [ "$(device_snapshot)" = "$before" ] || fail "the ImageFS changed: $(find dev -type f)"
}

test_oci_broken_transfer_resumes_with_a_range_request_in_the_same_pull() {
        fixture; oci_release a 1
        registry_start
        "$KOS" push img a "$REGISTRY/kos/device:a" >/dev/null
        "$KOS" imagefs init dev
        # Each transfer breaks after 2.5 MB: kernel and initrd (0.5 MB) come whole, base-a (4 MiB) in two.
        KOS_OCI_TEST_CUT_AFTER=2500000 "$KOS" pull --keyring keyring "$REGISTRY/kos/device:a" dev >out 2>err ||
                fail "pull: $(cat out err)"
        cat out
        grep -q "the transfer of base broke at 2.4 of 4.0 MiB: resuming" out || fail "no resume: $(cat out)"
        grep -q 'fetched 4 of 4 components' out || fail "$(cat out)"
        local hex; hex=$(sha base-a.img)
        grep -qE "\"GET /v2/kos/device/blobs/sha256:$hex HTTP/1.1\" 206 $(($(stat -c %s base-a.img) - 2500000)) " registry/log ||
                fail "no 206 answer of the rest of base-a in the registry log"
        [ "$("$KOS" select dev --keyring keyring --json | jq -r .selected.name)" = a ] || fail "a is not selected"
        [ -z "$(find dev/components -name '.tmp-*')" ] || fail "temporary files left"
}

# A hostile registry can make pulls fail as often as it likes: each failed
# pull removes what it fetched, so failures never add up on the ImageFS.
test_oci_failed_pull_leaves_no_partial_download_and_no_component_it_fetched() {
        fixture; oci_release a 1
        registry_start
        "$KOS" push img a "$REGISTRY/kos/device:a" >/dev/null
        "$KOS" imagefs init dev
        local before; before=$(device_snapshot)
        # Every transfer breaks after 1 MB: kernel and initrd come whole, base (4 MiB) never does.
        local rc=0; KOS_OCI_TEST_CUT_AFTER=1000000 "$KOS" pull --keyring keyring "$REGISTRY/kos/device:a" dev >out 2>err || rc=$?
        cat out err
        [ -z "$(find dev/components -mindepth 1)" ] || fail "left in components/: $(ls -la dev/components)"
        [ "$(device_snapshot)" = "$before" ] || fail "the ImageFS changed"
        [ "$rc" = 2 ] && grep -q 'nothing installed and nothing of it kept' err || fail "exit $rc: $(cat err)"
}

test_oci_pull_refuses_up_front_when_the_imagefs_lacks_room_for_the_signed_sizes() {
        fixture; oci_release a 1
        registry_start
        "$KOS" push img a "$REGISTRY/kos/device:a" >/dev/null
        small_tmpfs dev 3m # a's components are 4.5 MiB
        "$KOS" imagefs init dev
        local rc=0; "$KOS" pull --keyring keyring "$REGISTRY/kos/device:a" dev >out 2>err || rc=$?
        cat out err
        [ "$(registry_blob_gets $(component_digests a))" = 0 ] || fail "a component was fetched: $(grep GET registry/log)"
        [ -z "$(find dev/components -mindepth 1)" ] || fail "left in components/: $(ls -la dev/components)"
        [ "$rc" = 2 ] && grep -q 'not enough space in the ImageFS: a needs [0-9]* bytes' err || fail "exit $rc: $(cat err)"
}

# What a killed pull (a power cut, Node Manager's deadline) leaves cannot
# clean itself up: the next pull removes what belongs to other releases
# before it counts the free space, and resumes its own release's download.
test_oci_pull_removes_what_killed_pulls_of_other_releases_left_and_resumes_its_own() {
        fixture; oci_release a 1
        registry_start
        "$KOS" push img a "$REGISTRY/kos/device:a" >/dev/null
        small_tmpfs dev 8m
        "$KOS" imagefs init dev
        local junk1 junk2 hex; junk1=$(head -c 32 /dev/urandom | sha256sum | cut -c1-64); junk2=$(head -c 32 /dev/urandom | sha256sum | cut -c1-64)
        head -c 3M /dev/urandom >"dev/components/.tmp-pull-$junk1"
        head -c 2M /dev/urandom >"dev/components/$junk2"
        hex=$(sha base-a.img)
        head -c 1048576 base-a.img >"dev/components/.tmp-pull-$hex"
        df -k dev >&2
        "$KOS" pull --keyring keyring "$REGISTRY/kos/device:a" dev >out 2>err || fail "pull: $(cat out err)"
        cat out
        grep -q 'resuming base at 1.0 of 4.0 MiB' out || fail "a's own download was not resumed: $(cat out)"
        [ ! -e "dev/components/.tmp-pull-$junk1" ] && [ ! -e "dev/components/$junk2" ] || fail "leftovers kept: $(ls dev/components)"
        [ "$("$KOS" select dev --keyring keyring --json | jq -r .selected.name)" = a ] || fail "a is not selected"
}

test_oci_push_and_pull_over_tls_with_basic_auth() {
        fixture; oci_release a 1
        registry_start --tls --user kos:s3cret-pass
        echo "kos:s3cret-pass" >creds
        local rc=0; "$KOS" push --ca-file "$REGISTRY_CA" img a "${REGISTRY#https://}/kos/device:a" 2>err || rc=$?
        [ "$rc" = 2 ] && grep -q '401' err || fail "push without credentials: exit $rc $(cat err)"
        rc=0; "$KOS" push --user kos:wrong --ca-file "$REGISTRY_CA" img a "${REGISTRY#https://}/kos/device:a" 2>err || rc=$?
        [ "$rc" = 2 ] && grep -q 'credentials were refused' err || fail "push with wrong password: exit $rc $(cat err)"
        "$KOS" push --user-file creds --ca-file "$REGISTRY_CA" img a "${REGISTRY#https://}/kos/device:a" >out ||
                fail "push: $(cat out)"
        "$KOS" imagefs init dev
        rc=0; "$KOS" pull --keyring keyring --user-file creds "$REGISTRY/kos/device:a" dev 2>err || rc=$?
        [ "$rc" = 2 ] && grep -qi 'certificate' err || fail "pull without the CA: exit $rc $(cat err)"
        "$KOS" pull --keyring keyring --user-file creds --ca-file "$REGISTRY_CA" "$REGISTRY/kos/device:a" dev >out ||
                fail "pull: $(cat out)"
        grep -q 'fetched 4 of 4 components' out || fail "$(cat out)"
        [ "$("$KOS" select dev --keyring keyring --json | jq -r .selected.name)" = a ] || fail "a is not selected"
        ! grep -q 's3cret-pass' registry/log || fail "the password is in the registry's log"
}

test_oci_artifact_layout_is_an_oci_image_manifest_with_kos_media_types() {
        fixture; oci_release a 1
        registry_start
        "$KOS" push img a "$REGISTRY/kos/device:a" >/dev/null
        curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$REGISTRY/v2/kos/device/manifests/a" >m.json
        [ "$(jq -r .artifactType m.json)" = application/vnd.kos.release.v1 ] || fail "$(cat m.json)"
        [ "$(jq -r .config.mediaType m.json)" = application/vnd.oci.empty.v1+json ] || fail "$(cat m.json)"
        [ "$(jq -r '.layers[0].mediaType' m.json)" = application/vnd.kos.manifest.v1+json ] || fail "$(cat m.json)"
        [ "$(jq -r '.layers[0].digest' m.json)" = "sha256:$(sha img/manifests/a.json)" ] || fail "$(cat m.json)"
        [ "$(jq -r '.layers[1].mediaType' m.json)" = application/vnd.kos.signature.v1 ] || fail "$(cat m.json)"
        [ "$(jq -r '[.layers[2:][].annotations["io.kos.role"]] | join(" ")' m.json)" = "kernel initrd component:base component:app" ] ||
                fail "$(cat m.json)"
        [ "$(jq -r '.layers[2].digest' m.json)" = "sha256:$(sha vmlinuz)" ] || fail "$(cat m.json)"
}

# Scale: 50 devices (host processes) pull the same release from one registry
# at once, each into its own ImageFS. Each must end with the same verified
# ImageFS; the registry must have served each of them the release once.
test_oci_fifty_clients_pull_the_same_release_at_once() {
        fixture; oci_release a 1
        registry_start
        "$KOS" push img a "$REGISTRY/kos/device:a" >/dev/null
        local n=50 i start end total want
        for i in $(seq $n); do "$KOS" imagefs init "dev$i"; done
        local before; before=$(registry_blob_gets $(component_digests a))
        start=$(date +%s.%N)
        local pids=() pid
        for i in $(seq $n); do
                "$KOS" pull --keyring keyring "$REGISTRY/kos/device:a" "dev$i" >"pull$i" 2>&1 &
                pids+=($!)
        done
        local failed=0
        for pid in "${pids[@]}"; do wait "$pid" || true; done # not a bare wait: the registry is a job too
        end=$(date +%s.%N)
        for i in $(seq $n); do grep -q 'fetched 4 of 4 components' "pull$i" || failed=$((failed + 1)); done
        [ "$failed" = 0 ] || fail "$failed clients failed: $(cat pull1)"
        local reference; reference=$("$KOS" select dev1 --keyring keyring --json | jq -c '.selected | {name, id}')
        [ "$(jq -r .name <<<"$reference")" = a ] || fail "dev1 selects $reference"
        local tree; tree=$(cd dev1 && find components manifests active -type f | LC_ALL=C sort | xargs sha256sum)
        for i in $(seq 2 $n); do
                [ "$("$KOS" select "dev$i" --keyring keyring --json | jq -c '.selected | {name, id}')" = "$reference" ] ||
                        fail "dev$i selects something else"
                [ "$(cd "dev$i" && find components manifests active -type f | LC_ALL=C sort | xargs sha256sum)" = "$tree" ] ||
                        fail "dev$i holds other files than dev1"
        done
        [ $(($(registry_blob_gets $(component_digests a)) - before)) = $((4 * n)) ] || fail "not 4 component GETs per client"
        total=$(grep -E '"GET /v2/kos/device/blobs/sha256:[0-9a-f]+ HTTP/1.1" 200 ' registry/log | awk '{s += $10} END {print s}')
        want=$(($(stat -c %s vmlinuz) + $(stat -c %s initrd) + $(stat -c %s base-a.img) + $(stat -c %s app.img) +
                $(stat -c %s img/manifests/a.json) + $(stat -c %s img/manifests/a.json.sig)))
        [ "$total" = $((want * n)) ] || fail "served $total bytes, not $n x $want"
        printf 'oci scale: %d clients, %s s wall, %d bytes served per client (%d in all), every ImageFS selects %s\n' \
                "$n" "$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.2f", b - a}')" "$((total / n))" "$total" "$reference" | tee -a "${OCI_SCALE_REPORT:-/dev/null}" >&2
}

# The bearer-token flow public registries use: the registry answers 401 with
# WWW-Authenticate: Bearer realm=...,service=...,scope=...; kos gets a token
# from the realm (with its credentials) and sends Authorization: Bearer.
test_oci_push_and_pull_with_a_bearer_token_from_the_registrys_token_service() {
        fixture; oci_release a 1
        registry_token_service kos:tok3n-pass
        registry_start --token
        local rc=0; "$KOS" push img a "$REGISTRY/kos/device:a" 2>err || rc=$?
        [ "$rc" = 2 ] && grep -q '401' err || fail "push without credentials: exit $rc $(cat err)"
        "$KOS" push --user kos:tok3n-pass img a "$REGISTRY/kos/device:a" >out 2>&1 || fail "push: $(cat out)"
        # The registry names the actions in either order.
        grep -qE 'scope=repository%3Akos%2Fdevice%3A(pull%2Cpush|push%2Cpull) auth=basic' registry/token.log ||
                fail "no token asked for pull,push: $(cat registry/token.log)"
        "$KOS" imagefs init dev
        "$KOS" pull --keyring keyring --user kos:tok3n-pass "$REGISTRY/kos/device:a" dev >out 2>&1 || fail "pull: $(cat out)"
        grep -q 'fetched 4 of 4 components' out || fail "$(cat out)"
        grep -q 'scope=repository%3Akos%2Fdevice%3Apull auth=basic' registry/token.log ||
                fail "no token asked for pull: $(cat registry/token.log)"
}

# Node Manager's pull (node/kos-node-pull.c, which its installer child
# executes), on the host: the update source from a config file, the install
# through the same path, the records for Node Manager on fd 3.
test_oci_node_pull_installs_the_release_of_the_configured_registry() {
        local pull=$ROOT/$BUILD/kos-node-pull
        [ -x "$pull" ] || fail "$pull is not built (make $BUILD/kos-node-pull)"
        fixture; oci_release a 1
        registry_start --tls --user kos:pw
        "$KOS" push --user kos:pw --ca-file "$REGISTRY_CA" img a "$REGISTRY/kos/device:stable" >/dev/null
        echo kos:pw >creds
        printf '# fleet\nregistry = %s/kos/device:stable\ninterval = 600\ncredentials-file = %s\nca-file = %s\n' \
                "$REGISTRY" "$PWD/creds" "$REGISTRY_CA" >update.conf
        "$KOS" imagefs init dev
        local rc=0; "$pull" --config update.conf --keyring keyring --imagefs dev >out 3>records || rc=$?
        [ "$rc" = 0 ] || fail "exit $rc: $(cat out)"
        grep -q 'fetching base' out || fail "$(cat out)"
        [ -s records ] || fail "no records on fd 3"
        [ "$("$KOS" select dev --keyring keyring --json | jq -r .selected.name)" = a ] || fail "a is not selected"
        rc=0; "$pull" --config update.conf --keyring keyring --imagefs dev >out 3>records2 || rc=$?
        [ "$rc" = 0 ] && [ -s records2 ] || fail "second poll: exit $rc $(cat out)"
        printf 'registry = %s/kos/device:stable\nproxy = x\n' "$REGISTRY" >bad.conf
        rc=0; "$pull" --config bad.conf --keyring keyring --imagefs dev >out 3>/dev/null || rc=$?
        [ "$rc" = 2 ] && grep -q 'unknown key' out || fail "bad config: exit $rc $(cat out)"
}

# --- Hostile registries ------------------------------------------------------
# Fake registries (tests/host/lib.sh, fake_server: socat and bash) that try
# to take the credentials or to hold a pull open.

# The keyring and an empty ImageFS dev/: enough for a pull to start.
hostile_fixture() {
        "$KOS" keygen secret.pem public.pem >/dev/null
        mkdir keyring && cp public.pem keyring/dev.pem
        "$KOS" imagefs init dev
}

# The handler of a TLS registry that wants basic credentials, serves the
# artifact fake_artifact makes and redirects every blob GET to $1.
write_redirecting_registry() {
        cat >registry.handler <<SH
if [ -z "\$AUTH" ]; then reply "401 Unauthorized" 'WWW-Authenticate: Basic realm="kos"\r\n'
elif [[ \$TARGET == */manifests/* ]]; then reply "200 OK" 'Content-Type: application/vnd.oci.image.manifest.v1+json\r\n' '$(fake_artifact)'
else reply "307 Temporary Redirect" 'Location: $1\r\n'; fi
SH
}

test_oci_credentials_never_go_to_a_token_realm_that_a_redirect_target_names() {
        hostile_fixture
        local reg cdn steal; reg=$(free_port); cdn=$(free_port); steal=$(free_port)
        write_redirecting_registry "https://127.0.0.1:$cdn/blob"
        # The "CDN", another origin (https, another port), asks for a token from a realm of its choosing.
        echo "reply '401 Unauthorized' 'WWW-Authenticate: Bearer realm=\"https://127.0.0.1:$steal/steal\",service=cdn\r\n'" >cdn.handler
        echo "reply '200 OK' 'Content-Type: application/json\r\n' '{\"token\":\"stolen\"}'" >steal.handler
        fake_server registry "$reg" --tls; fake_server cdn "$cdn" --tls; fake_server steal "$steal" --tls
        local rc=0
        "$KOS" pull --keyring keyring --user kos:s3cret --ca-file tls/ca.pem "127.0.0.1:$reg/kos/device:a" dev >out 2>err || rc=$?
        cat registry.log cdn.log steal.log err
        grep -q 'GET /v2/kos/device/manifests/a auth=Basic' registry.log || fail "the registry never got the credentials"
        grep -q 'GET /blob' cdn.log || fail "the redirect to the CDN was not followed"
        ! grep -q 'auth=.' cdn.log || fail "credentials went to the CDN"
        ! grep -q 'auth=.' steal.log || fail "the credentials went to the realm the redirect target named: $(cat steal.log)"
        [ "$rc" = 2 ] && grep -q "127.0.0.1:$cdn, where the registry .* redirected, asks for credentials: refused" err ||
                fail "exit $rc: $(cat err)"
}

test_oci_credentials_never_go_over_plain_http_to_a_realm_an_https_registry_names() {
        hostile_fixture
        local reg steal; reg=$(free_port); steal=$(free_port)
        echo "reply '401 Unauthorized' 'WWW-Authenticate: Bearer realm=\"http://127.0.0.1:$steal/token\",service=r\r\n'" >registry.handler
        echo "reply '200 OK' 'Content-Type: application/json\r\n' '{\"token\":\"stolen\"}'" >steal.handler
        fake_server registry "$reg" --tls; fake_server steal "$steal"
        local rc=0
        "$KOS" pull --keyring keyring --user kos:s3cret --ca-file tls/ca.pem "https://127.0.0.1:$reg/kos/device:a" dev >out 2>err || rc=$?
        cat registry.log steal.log err
        [ ! -s steal.log ] || fail "the plain-http realm was asked: $(cat steal.log)"
        [ "$rc" = 2 ] && grep -q "names a token service over plain http (127.0.0.1:$steal): refused" err || fail "exit $rc: $(cat err)"
}

# The case of the audit: a TLS registry redirects a blob to a plain-http
# "CDN" whose 401 names a plain-http realm.
test_oci_redirect_from_https_to_plain_http_is_refused() {
        hostile_fixture
        local reg cdn steal; reg=$(free_port); cdn=$(free_port); steal=$(free_port)
        write_redirecting_registry "http://127.0.0.1:$cdn/blob"
        echo "reply '401 Unauthorized' 'WWW-Authenticate: Bearer realm=\"http://127.0.0.1:$steal/steal\",service=cdn\r\n'" >cdn.handler
        echo "reply '200 OK' 'Content-Type: application/json\r\n' '{\"token\":\"stolen\"}'" >steal.handler
        fake_server registry "$reg" --tls; fake_server cdn "$cdn"; fake_server steal "$steal"
        local rc=0
        "$KOS" pull --keyring keyring --user kos:s3cret --ca-file tls/ca.pem "127.0.0.1:$reg/kos/device:a" dev >out 2>err || rc=$?
        cat registry.log cdn.log steal.log err
        [ ! -s cdn.log ] && [ ! -s steal.log ] || fail "plain http was used after the https registry: $(cat cdn.log steal.log)"
        [ "$rc" = 2 ] && grep -q "refused a redirect from https to plain http (to 127.0.0.1:$cdn)" err || fail "exit $rc: $(cat err)"
}

test_oci_push_refuses_an_upload_location_on_another_origin() {
        fixture; manifest a
        local reg other; reg=$(free_port); other=$(free_port)
        cat >registry.handler <<SH
if [ -z "\$AUTH" ]; then reply "401 Unauthorized" 'WWW-Authenticate: Basic realm="kos"\r\n'
elif [ "\$METHOD" = HEAD ]; then reply "404 Not Found"
elif [ "\$METHOD" = POST ]; then reply "202 Accepted" 'Location: https://127.0.0.1:$other/upload?id=1\r\n'
else reply "400 Bad Request"; fi
SH
        echo 'reply "201 Created"' >other.handler
        fake_server registry "$reg" --tls; fake_server other "$other" --tls
        local rc=0; "$KOS" push --user kos:s3cret --ca-file tls/ca.pem img a "127.0.0.1:$reg/kos/device:a" >out 2>err || rc=$?
        cat registry.log other.log err
        grep -q 'POST /v2/kos/device/blobs/uploads/ auth=Basic' registry.log || fail "no upload was started"
        [ ! -s other.log ] || fail "the upload went to the other origin: $(cat other.log)"
        [ "$rc" = 2 ] && grep -q "Location on another origin (https://127.0.0.1:$other): refused" err || fail "exit $rc: $(cat err)"
}

# pull_from_the_fake_registry STALL_SECONDS: a pull from the fake registry
# whose registry.handler the test wrote, the low-speed window shortened to
# STALL_SECONDS (0: the defaults), killed by timeout(1) after 25 s; sets rc and took (seconds).
pull_from_the_fake_registry() {
        local reg start=$SECONDS; reg=$(free_port)
        fake_server registry "$reg"
        rc=0
        KOS_OCI_TEST_STALL_SECONDS=$1 timeout 25 "$KOS" pull --keyring keyring "http://127.0.0.1:$reg/kos/device:a" dev >out 2>err || rc=$?
        took=$((SECONDS - start))
        echo "ended after $took s: $(cat err)" >&2
}

test_oci_endless_error_body_of_a_registry_is_cut_at_its_cap() {
        hostile_fixture
        cat >registry.handler <<'SH'
printf 'HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n'
yes '{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}'
SH
        local rc took; pull_from_the_fake_registry 0 # the defaults
        [ "$rc" = 2 ] && grep -q 'HTTP 404: {"errors"' err || fail "exit $rc (124: still reading after 25 s): $(cat err)"
}

test_oci_a_registry_trickling_100_bytes_every_few_seconds_is_abandoned() {
        hostile_fixture
        # 100 bytes every 2 s against a window shortened to 3 s: the audit's 100 bytes every 20 s against 30 s, scaled.
        cat >registry.handler <<'SH'
printf 'HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 100000\r\n\r\n'
while printf '%100s' ''; do sleep 2; done
SH
        local rc took; pull_from_the_fake_registry 3
        [ "$rc" = 2 ] && grep -q 'Operation too slow' err || fail "exit $rc (124: still running after 25 s): $(cat err)"
        [ "$took" -le 12 ] || fail "took $took s"
}

test_oci_a_transfer_above_the_minimum_rate_still_ends_at_its_bound() {
        hostile_fixture
        # 16 KiB/s, well above the minimum rate, of a manifest that never ends (under its 256 KiB cap for 16 s).
        cat >registry.handler <<'SH'
printf 'HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nConnection: close\r\n\r\n'
while printf '%8192s' ''; do sleep 0.5; done
SH
        # A 2 s window makes the bound of a manifest GET 4 x 2 = 8 s (120 s by default).
        local rc took; pull_from_the_fake_registry 2
        [ "$rc" = 2 ] && grep -q 'not done within its bound of 8 s' err || fail "exit $rc (124: still running after 25 s): $(cat err)"
}
