# scripts/registry.sh: the docker-registry that make demo and the soak run on
# 127.0.0.1 for their devices (the host tests' own registry is lib.sh's).

# A docker-registry left behind once held a machine-wide lock for 40
# minutes: the registry goes when the shell that started it goes, even by
# SIGKILL (no EXIT trap runs then).
test_demo_registry_dies_with_the_shell_that_started_it() {
        bash -c '. "$1/scripts/registry.sh"; registry_start reg || exit 1; echo "$REGISTRY_PID" >pid; kill -KILL $$' _ "$ROOT" 2>/dev/null || true
        [ -s pid ] || fail "registry_start did not start docker-registry: $(tail -3 reg/log 2>/dev/null)"
        local pid; pid=$(cat pid)
        for _ in $(seq 50); do
                kill -0 "$pid" 2>/dev/null || return 0
                sleep 0.1
        done
        kill "$pid" 2>/dev/null
        fail "docker-registry (pid $pid) outlived the shell that started it"
}

# The demo's "bytes fetched": every GET's response body from a line of the
# access log on, and nothing before it.
test_demo_registry_counts_the_bytes_served_after_the_mark() {
        bash -c '. "$1/scripts/registry.sh"; registry_start reg || exit 1
                trap registry_stop EXIT
                url=http://127.0.0.1:$REGISTRY_PORT
                curl -s -o /dev/null "$url/v2/"
                sleep 0.5
                echo $(($(wc -l <reg/log) + 1)) >mark
                a=$(curl -s -o /dev/null -w "%{size_download}" "$url/v2/")
                b=$(curl -s -o /dev/null -w "%{size_download}" "$url/v2/kos/demo/manifests/missing")
                curl -s -o /dev/null -I "$url/v2/"
                sleep 0.5
                echo "$((a + b)) 2" >expected
                registry_served_bytes reg/log "$(cat mark)" >counted' _ "$ROOT" || fail "the registry did not run"
        [ "$(cat counted)" = "$(cat expected)" ] || fail "counted '$(cat counted)', expected '$(cat expected)' (bytes, GETs)"
}
