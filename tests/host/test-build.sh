# The build itself (Makefile): a rule whose compiler or linker fails fails
# `make` and leaves no stale program behind, and the PID-1 programs take
# CFLAGS and STRIP=0 for a debugger. Each test builds one program in a copy
# of the tree, reusing the already built $BUILD/libkos.a (make -o: never
# rebuilt), so it takes seconds.

# build_copy: the source tree in src/, with the built libkos.a and the
# shipped build/kos-boot-init (timestamps kept).
build_copy() {
        mkdir src
        (cd "$ROOT" && tar --exclude=./build --exclude=./.git -cf - .) | tar -C src -xf -
        mkdir src/build
        cp -a "$ROOT/$BUILD/libkos.a" "$ROOT/$BUILD/kos-boot-init" src/build/
}

test_build_of_boot_init_with_a_syntax_error_fails_and_leaves_no_stale_binary() {
        build_copy
        echo 'this is not C' >>src/boot/kos-boot-init.c
        local rc=0
        make -C src -o build/libkos.a build/kos-boot-init >make.log 2>&1 || rc=$?
        sed 's/^/    | /' make.log | tail -n 8
        [ "$rc" != 0 ] || fail "make exited 0 although boot/kos-boot-init.c does not compile"
        grep -q 'kos-boot-init.c:.*error' make.log || fail "the compiler's error is not shown"
        [ ! -e src/build/kos-boot-init ] || fail "the old build/kos-boot-init survived the failed build"
}

test_build_of_pid1_programs_takes_cflags_and_strip_0_for_a_debugger() {
        build_copy
        rm src/build/kos-boot-init
        make -C src -o build/libkos.a CFLAGS='-O0 -g' STRIP=0 build/kos-boot-init >make.log 2>&1 ||
                fail "make failed: $(tail -n 5 make.log)"
        grep -q -- '-O0 -g' make.log || fail "CFLAGS not on the command: $(grep kos-boot-init.c make.log)"
        readelf -S src/build/kos-boot-init | grep -q '\.debug_info' || fail "no debug information"
        readelf -S src/build/kos-boot-init | grep -q '\.symtab' || fail "stripped"
        ! grep -q 'warning: Using .* in statically linked applications' make.log || fail "glibc's static-link warnings are not filtered"
        # The default stays small and stripped.
        ! readelf -S "$ROOT/$BUILD/kos-boot-init" | grep -qE '\.symtab|\.debug_info' || fail "the default build is not stripped"
}
