# The Boot Kernel updates itself (issue 21; docs/trust-chain.md, "Boot
# Kernel updates"): OVMF with Secure Boot enforcing boots the signed UKI of
# `kos image`'s ESP; the release carries a new UKI, which Node Manager writes
# to the idle ESP slot once the boot is marked good, with a one-shot
# BootNext. The firmware's variable store (vars.fd) and the disk persist
# from one QEMU run to the next, as a device's flash and disk do.
#
# Status (h-slots, issue 21): boot 1 of the first test ran here and did
# what it checks (slot A made the default, the new UKI written to slot B,
# BootNext set); the rest has not run yet (no free VM slot before the
# deadline). The power-cut test (h-bkcut) passed here: 6 power-ons, 587 s
# under TCG on a loaded machine. Run with SB_KEYS_DIR set to the keys the
# cached enrolled OVMF variables hold when VM_CACHE is shared.

# shellcheck source=system-lib.sh
. "$ROOT/tests/vm/system-lib.sh"

SLOTS_CMDLINE="console=ttyS0 loglevel=4 panic=-1 kos.fail_delay=1 kos.settle=3"
SLOTS_DONE='Boot Kernel slots: done|BOOT FAILED|System halted|Access Denied|Kernel panic|may not run here'

# slots_uki OUT SECURITY_VERSION [mkboot args]: a Boot Kernel UKI signed by
# the development db key; SLOTS_UKI_CMDLINE adds to its command line.
slots_uki() {
        local out=$1 version=$2 keys
        keys=$(sb_keys)
        shift 2
        VM_BOOT_KERNEL=kos vm_mkboot --keyring keyring --output "$out.d" --uki "$out" \
                --cmdline "$VM_BOOT_APPEND${SLOTS_UKI_CMDLINE:+ $SLOTS_UKI_CMDLINE}" --security-version "$version" \
                --sign-key "$keys/db.key" --sign-cert "$keys/db.crt" "$@" >/dev/null
}

# slots_fixture NEW_SECURITY_VERSION [mkboot args]: the node chain
# (Debian's System Kernel, the base, a runtime layer with Node Manager, the
# demo app) whose release v1 carries a new UKI, uki-new.efi, as its Boot
# Kernel; disk.img from kos image with UKI v1 (security version 1) as the
# removable path and slot A.
slots_fixture() {
        local kd; kd=$(vm_kernel_dir)
        vm_dev_key
        mkdir keyring && cp public.pem keyring/dev.pem
        slots_uki uki-new.efi "$@"
        set -- uki-new.efi
        cp "$kd"/boot/vmlinuz-* vmlinuz
        vm_cached initrd "$KOS" mkinitrd --kernel-dir "$kd" --keyring keyring --output initrd >/dev/null
        vm_test_base base.img
        make_node_runtime_layer runtime
        if [ "${SLOTS_FAULTS:-}" = 1 ]; then slots_faults_layer runtime; fi
        "$KOS" component build --type erofs runtime runtime.img >/dev/null 2>&1
        make_node_app_layer app1 1 && "$KOS" component build --type squashfs app1 app1.img >/dev/null
        SLOTS_UKI_CMDLINE= slots_uki uki-v1.efi 1
        "$KOS" imagefs init img
        "$KOS" component add img vmlinuz initrd base.img runtime.img app1.img "$1" >/dev/null
        "$KOS" manifest create --name v1 --version 1 --kernel vmlinuz --initrd initrd --cmdline "$SLOTS_CMDLINE" \
                --component base=base.img --component runtime=runtime.img --component app=app1.img \
                --boot-kernel "$1" -o v1.json
        "$KOS" manifest sign --key secret.pem v1.json >/dev/null
        "$KOS" install img v1.json >/dev/null
        activate v1
        "$KOS" image --force --imagefs img --imagefs-extra 64M --uki uki-v1.efi --data-size 64M disk.img >/dev/null 2>&1
        cp "$(sb_enrolled_vars)" vars.fd
}

