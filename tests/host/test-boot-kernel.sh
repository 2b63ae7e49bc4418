# The Boot Kernel UKI a release carries (issue 21, item 1): kos mkboot
# --security-version, kos manifest create --boot-kernel, and its journey in
# a bundle. A UKI of a stand-in kernel (random bytes): objcopy and the
# command line do not care, and no VM boots here.

# bk_uki OUT [--security-version N]: an unsigned UKI of the fixture's vmlinuz.
bk_uki() {
        local out=$1; shift
        "$KOS" mkboot --init "$ROOT/$BUILD/kos-boot-init" --kernel vmlinuz --keyring keyring --output "$out.d" \
                --uki "$out" --cmdline "console=ttyS0 panic=-1" "$@" >/dev/null
}

test_mkboot_writes_the_bk_security_version_last_on_the_uki_command_line() {
        fixture
        bk_uki v5.efi --security-version 5 || fail "mkboot failed"
        objcopy -O binary --only-section=.cmdline v5.efi cmdline
        [ "$(cat cmdline)" = "console=ttyS0 panic=-1 kos.bk_security_version=5" ] || fail ".cmdline: $(cat cmdline)"
        bk_uki plain.efi
        objcopy -O binary --only-section=.cmdline plain.efi cmdline
        [ "$(cat cmdline)" = "console=ttyS0 panic=-1" ] || fail "without --security-version: $(cat cmdline)"
        local bad rc
        for bad in 01 -1 4294967296 x ""; do
                rc=0; bk_uki bad.efi --security-version "$bad" 2>/dev/null || rc=$?
                [ "$rc" = 2 ] || fail "--security-version '$bad': exit $rc, wanted 2"
        done
        rc=0; "$KOS" mkboot --init "$ROOT/$BUILD/kos-boot-init" --kernel vmlinuz --keyring keyring --output x.d \
                --uki x.efi --cmdline "kos.bk_security_version=9" 2>err >/dev/null || rc=$?
        [ "$rc" = 2 ] && grep -q -- '--security-version' err || fail "a version in --cmdline: exit $rc: $(cat err)"
        rc=0; "$KOS" mkboot --init "$ROOT/$BUILD/kos-boot-init" --kernel vmlinuz --keyring keyring --output y.d \
                --security-version 3 2>/dev/null >/dev/null || rc=$?
        [ "$rc" = 2 ] || fail "--security-version without --uki: exit $rc, wanted 2"
}

test_manifest_boot_kernel_takes_its_security_version_from_the_uki() {
        fixture
        bk_uki v7.efi --security-version 7
        "$KOS" manifest create --name b --version 2 --kernel vmlinuz --initrd initrd --component base=base.img \
                --boot-kernel v7.efi -o b.json || fail "manifest create failed"
        [ "$(jq -r .boot_kernel.sha256 b.json)" = "$(sha v7.efi)" ] || fail "sha256: $(jq -c .boot_kernel b.json)"
        [ "$(jq -r .boot_kernel.size b.json)" = "$(stat -c %s v7.efi)" ] || fail "size: $(jq -c .boot_kernel b.json)"
        [ "$(jq -r .boot_kernel.bk_security_version b.json)" = 7 ] || fail "version: $(jq -c .boot_kernel b.json)"
        "$KOS" manifest show b.json | grep -q 'Boot Kernel security version 7' || fail "$("$KOS" manifest show b.json)"
}

# A UKI without a version would measure nothing into PCR 14 and check no
# floor: a release cannot carry one.
test_manifest_refuses_a_boot_kernel_without_a_security_version_or_not_a_uki() {
        fixture
        bk_uki plain.efi
        local rc=0
        "$KOS" manifest create --name b --version 2 --kernel vmlinuz --initrd initrd --component base=base.img \
                --boot-kernel plain.efi -o b.json 2>err || rc=$?
        [ "$rc" = 2 ] && grep -q 'no kos.bk_security_version' err || fail "exit $rc: $(cat err)"
        [ ! -e b.json ] || fail "a manifest was written"
        rc=0
        "$KOS" manifest create --name b --version 2 --kernel vmlinuz --initrd initrd --component base=base.img \
                --boot-kernel initrd -o b.json 2>err || rc=$?
        [ "$rc" = 2 ] && grep -q 'not a UKI' err || fail "exit $rc: $(cat err)"
}

