# Shared fixture and assertions for the host tests of the kos tool.
# Each test runs in its own empty directory, with KOS pointing at the binary.

fail() { echo "  $*" >&2; exit 1; }

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

flip_byte() { # FILE OFFSET
        local byte; byte=$(dd if="$1" bs=1 skip="$2" count=1 2>/dev/null | od -An -tu1 | tr -d ' ')
        printf "$(printf '\\%03o' $(((byte ^ 1) & 255)))" | dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null
}

# --- A TPM 2.0 (swtpm) whose state is a directory -------------------------
# Every swtpm started here is stopped when the test's shell exits.

SWTPM_DIRS=()
swtpm_cleanup() {
        local d
        for d in "${SWTPM_DIRS[@]}"; do swtpm_stop "$d"; done
}

# swtpm_stop DIR: stops the swtpm of DIR, if any, and waits until it is gone.
swtpm_stop() {
        local pid i
        pid=$(cat "$1/pid" 2>/dev/null) || return 0
        kill "$pid" 2>/dev/null || true
        for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$1/pid"
}

# swtpm_launch DIR ARGS...: swtpm on DIR's state with ARGS, daemonised;
# waits for the socket $SWTPM_WAIT_FOR to appear.
swtpm_launch() {
        local dir=$1 i
        shift
        mkdir -p "$dir"
        dir=$(realpath "$dir") # swtpm --daemon changes to /
        swtpm_stop "$dir"
        rm -f "$dir"/*.sock "$dir"/*.sock.ctrl
        [ ${#SWTPM_DIRS[@]} -gt 0 ] || trap swtpm_cleanup EXIT
        SWTPM_DIRS+=("$dir")
        swtpm socket --tpm2 --tpmstate dir="$dir" --pid file="$dir/pid" --log file="$dir/swtpm.log" --daemon "$@"
        for i in $(seq 50); do [ -S "$SWTPM_WAIT_FOR" ] && return 0; sleep 0.1; done
        fail "swtpm did not start: $(cat "$dir/swtpm.log" 2>/dev/null)"
}

# swtpm_host_start DIR: a TPM on DIR's state for the host, started up as
# firmware would: KOS_TPM=DIR/host.sock (raw TPM commands), tpm2-tools with
# TPM2TOOLS_TCTI=swtpm:path=DIR/host.sock. Stop it (swtpm_stop DIR) before a
# VM uses the same state.
swtpm_host_start() {
        local dir; mkdir -p "$1"; dir=$(realpath "$1")
        SWTPM_WAIT_FOR=$dir/host.sock swtpm_launch "$dir" --server type=unixio,path="$dir/host.sock" \
                --ctrl type=unixio,path="$dir/host.sock.ctrl" --flags startup-clear,not-need-init
}

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
