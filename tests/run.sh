#!/usr/bin/env bash
# tests/run.sh [SUITE...]: the test suite, or only the named suites.
#   unit        unit tests                       $BUILD/unit-tests
#   unit-asan   the same under ASan+UBSan        $BUILD/asan/unit-tests
#   host        host tests of the kos tool       $BUILD/kos
#   host-asan   the same under ASan+UBSan        $BUILD/asan/kos
#               (both HOST_JOBS tests, default: the number of CPUs, at a time)
#   vm          Boot Kernel, System Kernel, Node Manager in QEMU,
#               VM_JOBS tests (default: the number of CPUs) at a time,
#               each guest with VM_SMP processors (1 when VM_JOBS takes
#               every CPU, else 2)
#   fuzz        every libFuzzer harness of tests/fuzz/, FUZZ_SECONDS each,
#               FUZZ_JOBS (default: the number of CPUs) at a time
#   vm-long     the VM tests of tests/vm/long.list (make check-long; not
#               in the default run)
#   soak        a short soak (scripts/soak.sh): SOAK_CYCLES (3) cycles of
#               seed SOAK_SEED on one device in QEMU (docs/soak.md)
# No SUITE runs them all: the soak beside unit to fuzz (its one device
# leaves a CPU to them; SOAK_BESIDE=0 runs it alone), then the VM suite.
# Every test prints "PASS name" or "FAIL name"; the
# last line is "N passed, N failed", and the exit status is 0 only when
# nothing failed. Before it: each suite's time, and the VM suite's total,
# boots and five slowest tests (the budget: README.md, "Tests").
#
# A suite is judged by its exit status as well as by its lines: 0 means every
# test it ran passed, 1 means the FAIL lines it printed say what failed.
# Anything else (death by a signal, a sanitizer's abort, a time-out, a status
# of 1 with no FAIL line, or no test run at all) is a FAIL line of its own,
# so a suite that prints one PASS and then crashes can never count as passed.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
FUZZ_SECONDS=${FUZZ_SECONDS:-10}
FUZZ_JOBS=${FUZZ_JOBS:-$(nproc)}
VM_JOBS=${VM_JOBS:-$(nproc)}
HOST_JOBS=${HOST_JOBS:-$(nproc)}
# The processors of each guest of the VM suites (suite_vm, suite_vm-long):
# VM_SMP when set, else one when VM_JOBS boots take every CPU, else two.
VM_SUITE_SMP=${VM_SMP:-$([ "$VM_JOBS" -ge "$(nproc)" ] && echo 1 || echo 2)}
SUITE_TIMEOUT=${SUITE_TIMEOUT:-3600}
ALL_SUITES=(unit unit-asan host host-asan fuzz soak vm)
export BUILD FUZZ_SECONDS FUZZ_JOBS VM_JOBS HOST_JOBS VM_SUITE_SMP
# A sanitizer's abort gets a status of its own (its default, 1, would look
# like "a test failed").
export ASAN_OPTIONS=${ASAN_OPTIONS:-exitcode=86} UBSAN_OPTIONS=${UBSAN_OPTIONS:-exitcode=86:print_stacktrace=1}

usage() {
        sed -n '2,17s/^# \{0,1\}//p' "$0"
}

