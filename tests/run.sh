#!/usr/bin/env bash
# tests/run.sh [SUITE...]: the test suite, or only the named suites.
#   unit        unit tests                       $BUILD/unit-tests
#   unit-asan   the same under ASan+UBSan        $BUILD/asan/unit-tests
#   host        host tests of the kos tool       $BUILD/kos
#   host-asan   the same under ASan+UBSan        $BUILD/asan/kos
#   vm          Boot Kernel, System Kernel, Node Manager in QEMU
#   fuzz        every libFuzzer harness of tests/fuzz/, FUZZ_SECONDS each
# No SUITE runs them all. Every test prints "PASS name" or "FAIL name"; the
# last line is "N passed, N failed", and the exit status is 0 only when
# nothing failed.
#
# A suite is judged by its exit status as well as by its lines: 0 means every
# test it ran passed, 1 means the FAIL lines it printed say what failed.
# Anything else (death by a signal, a sanitizer's abort, a time-out, a status
# of 1 with no FAIL line, or no test run at all) is a FAIL line of its own,
# so a suite that prints one PASS and then crashes can never count as passed.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
SUITE_TIMEOUT=${SUITE_TIMEOUT:-3600}
ALL_SUITES=(unit unit-asan host host-asan vm fuzz)
export BUILD FUZZ_SECONDS
# A sanitizer's abort gets a status of its own (its default, 1, would look
# like "a test failed").
export ASAN_OPTIONS=${ASAN_OPTIONS:-exitcode=86} UBSAN_OPTIONS=${UBSAN_OPTIONS:-exitcode=86:print_stacktrace=1}

usage() {
        sed -n '2,9s/^# \{0,1\}//p' "$0"
}

suite_unit() { "$BUILD/unit-tests"; }
suite_unit-asan() { "$BUILD/asan/unit-tests"; }
suite_host() { KOS="$BUILD/kos" KOS_FAULTS="$BUILD/test/kos" tests/runner.sh tests/host; }
suite_host-asan() { KOS="$BUILD/asan/kos" KOS_FAULTS="$BUILD/asan/kos" PREFIX=asan: tests/runner.sh tests/host; }
suite_vm() { KOS="$BUILD/kos" PREFIX=vm: TAIL_LINES=40 tests/runner.sh tests/vm; }

# Each harness tests/fuzz/fuzz_NAME.c starts from tests/fuzz/corpus/NAME/
# (copied: libFuzzer adds to its corpus directory).
fuzz_one() { # NAME
        local bin=$BUILD/fuzz/fuzz_$1 corpus
        if [ ! -x "$bin" ]; then
                echo "FAIL fuzz_$1: $bin is not built (make fuzz)"
                return 1
        fi
        corpus=$(mktemp -d /tmp/kos-corpus-XXXXXX)
        [ -d "tests/fuzz/corpus/$1" ] && cp "tests/fuzz/corpus/$1"/* "$corpus"/ 2>/dev/null
        if "$bin" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 "$corpus" >"$corpus.log" 2>&1; then
                echo "PASS fuzz_$1 ($(grep -o 'Done [0-9]* runs' "$corpus.log"))"
        else
                echo "FAIL fuzz_$1"
                tail -40 "$corpus.log"
        fi
        rm -rf "$corpus" "$corpus.log"
}
suite_fuzz() {
        local f status=0 n=0
        for f in tests/fuzz/fuzz_*.c; do
                f=${f##*/fuzz_}
                fuzz_one "${f%.c}" || status=1
                n=$((n + 1))
        done
        [ "$n" -gt 0 ] || { echo "FAIL fuzz: tests/fuzz holds no harness"; return 1; }
        return $status
}

describe_status() { # STATUS
        local s=$1
        if [ "$s" = 124 ] || [ "$s" = 137 ]; then
                echo "timed out after ${SUITE_TIMEOUT}s"
        elif [ "$s" = 86 ]; then
                echo "a sanitizer aborted it (status 86)"
        elif [ "$s" -gt 128 ]; then
                echo "killed by signal $(kill -l $((s - 128)) 2>/dev/null || echo $((s - 128)))"
        else
                echo "exited with status $s"
        fi
}

log=$(mktemp /tmp/kos-check-XXXXXX)
trap 'rm -f "$log" "$log".*' EXIT

run_suite() { # NAME
        local name=$1 out=$log.$1 start=$SECONDS rc passed failed
        echo "== $name"
        # A subshell, so that a test harness's exit or crash ends it alone;
        # timeout bounds a suite that hangs.
        timeout --kill-after=10 "$SUITE_TIMEOUT" bash -c "$(declare -f "suite_$name" fuzz_one); suite_$name" \
                >"$out" 2>&1 </dev/null
        rc=$?
        grep -v '^PASS' "$out"
        passed=$(grep -c '^PASS' "$out")
        failed=$(grep -c '^FAIL' "$out")
        if [ "$rc" != 0 ] && ! { [ "$rc" = 1 ] && [ "$failed" -gt 0 ]; }; then
                echo "FAIL $name: the suite $(describe_status "$rc") after $passed passed and $failed failed" | tee -a "$out"
        elif [ "$rc" = 0 ] && [ "$passed" = 0 ]; then
                echo "FAIL $name: the suite ran no test" | tee -a "$out"
        fi
        grep -E '^(PASS|FAIL)' "$out" >>"$log"
        echo "   $name: $passed passed, $(grep -c '^FAIL' "$out") failed in $((SECONDS - start)) s"
}

suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=("${ALL_SUITES[@]}")
for s in "${suites[@]}"; do
        case " ${ALL_SUITES[*]} " in
        *" $s "*) ;;
        *)
                [ "$s" = -h ] || [ "$s" = --help ] || echo "tests/run.sh: unknown suite '$s'" >&2
                usage >&2
                exit 2
                ;;
        esac
done
for s in "${suites[@]}"; do
        run_suite "$s"
done

passed=$(grep -c '^PASS' "$log")
failed=$(grep -c '^FAIL' "$log")
grep '^FAIL' "$log" | sed 's/^/failed: /'
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
