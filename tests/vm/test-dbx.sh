# dbx updates under OVMF Secure Boot (docs/trust-chain.md, "dbx updates"):
# kos dbx create makes the KEK-signed append that revokes the Boot Kernel UKI
# the fixture builds the way make demo does today (no Boot Kernel security
# version); a UKI of Debian's kernel and tests/vm/dbx-append-init.c appends it
# through efivarfs as Node Manager does, so OVMF itself checks the KEK
# signature; then the firmware refuses the revoked UKI and boots the new one.
# The tests at the end are Node Manager's side: a release carries the update.

# dbx_writer_uki AUTH: writer.efi, Debian's kernel with dbx-append-init as its
# init and AUTH built into it, signed by the development db key.
dbx_writer_uki() {
        local keys kd; keys=$(sb_keys) kd=$(vm_kernel_dir)
        cc -static -Os -DDBX_AUTH="\"$PWD/$1\"" \
                -DEFIVARFS_KO="\"$(echo "$kd"/lib/modules/*/kernel/fs/efivarfs/efivarfs.ko)\"" \
                -o dbx-init "$ROOT/tests/vm/dbx-append-init.c"
        "$KOS" mkboot --kernel "$(echo "$kd"/boot/vmlinuz-*)" --init dbx-init --keyring keyring --output writer \
                --uki writer.efi --cmdline "$VM_BOOT_APPEND" \
                --sign-key "$keys/db.key" --sign-cert "$keys/db.crt" >/dev/null
}

# dbx_boot VARS UKI: boots UKI as \EFI\BOOT\BOOTX64.EFI of a disk with img/
# as the ImageFS, Secure Boot enforcing, with the variable store VARS, which
# the firmware writes and the next boot keeps.
dbx_boot() {
        rm -rf esp && mkdir -p esp/EFI/BOOT && cp "$2" esp/EFI/BOOT/BOOTX64.EFI
        uefi_disk esp disk.img img "$IMAGEFS_UUID"
        ovmf_run console.log "${VM_TIMEOUT:-400}" "$VM_DONE|Access Denied|Security Violation|KOS-DBX done" "$1" disk.img || true
        tr -d '\r' <console.log | grep -aE 'BdsDxe|EFI stub|kos-boot|KOS-TEST-SYSTEM|KOS-DBX' | sed 's/^/  | /' >&2
}

test_dbx_update_revokes_the_old_uki_by_its_hash_while_the_new_one_keeps_booting() {
        VM_BOOT_KERNEL=kos vm_fixture
        vm_manifest a
        activate a
        local keys; keys=$(sb_keys)
        sb_uki && mv uki.efi old.efi # today's UKI: no kos.bk_security_version
        VM_BOOT_KERNEL=kos vm_mkboot --keyring keyring --output bootk2 --uki new.efi \
                --cmdline "$VM_BOOT_APPEND kos.release=2" \
                --sign-key "$keys/db.key" --sign-cert "$keys/db.crt" >/dev/null
        "$KOS" dbx create --kek-key "$keys/KEK.key" --kek-cert "$keys/KEK.crt" --uki old.efi -o dbx.auth >/dev/null
        # The device's check: safe for the UKI it runs now, refused for the old one.
        "$KOS" dbx check dbx.auth --uki new.efi >/dev/null || fail "the update is refused for new.efi"
        ! "$KOS" dbx check dbx.auth --uki old.efi 2>/dev/null || fail "an update revoking the running UKI passed"
        cp "$(sb_enrolled_vars)" vars.fd
        dbx_writer_uki dbx.auth
        dbx_boot vars.fd writer.efi
        expect_log 'KOS-DBX appended to dbx'
        dbx_boot vars.fd old.efi
        expect_refused_by_firmware
        dbx_boot vars.fd new.efi
        expect_log 'EFI stub: UEFI Secure Boot is enabled'
        expect_booted a
}

