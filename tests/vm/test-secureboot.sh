# UEFI Secure Boot in QEMU (OVMF with SMM, TCG): the firmware checks the
# Boot Kernel UKI's signature against db before anything of KOS runs; the
# Boot Kernel then checks the manifest's. The development PK, KEK and db are
# enrolled once per machine (sb_enrolled_vars, cached). Each test is one
# firmware boot: about 15 s to a refusal, 40 s to the System Kernel here.

# sb_uki [mkboot args...]: the fixture's Boot Kernel (the kernel made for the
# job) as a UKI, uki.efi, signed by the development db key unless the
# arguments sign it otherwise.
sb_uki() {
        local keys; keys=$(sb_keys)
        VM_BOOT_KERNEL=kos vm_mkboot --keyring keyring --output bootk --uki uki.efi \
                --cmdline "$VM_BOOT_APPEND" \
                --sign-key "${SB_KEY:-$keys/db.key}" --sign-cert "${SB_CERT:-$keys/db.crt}" >/dev/null
}

# sb_boot UKI: boots UKI as the removable-media boot loader
# (\EFI\BOOT\BOOTX64.EFI) of a disk whose ESP is followed by img/ as the
# ImageFS, with Secure Boot enforcing; console in console.log.
sb_boot() {
        local vars; vars=$(sb_enrolled_vars)
        rm -rf esp && mkdir -p esp/EFI/BOOT && cp "$1" esp/EFI/BOOT/BOOTX64.EFI
        uefi_disk esp disk.img img "$IMAGEFS_UUID"
        cp "$vars" vars.fd
        local start=$EPOCHREALTIME
        ovmf_run console.log "${VM_TIMEOUT:-240}" "$VM_DONE|Access Denied|Security Violation" vars.fd disk.img || true
        echo "  firmware boot: $(echo "$EPOCHREALTIME - $start" | bc) s (host time)" >&2
        tr -d '\r' <console.log | grep -aE 'BdsDxe|EFI stub|kos-boot|KOS-TEST-SYSTEM|locked down' | sed 's/^/  | /' >&2
}

expect_refused_by_firmware() {
        expect_log 'BdsDxe: failed to load Boot[0-9A-F]+ .*: Access Denied'
        ! grep -aqE 'EFI stub|Linux version|kos-boot' console.log || fail "the refused UKI ran"
        [ -z "$(system_cmdline)" ] || fail "a System Kernel ran"
}

test_signed_uki_boots_with_secure_boot_enforcing_and_kexecs_the_manifest() {
        VM_BOOT_KERNEL=kos VM_SYSTEM_KERNEL=debian vm_fixture
        vm_manifest a
        activate a
        sb_uki
        sb_boot uki.efi
        expect_log 'EFI stub: UEFI Secure Boot is enabled'
        expect_log 'no modules to load: kernel .* has its drivers built in'
        expect_log 'System Kernel loaded by kexec'
        expect_booted a
        # kexec hands the Secure Boot state on: Debian's System Kernel locks itself down.
        expect_log 'Kernel is locked down from EFI Secure Boot'
}

test_uki_with_one_byte_changed_in_its_initramfs_is_refused_by_the_firmware() {
        VM_BOOT_KERNEL=kos vm_fixture
        vm_manifest a
        activate a
        sb_uki
        local off; off=$(objdump -h uki.efi | awk '$2 == ".initrd" { print $6 }')
        [ -n "$off" ] || fail "no .initrd section in the UKI"
        flip_byte uki.efi $((0x$off + 4096))
        ! sbverify --cert "$(sb_keys)/db.crt" uki.efi >/dev/null 2>&1 || fail "sbverify accepts the changed UKI"
        sb_boot uki.efi
        expect_refused_by_firmware
}

test_uki_signed_by_a_key_not_in_db_is_refused_by_the_firmware() {
        VM_BOOT_KERNEL=kos vm_fixture
        vm_manifest a
        activate a
        openssl req -new -x509 -newkey rsa:2048 -nodes -sha256 -days 30 -subj "/CN=not in db/" \
                -keyout stranger.key -out stranger.crt 2>/dev/null
        SB_KEY=stranger.key SB_CERT=stranger.crt sb_uki
        sbverify --cert stranger.crt uki.efi >/dev/null 2>&1 || fail "the UKI is not validly signed by its key"
        sb_boot uki.efi
        expect_refused_by_firmware
}

# Why the Boot Kernel has its own kernel (docs/trust-chain.md): Debian's
# kernel locks itself down under Secure Boot and then kexecs only kernels
# signed by a key it trusts (builtin keyring, or db through the platform
# keyring). Debian's vmlinuz is signed by Debian, whose key is in neither when
# db holds only the vendor's: the manifest is valid, the kexec is refused.
test_debian_boot_kernel_under_secure_boot_refuses_to_kexec_a_debian_signed_kernel() {
        VM_BOOT_KERNEL=debian VM_SYSTEM_KERNEL=debian vm_fixture
        vm_manifest a
        activate a
        local keys; keys=$(sb_keys)
        VM_BOOT_KERNEL=debian vm_mkboot --keyring keyring --output bootk --uki uki.efi \
                --cmdline "$VM_BOOT_APPEND" --sign-key "$keys/db.key" --sign-cert "$keys/db.crt" >/dev/null 2>&1
        sb_boot uki.efi
        expect_log 'EFI stub: UEFI Secure Boot is enabled'
        expect_log 'manifest a: valid'
        expect_log 'kexec_file_load failed: Required key not available'
        expect_log 'no verified system to boot: halting'
        [ -z "$(system_cmdline)" ] || fail "a System Kernel ran"
}
