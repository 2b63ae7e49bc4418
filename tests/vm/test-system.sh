# The full chain in QEMU: Boot Kernel, kexec, System Kernel initrd, OverlayFS
# root of three components (mmdebstrap base with dm-verity, an erofs runtime
# layer with dm-verity, a squashfs app layer), systemd to multi-user.target.
# The System Kernel's own rules are checked on a small root whose init is
# tests/vm/test-system-init (mini_fixture): no systemd where it is not the
# subject.

# shellcheck source=system-lib.sh
. "$ROOT/tests/vm/system-lib.sh"

test_full_chain_boots_systemd_on_the_layered_root_and_data_persists() {
        sys_fixture
        sys_boot
        expect_log 'kos-system .* component base: squashfs, dm-verity'
        expect_log 'kos-system .* component app: squashfs, re-hashed'
        expect_log 'kos-system .* root assembled from 3 layers of manifest sys'
        [ "$(report layer)" = "KOS-REPORT layer=app runtime=runtime" ] || fail "upper layer not on top: $(report layer)"
        [ "$(report manifest)" = "KOS-REPORT manifest=sys" ] || fail "boot.json: $(report manifest)"
        report multi-user | grep -q 'multi-user=active' || fail "multi-user.target not reached"
        [ "$(report etc-file)" = "KOS-REPORT etc-file=absent" ] || fail "first boot: $(report etc-file)"
        [ "$(report data-file)" = "KOS-REPORT data-file=absent" ] || fail "first boot: $(report data-file)"
        expect_log 'DataFS /dev/vda2 formatted at /data'
        # Reboot the same disk: /etc is clean again, /data kept its file.
        mv console.log first-boot.log
        KEEP_DISK=1 sys_boot
        [ "$(report etc-file)" = "KOS-REPORT etc-file=absent" ] || fail "after reboot: $(report etc-file)"
        [ "$(report data-file)" = "KOS-REPORT data-file=present" ] || fail "after reboot: $(report data-file)"
        expect_log 'DataFS /dev/vda2 mounted at /data'
}

# --- Rules of the System Kernel, on a small root without systemd ---

test_encrypted_component_mounts_with_its_key_and_stops_without_it() {
        mini_fixture
        mv initrd initrd-nokey # the fixture's: its key store is empty
        mkdir -p app/etc && echo app >app/etc/kos-layer-app
        "$KOS" component build --type squashfs --encrypt appkey --keystore keystore app app.img >/dev/null 2>&1
        # The 288 KiB LUKS2 header (docs/format.md, "Reproducible components"), not 16 MiB.
        [ "$(stat -c %s app.img)" -le $((288 * 1024 + 8192)) ] || fail "app.img is $(stat -c %s app.img) bytes"
        "$KOS" mkinitrd --kernel-dir "$(vm_kernel_dir)" --keyring keyring --keystore keystore --output initrd >/dev/null
        mini_manifest enc base=mini.img app=app.img
        mini_boot
        expect_log 'component app: squashfs, LUKS2, re-hashed'
        expect_log 'KOS-TEST-ROOT layers=2 etc-files=2' # the app layer's file is in the root
        # The same manifest with an initrd whose key store lacks the key.
        MINI_INITRD=initrd-nokey mini_manifest nokey base=mini.img app=app.img
        mini_boot
        expect_log "BOOT FAILED at step 'find key', component app: key id appkey: no such key"
        ! grep -qa 'KOS-TEST-SYSTEM' console.log || fail "the system started without its key"
}

# The runtime layer (make_runtime_layer, with its 16 KiB marker file
# /etc/kos-victim) of the small root: the erofs image RUNTIME_IMAGE, with
# dm-verity unless VERITY=0; manifest NAME of mini.img and it. The disk is made.
runtime_fixture() { # NAME RUNTIME_IMAGE
        mini_fixture
        make_runtime_layer runtime
        "$KOS" component build --type erofs $([ "${VERITY:-1}" = 0 ] || echo --verity) runtime "$2" >/dev/null 2>&1
        mini_manifest "$1" base=mini.img runtime="$2"
        imagefs_disk img disk.img "$IMAGEFS_UUID"
}