# The UKI is a blob of the release like any other: a bundle carries it, the
# install checks its hash, and selection boots the release without reading it.
# bk_bundle: release a active; b.kosb, release b carrying UKI v7.efi (security version 7).
bk_bundle() {
        fixture; manifest a; "$KOS" activate img a
        bk_uki v7.efi --security-version 7
        "$KOS" manifest create --name b --version 2 --kernel vmlinuz --initrd initrd --component base=base.img \
                --component app=app.img --boot-kernel v7.efi -o b.json
        "$KOS" manifest sign --key secret.pem b.json >/dev/null
        "$KOS" bundle create -o b.kosb b.json v7.efi >/dev/null || fail "bundle create refused the UKI"
}

test_boot_kernel_uki_travels_in_a_bundle_and_selection_does_not_read_it() {
        bk_bundle
        "$KOS" bundle install --keyring keyring img b.kosb >out || fail "install failed: $(cat out)"
        cmp "img/components/$(sha v7.efi)" v7.efi || fail "the UKI is not in the ImageFS"
        expect_selected b
        # Selection hashes the kernel, initrd and components only.
        rm "img/components/$(sha v7.efi)"
        expect_selected b
}

test_bundle_with_a_flipped_byte_in_the_boot_kernel_uki_changes_nothing() {
        bk_bundle
        flip_byte b.kosb $(( $(stat -c %s b.kosb) - 100000 ))
        local rc=0; "$KOS" bundle install --keyring keyring img b.kosb 2>err || rc=$?
        [ "$rc" = 1 ] && grep -q 'component-hash-mismatch' err || fail "exit $rc: $(cat err)"
        [ ! -e "img/components/$(sha v7.efi)" ] || fail "the corrupt UKI is in the ImageFS"
}

# Node Manager reaches EFI variables and the ESP: Debian's kernel has
# efivarfs, vfat and the nls tables as modules, so the System Kernel's
# initrd brings them (loaded there, they stay for the running system).
test_system_initrd_carries_efivarfs_vfat_and_nls_for_the_esp_slots() {
        local kd; kd=$("$ROOT/scripts/fetch-kernel.sh")
        "$KOS" keygen s.pem p.pem >/dev/null && mkdir keyring && cp p.pem keyring/vendor.pem
        "$KOS" mkinitrd --init "$ROOT/$BUILD/kos-system-init" --kernel-dir "$kd" --keyring keyring --output initrd >/dev/null
        zstd -dc initrd | cpio -i --quiet --to-stdout etc/kos/modules >order
        local m
        for m in fs/efivarfs/efivarfs.ko fs/fat/vfat.ko fs/fat/fat.ko fs/nls/nls_cp437.ko fs/nls/nls_ascii.ko fs/nls/nls_utf8.ko; do
                grep -q "^kernel/$m:" order || fail "$m is not in the initrd: $(cat order)"
        done
}

# kos image lays out the first Boot Kernel slot beside the removable path;
# slot B stays empty until a release brings a UKI.
test_image_puts_the_uki_in_boot_kernel_slot_a_and_the_removable_path() {
        fixture; manifest a; "$KOS" activate img a
        bk_uki v1.efi --security-version 1
        "$KOS" image --imagefs img --uki v1.efi --data-size 40M disk.img >/dev/null 2>err || fail "kos image: $(cat err)"
        local start size
        start=$(sfdisk -d disk.img | sed -n 's/^disk.img1 : start= *\([0-9]*\),.*/\1/p')
        size=$(sfdisk -d disk.img | sed -n 's/^disk.img1 : .*size= *\([0-9]*\),.*/\1/p')
        dd if=disk.img of=esp.part bs=512 skip="$start" count="$size" status=none
        mcopy -i esp.part ::/EFI/KOS/SLOT-A.EFI a.efi && cmp a.efi v1.efi || fail "slot A is not the UKI"
        mcopy -i esp.part ::/EFI/BOOT/BOOTX64.EFI boot.efi && cmp boot.efi v1.efi || fail "BOOTX64.EFI is not the UKI"
        ! mcopy -i esp.part ::/EFI/KOS/SLOT-B.EFI b.efi 2>/dev/null || fail "slot B is not empty"
}

