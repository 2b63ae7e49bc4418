# The Boot Kernel in QEMU: a real kernel (Debian's, with its modules, and the
# one made for the job) with our initramfs selects a manifest from a real
# ext4 ImageFS on a virtio disk and kexecs into it (the stand-in System
# Kernel, vm_system_kernel, which prints the command line it got).

# Two boots serve the selection rules below (vm_shared_boot), each test
# checking its own rule on one of them, once per Boot Kernel's kernel.
# The selection boot: before two valid manifests (c, then d), one that is
# missing (ghost), one signed by an untrusted key (u) and one whose
# component has a flipped byte (f); a Boot Kernel parameter that must not
# reach the System Kernel.
boot_selection() {
        vm_fixture
        vm_manifest u base2.img stranger.pem; vm_manifest f base.img
        vm_manifest c base2.img; vm_manifest d base2.img
        activate ghost u f c d
        flip_byte "img/components/$(sha base.img)" 300
        vm_boot "kos.leak=boot-only"
}

# The boot with nothing valid: the same three, and one whose signature is
# missing (s).
boot_nothing_valid() {
        vm_fixture
        vm_manifest u base2.img stranger.pem; vm_manifest s base2.img; vm_manifest f base.img
        rm img/manifests/s.json.sig
        activate ghost u s f
        flip_byte "img/components/$(sha base.img)" 300
        vm_boot
}

test_boots_first_valid_manifest_with_its_signed_cmdline() {
        vm_shared_boot "selection-${VM_BOOT_KERNEL:-debian}" boot_selection
        expect_booted c
        expect_log 'manifest d: skipped'
        ! grep -q 'kos.leak' <<<"$(system_cmdline)" || fail "the Boot Kernel's own cmdline leaked"
        expect_log 'System Kernel loaded by kexec in [0-9.]+ s, alongside verification'
}

test_flipped_byte_in_squashfs_rejects_it_and_boots_the_next() {
        vm_shared_boot "selection-${VM_BOOT_KERNEL:-debian}" boot_selection
        expect_log 'manifest f: rejected: component-hash-mismatch: base:'
        expect_booted c
}

test_manifest_signed_by_untrusted_key_is_rejected() {
        vm_shared_boot "selection-${VM_BOOT_KERNEL:-debian}" boot_selection
        expect_log 'manifest u: rejected: key-untrusted'
        expect_booted c
}

test_missing_manifest_then_valid_one_boots() {
        vm_shared_boot "selection-${VM_BOOT_KERNEL:-debian}" boot_selection
        expect_log 'manifest ghost: rejected: manifest-missing'
        expect_booted c
}

test_nothing_valid_prints_every_reason_and_halts_without_kexec() {
        vm_shared_boot "nothing-valid-${VM_BOOT_KERNEL:-debian}" boot_nothing_valid
        expect_log 'manifest ghost: rejected: manifest-missing'
        expect_log 'manifest u: rejected: key-untrusted'
        expect_log 'manifest s: rejected: signature-missing'
        expect_log 'manifest f: rejected: component-hash-mismatch: base:'
        expect_log 'no verified system to boot: halting'
        expect_log 'reboot: System halted'
        ! grep -q 'loaded by kexec' console.log || fail "kexec happened"
        [ -z "$(system_cmdline)" ] || fail "a System Kernel ran"
}

# The kernel and initrd verify, so the Boot Kernel starts loading them while
# the component is hashed; the component is wrong: the loaded kernel must
# never run.
test_kernel_loaded_early_is_dropped_when_a_component_fails() {
        vm_shared_boot "nothing-valid-${VM_BOOT_KERNEL:-debian}" boot_nothing_valid
        expect_log 'manifest f: rejected: component-hash-mismatch: base:'
        expect_log 'no verified system to boot: halting'
        expect_log 'reboot: System halted'
        [ -z "$(system_cmdline)" ] || fail "the rejected manifest's System Kernel ran"
}

test_imagefs_found_by_uuid_when_its_disk_appears_late() {
        vm_fixture
        vm_manifest a
        activate a
        imagefs_disk img disk.img "$IMAGEFS_UUID"
        # Hot-plug the disk through the monitor 3 s after the init starts waiting.
        VM_MONITOR=$PWD/monitor.sock
        (for _ in $(seq 600); do grep -q 'looking for the ImageFS' console.log 2>/dev/null && break; sleep 0.1; done
         sleep 3
         printf 'drive_add 0 if=none,id=late,file=%s,format=raw\ndevice_add virtio-blk-pci,drive=late\n' "$PWD/disk.img" |
                socat - "UNIX-CONNECT:$VM_MONITOR" >/dev/null) &
        NO_DISK=1 VM_MONITOR=$VM_MONITOR vm_boot "kos.imagefs=UUID=$IMAGEFS_UUID kos.imagefs_timeout=60"
        wait
        expect_log "looking for the ImageFS \(UUID=$IMAGEFS_UUID\)"
        expect_log 'found after ([2-9]|[0-9]{2,})\.' # it was waited for, not there at once
        expect_booted a
}

test_absent_imagefs_times_out_then_takes_the_failure_path() {
        vm_fixture
        NO_DISK=1 vm_boot "kos.imagefs_timeout=2"
        expect_log 'ImageFS not found: no block device matched LABEL=KOS-IMAGEFS within 2 s'
        expect_log 'no verified system to boot: halting'
        NO_DISK=1 vm_boot "kos.imagefs_timeout=1 kos.on_fail=reboot kos.on_fail_delay=1"
        expect_log 'no verified system to boot: rebooting in 1 s'
}

# Two disks labelled KOS-IMAGEFS: the Boot Kernel does not guess which one is
# the ImageFS. It names both and takes the failure path; no System Kernel runs.
test_two_devices_labelled_kos_imagefs_are_refused_and_named() {
        vm_fixture
        vm_manifest a
        activate a
        imagefs_disk img second.img # the same label, another UUID
        vm_boot "" -drive file=second.img,if=virtio,format=raw
        expect_log '2 devices match LABEL=KOS-IMAGEFS: /dev/vda1 .*, /dev/vdb1 .*; refusing to guess'
        expect_log 'ImageFS ambiguous'
        expect_log 'no verified system to boot: halting'
        [ -z "$(system_cmdline)" ] || fail "a System Kernel ran"
}

# The same boots on the kernel made for the job (scripts/build-boot-kernel.sh:
# drivers built in, no modules). VM_BOOT_KERNEL=kos runs every test above so.
test_kos_kernel_boots_first_valid_manifest_with_its_signed_cmdline() {
        VM_BOOT_KERNEL=kos test_boots_first_valid_manifest_with_its_signed_cmdline
        expect_log 'no modules to load: kernel .* has its drivers built in'
}

test_kos_kernel_flipped_byte_in_squashfs_rejects_it_and_boots_the_next() {
        VM_BOOT_KERNEL=kos test_flipped_byte_in_squashfs_rejects_it_and_boots_the_next
}

test_kos_kernel_nothing_valid_prints_every_reason_and_halts_without_kexec() {
        VM_BOOT_KERNEL=kos test_nothing_valid_prints_every_reason_and_halts_without_kexec
}

# A disk hot-plugged while the init waits: the kernel made for the job has
# PCI hot-plug built in (ACPI and native PCIe).
test_kos_kernel_imagefs_found_by_uuid_when_its_disk_appears_late() {
        VM_BOOT_KERNEL=kos test_imagefs_found_by_uuid_when_its_disk_appears_late
}