# slots_faults_layer DIR: the runtime layer's Node Manager replaced by its
# test build (make build/test/kos-node-manager: fault points compiled in),
# started with KOS_FAULT_SLOTS_AT=N from the SMBIOS OEM string
# kos-fault-slots-at=N (QEMU's -smbios type=11,value=..., read through the
# System Kernel's /sys/firmware/dmi), so each power-on of the same disk can
# be cut at another point of the slot update; without the string it has no
# fault. Not restarted when killed: a restart would go on with the update
# that the cut is meant to stop.
slots_faults_layer() {
        local dir=$1 nm=$ROOT/$BUILD/test/kos-node-manager
        [ -x "$nm" ] || fail "no $nm (make $BUILD/test/kos-node-manager)"
        install -m 755 "$nm" "$dir/usr/lib/kos/kos-node-manager"
        cat >"$dir/usr/lib/kos/kos-node-manager-faults" <<'SH'
#!/bin/sh
n=$(cat /sys/firmware/dmi/entries/11-*/raw 2>/dev/null | tr '\0' '\n' | sed -n 's/.*kos-fault-slots-at=\([0-9][0-9]*\).*/\1/p' | head -n 1)
if [ -n "$n" ]; then echo "kos-node-manager-faults: KOS_FAULT_SLOTS_AT=$n" >&2; export KOS_FAULT_SLOTS_AT="$n"; fi
exec /usr/lib/kos/kos-node-manager "$@"
SH
        chmod 755 "$dir/usr/lib/kos/kos-node-manager-faults"
        mkdir -p "$dir/etc/systemd/system/kos-node-manager.service.d"
        printf '[Service]\nExecStart=\nExecStart=/usr/lib/kos/kos-node-manager-faults\nRestart=no\n' \
                >"$dir/etc/systemd/system/kos-node-manager.service.d/faults.conf"
}

# slots_esp_ls: the names in the ESP's \EFI\KOS as they are on disk.img
# (read with mtools between two power-ons: what the cut left on the vfat).
slots_esp_ls() {
        local start
        start=$(sfdisk -d disk.img | sed -n 's/^disk.img1 : start= *\([0-9]*\),.*/\1/p')
        mdir -b -i "disk.img@@$((start * 512))" ::/EFI/KOS | sed 's|.*/||' | sort | tr '\n' ' '
}

# slots_esp_get NAME OUT: copies \EFI\KOS\NAME out of disk.img's ESP.
slots_esp_get() {
        local start
        start=$(sfdisk -d disk.img | sed -n 's/^disk.img1 : start= *\([0-9]*\),.*/\1/p')
        mcopy -n -i "disk.img@@$((start * 512))" "::/EFI/KOS/$1" "$2"
}

# slots_boot LOG [QEMU ARGS...]: one power-on of the device; with
# SLOTS_TPM=1 its TPM is swtpm on the state in tpm/, started for the boot
# (swtpm ends when QEMU goes) and kept from boot to boot, as a device's TPM
# is. The run ends at SLOTS_DONE's first match.
slots_boot() {
        local log=$1
        shift
        VM_TPM_ARGS=()
        if [ "${SLOTS_TPM:-}" = 1 ]; then vm_swtpm_start tpm; fi
        ovmf_run "$log" "${VM_TIMEOUT:-300}" "$SLOTS_DONE" vars.fd disk.img "${VM_TPM_ARGS[@]}" "$@" || true
        if [ "${SLOTS_TPM:-}" = 1 ]; then swtpm_stop tpm; fi
        tr -d '\r' <"$log" | grep -aE 'BdsDxe|kos-boot .*(Boot Kernel|booting)|Kernel panic|kos-node .*(Boot Kernel|marked good)|KOS-FAULT' |
                sed 's/^/  | /' >&2
}