# The Boot Kernel floor (docs/tpm.md): a second counter, NV 0x01004b42, with
# the manifest floor's definition and policy, against swtpm. It is apart
# from the manifest floor, never goes down, comes back above its highest
# value when root deletes it, and an index that is not exactly the counter
# (here: the manifest floor's first definition, which the Boot Kernel floor
# never had) is tampering and never replaced.

test_bk_floor_is_a_second_counter_that_never_goes_down_and_fails_closed_when_tampered() {
        swtpm_host_start tpm
        [ "$(host_tpm "$KOS" tpm bk-provision)" = "defined the counter; first increment: floor 0" ] || fail "provision"
        host_tpm "$KOS" tpm bk-raise 3
        [ "$(host_tpm "$KOS" tpm bk-floor)" = 3 ] || fail "bk-floor is not 3"
        host_tpm "$KOS" tpm provision >/dev/null
        [ "$(host_tpm "$KOS" tpm floor)" = 0 ] || fail "the manifest floor moved with the Boot Kernel floor"
        local rc=0; host_tpm "$KOS" tpm bk-raise 2 2>err || rc=$?
        [ "$rc" = 1 ] && grep -q 'already higher' err || fail "bk-raise 2 after 3: exit $rc $(cat err)"
        host_tpm2 tpm2_nvundefine 0x01004b42 -C o
        [ "$(host_tpm "$KOS" tpm bk-provision)" = "defined the counter; first increment: floor 4" ] ||
                fail "deleted: not back above 3"
        host_tpm2 tpm2_nvundefine 0x01004b42 -C o
        host_tpm2 tpm2_nvdefine 0x01004b42 -C o -s 8 -a "nt=counter|authread|authwrite|no_da" >/dev/null
        rc=0; host_tpm "$KOS" tpm bk-provision 2>err || rc=$?
        [ "$rc" != 0 ] && grep -q 'NV 0x01004b42 is not the KOS floor counter.*tampering' err || fail "exit $rc: $(cat err)"
        rc=0; host_tpm "$KOS" tpm bk-floor 2>err || rc=$?
        [ "$rc" != 0 ] || fail "a foreign index was read as the floor: exit $rc"
}

# Kill points (the test build's fault points, lib/boot/util.h) in the slot
# write: killed after the temporary file is written, after its fsync, after
# the rename. Each leaves the slot holding the whole old UKI or the whole
# new one (never a torn file), slot A untouched, and the write run again
# completes and leaves no temporary file. (On this host's file system: vfat
# is not in its kernel; docs/trust-chain.md argues vfat step by step.)
test_bk_slot_write_killed_at_each_point_leaves_the_old_or_the_new_uki_and_completes_when_run_again() {
        mkdir -p esp/EFI/KOS
        head -c 300000 /dev/urandom >old.efi
        head -c 400000 /dev/urandom >new.efi
        head -c 100000 /dev/urandom >a.efi && cp a.efi esp/EFI/KOS/SLOT-A.EFI
        local n rc want
        for n in 1 2 3; do
                cp old.efi esp/EFI/KOS/SLOT-B.EFI
                rc=0; KOS_FAULT_AT=$n "$KOS_FAULTS" bk-slots write --esp esp B new.efi 2>/dev/null || rc=$?
                [ "$rc" = 137 ] || fail "point $n: exit $rc, not killed"
                want=old.efi; [ "$n" = 3 ] && want=new.efi # after the rename: the new one
                cmp -s esp/EFI/KOS/SLOT-B.EFI "$want" || fail "point $n: slot B is not $want"
                cmp -s esp/EFI/KOS/SLOT-A.EFI a.efi || fail "point $n: slot A changed"
                "$KOS" bk-slots write --esp esp B new.efi || fail "point $n: the write does not complete"
                cmp -s esp/EFI/KOS/SLOT-B.EFI new.efi || fail "point $n: slot B is not the new UKI"
                [ ! -e esp/EFI/KOS/SLOT-B.TMP ] || fail "point $n: the temporary file is left"
        done
        rc=0; KOS_FAULT_AT=4 "$KOS_FAULTS" bk-slots write --esp esp B old.efi || rc=$?
        [ "$rc" = 0 ] && cmp -s esp/EFI/KOS/SLOT-B.EFI old.efi || fail "more than 3 fault points in the write: exit $rc"
        "$KOS" bk-slots show --esp esp >show
        grep -qE "^A idle +- $(sha a.efi)$" show && grep -qE "^B idle +- $(sha old.efi)$" show || fail "$(cat show)"
}

