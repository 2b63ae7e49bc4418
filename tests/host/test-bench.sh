# make bench-boot's arithmetic, on console lines shaped like the real ones.

# A kos boot: the Boot Kernel's init starts at 2.0 s (cycles 2e9, so a 1 GHz
# counter, as the jump line at 5.0 s and 5e9 says); the System Kernel's init
# logs 3.0 s of its own clock at cycles 12e9, so that kernel started at
# 12 - 3 = 9.0 s of the Boot Kernel's clock; the marker at its 20.0 s is 29.0.
test_bench_timeline_joins_the_two_kernels_by_the_cycle_counter() {
        cat >kos.log <<'LOG'
kos-boot [    2.000000] Boot Kernel init started (cycles 2000000000)
kos-boot [    3.500000] selection took 1.000 s
kos-boot [    4.900000] System Kernel loaded by kexec in 1.800 s, alongside verification; peak memory of this init 6336 KiB
kos-boot [    5.000000] jumping to the System Kernel (cycles 5000000000)
kos-system [    3.000000] System Kernel init started (cycles 12000000000)
kos-system [    4.500000] root assembled from 2 layers of manifest bench in 1.500 s since init start
KOS-BENCH-MARKER uptime=20.00 initramfs=2.990000 systemd_us=6000000 sysinit_us=10000000 basic_us=10500000 multiuser_us=19000000 cpus=2 clocksource=hpet
LOG
        awk -v mode=kos -f "$ROOT/scripts/bench-boot-timeline.awk" kos.log >times
        expect_line() { grep -qx "$1" times || fail "no '$1' in: $(tr '\n' ' ' <times)"; }
        expect_line "boot-init 2.000"
        expect_line "kexec-loaded 4.900"
        expect_line "jump 5.000"
        expect_line "system-kernel 9.000"
        expect_line "initrd-init 12.000"
        expect_line "root-assembled 13.500"
        expect_line "systemd 15.000"
        expect_line "sysinit 19.000"
        expect_line "multi-user 28.000"
        expect_line "marker 29.000"
}

test_bench_timeline_of_a_one_kernel_boot_and_of_a_broken_one() {
        printf 'noise\r\nKOS-BENCH-MARKER uptime=14.95 initramfs=4.410000 systemd_us=8230000\r\n' >stock.log
        awk -v mode=stock -f "$ROOT/scripts/bench-boot-timeline.awk" stock.log >times
        grep -qx "initrd-init 4.410" times && grep -qx "systemd 8.230" times && grep -qx "marker 14.950" times ||
                fail "$(cat times)"
        ! grep -q "^sysinit" times || fail "a stage the marker did not report: $(cat times)"
        # No marker, or a kos log without the counter: an error, not a number.
        echo 'kos-boot [ 2.0] Boot Kernel init started' >bad.log
        ! awk -v mode=stock -f "$ROOT/scripts/bench-boot-timeline.awk" bad.log >/dev/null || fail "no marker accepted"
        echo 'KOS-BENCH-MARKER uptime=20.00 initramfs=0 systemd_us=1' >>bad.log
        ! awk -v mode=kos -f "$ROOT/scripts/bench-boot-timeline.awk" bad.log >/dev/null || fail "no cycles accepted"
}

# kos-sb: the same chain behind OVMF and the UKI's EFI stub, whose lines
# (no timestamps, firmware noise with brackets) come before the Boot Kernel's;
# its times are read as kos's, on the Boot Kernel's clock.
test_bench_timeline_of_a_secure_boot_log_ignores_the_firmware_lines() {
        {
                printf 'BdsDxe: loading Boot0001 "UEFI Misc Device" from PciRoot(0x0)/Pci(0x3,0x0)\r\n'
                printf 'EFI stub: UEFI Secure Boot is enabled.\r\n'
                printf '[    0.000000] this line is not ours\r\n'
        } >sb.log
        cat >>sb.log <<'LOG'
kos-boot [    1.000000] Boot Kernel init started (cycles 1000000000)
kos-boot [    2.000000] selection took 0.900 s
kos-boot [    2.500000] System Kernel loaded by kexec in 1.000 s, alongside verification; peak memory of this init 6336 KiB
kos-boot [    3.000000] jumping to the System Kernel (cycles 3000000000)
kos-system [    1.000000] System Kernel init started (cycles 5000000000)
kos-system [    2.000000] root assembled from 2 layers of manifest bench in 1.000 s since init start
KOS-BENCH-MARKER uptime=10.00 initramfs=0.990000 systemd_us=3000000 sysinit_us=5000000 basic_us=5500000 multiuser_us=9000000 cpus=2 clocksource=tsc
LOG
        awk -v mode=kos -f "$ROOT/scripts/bench-boot-timeline.awk" sb.log >times || fail "$(cat times)"
        # The System Kernel started at 5 - 1 = 4.0 s of the Boot Kernel's clock.
        for want in "boot-init 1.000" "jump 3.000" "system-kernel 4.000" "initrd-init 5.000" "marker 14.000"; do
                grep -qx "$want" times || fail "no '$want' in: $(tr '\n' ' ' <times)"
        done
}