# dbx_node_fixture: the node chain of test-boot-kernel-slots.sh (slots_uki,
# SLOTS_CMDLINE) as a vendor ships a Boot Kernel fix: the factory UKI v1
# (security version 1) on the disk as the removable path and slot A, and
# release v1 carrying UKI v2 (security version 2) with dbx.auth, the
# KEK-signed append that revokes v1 (the runbook's "Rotate a manifest key",
# docs/trust-chain.md). The DataFS is LUKS2 (kos.datafs=luks2), and the
# vendor's policy key is in the initrd; the release's signed policy
# (tpm-policy on the ImageFS) approves PCR 7 before and after the dbx
# update, both computed on the host (sb_expected_pcr7), for security
# version 2 only: v1 is the Boot Kernel with the hole.
dbx_node_fixture() {
        local kd keys pcr7 pcr7_after; kd=$(vm_kernel_dir) keys=$(sb_keys)
        vm_dev_key
        mkdir keyring && cp public.pem keyring/dev.pem
        slots_uki uki-v1.efi 1
        slots_uki uki-v2.efi 2
        "$KOS" dbx create --kek-key "$keys/KEK.key" --kek-cert "$keys/KEK.crt" --uki uki-v1.efi -o dbx.auth >/dev/null
        "$KOS" dbx check dbx.auth --uki uki-v2.efi >/dev/null || fail "the update is refused for UKI v2"
        dbx_update_lists dbx.auth dbx-after.esl
        pcr7=$(sb_expected_pcr7 "$keys") pcr7_after=$(sb_expected_pcr7 "$keys" dbx-after.esl)
        [ "$pcr7" != "$pcr7_after" ] || fail "dbx's contents do not change the expected PCR 7"
        "$KOS" tpm policy-key vendor.pem vendor.pub >/dev/null
        cp "$kd"/boot/vmlinuz-* vmlinuz
        "$KOS" mkinitrd --kernel-dir "$kd" --keyring keyring --tpm-policy-key vendor.pub --output initrd >/dev/null
        vm_test_base base.img
        make_node_runtime_layer runtime && "$KOS" component build --type erofs runtime runtime.img >/dev/null 2>&1
        make_node_app_layer app1 1 && dbx_status_after_good app1 &&
                "$KOS" component build --type squashfs app1 app1.img >/dev/null
        "$KOS" imagefs init img
        "$KOS" component add img vmlinuz initrd base.img runtime.img app1.img uki-v2.efi dbx.auth >/dev/null
        "$KOS" manifest create --name v1 --version 1 --kernel vmlinuz --initrd initrd \
                --cmdline "$SLOTS_CMDLINE kos.datafs=luks2" \
                --component base=base.img --component runtime=runtime.img --component app=app1.img \
                --boot-kernel uki-v2.efi --dbx-update dbx.auth -o v1.json
        "$KOS" manifest sign --key secret.pem v1.json >/dev/null
        "$KOS" install img v1.json >/dev/null
        # The entry for today's PCR 7 last: a refusal names the first PCR in
        # which the newest entry differs, PCR 14 under v1.
        "$KOS" tpm sign-policy --key vendor.pem --pcr-value "7=$pcr7_after" --security-version 2 \
                --output img/tpm-policy >/dev/null
        "$KOS" tpm sign-policy --key vendor.pem --pcr-value "7=$pcr7" --security-version 2 --add --output img/tpm-policy >/dev/null
        activate v1
        "$KOS" image --force --imagefs img --imagefs-extra 64M --uki uki-v1.efi --data-size 64M disk.img >/dev/null 2>&1
        cp "$(sb_enrolled_vars)" vars.fd
}

# dbx_status_after_good LAYER: the test's status line (kos-test-node.service,
# make_node_app_layer) waits until the boot is marked good. Node Manager marks
# it good and then does the slot and dbx work in one turn of its loop, so a
# status answered after "marked_good": true holds the dbx update's result; a
# boot of this test ends at that line, not at "Boot Kernel slots: done",
# after which the status could still be on its way (the race of a CI run).
dbx_status_after_good() {
        mkdir -p "$1/etc/systemd/system/kos-test-node.service.d"
        cat >"$1/etc/systemd/system/kos-test-node.service.d/after-good.conf" <<'UNIT'
[Service]
TimeoutStartSec=240
ExecStartPre=-/bin/sh -c 'until kos node status | grep -qE "marked_good.: true"; do sleep 1; done'
UNIT
}

# dbx_in_vars UKI: whether the firmware's variable store holds UKI's
# Authenticode hash (a dbx entry revoking it).
dbx_in_vars() { od -An -v -tx1 vars.fd | tr -d ' \n' | grep -q "$("$KOS" dbx hash "$1")"; }

