# A manifest key rotates from K1 to K2 on a device in the field (issue 23,
# item 1; docs/trust-chain.md, "Rotating keys" and the runbook): OVMF with
# Secure Boot enforcing and swtpm, the Boot Kernel slots of
# test-boot-kernel-slots.sh (slots_boot, SLOTS_CMDLINE, SLOTS_DONE: the
# runner sources every test file before it runs one). Three Boot Kernel
# UKIs, each signed by the development db key:
#   v1: keyring {K1},     Boot Kernel security version 1 (the factory UKI)
#   v2: keyring {K1, K2}, security version 2 (carried by release r1)
#   v3: keyring {K2},     security version 3 (carried by release r2)
# Releases r2 and r3 reach the ImageFS between power-ons as an installer
# (or a disk rewriter) would put them there: written into the partition with
# debugfs, nothing mounted (how Node Manager installs a bundle is
# test-node.sh's subject; here a bundle would cost a reboot per release).
# The System Kernel's initrd and Node Manager's keyring trust {K1, K2}: the
# Boot Kernel's keyring is the one that decides what boots.

# rot_uki OUT SECURITY_VERSION KEYRING: a Boot Kernel UKI trusting KEYRING.
rot_uki() {
        local keys; keys=$(sb_keys)
        VM_BOOT_KERNEL=kos vm_mkboot --keyring "$3" --output "$1.d" --uki "$1" \
                --cmdline "$VM_BOOT_APPEND" --security-version "$2" \
                --sign-key "$keys/db.key" --sign-cert "$keys/db.crt" >/dev/null
}

# rot_release NAME VERSION KEY [UKI]: release NAME of the node chain, signed
# by KEY alone, carrying UKI as its Boot Kernel; installed in img/.
rot_release() {
        local uki=()
        [ -z "${4:-}" ] || { "$KOS" component add img "$4" >/dev/null && uki=(--boot-kernel "$4"); }
        "$KOS" manifest create --name "$1" --version "$2" --kernel vmlinuz --initrd initrd --cmdline "$SLOTS_CMDLINE" \
                --component base=base.img --component runtime=runtime.img --component app=app1.img "${uki[@]}" -o "$1.json"
        "$KOS" manifest sign --key "$3" "$1.json" >/dev/null
        "$KOS" install img "$1.json" >/dev/null
}

rot_fixture() {
        local kd; kd=$(vm_kernel_dir)
        vm_dev_key && mv secret.pem k1.key && mv public.pem k1.pem
        "$KOS" keygen k2.key k2.pem >/dev/null
        mkdir ring-k1 ring-k1k2 ring-k2
        cp k1.pem ring-k1/ && cp k1.pem k2.pem ring-k1k2/ && cp k2.pem ring-k2/
        rot_uki uki-v1.efi 1 ring-k1
        rot_uki uki-v2.efi 2 ring-k1k2
        rot_uki uki-v3.efi 3 ring-k2
        cp "$kd"/boot/vmlinuz-* vmlinuz
        vm_cached initrd "$KOS" mkinitrd --kernel-dir "$kd" --keyring ring-k1k2 --output initrd >/dev/null
        vm_test_base base.img
        KEYRING_DIR=ring-k1k2 make_node_runtime_layer runtime
        "$KOS" component build --type erofs runtime runtime.img >/dev/null 2>&1
        make_node_app_layer app1 1 && "$KOS" component build --type squashfs app1 app1.img >/dev/null
        "$KOS" imagefs init img
        "$KOS" component add img vmlinuz initrd base.img runtime.img app1.img >/dev/null
        rot_release r1 1 k1.key uki-v2.efi
        activate r1
        "$KOS" image --force --imagefs img --imagefs-extra 160M --uki uki-v1.efi --data-size 64M disk.img >/dev/null 2>&1
        cp "$(sb_enrolled_vars)" vars.fd
}

# rot_imagefs_sync: what img/ holds and the ImageFS partition of disk.img
# (partition 2, after the ESP) does not, written into it, and img/active as
# its active list; the device's own files there (boot-state/) are kept.
rot_imagefs_sync() {
        local start size f
        read -r start size < <(partx -g -o START,SECTORS -n 2 disk.img)
        dd if=disk.img of=imagefs.part bs=512 skip="$start" count="$size" status=none
        # The device's last boot was cut off with the ImageFS's journal
        # perhaps not yet written back: replay it first (debugfs does not).
        local rc=0
        e2fsck -fy imagefs.part >e2fsck.log 2>&1 || rc=$?
        [ "$rc" -le 1 ] || fail "e2fsck of the ImageFS: exit $rc: $(tail -3 e2fsck.log)"
        for f in img/components/* img/manifests/*; do
                debugfs -R "stat /${f#img/}" imagefs.part 2>/dev/null | grep -q '^Inode:' || echo "write $f /${f#img/}"
        done >sync.cmds
        printf 'rm /active\nwrite img/active /active\n' >>sync.cmds
        debugfs -w -f sync.cmds imagefs.part >/dev/null 2>&1 || fail "debugfs cannot write the ImageFS"
        debugfs -R 'cat /active' imagefs.part 2>/dev/null | cmp -s - img/active || fail "the active list was not written"
        dd if=imagefs.part of=disk.img bs=512 seek="$start" conv=notrunc status=none
        rm -f imagefs.part
}

# rot_removable UKI: UKI as \EFI\BOOT\BOOTX64.EFI and the firmware's
# variables reset (no boot entry of ours): what someone with the disk and
# the setup menu can do to bring an old, validly signed UKI back.
rot_removable() {
        local start
        start=$(sfdisk -d disk.img | sed -n 's/^disk.img1 : start= *\([0-9]*\),.*/\1/p')
        mcopy -o -i "disk.img@@$((start * 512))" "$1" ::/EFI/BOOT/BOOTX64.EFI
        cp "$(sb_enrolled_vars)" vars.fd
}


