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

# dbx_node_fixture [UKI]: the node chain of test-boot-kernel-slots.sh
# (slots_uki, SLOTS_CMDLINE) whose release v1 carries dbx.auth, the
# KEK-signed append revoking UKI (default old.efi, another build of the Boot
# Kernel, validly signed); the disk from kos image with UKI v1 as the
# removable path and slot A.
dbx_node_fixture() {
        local kd keys; kd=$(vm_kernel_dir) keys=$(sb_keys)
        vm_dev_key
        mkdir keyring && cp public.pem keyring/dev.pem
        slots_uki uki-v1.efi 1
        SLOTS_UKI_CMDLINE=kos.release=old slots_uki old.efi 1
        "$KOS" dbx create --kek-key "$keys/KEK.key" --kek-cert "$keys/KEK.crt" --uki "${1:-old.efi}" -o dbx.auth >/dev/null
        cp "$kd"/boot/vmlinuz-* vmlinuz
        vm_cached initrd "$KOS" mkinitrd --kernel-dir "$kd" --keyring keyring --output initrd >/dev/null
        cp "$(sys_base_image)" base.img && cp "$VM_CACHE/base.img.meta" base.img.meta
        make_node_runtime_layer runtime && "$KOS" component build --type erofs runtime runtime.img >/dev/null 2>&1
        make_node_app_layer app1 1 && "$KOS" component build --type squashfs app1 app1.img >/dev/null
        "$KOS" imagefs init img
        "$KOS" component add img vmlinuz initrd base.img runtime.img app1.img dbx.auth >/dev/null
        "$KOS" manifest create --name v1 --version 1 --kernel vmlinuz --initrd initrd --cmdline "$SLOTS_CMDLINE" \
                --component base=base.img --component runtime=runtime.img --component app=app1.img \
                --dbx-update dbx.auth -o v1.json
        "$KOS" manifest sign --key secret.pem v1.json >/dev/null
        "$KOS" install img v1.json >/dev/null
        activate v1
        "$KOS" image --force --imagefs img --imagefs-extra 64M --uki uki-v1.efi --data-size 64M disk.img >/dev/null 2>&1
        cp "$(sb_enrolled_vars)" vars.fd
}

# The device's side of a dbx update (docs/trust-chain.md, "dbx updates"):
# Node Manager appends the release's dbx update once the boot is marked
# good, after its check against the UKIs the device needs (slot A and the
# removable path, both UKI v1); at the next power-on the revoked UKI, put
# in slot A (BootOrder's first), is refused by the firmware itself and the
# device boots on from the removable path; the update is not written again.
test_release_dbx_update_is_applied_by_node_manager_and_the_firmware_then_refuses_the_revoked_uki() {
        dbx_node_fixture
        slots_boot boot-1.log
        grep -a 'kos-node .*dbx update' boot-1.log | tr -d '\r' | sed 's/^/  > /' >&2
        grep -qa 'kos-node .*dbx update [0-9a-f]* appended to dbx (checked against EFI/KOS/SLOT-A.EFI, EFI/BOOT/BOOTX64.EFI)' \
                boot-1.log || fail "Node Manager did not append the release's dbx update"
        grep -qa 'KOS-STATUS .*"dbx_update": {[^}]*"result": "appended"' boot-1.log || fail "the status does not say appended"
        od -An -v -tx1 vars.fd | tr -d ' \n' | grep -q "$("$KOS" dbx hash old.efi)" || fail "the firmware's dbx lacks old.efi's hash"
        local start
        start=$(sfdisk -d disk.img | sed -n 's/^disk.img1 : start= *\([0-9]*\),.*/\1/p')
        mcopy -o -i "disk.img@@$((start * 512))" old.efi ::/EFI/KOS/SLOT-A.EFI
        local SLOTS_DONE='Boot Kernel slots: done|BOOT FAILED|System halted|Kernel panic'
        slots_boot boot-2.log
        grep -qa 'BdsDxe: failed to load Boot4B0A .*: Access Denied' boot-2.log || fail "the firmware did not refuse old.efi"
        grep -qa 'kos-boot .*booting manifest v1' boot-2.log || fail "the device did not boot on from the removable path"
        ! grep -qa 'kos-node .*dbx update [0-9a-f]* appended' boot-2.log || fail "the dbx update was written again"
        grep -qa 'KOS-STATUS .*"dbx_update": {[^}]*"result": "present"' boot-2.log || fail "the status does not say present"
}

# A release whose dbx update would revoke the UKI the device runs (UKI v1,
# slot A and the removable path): Node Manager refuses it, writes nothing,
# and says why in the events and the status; the next boot would be fine.
test_release_dbx_update_that_would_revoke_the_running_uki_is_refused_by_node_manager_with_its_reason() {
        dbx_node_fixture uki-v1.efi
        slots_boot boot-1.log
        grep -a 'kos-node .*dbx update' boot-1.log | tr -d '\r' | sed 's/^/  > /' >&2
        grep -qa 'kos-node .*dbx update [0-9a-f]* refused: revokes-uki-hash: list 0 entry 0 is the Authenticode hash [0-9a-f]* of UKI 0 (needed: EFI/KOS/SLOT-A.EFI, EFI/BOOT/BOOTX64.EFI)' \
                boot-1.log || fail "Node Manager did not refuse the update with its reason"
        grep -qa 'KOS-STATUS .*"dbx_update": {[^}]*"result": "refused",[^}]*"reason": "revokes-uki-hash' boot-1.log ||
                fail "the status does not say refused and why"
        ! od -An -v -tx1 vars.fd | tr -d ' \n' | grep -q "$("$KOS" dbx hash uki-v1.efi)" || fail "the running UKI's hash reached dbx"
}
