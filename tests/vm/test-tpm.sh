# The TPM half of anti-rollback and measured boot (docs/tpm.md): a swtpm
# whose state survives between the boots of a test, as a device's TPM does.

# tpm_manifest NAME SECURITY_VERSION: like vm_manifest, with that
# security_version (and version).
tpm_manifest() {
        "$KOS" manifest create --name "$1" --version "$2" --security-version "$2" --kernel vmlinuz --initrd initrd \
                --cmdline "console=ttyS0 kos.test=$1" --component base=base.img -o "$1.json"
        "$KOS" manifest sign --key secret.pem "$1.json" >/dev/null
        cp "$1.json" "$1.json.sig" img/manifests/
}

# vm_boot with the swtpm of tpm/ plugged in for this one boot.
tpm_boot() {
        vm_swtpm_start tpm
        vm_boot "" "${VM_TPM_ARGS[@]}"
        swtpm_stop tpm
}

booted_pcr8() { sed -n 's/^KOS-TEST-PCR 8 \([0-9A-Fa-f]*\).*/\1/p' console.log | tr A-F a-f; }

# An attacker who rewrites the whole disk (an old signed manifest first in
# active, no boot-state, so no floor file) does not get the old release
# back: the floor is in the TPM. Marking good runs on the host here (there is
# no Node Manager in the Boot Kernel's fixture), through the same
# kos_mark_good() against the same TPM state.
test_tpm_floor_rejects_old_manifest_after_imagefs_rewrite_and_pcr8_measures_the_booted_one() {
        vm_fixture
        tpm_manifest old 1; tpm_manifest new 2
        activate new old
        tpm_boot
        expect_booted new
        expect_log 'rollback floor: TPM /dev/tpmrm0: floor counter NV 0x01004b4f holds 0; defined the counter; first increment: floor 0'
        expect_log "measured boot: PCR 8 extended with manifest new id $(sha img/manifests/new.json)"
        local pcr; pcr=$(booted_pcr8)
        [ -n "$pcr" ] || fail "the System Kernel printed no PCR 8"
        [ "$pcr" = "$("$KOS" tpm expected-pcr "$(sha img/manifests/new.json)")" ] || fail "PCR 8 $pcr is not new's measurement"
        [ "$pcr" != "$("$KOS" tpm expected-pcr "$(sha img/manifests/old.json)")" ] || fail "PCR 8 matches old too"

        swtpm_host_start tpm
        host_tpm "$KOS" mark-good img new --keyring keyring
        [ "$(host_tpm "$KOS" tpm floor)" = 2 ] || fail "the TPM floor is not 2"
        swtpm_stop tpm

        # The rewrite: no boot-state, and the old signed manifest back
        # (marking new good uninstalled it) first in active.
        rm -rf img/boot-state
        cp old.json old.json.sig img/manifests/
        activate old new
        tpm_boot
        expect_log 'rollback floor: TPM /dev/tpmrm0: floor counter NV 0x01004b4f holds 2[[:space:]]*$'
        expect_log 'rollback floor: security_version 2 \(tpm\)'
        expect_log "manifest old: rejected: rollback: security_version 1 is below this device's floor 2"
        expect_booted new
        [ "$(booted_pcr8)" = "$pcr" ] || fail "the same manifest measured differently"
}

# The documented weaker behaviour without a TPM: the floor lives only on the
# disk, so whoever rewrites the disk brings the old release back.
test_without_tpm_rewritten_imagefs_boots_the_old_manifest() {
        vm_fixture
        tpm_manifest old 1; tpm_manifest new 2
        activate new old
        KOS_TPM=none "$KOS" mark-good img new --keyring keyring
        [ "$(cat img/boot-state/rollback-floor)" = 2 ] || fail "mark-good wrote no floor"
        # The rewrite: no boot-state, and the old signed manifest back
        # (marking new good uninstalled it) first in active.
        rm -rf img/boot-state
        cp old.json old.json.sig img/manifests/
        activate old new
        vm_boot
        expect_log 'rollback floor: no TPM: the rollback floor is the ImageFS.s alone'
        expect_log 'rollback floor: security_version 0 \(none\)'
        expect_booted old
        ! grep -q 'measured boot' console.log || fail "measured without a TPM"
        [ -z "$(booted_pcr8)" ] || fail "a PCR without a TPM"
}

