# The build's own rules: what each program may link (scripts/check-links.sh).

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
