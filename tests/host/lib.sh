# Shared fixture and assertions for the host tests of the kos tool.
# Each test runs in its own empty directory, with KOS pointing at the binary.

fail() { echo "  $*" >&2; exit 1; }

# The test build of kos, with fault points (kos_fault_point() in lib/boot/util.h;
# make build/test/kos): for the kill-point tests only.
KOS_FAULTS=$(realpath -m "${KOS_FAULTS:-$ROOT/$BUILD/test/kos}")

# The kos under test never touches the TPM of the machine running the
# tests; a test that wants a TPM names its swtpm (swtpm_host_start).
export KOS_TPM=none

# A keyring with one trusted key, another key that is not trusted, a kernel,
# an initrd and two real filesystem images, all added to the ImageFS img/.
fixture() {
        "$KOS" keygen secret.pem public.pem >/dev/null
        "$KOS" keygen stranger.pem stranger.pub >/dev/null
        mkdir keyring && cp public.pem keyring/dev.pem
        head -c 300000 /dev/urandom >vmlinuz
        head -c 200000 /dev/urandom >initrd
        mkdir -p base/etc app/etc
        echo base >base/etc/layer
        echo app >app/etc/layer
        mksquashfs base base.img -quiet -noappend >/dev/null
        mkfs.erofs app.img app >/dev/null 2>&1
        "$KOS" imagefs init img
        "$KOS" component add img vmlinuz initrd base.img app.img >/dev/null
}

# manifest NAME [VERSION]: writes NAME.json (signed by the trusted key) and installs it.
manifest() {
        "$KOS" manifest create --name "$1" --version "${2:-1}" --kernel vmlinuz --initrd initrd \
                --cmdline "console=ttyS0 kos.test=$1" --component base=base.img --component app=app.img -o "$1.json"
        "$KOS" manifest sign --key secret.pem "$1.json" >/dev/null
        "$KOS" install img "$1.json" >/dev/null
}

# Signs a file with openssl alone (the way docs/format.md describes) into FILE.sig.
openssl_sign() {
        local key=$1 file=$2 id
        id=$(openssl pkey -in "$key" -pubout -outform DER | tail -c 32 | sha256sum | cut -c1-16)
        printf 'ed25519 %s %s\n' "$id" "$(openssl pkeyutl -sign -inkey "$key" -rawin -in "$file" | base64 -w0)" >"$file.sig"
}

sha() { sha256sum "$1" | cut -d' ' -f1; }

# host_tpm CMD... / host_tpm2 CMD...: CMD (kos, or tpm2-tools) against the
# swtpm of tpm/ that swtpm_host_start serves on the host (a device's TPM
# state between its boots, in the VM tests).
host_tpm() { KOS_TPM=$PWD/tpm/host.sock "$@"; }
host_tpm2() { TPM2TOOLS_TCTI=swtpm:path=$PWD/tpm/host.sock "$@"; }

# snapshot: the sha256 of every file of the ImageFS img/, by name (what a
# refused install must leave as it was).
snapshot() { (cd img && find . -type f | LC_ALL=C sort | xargs sha256sum); }

select_json() { "$KOS" select img --keyring keyring --json; }

# expect_selected NAME: selection picks NAME (exit 0).
expect_selected() {
        local out rc=0
        out=$(select_json) || rc=$?
        [ "$rc" = 0 ] || fail "select exited $rc, wanted 0: $out"
        [ "$(jq -r .selected.name <<<"$out")" = "$1" ] || fail "selected $(jq -c .selected <<<"$out"), wanted $1"
}

# expect_reason NAME REASON: NAME was rejected with REASON.
expect_reason() {
        local out
        out=$(select_json) || true
        local got
        got=$(jq -r --arg n "$1" '[.manifests[] | select(.name == $n)][0] | "\(.verdict) \(.reason)"' <<<"$out")
        [ "$got" = "rejected $2" ] || fail "$1: got '$got', wanted 'rejected $2' in $out"
}

# expect_nothing_valid: exit 1 and selected null.
expect_nothing_valid() {
        local out rc=0
        out=$(select_json) || rc=$?
        [ "$rc" = 1 ] || fail "select exited $rc, wanted 1"
        [ "$(jq -c .selected <<<"$out")" = null ] || fail "something was selected: $out"
}

