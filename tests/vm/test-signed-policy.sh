# Signed PCR policies in the System Kernel's initrd (docs/tpm.md, "Signed
# policies" and "Migrating PolicyPCR keys"), on the small root: a key sealed
# to the vendor's policy key opens with the initrd's public policy key and
# the release's signed policy on the ImageFS; a key sealed the old way
# (PolicyPCR) opens, is sealed again to the signed policies and its file
# replaced on the ImageFS at the first boot, and opens from the new file at
# the next. (The Boot Kernel here measures no security version and SeaBIOS's
# PCR 7 is not the vendor's, so the policy signed here covers PCR 15 alone;
# PCRs 7 and 14 are the host tests' part, tests/host/test-tpm-policy.sh.)
test_initrd_opens_signed_policy_keys_and_migrates_pcr_sealed_keys_on_the_imagefs() {
        mini_fixture
        mkdir -p app/etc old/etc && echo signed-layer >app/etc/kos-signed && echo old-layer >old/etc/kos-old
        "$KOS" component build --type squashfs --encrypt appkey --keystore factory app app.img >/dev/null
        "$KOS" component build --type squashfs --encrypt oldkey --keystore factory old old.img >/dev/null
        "$KOS" tpm policy-key vendor.pem vendor.pub >/dev/null
        "$KOS" mkinitrd --kernel-dir "$(vm_kernel_dir)" --keyring keyring --keystore keystore \
                --tpm-policy-key vendor.pub --output initrd-policy >/dev/null
        swtpm_host_start tpm
        KOS_TPM=$PWD/tpm/host.sock "$KOS" key seal --key-file factory/appkey --policy-key vendor.pub \
                --output img/sealed-keys >/dev/null
        KOS_TPM=$PWD/tpm/host.sock "$KOS" key seal --key-file factory/oldkey --output img/sealed-keys >/dev/null
        swtpm_stop tpm
        head -c 8 img/sealed-keys/oldkey | grep -q KOSSEAL1 || fail "oldkey is not sealed the old way"
        "$KOS" tpm sign-policy --key vendor.pem --pcrs 15 --output img/tpm-policy >/dev/null
        MINI_INITRD=initrd-policy mini_manifest signed mini=mini.img app=app.img old=old.img

        vm_swtpm_start tpm
        mini_boot "${VM_TPM_ARGS[@]}"
        swtpm_stop tpm
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
}