# Kill points in the slot switch (the trial: SLOT-B.TRIED, its boot entry,
# BootNext) and in the blessing (the entry, BootOrder), on a directory
# standing in for efivarfs (a variable: 4 bytes of attributes, then its
# data). Killed anywhere, BootOrder still names the good slot first and
# BootNext names nothing or the whole trial: the next boot starts a UKI
# that booted before, or the one on trial once; run again, each step
# completes.
BK_GUID=8be4df61-93ca-11d2-aa0d-00e098032b8c
BK_PART=1:2048:69632:c12a7328-f81f-11d2-ba4b-00a0c93ec93b
bk_var() { od -An -tx1 "efivars/$1-$BK_GUID" 2>/dev/null | tr -d ' \n'; }
bk_set() { printf "\\x07\\x00\\x00\\x00$2" >"efivars/$1-$BK_GUID"; }

# bk_slots_b_ready: slot A blessed and running, slot B holding a new UKI.
bk_slots_b_ready() {
        mkdir -p esp/EFI/KOS efivars
        head -c 100000 /dev/urandom >esp/EFI/KOS/SLOT-A.EFI
        head -c 100000 /dev/urandom >esp/EFI/KOS/SLOT-B.EFI
        bk_set BootOrder '\x01\x00'
        "$KOS" bk-slots bless --esp esp --efivars efivars --esp-partition "$BK_PART" A || fail "bless A"
        bk_set BootCurrent '\x0a\x4b'
}

test_bk_slot_trial_and_blessing_killed_at_each_point_keep_a_slot_that_booted_first() {
        bk_slots_b_ready
        [ "$(bk_var BootOrder)" = 070000000a4b0100 ] || fail "BootOrder after blessing A: $(bk_var BootOrder)"
        local n rc
        for n in 1 2 3 4 5; do
                rm -f esp/EFI/KOS/SLOT-B.TRIED "efivars/Boot4B0B-$BK_GUID" "efivars/BootNext-$BK_GUID"
                rc=0; KOS_FAULT_AT=$n "$KOS_FAULTS" bk-slots trial --esp esp --efivars efivars --esp-partition "$BK_PART" B \
                        2>/dev/null || rc=$?
                [ "$rc" = 137 ] || fail "trial point $n: exit $rc, not killed"
                [ "$(bk_var BootOrder)" = 070000000a4b0100 ] || fail "trial point $n: BootOrder $(bk_var BootOrder)"
                case $(bk_var BootNext) in "" | 070000000b4b) ;; *) fail "trial point $n: BootNext $(bk_var BootNext)" ;; esac
                "$KOS" bk-slots show --esp esp --efivars efivars | grep -qE '^A good ' || fail "trial point $n: A not good"
        done
        "$KOS" bk-slots trial --esp esp --efivars efivars --esp-partition "$BK_PART" B || fail "the trial does not complete"
        [ "$(bk_var BootNext)" = 070000000b4b ] || fail "BootNext: $(bk_var BootNext)"
        "$KOS" bk-slots show --esp esp --efivars efivars | grep -qE '^B trial ' || fail "B is not on trial"
        # The firmware took BootNext and started slot B; its boot was marked good.
        rm "efivars/BootNext-$BK_GUID" && bk_set BootCurrent '\x0b\x4b'
        rc=0; KOS_FAULT_AT=1 "$KOS_FAULTS" bk-slots bless --esp esp --efivars efivars --esp-partition "$BK_PART" B \
                2>/dev/null || rc=$?
        [ "$rc" = 137 ] || fail "bless point 1: exit $rc, not killed"
        [ "$(bk_var BootOrder)" = 070000000a4b0100 ] || fail "bless point 1: BootOrder $(bk_var BootOrder)"
        "$KOS" bk-slots bless --esp esp --efivars efivars --esp-partition "$BK_PART" B || fail "the blessing does not complete"
        [ "$(bk_var BootOrder)" = 070000000b4b0a4b0100 ] || fail "BootOrder after blessing B: $(bk_var BootOrder)"
        "$KOS" bk-slots show --esp esp --efivars efivars | grep -qE '^B good .* booted$' || fail "B is not good"
}