# Changes one byte in every copy of the runtime layer's marker file inside the
# disk image: the attacker's edit, made after the Boot Kernel's check.
tamper_disk() {
        local offsets; offsets=$(grep -obUa "KOS-VICTIM-DATA-0123456789abcdef" disk.img | cut -d: -f1)
        [ -n "$offsets" ] || fail "marker not found in disk.img"
        for o in $offsets; do printf 'X' | dd of=disk.img bs=1 seek="$o" conv=notrunc status=none; done
}

test_verity_component_altered_after_selection_gives_read_errors() {
        runtime_fixture sys runtime.img
        tamper_disk
        sys_boot_direct sys
        expect_log 'component runtime: erofs, dm-verity'
        expect_log 'KOS-TEST-ROOT victim-error=.*Input/output error'
        ! grep -qa 'KOS-TEST-ROOT victim=XOS' console.log || fail "modified content was returned"
}

test_component_without_verity_altered_after_selection_is_refused() {
        VERITY=0 runtime_fixture plain runtime-plain.img
        tamper_disk
        sys_boot_direct plain
        expect_log "BOOT FAILED at step 'verify component', component runtime: its file no longer hashes"
        ! grep -qa 'KOS-TEST-ROOT' console.log || fail "the altered component was mounted"
}

test_manifest_on_trial_that_never_comes_up_falls_back_by_itself() {
        mini_fixture
        # "new" has a broken kernel command line: its System Kernel fails and reboots.
        SYS_CMDLINE="$SYS_CMDLINE kos.rw=bogus" mini_manifest new base=mini.img
        mini_manifest sys base=mini.img # not on trial: the known-good fallback
        "$KOS" activate img new --tries 2
        local boot
        for boot in 1 2 3; do
                if [ "$boot" = 1 ]; then mini_boot; else KEEP_DISK=1 mini_boot; fi
                mv console.log "boot-$boot.log"
                grep -qa 'KOS-TEST-SYSTEM' "boot-$boot.log" && break
        done
        grep -qa 'manifest new: on trial, this boot recorded, 1 tries left' boot-1.log || fail "boot 1 did not count"
        grep -qa "BOOT FAILED at step 'R/W cache'" boot-1.log || fail "boot 1 did not fail as staged"
        grep -qa 'manifest new: on trial, this boot recorded, 0 tries left' boot-2.log || fail "boot 2 did not count"
        grep -qa 'manifest new: rejected: tries-exhausted' boot-3.log || fail "boot 3 did not skip new"
        grep -qa 'booting manifest sys' boot-3.log || fail "boot 3 did not fall back to sys"
        grep -qa 'kos-system .* root assembled from 1 layers of manifest sys' boot-3.log || fail "the fallback's root was not assembled"
        grep -qa 'KOS-TEST-SYSTEM' boot-3.log || fail "the fallback did not reach its init"
}

# --- Rules of the security review, on a small root without systemd ---

# The System Kernel acts on kos.* parameters only from the manifest's signed
# cmdline and the Boot Kernel's handoff: anything else stops the boot.
test_system_kernel_refuses_a_command_line_other_than_signed_cmdline_and_handoff() {
        mini_fixture
        mini_manifest mini base=mini.img
        imagefs_disk img disk.img "$IMAGEFS_UUID"
        sys_boot_direct mini "kos.init=/sbin/other"
        expect_log "BOOT FAILED at step 'check command line'.*\"kos.init=/sbin/other"
        ! grep -qa 'KOS-TEST-SYSTEM' console.log || fail "booted with a parameter nobody signed"
        mv console.log extra.log
        SIGNED="${SYS_CMDLINE/kos.fail_delay=1/kos.fail_delay=0}" sys_boot_direct mini
        expect_log "BOOT FAILED at step 'check command line'.*\"kos.fail_delay=0"
        ! grep -qa 'KOS-TEST-SYSTEM' console.log || fail "booted with a changed parameter"
        mv console.log changed.log
        sys_boot_direct mini # the control: exactly what the Boot Kernel passes
        grep -qa 'KOS-TEST-SYSTEM' console.log || fail "the exact signed cmdline and handoff did not boot"
}