activate() { printf '%s\n' "$@" >img/active; }

hex_of() { od -An -tx1 -v "$@" | tr -d ' \n'; } # FILE: its bytes as one hex string

flip_byte() { # FILE OFFSET
        local byte; byte=$(dd if="$1" bs=1 skip="$2" count=1 2>/dev/null | od -An -tu1 | tr -d ' ')
        printf "$(printf '\\%03o' $(((byte ^ 1) & 255)))" | dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null
}

# shellcheck source=../../scripts/swtpm.sh
. "$ROOT/scripts/swtpm.sh"

# ---- HSM (PKCS#11) signing keys: a SoftHSM2 token private to the test ----

SOFTHSM_MODULE=${SOFTHSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}

# softhsm_token: a SoftHSM2 token "kos" (user PIN 1234, SO PIN 5678) in
# ./tokens, configured by ./softhsm2.conf, holding the Ed25519 key pair
# "signer" (id 01) made by pkcs11-tool inside the token. kos finds the module
# through KOS_PKCS11_MODULE.
softhsm_token() {
        [ -r "$SOFTHSM_MODULE" ] || fail "SoftHSM2 is not installed ($SOFTHSM_MODULE; scripts/deps.sh check installs softhsm2)"
        command -v pkcs11-tool >/dev/null || fail "pkcs11-tool is not installed (package opensc)"
        mkdir tokens
        printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$PWD" >softhsm2.conf
        export SOFTHSM2_CONF=$PWD/softhsm2.conf KOS_PKCS11_MODULE=$SOFTHSM_MODULE
        softhsm2-util --init-token --free --label kos --pin 1234 --so-pin 5678 >/dev/null
        hsm_keypair EC:edwards25519 signer 01
        # SoftHSM 2.6.1 leaks 37 bytes in C_SignInit of an EdDSA key (its
        # EC_PARAMS decoding); the ASan build of kos must not fail on that.
        # Full stacks are needed for the suppression to see the module.
        printf 'leak:libsofthsm2.so\n' >lsan.supp
        export LSAN_OPTIONS=suppressions=$PWD/lsan.supp ASAN_OPTIONS=${ASAN_OPTIONS:-exitcode=86}:fast_unwind_on_malloc=0
}

# hsm_keypair TYPE LABEL ID: generates a key pair inside the token.
hsm_keypair() {
        pkcs11-tool --module "$SOFTHSM_MODULE" --token-label kos --login --pin 1234 --keypairgen --key-type "$1" \
                --label "$2" --id "$3" >/dev/null 2>&1 || fail "pkcs11-tool cannot make a $1 key pair in SoftHSM"
}

# --- A local OCI registry (Debian's docker-registry, Distribution 2.8) ------
# Listens on 127.0.0.1 only, on a free port; storage and log in the test's
# directory; stopped when the test's shell exits.

REGISTRY_PID= TOKEN_PID=
registry_stop() {
        local i
        if [ -n "$TOKEN_PID" ]; then
                kill "$TOKEN_PID" 2>/dev/null || true
                wait "$TOKEN_PID" 2>/dev/null || true
                TOKEN_PID=
        fi
        [ -n "$REGISTRY_PID" ] || return 0
        kill "$REGISTRY_PID" 2>/dev/null || true
        for i in $(seq 50); do kill -0 "$REGISTRY_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$REGISTRY_PID" 2>/dev/null || true
        wait "$REGISTRY_PID" 2>/dev/null || true
        REGISTRY_PID=
}

# A port nothing listens on at 127.0.0.1 now (bash's /dev/tcp: no python needed).
free_port() {
        local port i
        for i in $(seq 100); do
                port=$((20000 + RANDOM % 40000))
                (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return 0; }
        done
        fail "no free port"
}

# registry_tls_files DIR: a throw-away CA (DIR/ca.pem) and a certificate for
# 127.0.0.1 signed by it (DIR/server.pem, DIR/server.key).
registry_tls_files() {
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1/ca.key" -out "$1/ca.pem" \
                -days 2 -subj /CN=kos-test-ca 2>/dev/null
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1/server.key" -out "$1/server.csr" \
                -subj /CN=127.0.0.1 2>/dev/null
        printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$1/ext"
        openssl x509 -req -in "$1/server.csr" -CA "$1/ca.pem" -CAkey "$1/ca.key" -CAcreateserial -days 2 \
                -extfile "$1/ext" -out "$1/server.pem" 2>/dev/null
}