# A slot update cut short in the trial or the blessing is done again, never
# left "bad" untried (issue 21, item 5; the VM test
# vm:power_cut_in_each_phase_of_a_boot_kernel_slot_update_..., make
# check-long, cuts the same points on a real ESP and firmware).

# Killed at each point of the trial, slot B is on trial (BootNext survived:
# the next power-on tries it) or idle (Node Manager, on slot A, starts its
# trial again).
test_bk_slot_trial_cut_short_leaves_the_slot_on_trial_or_idle_never_bad() {
        bk_slots_b_ready
        local n rc want
        for n in 1 2 3 4 5; do
                rm -f esp/EFI/KOS/SLOT-B.TRIED "efivars/Boot4B0B-$BK_GUID" "efivars/BootNext-$BK_GUID"
                rc=0; KOS_FAULT_AT=$n "$KOS_FAULTS" bk-slots trial --esp esp --efivars efivars --esp-partition "$BK_PART" B \
                        2>/dev/null || rc=$?
                [ "$rc" = 137 ] || fail "trial point $n: exit $rc, not killed"
                want=idle; [ -n "$(bk_var BootNext)" ] && want=trial
                "$KOS" bk-slots show --esp esp --efivars efivars >show
                grep -qE "^B $want " show || fail "trial point $n: slot B is not $want: $(grep '^B' show)"
        done
}

# Killed in the blessing once B's boot was marked good, the next power-on
# (slot A: BootOrder was not rewritten) finds B idle, and its trial starts
# again.
test_bk_slot_blessing_cut_short_leaves_the_slot_idle_to_be_tried_again() {
        bk_slots_b_ready
        "$KOS" bk-slots trial --esp esp --efivars efivars --esp-partition "$BK_PART" B || fail "the trial does not start"
        # The firmware took BootNext and started slot B; its boot was marked good.
        rm "efivars/BootNext-$BK_GUID" && bk_set BootCurrent '\x0b\x4b'
        local rc=0
        KOS_FAULT_AT=1 "$KOS_FAULTS" bk-slots bless --esp esp --efivars efivars --esp-partition "$BK_PART" B 2>/dev/null || rc=$?
        [ "$rc" = 137 ] || fail "bless point 1: exit $rc, not killed"
        [ "$(bk_var BootOrder)" = 070000000a4b0100 ] || fail "bless point 1: BootOrder $(bk_var BootOrder)"
        # The next power-on follows BootOrder to slot A.
        bk_set BootCurrent '\x0a\x4b'
        "$KOS" bk-slots show --esp esp --efivars efivars >show
        grep -qE '^B idle ' show || fail "after the blessing's cut, slot B is not idle: $(grep '^B' show)"
        "$KOS" bk-slots trial --esp esp --efivars efivars --esp-partition "$BK_PART" B || fail "the second trial does not start"
        [ "$(bk_var BootNext)" = 070000000b4b ] || fail "BootNext after the second trial: $(bk_var BootNext)"
}
