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
        # Each writes the VM_SMP it sees (the processors of its guests) to
        # smp-seen.
        local n
        for n in 1 2 3 4 5 6 7; do
                printf 'test_t%s() { echo "${VM_SMP:-unset}" >%s/smp-seen; sleep %s; for _ in $(seq %s); do echo 0.1 >>"$KOS_TEST_BOOTS"; done; }\n' \
                        "$n" "$PWD" "$(((n > 2 ? n - 2 : 0) * 4 / 10)).$(((n > 2 ? n - 2 : 0) * 4 % 10))" "$n"
        done >vmtests/test-fake.sh
        # One processor each when the suite's boots side by side take every
        # CPU, two otherwise (here one test at a time).
        local smp=2 each="2 processors each"
        [ "$(nproc)" -gt 1 ] || { smp=1 each="1 processor each"; }
        rc=0
        env -u VM_SMP VM_JOBS=1 VM_TESTS=$PWD/vmtests BUILD=$PWD/fake "$ROOT/tests/run.sh" vm >out 2>&1 || rc=$?
        sed 's/^/    | /' out
        [ "$rc" = 0 ] && [ "$(tail -n 1 out)" = "7 passed, 0 failed" ] || fail "rc=$rc, summary: $(tail -n 1 out)"
        ! grep -q 'command not found' out || fail "the suite's shell lacks a function: $(grep 'command not found' out)"
        [ "$(cat smp-seen)" = "$smp" ] || fail "the VM tests saw VM_SMP=$(cat smp-seen), not $smp"
        grep -qE '^   vm [0-9]+ s; [0-9]+ s in all$' out || fail "no time per suite"
        grep -qE "^   vm: 7 tests, 1 at a time \\($each\\), taking [0-9]+ s \\([0-9]+ s of CPU\\), 28 QEMU boots taking 2 s; the five slowest:\$" out ||
                fail "no VM total"
        grep -A5 'the five slowest' out | tail -n 5 >slowest
        [ "$(awk '{ print $NF "/" $3 }' slowest | sort | tr '\n' ' ')" = "vm:t3/3 vm:t4/4 vm:t5/5 vm:t6/6 vm:t7/7 " ] ||
                fail "not the five slowest with their boots"
        sort -s -k1,1gr slowest | cmp -s - slowest || fail "not slowest first"
        # As many tests at a time as CPUs: one processor each.
        env -u VM_SMP VM_JOBS="$(nproc)" VM_TESTS=$PWD/vmtests BUILD=$PWD/fake "$ROOT/tests/run.sh" vm >out 2>&1 ||
                fail "the suite failed at $(nproc) at a time: $(tail -n 3 out)"
        [ "$(cat smp-seen)" = 1 ] || fail "at $(nproc) at a time the VM tests saw VM_SMP=$(cat smp-seen), not 1"
        grep -qE "^   vm: 7 tests, $(nproc) at a time \\(1 processor each\\)," out || fail "no one processor each in: $(grep '   vm: ' out)"
}

# scripts/qemu.sh: every guest gets VM_SMP processors (2 when unset), and a
# VM_SMP that is not a number from 1 to 99 stops whatever sources it before
# any boot.
qemu_sourced() { # VM_SMP ('-' unset) SCRIPT: SCRIPT in a shell that sourced scripts/qemu.sh
        local smp=(VM_SMP="$1")
        [ "$1" != - ] || smp=(-u VM_SMP)
        env "${smp[@]}" ROOT="$ROOT" BUILD=build VM_CACHE="$PWD/cache" VM_ACCEL=tcg bash -c ". \"\$ROOT/scripts/qemu.sh\"; $2"
}
test_qemu_guests_get_vm_smp_processors_and_a_bad_vm_smp_stops_before_any_boot() {
        local args
        args=$(qemu_sourced - 'vm_machine_args && echo "${VM_ARGS[*]}"') || fail "qemu.sh failed"
        [[ " $args " == *" -smp 2 "* ]] || fail "default: $args"
        args=$(qemu_sourced 1 'vm_machine_args && echo "${VM_ARGS[*]}"') || fail "qemu.sh failed"
        [[ " $args " == *" -smp 1 "* ]] || fail "VM_SMP=1: $args"
        local bad rc
        for bad in 0 x 100 "1 -device foo"; do
                rc=0
                qemu_sourced "$bad" 'echo sourced' >out 2>&1 || rc=$?
                [ "$rc" = 1 ] || fail "VM_SMP='$bad': status $rc"
                grep -q "VM_SMP must be a number of processors from 1 to 99, not '$bad'" out || fail "VM_SMP='$bad': $(cat out)"
                ! grep -q sourced out || fail "VM_SMP='$bad' went on"
        done
}

