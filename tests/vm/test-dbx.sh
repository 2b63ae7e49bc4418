# dbx updates under OVMF Secure Boot (docs/trust-chain.md, "dbx updates"):
# kos dbx create makes the KEK-signed append that revokes the Boot Kernel UKI
# the fixture builds the way make demo does today (no Boot Kernel security
# version); a UKI of Debian's kernel and tests/vm/dbx-append-init.c appends it
# through efivarfs as Node Manager will, so OVMF itself checks the KEK
# signature; then the firmware refuses the revoked UKI and boots the new one.

# dbx_writer_uki AUTH: writer.efi, Debian's kernel with dbx-append-init as its
# init and AUTH built into it, signed by the development db key.
dbx_writer_uki() {
        local keys kd; keys=$(sb_keys) kd=$(vm_kernel_dir)
        cc -static -Os -DDBX_AUTH="\"$PWD/$1\"" \
                -DEFIVARFS_KO="\"$(echo "$kd"/lib/modules/*/kernel/fs/efivarfs/efivarfs.ko)\"" \
                -o dbx-init "$ROOT/tests/vm/dbx-append-init.c"
        "$KOS" mkboot --kernel "$(echo "$kd"/boot/vmlinuz-*)" --init dbx-init --keyring keyring --output writer \
                --uki writer.efi --cmdline "console=ttyS0 panic=-1 loglevel=4" \
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
                --cmdline "console=ttyS0 panic=-1 loglevel=4 kos.release=2" \
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