suite_unit() { "$BUILD/unit-tests"; }
suite_unit-asan() { "$BUILD/asan/unit-tests"; }
# A host test spends about a fifth of its time waiting (swtpm, a registry,
# fsync), and each works in a directory of its own: HOST_JOBS at a time.
suite_host() { KOS="$BUILD/kos" KOS_FAULTS="$BUILD/test/kos" JOBS=$HOST_JOBS tests/runner.sh tests/host; }
suite_host-asan() { KOS="$BUILD/asan/kos" KOS_FAULTS="$BUILD/asan/kos" PREFIX=asan: JOBS=$HOST_JOBS tests/runner.sh tests/host; }
# VM_TESTS: another folder of VM tests (the runner's own tests use it). A VM
# test keeps one CPU busy on average (TCG, and the host's work between
# boots), so VM_JOBS of them run at once. When they take every CPU, each
# guest gets one processor (VM_SMP=1; scripts/qemu.sh): a second one only
# takes CPU from the boot beside it. Under TCG here, two full-chain boots
# (Boot Kernel, kexec, systemd) side by side took 59.8 s with two
# processors each and 52.7 s with one (alone, one boot: 41.6 s and 47.7 s).
suite_vm() {
        VM_SMP=$VM_SUITE_SMP KOS="$BUILD/kos" PREFIX=vm: TAIL_LINES=40 JOBS=$VM_JOBS LONG_TESTS=skip \
                tests/runner.sh "${VM_TESTS:-tests/vm}"
}
# make check-long: the VM tests tests/vm/long.list names (each with the
# reason it is there, and what covers its subject in make check).
suite_vm-long() {
        VM_SMP=$VM_SUITE_SMP KOS="$BUILD/kos" PREFIX=vm: TAIL_LINES=40 JOBS=$VM_JOBS LONG_TESTS=only \
                tests/runner.sh "${VM_TESTS:-tests/vm}"
}