# A deployment that must never fall back to the disk's floor (a TPM taken
# away or switched off in firmware setup; a TPM that is there but whose
# counter cannot be used boots nothing anyway, docs/tpm.md) puts
# kos.tpm=required on the Boot Kernel's command line: without a TPM nothing
# boots.
test_tpm_required_without_a_tpm_boots_nothing() {
        vm_fixture
        tpm_manifest new 2
        activate new
        vm_boot "kos.tpm=required"
        expect_log 'kos.tpm=required and the TPM.s rollback floor cannot be used'
        expect_log 'no verified system to boot: halting'
        [ -z "$(system_cmdline)" ] || fail "a System Kernel ran"
}

# An old Boot Kernel UKI whose security version is below the Boot Kernel
# floor in the TPM (docs/tpm.md, "The Boot Kernel floor") goes no further:
# its init says why and reboots, so that the firmware starts the next boot
# entry, before it looks for the ImageFS. The floor is raised to 2 on the
# host, through the same TPM state; the Boot Kernel is started directly
# with version 1 last on its command line, as kos mkboot writes it on a
# UKI's (the check is the init's; the slots' walks of make check-long boot
# an old UKI under OVMF).
test_boot_kernel_below_its_floor_says_why_and_reboots_before_it_selects() {
        vm_fixture
        tpm_manifest new 2
        activate new
        swtpm_host_start tpm
        host_tpm "$KOS" tpm bk-provision >/dev/null
        host_tpm "$KOS" tpm bk-raise 2 >/dev/null
        [ "$(host_tpm "$KOS" tpm bk-floor)" = 2 ] || fail "the Boot Kernel floor is not 2"
        swtpm_stop tpm
        vm_swtpm_start tpm
        vm_boot "kos.bk_security_version=1" "${VM_TPM_ARGS[@]}"
        swtpm_stop tpm
        expect_log 'Boot Kernel security version 1: PCR 14 extended'
        expect_log 'Boot Kernel security version 1 is below the Boot Kernel floor 2: this UKI may not run here; rebooting so the firmware starts the next boot entry'
        expect_log 'reboot: Restarting'
        ! grep -q 'looking for the ImageFS' console.log || fail "the refused Boot Kernel went on to the ImageFS"
        [ -z "$(system_cmdline)" ] || fail "a System Kernel started"
}

# The whole chain on the small root: the System Kernel publishes the Boot
# Kernel's event in /run/kos/measurements.json, and PCR 8 replays from it.
test_system_kernel_publishes_pcr8_event_that_replays_to_the_pcr() {
        mini_fixture
        mini_manifest mini base=mini.img
        imagefs_disk img disk.img "$IMAGEFS_UUID"
        vm_swtpm_start tpm
        vm_run_kernel console.log "${VM_TIMEOUT:-240}" "$MINI_DONE" "${VM_TPM_ARGS[@]}" || true
        swtpm_stop tpm
        grep -aE 'kos-boot|kos-system|KOS-TEST' console.log | sed 's/^/  | /' >&2
        local want; want=$("$KOS" tpm expected-pcr "$(sha img/manifests/mini.json)")
        expect_log 'kos-system .* measurements: PCR 8 matches the Boot Kernel.s event for manifest mini'
        expect_log 'KOS-TEST-ROOT measurements.json "tpm": true'
        expect_log "KOS-TEST-ROOT measurements.json \"replayed\": \"$want\""
        expect_log "KOS-TEST-ROOT measurements.json \"pcr_value\": \"$want\""
        expect_log 'KOS-TEST-ROOT measurements.json "matches": true'
}