# registry_token_service USER:PASSWORD: a stand-in for a registry's token
# service (the bearer-token flow of Docker Hub, ghcr.io and the like; no
# such server is packaged in Debian): socat runs a shell script per
# connection that checks the basic credentials and answers a JWT, signed
# RS256 with a throw-away key whose certificate the registry trusts, granting
# what the scope asks. Sets TOKEN_REALM; logs requests to
# $REGISTRY_DIR/token.log. Call before registry_start --token.
registry_token_service() {
        REGISTRY_DIR=$(realpath -m registry)
        mkdir -p "$REGISTRY_DIR"
        openssl req -x509 -newkey rsa:2048 -nodes -keyout "$REGISTRY_DIR/token.key" -out "$REGISTRY_DIR/token.pem" \
                -days 2 -subj /CN=kos-test-token-issuer 2>/dev/null
        cat >"$REGISTRY_DIR/token.sh" <<'SH'
#!/usr/bin/env bash
# One HTTP request on stdin: GET /token?service=...&scope=... with basic credentials.
set -u
dir=$(dirname "$0")
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
read -r method target _
auth=
while IFS= read -r line && [ "${line%$'\r'}" != "" ]; do
        case ${line%$'\r'} in [Aa]uthorization:\ Basic\ *) auth=${line%$'\r'}; auth=${auth#*Basic } ;; esac
done
echo "$method $target auth=${auth:+basic}" >>"$dir/token.log"
if [ "$(printf %s "$auth" | base64 -d 2>/dev/null)" != "$(cat "$dir/token.user")" ]; then
        printf 'HTTP/1.0 401 Unauthorized\r\nContent-Length: 0\r\n\r\n'
        exit 0
fi
scope=$(printf '%s' "$target" | sed -n 's/.*[?&]scope=\([^&]*\).*/\1/p' | sed 's/%3A/:/gI; s/%2F/\//gI; s/%2C/,/gI')
repo=$(echo "$scope" | cut -d: -f2); actions=$(echo "$scope" | cut -d: -f3)
now=$(date +%s)
x5c=$(openssl x509 -in "$dir/token.pem" -outform DER | base64 -w0)
header=$(printf '{"typ":"JWT","alg":"RS256","x5c":["%s"]}' "$x5c" | b64url)
payload=$(printf '{"iss":"kos-test-issuer","sub":"kos","aud":"kos-test-registry","exp":%d,"nbf":%d,"iat":%d,"jti":"%s","access":[{"type":"repository","name":"%s","actions":[%s]}]}' \
        $((now + 300)) $((now - 10)) "$now" "$RANDOM$RANDOM" "$repo" "$(echo "$actions" | sed 's/[^,][^,]*/"&"/g')" | b64url)
sig=$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -sign "$dir/token.key" | b64url)
body=$(printf '{"token":"%s.%s.%s"}' "$header" "$payload" "$sig")
printf 'HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' "${#body}" "$body"
SH
        chmod +x "$REGISTRY_DIR/token.sh"
        echo "$1" >"$REGISTRY_DIR/token.user"
        local port; port=$(free_port)
        socat "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr,fork" "EXEC:$REGISTRY_DIR/token.sh" 2>"$REGISTRY_DIR/socat.log" &
        TOKEN_PID=$!
        TOKEN_REALM=http://127.0.0.1:$port/token
}

# registry_start [--tls] [--user USER:PASSWORD] [--token]: sets REGISTRY (http[s]://127.0.0.1:PORT),
# REGISTRY_DIR (storage in $REGISTRY_DIR/data, log in $REGISTRY_DIR/log) and,
# with --tls, REGISTRY_CA (the CA to pass with --ca-file).
registry_start() {
        local tls= user= token= attempt
        while [ $# -gt 0 ]; do
                case $1 in
                --tls) tls=1 ;;
                --user) user=$2; shift ;;
                --token) token=1 ;;
                esac
                shift
        done
        REGISTRY_DIR=$(realpath -m registry)
        mkdir -p "$REGISTRY_DIR/data"
        trap network_test_cleanup EXIT
        # A free port can be taken by a test running beside this one before
        # docker-registry binds it: then another port, up to five times.
        for attempt in 1 2 3 4 5; do
                registry_try_port "$(free_port)" && return 0
                grep -q 'address already in use' "$REGISTRY_DIR/log" ||
                        fail "docker-registry exited: $(tail -5 "$REGISTRY_DIR/log")"
        done
        fail "docker-registry found no free port in $attempt tries: $(tail -5 "$REGISTRY_DIR/log")"
}

