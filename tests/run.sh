#!/usr/bin/env bash
# The whole test suite: unit tests (plain and ASan+UBSan), host tests of the
# kos tool (plain and ASan+UBSan), the Boot Kernel booted in QEMU, bounded
# fuzzing of each parser.
# Every test prints PASS or FAIL; the last line is "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
log=$(mktemp /tmp/kos-check-XXXXXX)
trap 'rm -f "$log"' EXIT

run() { # SUITE COMMAND...: passes the output through, keeps a copy to count
        echo "== $1"
        shift
        "$@" 2>&1 | tee -a "$log" | grep -v '^PASS' || true
        echo "   $(grep -c '^PASS' "$log") passed so far"
}

fuzz() { # NAME
        local corpus; corpus=$(mktemp -d /tmp/kos-corpus-XXXXXX)
        cp tests/fuzz/corpus/"$1"/* "$corpus"/
        if "$BUILD/fuzz/fuzz_$1" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
                "$corpus" >"$corpus.log" 2>&1; then
                echo "PASS fuzz_$1 ($(grep -o 'Done [0-9]* runs' "$corpus.log"))"
        else
                echo "FAIL fuzz_$1"
                tail -40 "$corpus.log"
        fi
        rm -rf "$corpus" "$corpus.log"
}

run "unit tests" "$BUILD/unit-tests"
run "unit tests under ASan+UBSan" env PREFIX= "$BUILD/asan/unit-tests"
run "host tests" env KOS="$BUILD/kos" tests/runner.sh tests/host
run "host tests under ASan+UBSan" env KOS="$BUILD/asan/kos" PREFIX=asan: tests/runner.sh tests/host
run "VM tests: Boot Kernel, System Kernel, Node Manager in QEMU" env KOS="$BUILD/kos" PREFIX=vm: TAIL_LINES=40 tests/runner.sh tests/vm
run "fuzzing (${FUZZ_SECONDS}s per parser)" bash -c "$(declare -f fuzz); BUILD=$BUILD FUZZ_SECONDS=$FUZZ_SECONDS; fuzz manifest; fuzz signature; fuzz varlink"

passed=$(grep -c '^PASS' "$log")
failed=$(grep -c '^FAIL' "$log")
grep '^FAIL' "$log" | sed 's/^/failed: /'
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