test_manifest_key_rotates_from_k1_to_k2_through_three_boot_kernels_and_k1_releases_and_old_ukis_are_refused() {
        rot_fixture
        local SLOTS_TPM=1 id1 id2
        id1=$("$KOS" key-id k1.pem) id2=$("$KOS" key-id k2.pem)
        # Boot 1: the factory UKI v1 {K1} boots r1 (K1), which carries v2.
        slots_boot boot-1.log
        expect_in boot-1.log 'kos-boot .*Boot Kernel security version 1: PCR 14 extended' "UKI v1 did not run"
        expect_in boot-1.log "kos-boot .*manifest r1: valid, signed by .*($id1|k1)" "r1 was not valid under v1, signed by K1"
        expect_in boot-1.log 'kos-boot .*booting manifest r1' "v1 did not boot r1"
        expect_in boot-1.log 'kos-node .*Boot Kernel [0-9a-f]* \(security version 2\) written to slot B: the next boot tries it once' \
                "UKI v2 was not written to slot B"
        # The update: r2, signed by K2 alone, carrying v3; r1 stays as the fallback.
        rot_release r2 2 k2.key uki-v3.efi
        activate r2 r1
        rot_imagefs_sync
        # Boot 2: BootNext tries v2 {K1, K2}, which boots r2 (K2) and is blessed.
        slots_boot boot-2.log
        expect_in boot-2.log 'kos-boot .*Boot Kernel security version 2: PCR 14 extended' "UKI v2 did not run on trial"
        expect_in boot-2.log "kos-boot .*manifest r2: valid, signed by .*($id2|k2)" "r2 was not valid under v2, signed by K2"
        expect_in boot-2.log 'kos-boot .*booting manifest r2' "v2 did not boot r2"
        expect_in boot-2.log 'kos-node .*boot of manifest r2 marked good' "r2 was not marked good"
        expect_in boot-2.log 'kos-node .*Boot Kernel slot B blessed \(security version 2\)' "UKI v2 was not blessed"
        expect_in boot-2.log 'kos-node .*Boot Kernel floor raised from 0 to 2' "the Boot Kernel floor did not rise to 2"
        expect_in boot-2.log 'kos-node .*Boot Kernel [0-9a-f]* \(security version 3\) written to slot A: the next boot tries it once' \
                "UKI v3 was not written to slot A"
        # Boot 3: BootNext tries v3 {K2}, which boots r2 and is blessed.
        slots_boot boot-3.log
        expect_in boot-3.log 'kos-boot .*Boot Kernel security version 3: PCR 14 extended' "UKI v3 did not run on trial"
        expect_in boot-3.log 'kos-boot .*booting manifest r2' "v3 did not boot r2"
        expect_in boot-3.log 'kos-node .*Boot Kernel slot A blessed \(security version 3\)' "UKI v3 was not blessed"
        expect_in boot-3.log 'kos-node .*Boot Kernel floor raised from 2 to 3' "the Boot Kernel floor did not rise to 3"
        # r3, signed by K1 alone, put first in active.
        rot_release r3 3 k1.key
        activate r3 r2
        rot_imagefs_sync
        # Boot 4: the blessed v3 (BootOrder, no BootNext) refuses r3 and
        # boots r2; the System Kernel is not the subject: stop at kexec.
        local SLOTS_DONE='kos-boot .*booting manifest|no verified system|BOOT FAILED|System halted|Access Denied|Kernel panic'
        slots_boot boot-4.log
        expect_in boot-4.log 'kos-boot .*Boot Kernel security version 3: PCR 14 extended' "the blessed v3 did not boot by itself"
        expect_in boot-4.log 'kos-boot .*manifest r3: rejected: key-untrusted' "r3 (K1 only) was not refused as key-untrusted"
        expect_in boot-4.log 'kos-boot .*booting manifest r2' "v3 did not go on to r2"
        echo "  the K1 release refused by UKI v3 (boot 4):" >&2
        tr -d '\r' <boot-4.log | grep -aE 'kos-boot .*(security version|floor|manifest r[23]|booting)' | sed 's/^/  > /' >&2
        # Boots 5 and 6: v1, then v2, put back as the removable path with the
        # firmware's variables reset; both validly signed, both would trust
        # r3 (K1), and both refuse to run below the floor.
        SLOTS_DONE='may not run here|kos-boot .*booting manifest|no verified system|BOOT FAILED|System halted|Access Denied|Kernel panic'
        local v
        for v in 1 2; do
                rot_removable "uki-v$v.efi"
                slots_boot "boot-old-v$v.log"
                expect_in "boot-old-v$v.log" "kos-boot .*Boot Kernel security version $v is below the Boot Kernel floor 3: this UKI may not run here" \
                        "UKI v$v ran above the floor 3"
                ! grep -qa 'kos-boot .*booting manifest' "boot-old-v$v.log" || fail "UKI v$v booted a manifest"
        done
}