# registry_try_port PORT: registry_start's configuration on PORT, then the
# registry started and asked until it answers (0), or until it exits (1).
registry_try_port() {
        local port=$1 i scheme=http
        {
                printf 'version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\n'
                printf 'storage:\n  filesystem:\n    rootdirectory: %s/data\n  delete:\n    enabled: true\n' "$REGISTRY_DIR"
                printf 'http:\n  addr: 127.0.0.1:%s\n' "$port"
                if [ -n "$tls" ]; then
                        registry_tls_files "$REGISTRY_DIR"
                        printf '  tls:\n    certificate: %s/server.pem\n    key: %s/server.key\n' "$REGISTRY_DIR" "$REGISTRY_DIR"
                        scheme=https
                        REGISTRY_CA=$REGISTRY_DIR/ca.pem
                fi
                if [ -n "$user" ]; then
                        htpasswd -B -b -c "$REGISTRY_DIR/htpasswd" "${user%%:*}" "${user#*:}" 2>/dev/null
                        printf 'auth:\n  htpasswd:\n    realm: kos-test\n    path: %s/htpasswd\n' "$REGISTRY_DIR"
                fi
                if [ -n "$token" ]; then
                        printf 'auth:\n  token:\n    realm: %s\n    service: kos-test-registry\n' "$TOKEN_REALM"
                        printf '    issuer: kos-test-issuer\n    rootcertbundle: %s/token.pem\n' "$REGISTRY_DIR"
                fi
        } >"$REGISTRY_DIR/config.yml"
        docker-registry serve "$REGISTRY_DIR/config.yml" >"$REGISTRY_DIR/log" 2>&1 &
        REGISTRY_PID=$!
        REGISTRY=$scheme://127.0.0.1:$port
        for i in $(seq 100); do
                case $(curl -s -o /dev/null -w '%{http_code}' ${tls:+--cacert "$REGISTRY_CA"} "$REGISTRY/v2/") in
                200 | 401) return 0 ;;
                esac
                kill -0 "$REGISTRY_PID" 2>/dev/null || { wait "$REGISTRY_PID" 2>/dev/null; return 1; }
                sleep 0.1
        done
        fail "docker-registry did not answer: $(tail -5 "$REGISTRY_DIR/log")"
}