# The soak of make check: a fixed seed whose three cycles take a release
# with a new Boot Kernel UKI from a drive whose install loses power as it
# starts (installed again, tried, blessed, adopted), then two corrupt
# releases from the registry, one with odd files planted in the inbox (both
# refused), on the LUKS2 DataFS
# (SOAK_PLAN=1 scripts/soak.sh prints a schedule). Its state is kept when it
# fails, for the reproducer it prints. SOAK_SCRIPT: another soak (the
# runner's own tests use it).
suite_soak() {
        local dir name="soak:cycles_${SOAK_CYCLES:-3}_of_seed_${SOAK_SEED:-181}_keep_every_invariant"
        dir=$(mktemp -d /tmp/kos-soak-XXXXXX)
        if SOAK_DIR=$dir CYCLES=${SOAK_CYCLES:-3} SEED=${SOAK_SEED:-181} "${SOAK_SCRIPT:-scripts/soak.sh}" >"$dir.log" 2>&1; then
                echo "PASS $name ($(tail -1 "$dir/report.json" | jq -c '{adopted, faults, boots, wall_s}'))"
                rm -rf "$dir" "$dir.log"
        else
                echo "FAIL $name (kept: $dir, $dir.log)"
                grep -a '^soak:' "$dir.log" | tail -30
                return 1
        fi
}

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
# The harnesses run FUZZ_JOBS at a time (each single-threaded, each for
# FUZZ_SECONDS of wall time: on as many CPUs each gets as many runs as
# alone); their lines come out in name order.
suite_fuzz() {
        local f i status=0 names=() out
        for f in tests/fuzz/fuzz_*.c; do
                f=${f##*/fuzz_}
                names+=("${f%.c}")
        done
        [ ${#names[@]} -gt 0 ] || { echo "FAIL fuzz: tests/fuzz holds no harness"; return 1; }
        out=$(mktemp -d /tmp/kos-fuzz-XXXXXX)
        for i in "${!names[@]}"; do
                while [ "$(jobs -rp | wc -l)" -ge "$FUZZ_JOBS" ]; do wait -n; done
                { fuzz_one "${names[$i]}" >"$out/$i" 2>&1; echo $? >"$out/$i.status"; } &
        done
        wait
        for i in "${!names[@]}"; do
                cat "$out/$i"
                [ "$(cat "$out/$i.status" 2>/dev/null)" = 0 ] || status=1
        done
        rm -rf "$out"
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

# run_suite NAME: runs the suite; what it says goes to $log.NAME.report
# (printed by the caller, so that a suite run beside others keeps its lines
# together).
run_suite() { # NAME
        local name=$1
        run_suite_report "$name" >"$log.$name.report" 2>&1
}
run_suite_report() { # NAME
        local name=$1 out=$log.$1 start=$SECONDS rc passed failed
        echo "== $name"
        # A subshell, so that a test harness's exit or crash ends it alone;
        # timeout bounds a suite that hangs.
        TEST_TIMES=$out.times timeout --kill-after=10 "$SUITE_TIMEOUT" \
                bash -c "$(declare -f "suite_$name" fuzz_one); suite_$name" >"$out" 2>&1 </dev/null
        rc=$?
        grep -v '^PASS' "$out"
        passed=$(grep -c '^PASS' "$out")
        failed=$(grep -c '^FAIL' "$out")
        if [ "$rc" != 0 ] && ! { [ "$rc" = 1 ] && [ "$failed" -gt 0 ]; }; then
                echo "FAIL $name: the suite $(describe_status "$rc") after $passed passed and $failed failed" | tee -a "$out"
        elif [ "$rc" = 0 ] && [ "$passed" = 0 ]; then
                echo "FAIL $name: the suite ran no test" | tee -a "$out"
        fi
        echo "   $name: $passed passed, $(grep -c '^FAIL' "$out") failed in $((SECONDS - start)) s"
        # Under a lock: a suite run beside another appends at the same time.
        {
                flock 8
                grep -E '^(PASS|FAIL)' "$out" >>"$log"
                echo "$name $((SECONDS - start))" >>"$log.suites"
        } 8>"$log.lock"
}

# The time each suite took, then for the VM suite (whose time is the
# budget) its total, its boots and its five slowest tests (all of them in
# build/vm-times.tsv, slowest first).
print_times() {
        [ -s "$log.suites" ] || return 0
        echo "== time"
        awk -v wall=$((SECONDS - start)) '{ printf "%s%s %d s", (NR > 1 ? ", " : "   "), $1, $2 } END { printf "; %d s in all\n", wall }' "$log.suites"
        local times=$log.vm.times
        [ -s "$times" ] || return 0
        # Kept for the next budget decision: every VM test's seconds, boots,
        # their seconds, name and CPU seconds (tests/runner.sh, TEST_TIMES).
        mkdir -p "$BUILD" && sort -t "$(printf '\t')" -k1,1gr "$times" >"$BUILD/vm-times.tsv"
        awk -F '\t' -v jobs="$VM_JOBS" -v smp="$VM_SUITE_SMP" '{ n++; t += $1; b += $2; q += $3; c += $5 }
                END { printf "   vm: %d tests, %d at a time (%d processor%s each), taking %d s (%d s of CPU), %d QEMU boots taking %d s; the five slowest:\n",
                        n, jobs, smp, (smp == 1 ? "" : "s"), t, c, b, q }' "$times"
        sort -t "$(printf '\t')" -k1,1gr "$times" | head -n 5 |
                awk -F '\t' '{ printf "   %6.1f s  %2d boot%s  %s\n", $1, $2, ($2 == 1 ? " " : "s"), $4 }'
}

suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=("${ALL_SUITES[@]}")
for s in "${suites[@]}"; do
        case " ${ALL_SUITES[*]} vm-long " in
        *" $s "*) ;;
        *)
                [ "$s" = -h ] || [ "$s" = --help ] || echo "tests/run.sh: unknown suite '$s'" >&2
                usage >&2
                exit 2
                ;;
        esac
done
# The soak's one device keeps one CPU of two busy, the suites before the VM
# suite (waits on swtpm, registries and fsync in the host tests, one thread
# in the unit tests) about one: side by side, the two take the time of the
# longer. The VM suite, which keeps every CPU busy, starts after both.
beside=
if [ "${SOAK_BESIDE:-1}" = 1 ] && [ ${#suites[@]} -gt 1 ] && [[ " ${suites[*]} " == *" soak "* ]]; then
        run_suite soak &
        beside=$!
fi
start=$SECONDS
for s in "${suites[@]}"; do
        if [ "$s" = soak ] && [ -n "$beside" ]; then continue; fi
        if [ "$s" = vm ] && [ -n "$beside" ]; then
                wait "$beside"
                cat "$log.soak.report"
                beside=
        fi
        run_suite "$s"
        cat "$log.$s.report"
done
if [ -n "$beside" ]; then
        wait "$beside"
        cat "$log.soak.report"
fi

passed=$(grep -c '^PASS' "$log")
failed=$(grep -c '^FAIL' "$log")
print_times
grep '^FAIL' "$log" | sed 's/^/failed: /'
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
