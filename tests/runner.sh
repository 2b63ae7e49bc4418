#!/usr/bin/env bash
# tests/runner.sh SUITE_DIR [FILTER]: runs every test_* function of
# SUITE_DIR/test-*.sh (after SUITE_DIR/lib.sh), each in a new empty directory,
# and prints "PASS name" or "FAIL name" with the failing test's output.
# FILTER: only the tests whose name holds it (several: "a|b|c").
# KOS names the kos binary under test; PREFIX is put before each name.
# JOBS: how many tests run at a time (default 1).
# With TEST_TIMES set, each test appends a line to that file: its wall time
# in seconds, the QEMU boots it made, their seconds, its name, and the CPU
# seconds of the programs it ran and waited for, QEMU's among them
# (tab-separated; tests/run.sh prints the slowest).
# KEEP_TEST_DIRS=1 keeps each test's directory (its consoles) and prints its path.
# LONG_TESTS=skip leaves out, LONG_TESTS=only runs only, the tests that
# SUITE_DIR/long.list names (make check-long: README.md, "Tests").
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
here=$(cd "$1" && pwd)
: "${KOS:?set KOS to the kos binary}"
KOS=$(realpath "$KOS")
# What the tests of one run share (tests/vm/lib.sh: vm_dev_key, vm_cached,
# vm_shared_boot), removed when the run ends.
KOS_RUN_CACHE=$(mktemp -d /tmp/kos-run-XXXXXX)
trap 'rm -rf "$KOS_RUN_CACHE"' EXIT
export KOS ROOT BUILD KOS_RUN_CACHE
prefix=${PREFIX:-}
filter=${2:-}

# shellcheck source=/dev/null
. "$here/lib.sh"
for f in "$here"/test-*.sh; do
        # shellcheck disable=SC1090
        . "$f"
done

# run_test FUNCTION: runs the test FUNCTION in a new empty directory, as a
# job of its own (so that the builtin times, run here, counts that test's
# programs alone), then prints its result under the print lock; its status
# goes to $KOS_RUN_CACHE/status/FUNCTION.
run_test() {
        local t=$1 dir rc start cpu
        dir=$(mktemp -d /tmp/kos-host-XXXXXX)
        start=$EPOCHREALTIME
        # vm_run (tests/vm/lib.sh) appends the seconds of each boot here.
        export KOS_TEST_BOOTS=$dir.boots
        : >"$KOS_TEST_BOOTS"
        # Not in an if-condition: bash ignores set -e there, and a test must
        # stop at its first failing command.
        (cd "$dir" && set -e && "$t") >"$dir.log" 2>&1
        rc=$?
        if [ -n "${TEST_TIMES:-}" ]; then
                times >"$dir.times"
                cpu=$(sed -n 2p "$dir.times" | tr -d 's' | tr 'm' ' ' | awk '{ print $1 * 60 + $2 + $3 * 60 + $4 }')
                awk -v start="$start" -v end="$EPOCHREALTIME" -v name="${prefix}${t#test_}" -v cpu="$cpu" \
                        '{ n++; s += $1 } END { printf "%.1f\t%d\t%.1f\t%s\t%.1f\n", end - start, n, s, name, cpu }' \
                        "$dir.boots" >>"$TEST_TIMES"
        fi
        {
                flock 9
                if [ "$rc" = 0 ]; then
                        echo "PASS ${prefix}${t#test_}"
                else
                        echo "FAIL ${prefix}${t#test_}"
                        sed 's/^/    /' "$dir.log" | tail -"${TAIL_LINES:-20}"
                fi
        } 9>"$KOS_RUN_CACHE/print.lock"
        echo "$rc" >"$KOS_RUN_CACHE/status/$t"
        # KEEP_TEST_DIRS=1 keeps each test's directory (its consoles) for a reader.
        if [ "${KEEP_TEST_DIRS:-}" = 1 ]; then echo "  kept $dir"; else rm -rf "$dir" "$dir.log" "$dir.boots" "$dir.times"; fi
}

# The order the tests start in: the first of every file, then the second of
# every file, and so on (each file's own in name order). The tests of one
# file often share boots (tests/vm/lib.sh, vm_shared_boot): started side by
# side, the second would hold a job only to wait for the first one's boots.
start_order() {
        local t
        shopt -s extdebug # declare -F NAME: "NAME LINE FILE"
        for t in $(declare -F | awk '{print $3}' | grep '^test_'); do
                declare -F "$t" | awk '{ print $3, $1 }'
        done | awk '{ print n[$1]++, $1, $2 }' | sort -s -k1,1n -k2,2 | awk '{ print $3 }'
        shopt -u extdebug
}

# JOBS tests at a time (default 1), in start_order; each prints its lines
# when it ends.
mkdir -p "$KOS_RUN_CACHE/status"
long=()
[ -z "${LONG_TESTS:-}" ] || [ ! -e "$here/long.list" ] || mapfile -t long < <(sed 's/#.*//; s/[[:space:]]//g; /^$/d' "$here/long.list")
is_long() { local l; for l in "${long[@]}"; do [ "test_$l" = "$1" ] && return 0; done; return 1; }
for t in $(start_order); do
        case ${LONG_TESTS:-} in
        skip) ! is_long "$t" || continue ;;
        only) is_long "$t" || continue ;;
        esac
        if [ -n "$filter" ]; then
                IFS='|' read -ra wanted <<<"$filter"
                for w in "${wanted[@]}"; do [[ $t == *"$w"* ]] && break; done
                [[ $t == *"$w"* ]] || continue
        fi
        while [ "$(jobs -rp | wc -l)" -ge "${JOBS:-1}" ]; do wait -n; done
        run_test "$t" &
done
wait
status=0
for f in "$KOS_RUN_CACHE"/status/*; do
        [ -e "$f" ] && [ "$(cat "$f")" != 0 ] && status=1
done
exit $status
