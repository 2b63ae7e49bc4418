# The test runner itself (tests/run.sh): a suite is judged by its exit
# status as well as by its PASS and FAIL lines. Each test gives run.sh a
# stand-in unit-tests binary under a BUILD of its own.

# fake_unit_tests BODY: $PWD/fake/unit-tests, a shell script running BODY.
fake_unit_tests() {
        mkdir -p fake
        printf '#!/bin/sh\n%s\n' "$1" >fake/unit-tests
        chmod +x fake/unit-tests
}

# run_fake_suite: runs the unit suite on the stand-in; status in $rc, output in out.
run_fake_suite() {
        rc=0
        BUILD=$PWD/fake "$ROOT/tests/run.sh" unit >out 2>&1 || rc=$?
        sed 's/^/    | /' out
}

test_runner_fails_a_suite_that_crashes_after_one_pass() {
        fake_unit_tests 'echo "PASS first"; kill -SEGV $$'
        run_fake_suite
        [ "$rc" != 0 ] || fail "run.sh exited 0 after the suite crashed"
        [ "$(tail -n 1 out)" = "1 passed, 1 failed" ] || fail "summary: $(tail -n 1 out)"
        grep -q '^FAIL unit: the suite killed by signal SEGV after 1 passed' out || fail "no FAIL line for the crash"
}

test_runner_fails_a_suite_that_a_sanitizer_aborts() {
        fake_unit_tests 'echo "PASS first"; echo "==1==ERROR: AddressSanitizer: heap-use-after-free"; exit 86'
        run_fake_suite
        [ "$rc" != 0 ] && [ "$(tail -n 1 out)" = "1 passed, 1 failed" ] || fail "rc=$rc, summary: $(tail -n 1 out)"
        grep -q '^FAIL unit: the suite a sanitizer aborted it' out || fail "no FAIL line for the abort"
}

test_runner_fails_a_suite_that_exits_1_without_a_fail_line() {
        fake_unit_tests 'echo "PASS first"; exit 1'
        run_fake_suite
        [ "$rc" != 0 ] && [ "$(tail -n 1 out)" = "1 passed, 1 failed" ] || fail "rc=$rc, summary: $(tail -n 1 out)"
}

test_runner_times_out_a_suite_that_hangs() {
        fake_unit_tests 'echo "PASS first"; sleep 600'
        rc=0
        SUITE_TIMEOUT=2 BUILD=$PWD/fake timeout 60 "$ROOT/tests/run.sh" unit >out 2>&1 || rc=$?
        [ "$rc" = 1 ] || fail "status $rc, wanted 1 (a failed run, not the outer time-out)"
        grep -q '^FAIL unit: the suite timed out after 2s' out || fail "no time-out FAIL line: $(cat out)"
}

test_runner_fails_a_suite_that_runs_no_test() {
        fake_unit_tests 'exit 0'
        run_fake_suite
        [ "$rc" != 0 ] && grep -q '^FAIL unit: the suite ran no test' out || fail "rc=$rc: $(cat out)"
}

test_runner_counts_a_suite_that_passes_and_one_that_reports_its_failure() {
        fake_unit_tests 'echo "PASS first"; echo "PASS second"'
        run_fake_suite
        [ "$rc" = 0 ] && [ "$(tail -n 1 out)" = "2 passed, 0 failed" ] || fail "rc=$rc, summary: $(tail -n 1 out)"
        fake_unit_tests 'echo "PASS first"; echo "FAIL second"; exit 1'
        run_fake_suite
        [ "$rc" = 1 ] && [ "$(tail -n 1 out)" = "1 passed, 1 failed" ] || fail "rc=$rc, summary: $(tail -n 1 out)"
        ! grep -q '^FAIL unit:' out || fail "a reported failure was counted twice"
}

test_runner_refuses_an_unknown_suite() {
        rc=0
        "$ROOT/tests/run.sh" no-such-suite >out 2>&1 || rc=$?
        [ "$rc" = 2 ] && grep -q "unknown suite 'no-such-suite'" out || fail "rc=$rc: $(cat out)"
}

# The budget (README.md, "Tests"): at the end of a run, before the last
# line, each suite's time, and the VM suite's total, its QEMU boots and its
# five slowest tests, slowest first, each with its boots.
test_runner_prints_the_vm_suite_time_and_its_five_slowest_tests_before_the_last_line() {
        mkdir -p fake vmtests
        : >fake/kos && chmod +x fake/kos
        echo 'fail() { echo "$*" >&2; exit 1; }' >vmtests/lib.sh
        # Seven tests; test_tN "boots" N times (as vm_run records a boot,
        # each boot 0.1 s); t3 to t7 sleep 0.4 s more each, t1 and t2 not.
        local n
        for n in 1 2 3 4 5 6 7; do
                printf 'test_t%s() { sleep %s; for _ in $(seq %s); do echo 0.1 >>"$KOS_TEST_BOOTS"; done; }\n' \
                        "$n" "$(((n > 2 ? n - 2 : 0) * 4 / 10)).$(((n > 2 ? n - 2 : 0) * 4 % 10))" "$n"
        done >vmtests/test-fake.sh
        rc=0
        VM_TESTS=$PWD/vmtests BUILD=$PWD/fake "$ROOT/tests/run.sh" vm >out 2>&1 || rc=$?
        sed 's/^/    | /' out
        [ "$rc" = 0 ] && [ "$(tail -n 1 out)" = "7 passed, 0 failed" ] || fail "rc=$rc, summary: $(tail -n 1 out)"
        grep -qE '^   vm [0-9]+ s; [0-9]+ s in all$' out || fail "no time per suite"
        grep -qE '^   vm: 7 tests in [0-9]+ s, 28 QEMU boots taking 2 s; the five slowest:$' out || fail "no VM total"
        grep -A5 'the five slowest' out | tail -n 5 >slowest
        [ "$(awk '{ print $NF "/" $3 }' slowest | sort | tr '\n' ' ')" = "vm:t3/3 vm:t4/4 vm:t5/5 vm:t6/6 vm:t7/7 " ] ||
                fail "not the five slowest with their boots"
        sort -s -k1,1gr slowest | cmp -s - slowest || fail "not slowest first"
}