test_new_boot_kernel_is_written_to_the_idle_slot_tried_once_and_blessed() {
        slots_fixture 2
        local SLOTS_TPM=1
        # Boot 1: the removable path (no entry of ours yet); marked good.
        slots_boot boot-1.log
        grep -qa 'kos-boot .*Boot Kernel security version 1: PCR 14 extended with "kos-bk-security-version=1"' boot-1.log ||
                fail "UKI v1 did not measure its security version"
        grep -qa 'kos-node .*Boot Kernel slot A is the default now' boot-1.log || fail "slot A was not made the default"
        grep -qa 'kos-node .*Boot Kernel [0-9a-f]* (security version 2) written to slot B: the next boot tries it once' boot-1.log ||
                fail "the new UKI was not written to slot B"
        grep -qa 'Boot Kernel slot B: trial' boot-1.log || fail "slot B is not on trial"
        # Boot 2: BootNext starts slot B once; marked good, it is blessed.
        slots_boot boot-2.log
        grep -qa 'kos-boot .*Boot Kernel security version 2: PCR 14 extended' boot-2.log || fail "slot B (v2) did not boot"
        grep -qa 'kos-node .*Boot Kernel slot B blessed (security version 2): BootOrder names it first' boot-2.log ||
                fail "slot B was not blessed"
        grep -qa 'Boot Kernel slot B: good, .*, booted' boot-2.log || fail "slot B is not the good slot"
        grep -qa 'kos-node .*booted from Boot Kernel slot B (security version 2)' boot-2.log || fail "Node Manager did not name slot B"
        grep -qa 'kos-node .*Boot Kernel floor raised from 0 to 2' boot-2.log || fail "the Boot Kernel floor was not raised"
        grep -qa 'kos-node .*slot B copied to the removable path' boot-2.log || fail "the removable path was not refreshed"
        ! grep -qa 'written to slot' boot-2.log || fail "the UKI it booted was written again"
        # Boot 3: no BootNext any more: the firmware starts slot B by itself.
        slots_boot boot-3.log
        grep -qa 'kos-boot .*Boot Kernel security version 2' boot-3.log || fail "the blessed slot B did not boot by itself"
        grep -qa 'kos-boot .*Boot Kernel floor NV 0x01004b42 holds 2' boot-3.log || fail "the Boot Kernel floor is not 2"
        # Boot 4: someone with the disk puts the factory UKI v1 (validly
        # signed) back as the removable path and resets the firmware's
        # variables: v1 is below the floor and refuses to run.
        local start
        start=$(sfdisk -d disk.img | sed -n 's/^disk.img1 : start= *\([0-9]*\),.*/\1/p')
        mcopy -o -i "disk.img@@$((start * 512))" uki-v1.efi ::/EFI/BOOT/BOOTX64.EFI
        cp "$(sb_enrolled_vars)" vars.fd
        slots_boot boot-4.log
        grep -qa 'kos-boot .*Boot Kernel security version 1 is below the Boot Kernel floor 2: this UKI may not run here' boot-4.log ||
                fail "UKI v1 ran above the floor"
        ! grep -qa 'kos-boot .*booting manifest' boot-4.log || fail "UKI v1 booted a manifest"
}