# data_blocks in the superblock one less: a shorter device whose tree still
# leads to the signed root hash (one hash block). Changed after the Boot
# Kernel's check, so the System Kernel is started directly.
test_verity_superblock_changed_after_signing_is_not_mounted() {
        mini_fixture
        mkdir -p top/etc && echo top >top/etc/kos-layer-top && head -c 20000 /dev/urandom >top/etc/blob
        "$KOS" component build --type erofs --verity top top.img >/dev/null 2>&1
        mini_manifest mini base=mini.img top=top.img
        imagefs_disk img disk.img "$IMAGEFS_UUID"
        # The superblock: "verity\0\0", version 1, hash type 1; data_blocks is
        # the little-endian 64-bit field at byte 72.
        local at blocks i
        at=$(LC_ALL=C grep -obUaP 'verity\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00' disk.img | head -n 1 | cut -d: -f1)
        [ -n "$at" ] || fail "no verity superblock in disk.img"
        blocks=$(od -An -t u8 -j $((at + 72)) -N 8 disk.img | tr -d ' ')
        blocks=$((blocks - 1))
        for i in 0 1 2 3 4 5 6 7; do printf "\\x$(printf %02x $(((blocks >> (8 * i)) & 255)))"; done |
                dd of=disk.img bs=1 seek=$((at + 72)) conv=notrunc status=none
        sys_boot_direct mini
        expect_log "BOOT FAILED at step 'open dm-verity', component top: the dm-verity superblock does not match the signed manifest \(data blocks"
        ! grep -qaE 'component top: .*mounted' console.log || fail "the component was mounted"
}

# The format allows 64 components with 64-character names: such a manifest
# boots, every layer in the overlay and under /run/kos/layers.
test_manifest_of_64_components_with_64_character_names_boots() {
        mini_fixture
        local i prefix comps=()
        prefix=$(printf 'n%.0s' $(seq 60))
        comps+=("${prefix}0000=mini.img")
        for i in $(seq 1 62); do
                mkdir -p "l$i/etc" && echo "$i" >"l$i/etc/kos-layer-$i"
                mksquashfs "l$i" "l$i.img" -quiet -noappend >/dev/null
                comps+=("$(printf '%s%04d' "$prefix" "$i")=l$i.img")
        done
        mkdir -p l63/etc && echo 63 >l63/etc/kos-layer-63
        "$KOS" component build --type erofs --verity l63 l63.img >/dev/null 2>&1
        comps+=("${prefix}0063=l63.img")
        mini_manifest big "${comps[@]}"
        mini_boot
        expect_log "kos-system .* component ${prefix}0063: erofs, dm-verity"
        expect_log 'kos-system .* root assembled from 64 layers of manifest big'
        expect_log 'KOS-TEST-ROOT layers=64 etc-files=64'
        expect_log "KOS-TEST-ROOT boot.json \"uuid\": \"$IMAGEFS_UUID\""
        expect_log 'KOS-TEST-ROOT boot.json "partuuid": "[0-9a-f-]{36}"'
}

# The System Kernel mounts the very ImageFS the Boot Kernel verified: a second
# device with its filesystem UUID is refused, and so is the right UUID on a
# partition other than the one handed on.
test_system_kernel_mounts_only_the_imagefs_device_the_boot_kernel_named() {
        mini_fixture
        mini_manifest mini base=mini.img
        imagefs_disk img disk.img "$IMAGEFS_UUID"
        cp disk.img clone.img
        sys_boot_direct mini "" -drive file=clone.img,if=virtio,format=raw
        expect_log "2 devices match UUID=$IMAGEFS_UUID: /dev/vda1 .*, /dev/vdb1 .*; refusing to guess"
        expect_log "BOOT FAILED at step 'find ImageFS': more than one device has UUID $IMAGEFS_UUID"
        mv console.log clone.log
        sfdisk -q --part-uuid disk.img 1 "$(cat /proc/sys/kernel/random/uuid)"
        HANDOFF_PARTUUID=$(sfdisk --part-uuid clone.img 1 | tr 'A-Z' 'a-z') sys_boot_direct mini
        expect_log "BOOT FAILED at step 'find ImageFS': /dev/vda1 has UUID $IMAGEFS_UUID but partition UUID .*: not the device the Boot Kernel verified"
        ! grep -qa 'KOS-TEST-SYSTEM' console.log || fail "booted from another device"
}
