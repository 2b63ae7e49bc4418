# An OCI registry for a device to pull from: Debian's docker-registry
# (Distribution 2.8) on a free port of 127.0.0.1, its store and access log in
# a directory of the caller's. Sourced by make demo (scripts/demo.sh) and the
# soak (scripts/soak.sh). Guests reach it only through QEMU's user network
# with restrict=on and a guestfwd to 127.0.0.1:REGISTRY_PORT (registry_netdev).

REGISTRY_PID='' REGISTRY_PORT='' REGISTRY_DIR=''

# registry_start [DIR]: docker-registry serving DIR/data (default: registry,
# relative to the current directory), its log (access log included) appended
# to DIR/log; sets REGISTRY_PORT and REGISTRY_PID. It gets SIGTERM when the
# shell that started it dies, however it dies (setpriv --pdeathsig: a
# docker-registry left behind once held a machine-wide lock for 40 minutes);
# call registry_stop when done all the same.
registry_start() {
        local dir=${1:-registry}
        for _ in $(seq 100); do
                REGISTRY_PORT=$((20000 + RANDOM % 40000))
                (exec 3<>"/dev/tcp/127.0.0.1/$REGISTRY_PORT") 2>/dev/null || break
        done
        mkdir -p "$dir/data"
        REGISTRY_DIR=$(cd "$dir" && pwd)
        printf 'version: 0.1\nlog:\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' \
                "$REGISTRY_DIR/data" "$REGISTRY_PORT" >"$REGISTRY_DIR/config.yml"
        setpriv --pdeathsig TERM docker-registry serve "$REGISTRY_DIR/config.yml" >>"$REGISTRY_DIR/log" 2>&1 &
        REGISTRY_PID=$!
        for _ in $(seq 100); do
                [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$REGISTRY_PORT/v2/")" = 200 ] && return 0
                kill -0 "$REGISTRY_PID" 2>/dev/null || break
                sleep 0.1
        done
        echo "registry_start: docker-registry did not start (see $REGISTRY_DIR/log)" >&2
        registry_stop
        return 1
}

# registry_stop: stops the registry registry_start started (if any).
registry_stop() {
        [ -n "$REGISTRY_PID" ] || return 0
        kill "$REGISTRY_PID" 2>/dev/null
        wait "$REGISTRY_PID" 2>/dev/null || true
        REGISTRY_PID=
}

# registry_netdev [ID]: the QEMU arguments of a guest network that reaches
# only the registry, as http://10.0.2.100:5000 (REGISTRY_GUEST_URL): user
# networking with restrict=on (no other way out of the guest) and a guestfwd
# to the registry on the host's loopback; a virtio NIC. Sets REGISTRY_NETDEV_ARGS.
# shellcheck disable=SC2034 # for the scripts that source this one
REGISTRY_GUEST_URL=http://10.0.2.100:5000
registry_netdev() {
        local id=${1:-n0}
        # shellcheck disable=SC2054,SC2034 # QEMU's own commas; the caller uses it
        REGISTRY_NETDEV_ARGS=(-netdev "user,id=$id,restrict=on,guestfwd=tcp:10.0.2.100:5000-tcp:127.0.0.1:$REGISTRY_PORT"
                -device "virtio-net-pci,netdev=$id,romfile=")
}

# registry_served_bytes LOG FROM_LINE: the bytes of the response bodies of
# the GET requests in docker-registry's access log LOG from line FROM_LINE
# on (combined log format: "GET /v2/... HTTP/1.1" STATUS BYTES), and their count.
registry_served_bytes() {
        tail -n "+$2" "$1" | awk '$0 ~ /"GET \/v2\// {
                        s = $0; sub(/.*"GET [^"]*" [0-9]+ /, "", s); split(s, f, " ");
                        if (f[1] ~ /^[0-9]+$/) { bytes += f[1]; n++ } }
                END { printf "%d %d\n", bytes, n }'
}