# fake_vm_suite BODY: vmtests/, a suite whose lib.sh is the VM tests' own
# (tests/vm/lib.sh: vm_shared_boot, vm_cached) and whose tests are BODY.
fake_vm_suite() {
        mkdir -p vmtests
        echo '. "$ROOT/tests/vm/lib.sh"' >vmtests/lib.sh
        printf '%s\n' "$1" >vmtests/test-fake.sh
}

# run_fake_vm_suite [JOBS]: runs vmtests/ as tests/run.sh does, JOBS tests
# at a time (default 1); status in $rc, output in out.
run_fake_vm_suite() {
        rc=0
        JOBS=${1:-1} PREFIX= VM_ACCEL=tcg KOS=/bin/true TEST_TIMES=$PWD/times "$ROOT/tests/runner.sh" vmtests >out 2>&1 || rc=$?
        sed 's/^/    | /' out
}

# Checks that share a boot (tests/vm/lib.sh, vm_shared_boot): the boot runs
# once per run, also with the tests that share it running at once, each
# test checks its rule on what it left, and a boot that failed fails every
# test that shares it.
test_runner_runs_a_shared_boot_once_and_fails_each_test_that_shares_a_failed_one() {
        fake_vm_suite "boot_good() { echo x >>\"$PWD/ran\"; sleep 1; echo booted >console.log; }
boot_bad() { echo y >>\"$PWD/ran\"; echo 'no System Kernel' >&2; false; }
test_a_first() { vm_shared_boot good boot_good; grep -qx booted console.log; }
test_b_second() { vm_shared_boot good boot_good; grep -qx booted console.log; }
test_c_checks_another_rule() { vm_shared_boot good boot_good; ! grep -q other console.log; }
test_d_bad() { vm_shared_boot bad boot_bad; }
test_e_bad_too() { vm_shared_boot bad boot_bad; }"
        run_fake_vm_suite 5
        [ "$rc" = 1 ] || fail "status $rc, wanted 1"
        [ "$(grep -c '^PASS' out)" = 3 ] && [ "$(grep -c '^FAIL' out)" = 2 ] || fail "wanted 3 passed, 2 failed"
        grep -q '^FAIL d_bad' out && grep -q '^FAIL e_bad_too' out || fail "the tests sharing the failed boot did not fail"
        [ "$(grep -c "the shared boot 'bad' failed" out)" = 2 ] || fail "no reason given for each"
        [ "$(sort ran | tr -d '\n')" = xy ] || fail "each boot did not run exactly once: $(cat ran)"
}

# vm_cached: a reproducible command runs once per set of inputs in a run;
# another input (the content of a file its words name under the test's
# directory) or other words run it again.
test_runner_caches_a_command_by_its_words_and_inputs() {
        fake_vm_suite "make_out() { echo run >>\"$PWD/ran\"; sleep 1; cat \"\$2/key\" >\"\$1\"; }
test_a() { mkdir in && echo one >in/key && vm_cached out make_out out in && [ \"\$(cat out)\" = one ]; }
test_b_same() { mkdir in && echo one >in/key && vm_cached out make_out out in && [ \"\$(cat out)\" = one ]; }
test_c_other_input() { mkdir in && echo two >in/key && vm_cached out make_out out in && [ \"\$(cat out)\" = two ]; }
test_d_other_words() { mkdir in && echo two >in/key && vm_cached x make_out x in && [ \"\$(cat x)\" = two ]; }"
        run_fake_vm_suite 4
        [ "$rc" = 0 ] && [ "$(grep -c '^PASS' out)" = 4 ] || fail "rc=$rc"
        [ "$(wc -l <ran)" = 3 ] || fail "the command ran $(wc -l <ran) times, wanted 3 (a, c, d)"
}

# JOBS tests at a time: four tests of a second each end together, and each
# prints its lines (a failure's output under its FAIL line) in one piece.
test_runner_runs_jobs_tests_at_once_and_keeps_each_tests_lines_together() {
        fake_vm_suite "$(for n in 1 2 3 4; do
                printf 'test_t%s() { for i in 1 2 3 4 5; do echo t%s-$i; sleep 0.2; done; false; }\n' "$n" "$n"
        done)"
        local start=$SECONDS
        run_fake_vm_suite 4
        [ $((SECONDS - start)) -lt 4 ] || fail "four tests of a second took $((SECONDS - start)) s at four at a time"
        [ "$rc" = 1 ] && [ "$(grep -c '^FAIL t[1-4]$' out)" = 4 ] || fail "rc=$rc"
        local n
        for n in 1 2 3 4; do
                [ "$(grep -A5 "^FAIL t$n\$" out | tail -n 5 | tr -d ' ' | tr '\n' ' ')" = "t$n-1 t$n-2 t$n-3 t$n-4 t$n-5 " ] ||
                        fail "t$n's lines are not under its FAIL line"
        done
}

# make check-long (README.md, "Tests"): the VM suite leaves out the tests
# long.list names, the suite vm-long runs them alone, and none is lost
# between the two.
test_runner_vm_suite_leaves_the_long_list_to_check_long_and_loses_no_test() {
        mkdir -p fake vmtests
        : >fake/kos && chmod +x fake/kos
        echo 'fail() { echo "$*" >&2; exit 1; }' >vmtests/lib.sh
        local t
        for t in short_one long_one short_two; do
                printf 'test_%s() { echo %s >>%s/ran; }\n' "$t" "$t" "$PWD"
        done >vmtests/test-fake.sh
        printf '# why it is long\nlong_one   # what covers it\n' >vmtests/long.list
        rc=0
        VM_JOBS=1 VM_TESTS=$PWD/vmtests BUILD=$PWD/fake "$ROOT/tests/run.sh" vm >out 2>&1 || rc=$?
        sed 's/^/    | /' out
        [ "$rc" = 0 ] && [ "$(tail -n 1 out)" = "2 passed, 0 failed" ] || fail "vm: rc=$rc, summary: $(tail -n 1 out)"
        [ "$(sort ran | tr '\n' ' ')" = "short_one short_two " ] || fail "the suite vm ran: $(tr '\n' ' ' <ran)"
        rm ran
        VM_JOBS=1 VM_TESTS=$PWD/vmtests BUILD=$PWD/fake "$ROOT/tests/run.sh" vm-long >out 2>&1 || rc=$?
        sed 's/^/    | /' out
        [ "$rc" = 0 ] && [ "$(tail -n 1 out)" = "1 passed, 0 failed" ] || fail "vm-long: rc=$rc, summary: $(tail -n 1 out)"
        [ "$(cat ran)" = long_one ] || fail "the suite vm-long ran: $(tr '\n' ' ' <ran)"
}

# The first test of every file starts before the second of any (tests of
# one file share boots, and the second would only wait for the first's).
test_runner_starts_the_first_test_of_every_file_before_the_second_of_any() {
        mkdir -p fake vmtests
        : >fake/kos && chmod +x fake/kos
        echo 'fail() { echo "$*" >&2; exit 1; }' >vmtests/lib.sh
        local t
        for t in a_one a_two a_three; do printf 'test_%s() { echo %s >>%s/ran; }\n' "$t" "$t" "$PWD"; done >vmtests/test-a.sh
        for t in b_one b_two; do printf 'test_%s() { echo %s >>%s/ran; }\n' "$t" "$t" "$PWD"; done >vmtests/test-b.sh
        printf 'test_c_one() { echo c_one >>%s/ran; }\n' "$PWD" >vmtests/test-c.sh
        rc=0
        VM_JOBS=1 VM_TESTS=$PWD/vmtests BUILD=$PWD/fake "$ROOT/tests/run.sh" vm >out 2>&1 || rc=$?
        [ "$rc" = 0 ] && [ "$(tail -n 1 out)" = "6 passed, 0 failed" ] || fail "rc=$rc, summary: $(tail -n 1 out)"
        [ "$(tr '\n' ' ' <ran)" = "a_one b_one c_one a_three b_two a_two " ] || fail "the order: $(tr '\n' ' ' <ran)"
}

# Every name in tests/vm/long.list is a VM test that exists: a renamed test
# would otherwise leave make check and make check-long both.
test_runner_long_list_names_only_vm_tests_that_exist() {
        local name
        sed 's/#.*//; s/[[:space:]]//g; /^$/d' "$ROOT/tests/vm/long.list" >names
        [ -s names ] || return 0
        while read -r name; do
                grep -q "^test_$name()" "$ROOT"/tests/vm/test-*.sh || fail "tests/vm/long.list names $name, which no tests/vm/test-*.sh defines"
        done <names
}

# tests/runner.sh sources a suite's lib.sh and every test-*.sh into one
# shell, with what they source: a helper defined again in a later file
# replaces the first without a word, and the tests of the earlier file then
# run the other's. Each function is defined once in what each suite loads.
suite_files() { # DIR: the files the runner loads for the suite DIR
        local queue=("$1/lib.sh" "$1"/test-*.sh) seen=" " f dep
        while [ ${#queue[@]} -gt 0 ]; do
                f=${queue[0]} && queue=("${queue[@]:1}")
                case $seen in *" $f "*) continue ;; esac
                seen="$seen$f "
                echo "$f"
                for dep in $(sed -n 's/^\. "\$ROOT\/\([^"]*\)"$/\1/p' "$f"); do queue+=("$ROOT/$dep"); done
        done
}
test_runner_suite_files_define_each_function_once() {
        local suite f
        for suite in host vm; do
                suite_files "$ROOT/tests/$suite" >files
                grep -q 'scripts/qemu.sh' files || [ "$suite" = host ] || fail "the vm suite's files miss scripts/qemu.sh: $(cat files)"
                while read -r f; do
                        sed -n 's/^\([A-Za-z_][A-Za-z0-9_-]*\)() *{.*/\1/p' "$f" | sed "s|\$| ${f#"$ROOT"/}|"
                done <files | sort >defined
                awk '{ n[$1]++; w[$1] = w[$1] " " $2 } END { for (f in n) if (n[f] > 1) print f ":" w[f] }' defined >twice
                [ ! -s twice ] || fail "tests/$suite: defined more than once: $(cat twice)"
        done
}

# The soak runs beside the suites before the VM suite, and the VM suite
# starts only when the soak is done: a stand-in soak and unit suite that
# each take 3 s, and a VM suite that records whether the soak was still
# running when it began.
test_runner_runs_the_soak_beside_the_light_suites_and_the_vm_suite_after_it() {
        fake_unit_tests 'sleep 3; echo "PASS unit-first"'
        printf '#!/bin/sh\ntouch "$SOAK_MARK"; sleep 3\nmkdir -p "$SOAK_DIR"\necho "{\\"adopted\\": 1}" >"$SOAK_DIR/report.json"\nrm "$SOAK_MARK"\n' >fake-soak
        chmod +x fake-soak
        mkdir -p vmtests
        echo 'test_soak_was_done() { [ ! -e "$SOAK_MARK" ]; }' >vmtests/test-a.sh
        : >vmtests/lib.sh
        rc=0
        local start=$SECONDS
        SOAK_MARK=$PWD/soak-running SOAK_SCRIPT=$PWD/fake-soak VM_JOBS=1 VM_TESTS=$PWD/vmtests BUILD=$PWD/fake \
                "$ROOT/tests/run.sh" unit soak vm >out 2>&1 || rc=$?
        local took=$((SECONDS - start))
        sed 's/^/    | /' out
        # 3 passed: the VM suite's test found the soak done.
        [ "$rc" = 0 ] && [ "$(tail -n 1 out)" = "3 passed, 0 failed" ] || fail "rc=$rc, summary: $(tail -n 1 out)"
        [ "$took" -lt 6 ] || fail "unit and soak took $took s: not side by side"
        # Each suite's lines together, the soak's after unit's, the VM suite's last.
        [ "$(grep '^== ' out | tr '\n' ' ')" = "== unit == soak == vm == time " ] || fail "order: $(grep '^== ' out | tr '\n' ' ')"
}