# The device's side of a dbx update (docs/trust-chain.md, "dbx updates"),
# over three power-ons with the device's TPM:
# 1. UKI v1 runs: Node Manager refuses the update, which would revoke the
#    UKI the device boots from (slot A and the removable path), writes
#    nothing and says why; it writes v2 to slot B for a trial. The DataFS
#    is formatted; the signed policy does not open under v1 (PCR 14), so its
#    key is sealed to PCR values.
# 2. v2 on trial: the key opens by PCR values and migrates to the signed
#    policies; the boot is marked good, v2 blessed and copied to the
#    removable path, and only then is the update appended to dbx, checked
#    against what the device now needs (slot B and the removable path).
# 3. v1 put in slot B (BootOrder's first): the firmware itself refuses it
#    and the device boots v2 from the removable path; PCR 7 now measures the
#    new dbx, and the DataFS opens through the policy the vendor signed for
#    it, with no re-seal; the update is not written again.
test_dbx_update_revoking_the_running_uki_waits_until_the_new_uki_is_blessed_then_the_firmware_refuses_the_old_and_the_datafs_opens_by_a_new_signature() {
        dbx_node_fixture
        local SLOTS_TPM=1 SLOTS_DONE='KOS-STATUS|BOOT FAILED|System halted|Kernel panic'
        slots_boot boot-1.log
        grep -aE 'kos-node .*dbx update|kos-system .*DataFS' boot-1.log | tr -d '\r' | sed 's/^/  > /' >&2
        expect_in boot-1.log 'kos-boot .*Boot Kernel security version 1: PCR 14 extended' "UKI v1 did not run"
        expect_in boot-1.log 'kos-node .*dbx update [0-9a-f]* refused: revokes-uki-hash: list 0 entry 0 is the Authenticode hash [0-9a-f]* of UKI 0 \(needed: EFI/KOS/SLOT-A.EFI, EFI/BOOT/BOOTX64.EFI\)' \
                "Node Manager did not refuse the update with its reason while v1 runs"
        expect_in boot-1.log 'KOS-STATUS .*"dbx_update": \{[^}]*"result": "refused",[^}]*"reason": "revokes-uki-hash' \
                "the status does not say refused and why"
        ! dbx_in_vars uki-v1.efi || fail "the running UKI's hash reached dbx"
        expect_in boot-1.log "kos-system .*DataFS: the release's signed policy does not open a key sealed to it \(.*PCR 14 holds" \
                "the signed policy was not refused under UKI v1 for PCR 14"
        expect_in boot-1.log 'kos-system .*DataFS /dev/vda3: formatted as LUKS2 .*sealed to PCR 7\+15' "the DataFS was not formatted"
        expect_in boot-1.log 'kos-node .*Boot Kernel [0-9a-f]* \(security version 2\) written to slot B: the next boot tries it once' \
                "UKI v2 was not written to slot B"
        slots_boot boot-2.log
        grep -aE 'kos-node .*dbx update|kos-system .*DataFS' boot-2.log | tr -d '\r' | sed 's/^/  > /' >&2
        expect_in boot-2.log 'kos-boot .*Boot Kernel security version 2: PCR 14 extended' "UKI v2 did not run on trial"
        expect_in boot-2.log 'kos-system .*DataFS /dev/vda3: LUKS2 opened with the key the TPM unsealed \(PCR 7\+15' \
                "the DataFS did not open on the trial boot"
        expect_in boot-2.log "kos-system .*DataFS: key migrated from PCR values to the vendor's signed policies" \
                "the DataFS key did not migrate to the signed policies"
        expect_in boot-2.log 'kos-node .*Boot Kernel slot B blessed \(security version 2\)' "UKI v2 was not blessed"
        expect_in boot-2.log 'kos-node .*dbx update [0-9a-f]* appended to dbx \(checked against EFI/KOS/SLOT-B.EFI, EFI/BOOT/BOOTX64.EFI\)' \
                "Node Manager did not append the update once v2 was blessed"
        expect_in boot-2.log 'KOS-STATUS .*"dbx_update": \{[^}]*"result": "appended"' "the status does not say appended"
        dbx_in_vars uki-v1.efi || fail "the firmware's dbx lacks UKI v1's hash"
        local start
        start=$(sfdisk -d disk.img | sed -n 's/^disk.img1 : start= *\([0-9]*\),.*/\1/p')
        mcopy -o -i "disk.img@@$((start * 512))" uki-v1.efi ::/EFI/KOS/SLOT-B.EFI
        slots_boot boot-3.log
        grep -aE 'BdsDxe|kos-node .*dbx update|kos-system .*DataFS' boot-3.log | tr -d '\r' | sed 's/^/  > /' >&2
        expect_in boot-3.log 'BdsDxe: failed to load Boot[0-9A-F]* .*: Access Denied' "the firmware did not refuse UKI v1"
        expect_in boot-3.log 'kos-boot .*Boot Kernel security version 2: PCR 14 extended' "UKI v2 did not boot from the removable path"
        expect_in boot-3.log 'kos-boot .*booting manifest v1' "the device did not boot on"
        expect_in boot-3.log 'kos-system .*DataFS /dev/vda3: LUKS2 opened with the key the TPM unsealed \(signed policy, salted session' \
                "the DataFS did not open through the signed policy after the dbx update"
        ! grep -qa 'kos-node .*dbx update [0-9a-f]* appended' boot-3.log || fail "the dbx update was written again"
        expect_in boot-3.log 'KOS-STATUS .*"dbx_update": \{[^}]*"result": "present"' "the status does not say present"
}