# registry_blob_gets [DIGEST_HEX...]: how many GETs of blobs the registry's
# access log shows (of those blobs only, when given).
registry_blob_gets() {
        local pattern='"GET /v2/[^ ]*/blobs/sha256:'
        if [ $# -gt 0 ]; then
                pattern="\"GET /v2/[^ ]*/blobs/sha256:($(IFS='|'; echo "$*")) "
        fi
        grep -cE "$pattern" "$REGISTRY_DIR/log" || true
}

# --- Hostile fake registries (socat and bash: no python in a minimal root) --
# fake_server NAME PORT [--tls]: serves HTTP (or, with --tls, https with the
# certificate of registry_tls_files in ./tls, made once) on 127.0.0.1:PORT.
# Each connection runs one request: the request line and headers are read,
# "METHOD TARGET auth=<Authorization value>" appended to NAME.log, then
# NAME.handler (bash, written by the test, read anew per request) answers
# with the helpers below, METHOD, TARGET and AUTH set. Stopped when the
# test's shell exits.
FAKE_PIDS=()
# The processes whose parent is $1 (from /proc: procps is not in a minimal root).
child_pids() {
        local status key value
        for status in /proc/[0-9]*/status; do
                while read -r key value; do [ "$key" = PPid: ] && break; done <"$status" 2>/dev/null || continue
                [ "$value" = "$1" ] && { status=${status#/proc/}; echo "${status%/status}"; }
        done
}

fake_servers_stop() {
        local pid
        for pid in "${FAKE_PIDS[@]}"; do
                # socat's children serve the connections: they outlive a killed socat.
                kill $(child_pids "$pid") "$pid" 2>/dev/null || true
                wait "$pid" 2>/dev/null || true
        done
        FAKE_PIDS=()
}

fake_tls_files() {
        [ -f tls/server.pem ] && return 0
        mkdir -p tls && registry_tls_files tls
}

fake_server() {
        local name=$1 port=$2 tls=${3:-} dir i
        dir=$(realpath .)
        [ -f fake-serve.sh ] || cat >fake-serve.sh <<'SH'
#!/usr/bin/env bash
# fake-serve.sh DIR NAME: one request on stdin, the answer on stdout.
set -u
dir=$1 name=$2
# reply STATUS [HEADER_LINES [BODY]]: one whole answer; header lines end in \r\n.
reply() {
        local body=${3:-}
        printf 'HTTP/1.1 %s\r\n%bContent-Length: %d\r\nConnection: close\r\n\r\n%s' "$1" "${2:-}" "${#body}" "$body"
}
IFS= read -r line || exit 0
line=${line%$'\r'}
METHOD=${line%% *} TARGET=${line#* }
TARGET=${TARGET%% *}
AUTH=
while IFS= read -r line; do
        line=${line%$'\r'}
        [ -z "$line" ] && break
        case ${line,,} in authorization:*) AUTH=${line#*: } ;; esac
done
[ "$TARGET" = /ping ] && { reply "200 OK"; exit 0; } # fake_server's own readiness check
echo "$METHOD $TARGET auth=$AUTH" >>"$dir/$name.log"
. "$dir/$name.handler"
SH
        chmod +x fake-serve.sh
        : >>"$name.log"
        [ -f "$name.handler" ] || echo 'reply "404 Not Found"' >"$name.handler"
        if [ "$tls" = --tls ]; then
                fake_tls_files
                socat "OPENSSL-LISTEN:$port,bind=127.0.0.1,reuseaddr,fork,cert=$dir/tls/server.pem,key=$dir/tls/server.key,verify=0" \
                        "EXEC:$dir/fake-serve.sh $dir $name" 2>>"$name.socat.log" &
        else
                socat "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr,fork" "EXEC:$dir/fake-serve.sh $dir $name" 2>>"$name.socat.log" &
        fi
        FAKE_PIDS+=($!)
        trap network_test_cleanup EXIT
        for i in $(seq 50); do
                if [ "$tls" = --tls ]; then
                        curl -s -o /dev/null --cacert tls/ca.pem "https://127.0.0.1:$port/ping" && return 0
                else
                        curl -s -o /dev/null "http://127.0.0.1:$port/ping" && return 0
                fi
                sleep 0.1
        done
        fail "fake server $name did not answer on $port: $(cat "$name.socat.log")"
}

# A KOS artifact's OCI manifest whose two layers (manifest, signature) name
# blobs that exist nowhere: enough for a pull to GET a blob.
fake_artifact() {
        printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.kos.release.v1","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[{"mediaType":"application/vnd.kos.manifest.v1+json","digest":"sha256:%s","size":100},{"mediaType":"application/vnd.kos.signature.v1","digest":"sha256:%s","size":100}]}' \
                "$(printf 'a%.0s' $(seq 64))" "$(printf 'b%.0s' $(seq 64))"
}

# small_tmpfs DIR SIZE: a tmpfs of SIZE (mount(8) syntax) at DIR, unmounted
# when the test's shell exits: an ImageFS that runs out of room.
SMALL_MOUNTS=()
small_tmpfs() {
        mkdir -p "$1"
        mount -t tmpfs -o "size=$2" tmpfs "$1" || fail "cannot mount a tmpfs at $1 (the test needs root)"
        SMALL_MOUNTS+=("$(realpath "$1")")
        trap network_test_cleanup EXIT
}

network_test_cleanup() {
        local m
        registry_stop
        fake_servers_stop
        for m in "${SMALL_MOUNTS[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" || true; done
        SMALL_MOUNTS=()
}

# unhex: hex digits on standard input to the bytes they spell (xxd -r -p,
# which a minimal Debian lacks).
unhex() {
        local hex
        hex=$(tr -d ' \n')
        printf '%b' "$(sed 's/../\\x&/g' <<<"$hex")"
}
