# The build's own rules: what each program may link (scripts/check-links.sh),
# and that a failed build fails.

# fake_maps DIR: link maps as ld writes them, each program taking in only
# what its stage may link.
fake_maps() {
        mkdir -p "$1"
        echo 'build/libkos-boot.a(select.o)  boot/kos-boot-init.o (kos_select)' >"$1/kos-boot-init.map"
        printf '%s\n' 'build/libkos-boot.a(util.o)  x' 'build/libkos-system.a(tpm-seal.o)  y' >"$1/kos-system-init.map"
        printf '%s\n' 'build/libkos-device.a(gc.o)  x' 'build/libkos-boot.a(util.o)  y' >"$1/kos-node-manager.map"
        printf '%s\n' 'build/libkos-device.a(mark-good.o)  x' >"$1/kos-static.map"
}

test_check_links_passes_each_program_that_links_only_its_own_stage_and_earlier() {
        fake_maps b
        "$ROOT/scripts/check-links.sh" b || fail "refused a clean set of link maps"
        # The real build: make all ran it; the maps it wrote pass too.
        "$ROOT/scripts/check-links.sh" "$ROOT/$BUILD" || fail "the build's own link maps fail"
}

test_check_links_fails_when_a_pid1_program_links_host_or_later_code() {
        local rc
        fake_maps b
        echo 'build/libkos-host.a(pkcs11-sign.o)  boot/kos-boot-init.o (kos_pkcs11_sign)' >>b/kos-boot-init.map
        rc=0; "$ROOT/scripts/check-links.sh" b 2>err || rc=$?
        [ "$rc" = 1 ] || fail "exit $rc for a Boot Kernel that links lib/host"
        grep -q 'kos-boot-init may link only lib/{boot}' err && grep -q 'libkos-host.a(pkcs11-sign.o)' err ||
                fail "the error does not name the program and the member: $(cat err)"
        fake_maps b
        echo 'build/libkos-device.a(gc.o)  x' >>b/kos-system-init.map
        rc=0; "$ROOT/scripts/check-links.sh" b 2>err || rc=$?
        [ "$rc" = 1 ] && grep -q 'libkos-device.a(gc.o)' err || fail "System Kernel linking lib/device passed (exit $rc)"
        fake_maps b
        echo 'build/libkos-registry.a(oci.o)  x' >>b/kos-node-manager.map
        rc=0; "$ROOT/scripts/check-links.sh" b 2>err || rc=$?
        [ "$rc" = 1 ] || fail "Node Manager linking lib/registry passed"
        rm b/kos-static.map
        rc=0; "$ROOT/scripts/check-links.sh" b 2>err || rc=$?
        [ "$rc" = 1 ] && grep -q 'no link map' err || fail "a missing map passed (exit $rc)"
}

# A rule whose compiler or linker fails fails `make` and leaves no stale
# program behind, and the PID-1 programs take CFLAGS and STRIP=0 for a
# debugger. Each test builds one program in a copy of the tree, reusing the
# already built $BUILD/libkos-boot.a (make -o: never rebuilt), so it takes
# seconds.

# build_copy: the source tree in src/, with the built libkos-boot.a and the
# shipped build/kos-boot-init (timestamps kept).
build_copy() {
        mkdir src
        (cd "$ROOT" && tar --exclude=./build --exclude=./.git -cf - .) | tar -C src -xf -
        mkdir src/build
        cp -a "$ROOT/$BUILD/libkos-boot.a" "$ROOT/$BUILD/kos-boot-init" src/build/
}

test_build_of_boot_init_with_a_syntax_error_fails_and_leaves_no_stale_binary() {
        build_copy
        echo 'this is not C' >>src/boot/kos-boot-init.c
        local rc=0
        make -C src -o build/libkos-boot.a build/kos-boot-init >make.log 2>&1 || rc=$?
        sed 's/^/    | /' make.log | tail -n 8
        [ "$rc" != 0 ] || fail "make exited 0 although boot/kos-boot-init.c does not compile"
        grep -q 'kos-boot-init.c:.*error' make.log || fail "the compiler's error is not shown"
        [ ! -e src/build/kos-boot-init ] || fail "the old build/kos-boot-init survived the failed build"
}

test_build_of_pid1_programs_takes_cflags_and_strip_0_for_a_debugger() {
        build_copy
        rm src/build/kos-boot-init
        make -C src -o build/libkos-boot.a CFLAGS='-O0 -g' STRIP=0 build/kos-boot-init >make.log 2>&1 ||
                fail "make failed: $(tail -n 5 make.log)"
        grep -q -- '-O0 -g' make.log || fail "CFLAGS not on the command: $(grep kos-boot-init.c make.log)"
        readelf -S src/build/kos-boot-init | grep -q '\.debug_info' || fail "no debug information"
        readelf -S src/build/kos-boot-init | grep -q '\.symtab' || fail "stripped"
        ! grep -q 'warning: Using .* in statically linked applications' make.log || fail "glibc's static-link warnings are not filtered"
        # The default stays small and stripped.
        ! readelf -S "$ROOT/$BUILD/kos-boot-init" | grep -qE '\.symtab|\.debug_info' || fail "the default build is not stripped"
}
