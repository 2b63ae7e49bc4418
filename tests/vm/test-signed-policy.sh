# Signed PCR policies in the System Kernel's initrd (docs/tpm.md, "Signed
# policies" and "Migrating PolicyPCR keys"), on the small root: a key sealed
# to the vendor's policy key opens with the initrd's public policy key and
# the release's signed policy on the ImageFS; a key sealed the old way
# (PolicyPCR) opens, is sealed again to the signed policies and its file
# replaced on the ImageFS at the first boot, and opens from the new file at
# the next. The policy is signed for PCR 14 (the Boot Kernel's security
# version 2, which the Boot Kernel measures from its command line) and PCR
# 15; SeaBIOS's PCR 7 is not the vendor's, so PCR 7 is the host tests' and
# tests/vm/test-dbx.sh's part. A third boot by a Boot Kernel that measures no
# security version (an old UKI, before dbx has caught up with it) opens
# neither key: PCR 14 is not what the vendor signed, and the boot stops.
test_initrd_opens_signed_policy_keys_and_migrates_pcr_sealed_keys_and_an_old_boot_kernel_opens_neither() {
        mini_fixture
        mkdir -p app/etc old/etc && echo signed-layer >app/etc/kos-signed && echo old-layer >old/etc/kos-old
        "$KOS" component build --type squashfs --encrypt appkey --keystore factory app app.img >/dev/null
        "$KOS" component build --type squashfs --encrypt oldkey --keystore factory old old.img >/dev/null
        "$KOS" tpm policy-key vendor.pem vendor.pub >/dev/null
        "$KOS" mkinitrd --kernel-dir "$(vm_kernel_dir)" --keyring keyring --keystore keystore \
                --tpm-policy-key vendor.pub --output initrd-policy >/dev/null
        swtpm_host_start tpm
        host_tpm "$KOS" key seal --key-file factory/appkey --policy-key vendor.pub \
                --output img/sealed-keys >/dev/null
        host_tpm "$KOS" key seal --key-file factory/oldkey --output img/sealed-keys >/dev/null
        swtpm_stop tpm
        head -c 8 img/sealed-keys/oldkey | grep -q KOSSEAL1 || fail "oldkey is not sealed the old way"
        "$KOS" tpm sign-policy --key vendor.pem --pcrs 14,15 --security-version 2 --output img/tpm-policy >/dev/null
        MINI_INITRD=initrd-policy mini_manifest signed mini=mini.img app=app.img old=old.img
        local VM_APPEND="$VM_BOOT_APPEND kos.bk_security_version=2"

        vm_swtpm_start tpm
        mini_boot "${VM_TPM_ARGS[@]}"
        swtpm_stop tpm
        expect_log 'kos-boot .*Boot Kernel security version 2: PCR 14 extended'
        expect_log 'kos-system .* component app: key appkey from the TPM'
        expect_log 'component app: squashfs, LUKS2, re-hashed mounted'
        expect_log 'kos-system .* component old: key oldkey from the TPM'
        expect_log 'sealed keys: 2 unsealed; PCR 15 extended with the leave event'
        expect_log 'sealed keys: 1 key sealed to PCR values migrated to the signed policies \(ImageFS sealed-keys/\)'
        expect_log 'KOS-TEST-SYSTEM'
        mv console.log first.log

        # The next boot opens both from their files as they are now: no
        # migration is left, the old-scheme file is gone.
        vm_swtpm_start tpm
        KEEP_DISK=1 mini_boot "${VM_TPM_ARGS[@]}"
        swtpm_stop tpm
        expect_log 'kos-system .* component old: key oldkey from the TPM'
        expect_log 'component old: squashfs, LUKS2, re-hashed mounted'
        ! grep -aq 'migrated to the signed policies' console.log || fail "migrated again: the file was not replaced"
        expect_log 'KOS-TEST-SYSTEM'
        mv console.log second.log

        # An old Boot Kernel: PCR 14 stays empty; the same disk and TPM.
        VM_APPEND=$VM_BOOT_APPEND
        vm_swtpm_start tpm
        KEEP_DISK=1 mini_boot "${VM_TPM_ARGS[@]}"
        swtpm_stop tpm
        expect_log 'kos-boot .*Boot Kernel security version: none on the command line \(PCR 14 not extended\)'
        expect_log 'no signed policy matches the PCRs: PCR 14 holds'
        expect_log "BOOT FAILED at step 'find key', component (app|old)"
        ! grep -aq 'KOS-TEST-SYSTEM' console.log || fail "the old Boot Kernel's boot reached the root"
        ! grep -aqE 'component (app|old): squashfs, LUKS2' console.log || fail "an encrypted component opened under the old Boot Kernel"
}