# A UKI that panics (its init is not a program: "No working init found")
# gets one try and the device comes back by itself: the firmware deleted
# BootNext before starting it, so the reset that follows the panic
# (panic=-1; QEMU resets the machine here, `-action reboot=reset` after
# vm_run's -no-reboot, as a device does) boots BootOrder's slot A within
# the same power-on, and Node Manager marks slot B bad and does not try it
# again.
test_new_boot_kernel_that_panics_falls_back_to_the_good_slot_and_is_not_tried_again() {
        echo 'not a program' >not-init
        slots_fixture 2 --init not-init
        slots_boot boot-1.log
        grep -qa 'kos-node .*written to slot B: the next boot tries it once' boot-1.log || fail "the UKI was not written to slot B"
        # One power-on: slot B panics, the machine resets, slot A boots.
        local SLOTS_DONE=${SLOTS_DONE//|Kernel panic/}
        VM_TIMEOUT=$((${VM_TIMEOUT:-300} * 2)) slots_boot boot-2.log -action reboot=reset
        tr -d '\r' <boot-2.log >boot-2.txt
        local panic_at fallback_at
        panic_at=$(grep -na 'Kernel panic' boot-2.txt | head -1 | cut -d: -f1)
        fallback_at=$(grep -na 'kos-boot .*Boot Kernel security version 1' boot-2.txt | head -1 | cut -d: -f1)
        [ -n "$panic_at" ] || fail "slot B did not panic"
        [ -n "$fallback_at" ] || fail "the device did not fall back to slot A (v1) by itself"
        [ "$panic_at" -lt "$fallback_at" ] || fail "slot A booted before slot B's trial"
        ! grep -qa 'kos-boot .*Boot Kernel security version 2' boot-2.txt || fail "a Boot Kernel init ran in the bad UKI"
        grep -qa 'kos-node .*failed its trial in slot B: not tried again' boot-2.txt || fail "slot B was not marked bad"
        grep -qa 'Boot Kernel slot B: bad' boot-2.txt || fail "slot B's state is not bad"
        # The next power-on starts slot A directly (no BootNext left).
        slots_boot boot-3.log
        grep -qa 'kos-boot .*Boot Kernel security version 1' boot-3.log || fail "slot A did not boot by itself"
        ! grep -qa 'Kernel panic' boot-3.log || fail "slot B was tried again"
        ! grep -qa 'written to slot' boot-3.log || fail "the bad UKI was written again"
}

# A trial UKI that hangs (here: it arms the watchdog, finds no ImageFS and
# halts, as a UKI stuck anywhere would stay) is reset by the i6300esb
# watchdog it armed, and the firmware, BootNext being gone, boots slot A in
# the same power-on; Node Manager marks slot B bad. Without the watchdog
# the device would stay halted until someone cut the power.
test_new_boot_kernel_that_hangs_is_reset_by_the_watchdog_and_falls_back_to_the_good_slot() {
        SLOTS_UKI_CMDLINE="kos.watchdog=20 kos.imagefs=LABEL=KOS-NOWHERE kos.imagefs_timeout=1" slots_fixture 2
        slots_boot boot-1.log
        grep -qa 'kos-node .*written to slot B: the next boot tries it once' boot-1.log || fail "the UKI was not written to slot B"
        ! grep -qa 'kos-boot .*watchdog' boot-1.log || fail "UKI v1 armed a watchdog it was not told to arm"
        local SLOTS_DONE='Boot Kernel slots: done'
        VM_TIMEOUT=$((${VM_TIMEOUT:-300} * 2)) slots_boot boot-2.log -device i6300esb -action watchdog=reset -action reboot=reset
        tr -d '\r' <boot-2.log >boot-2.txt
        local armed_at halted_at fallback_at
        armed_at=$(grep -na 'kos-boot .*watchdog i6300esb .* armed and locked: reset in 20 s' boot-2.txt | head -1 | cut -d: -f1)
        halted_at=$(grep -na 'kos-boot .*no verified system to boot: halting' boot-2.txt | head -1 | cut -d: -f1)
        fallback_at=$(grep -na 'kos-boot .*Boot Kernel security version 1' boot-2.txt | head -1 | cut -d: -f1)
        [ -n "$armed_at" ] || fail "the trial UKI did not arm the watchdog"
        [ -n "$halted_at" ] || fail "the trial UKI did not stop (halt)"
        [ -n "$fallback_at" ] || fail "the watchdog did not reset the halted trial into slot A (v1)"
        [ "$armed_at" -lt "$halted_at" ] && [ "$halted_at" -lt "$fallback_at" ] || fail "the console lines are out of order"
        grep -qa 'kos-node .*failed its trial in slot B: not tried again' boot-2.txt || fail "slot B was not marked bad"
        grep -qa 'Boot Kernel slot B: bad' boot-2.txt || fail "slot B's state is not bad"
}

# Power cuts in the slot update (issue 21, item 5), on the real vfat ESP and
# the firmware's variables: Node Manager's test build dies at the N-th
# fault point of the update (KOS_FAULT_SLOTS_AT, lib/device/bk-slots.c) and
# QEMU is killed as soon as the console says so, so whatever the guest had
# not written back is lost, as in a power cut. Each next power-on must boot
# a signed UKI and the release (marked good), and Node Manager must finish
# the update or start it again, never leave the new UKI reported bad
# untried. One cut per phase: the write (renamed, \EFI\KOS not synced),
# the slot switch (the entry written, BootNext not yet), the blessing (the
# trial's boot marked good, BootOrder not yet). Six power-ons.
slots_cut_boot() { # LOG POINT: one power-on whose update is cut at POINT
        local SLOTS_DONE="KOS-FAULT|$SLOTS_DONE"
        slots_boot "$1" -smbios "type=11,value=kos-fault-slots-at=$2"
        grep -qa "KOS-FAULT KOS_FAULT_SLOTS_AT=$2: killed" "$1" || fail "$1: Node Manager was not cut at point $2"
        ! grep -qa 'Boot Kernel slots: done' "$1" || fail "$1: the update finished after the cut"
}

slots_release_booted() { # LOG VERSION: the UKI of that security version booted the release
        grep -qa "kos-boot .*Boot Kernel security version $2: PCR 14 extended" "$1" || fail "$1: UKI v$2 did not boot"
        grep -qa 'kos-node .*boot of manifest v1 marked good' "$1" || fail "$1: the release was not marked good"
}

test_power_cut_in_each_phase_of_a_boot_kernel_slot_update_boots_a_valid_uki_and_the_update_completes() {
        SLOTS_FAULTS=1 slots_fixture 2
        local SLOTS_TPM=1 point
        # 1. The removable path's first boot: A made the default (point 1),
        # then slot B written and renamed, cut before \EFI\KOS is synced (4).
        slots_cut_boot boot-1.log 4
        slots_release_booted boot-1.log 1
        grep -qa 'kos-node .*Boot Kernel slot A is the default now' boot-1.log || fail "slot A was not made the default"
        echo "  after cut 1, \\EFI\\KOS holds: $(slots_esp_ls)" >&2
        slots_esp_get SLOT-A.EFI a.efi && cmp -s a.efi uki-v1.efi || fail "slot A is not the factory UKI after cut 1"
        # Cut between the rename and the fsyncs after it: SLOT-B.EFI is the
        # new UKI, absent, or torn (vfat gives the new name an empty entry
        # until the file's write-back: trust-chain.md). No boot entry names
        # slot B yet (boot 2 must come from slot A), so a torn file is never
        # started, and the next boot,
        # finding no slot that holds the release's UKI, writes it again.
        point=4 # the write again (points 1-3), cut at the trial's point 4
        if slots_esp_get SLOT-B.EFI b.efi 2>/dev/null && cmp -s b.efi uki-new.efi; then
                point=1 # the rename reached the disk: the trial comes first
        fi
        # 2. BootOrder starts slot A; the write is done again (it succeeds
        # over any SLOT-B.TMP left), cut in the slot switch before BootNext.
        slots_cut_boot boot-2.log "$point"
        slots_release_booted boot-2.log 1
        grep -qa 'kos-node .*booted from Boot Kernel slot A' boot-2.log || fail "boot 2 did not come from slot A"
        echo "  after cut 2, \\EFI\\KOS holds: $(slots_esp_ls)" >&2
        slots_esp_get SLOT-B.EFI b.efi && cmp -s b.efi uki-new.efi || fail "slot B is not the new UKI after cut 2"
        # 3. Slot A again (no BootNext): slot B was never tried, so its trial
        # starts now; not reported bad.
        slots_boot boot-3.log
        slots_release_booted boot-3.log 1
        ! grep -qa 'failed its trial in slot B' boot-3.log || fail "slot B, never tried, was reported bad after the cut"
        grep -qa 'kos-node .*Boot Kernel slot B holds [0-9a-f]*: the next boot tries it once' boot-3.log ||
                fail "the trial of slot B did not start again"
        # 4. BootNext starts slot B; its boot is marked good; the blessing is
        # cut before BootOrder (point 1).
        slots_cut_boot boot-4.log 1
        slots_release_booted boot-4.log 2
        ! grep -qa 'slot B blessed' boot-4.log || fail "slot B was blessed before the cut"
        # 5. BootOrder still names slot A: the device boots it; slot B, whose
        # boot was good, is tried again, not reported bad.
        slots_boot boot-5.log
        slots_release_booted boot-5.log 1
        ! grep -qa 'failed its trial in slot B' boot-5.log || fail "slot B, good before the cut, was reported bad"
        grep -qa 'kos-node .*Boot Kernel slot B holds [0-9a-f]*: the next boot tries it once' boot-5.log ||
                fail "the trial of slot B did not start again after the blessing's cut"
        # 6. Slot B again, now blessed: the update is complete.
        slots_boot boot-6.log
        slots_release_booted boot-6.log 2
        grep -qa 'kos-node .*Boot Kernel slot B blessed (security version 2)' boot-6.log || fail "slot B was not blessed"
        grep -qaE 'kos-node .*Boot Kernel floor raised from [01] to 2' boot-6.log || fail "the Boot Kernel floor was not raised to 2"
        grep -qa 'kos-node .*slot B copied to the removable path' boot-6.log || fail "the removable path was not refreshed"
        grep -qa 'Boot Kernel slot B: good, .*, booted' boot-6.log || fail "slot B is not the good slot"
        echo "  at the end, \\EFI\\KOS holds: $(slots_esp_ls)" >&2
}
