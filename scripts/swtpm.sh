# A TPM 2.0 for KOS on a development machine: swtpm, its state a directory
# that outlives each process (so what a boot writes, the floor counter or a
# sealed key, is there at the next), reached by the host (swtpm_host_start:
# kos with KOS_TPM, tpm2-tools with TPM2TOOLS_TCTI) or by QEMU
# (vm_swtpm_start in scripts/qemu.sh). Sourced by make demo, the benchmarks
# and the tests. Every swtpm started here is stopped when the shell exits.

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
        echo "swtpm did not start: $(cat "$dir/swtpm.log" 2>/dev/null)" >&2
        return 1
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
