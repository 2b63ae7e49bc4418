# Node Manager in the full chain: staged bundles, hold, and the status a
# fallback reports. The root is the mmdebstrap base, a runtime layer carrying
# Node Manager and its units, and a demo app layer.

# shellcheck source=system-lib.sh
. "$ROOT/tests/vm/system-lib.sh"

NODE_CMDLINE="console=ttyS0 loglevel=4 panic=-1 kos.fail_delay=1 kos.settle=3"

# node_manifest NAME APP_IMAGE [EXTRA CMDLINE]: writes and signs NAME.json.
node_manifest() {
        "$KOS" manifest create --name "$1" --version "${VERSION:-1}" --kernel vmlinuz --initrd initrd \
                --cmdline "$NODE_CMDLINE${3:+ $3}" --component base=base.img --component runtime=runtime.img \
                --component "app=$2" -o "$1.json"
        "$KOS" manifest sign --key secret.pem "$1.json" >/dev/null
}

node_fixture() {
        local kd; kd=$(vm_kernel_dir)
        "$KOS" keygen secret.pem public.pem >/dev/null
        mkdir keyring && cp public.pem keyring/dev.pem
        cp "$kd"/boot/vmlinuz-* vmlinuz
        "$KOS" mkboot --kernel-dir "$kd" --keyring keyring --output bootk >/dev/null
        "$KOS" mkinitrd --kernel-dir "$kd" --keyring keyring --output initrd >/dev/null
        cp "$(sys_base_image)" base.img && cp "$VM_CACHE/base.img.meta" base.img.meta
        make_node_runtime_layer runtime && "$KOS" component build --type erofs runtime runtime.img >/dev/null 2>&1
        make_node_app_layer app1 1 && "$KOS" component build --type squashfs app1 app1.img >/dev/null
        make_node_app_layer app2 2 && "$KOS" component build --type squashfs app2 app2.img >/dev/null
        "$KOS" imagefs init img
        "$KOS" component add img vmlinuz initrd base.img runtime.img app1.img >/dev/null
        node_manifest v1 app1.img "${V1_EXTRA:-}"
        "$KOS" install img v1.json >/dev/null
        activate v1
        IMAGEFS_UUID=$(cat /proc/sys/kernel/random/uuid)
        mkdir -p data/kos/inbox
}

# The disk: the ImageFS, then a DataFS made from data/ (so a bundle can be staged).
node_disk() {
        IMAGEFS_EXTRA_MIB=${IMAGEFS_EXTRA_MIB:-64} imagefs_disk img disk.img "$IMAGEFS_UUID"
        local data_mib=$(( $(du -sm data | cut -f1) + 48 ))
        mkfs.ext4 -q -F -L KOS-DATA -d data data.img "${data_mib}M"
        local size; size=$(stat -c %s disk.img)
        truncate -s $((size + (data_mib << 20) + (1 << 20))) disk.img
        # Append a partition after the ImageFS (sfdisk keeps the first).
        local start=$(( (size >> 9) ))
        echo "start=$start, size=$((data_mib * 2048)), type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=\"KOS-DATA\"" |
                sfdisk -q --append disk.img
        dd if=data.img of=disk.img bs=512 seek="$start" conv=notrunc,sparse status=none
}

NODE_DONE='marked good|KOS-STATUS|BOOT FAILED|reboot: Restarting|reboot: Power down|System halted'

node_boot() { # LOG (EXTRA_DRIVE=FILE attaches a second disk)
        local extra=()
        [ -n "${EXTRA_DRIVE:-}" ] && extra=(-drive "file=$EXTRA_DRIVE,if=virtio,format=raw")
        vm_run "$1" "${VM_TIMEOUT:-240}" "${DONE_RE:-$NODE_DONE}" -kernel bootk/vmlinuz -initrd bootk/initramfs.img \
                -append "console=ttyS0 panic=-1 loglevel=4" -drive file=disk.img,if=virtio,format=raw "${extra[@]}" || true
        sleep 1
        grep -aE 'kos-boot .*(manifest|booting)|kos-node|KOS-APP|KOS-STATUS|KOS-TEST|BOOT FAILED' "$1" | sed 's/^/  | /' >&2
}

test_node_manager_installs_a_staged_bundle_reboots_into_it_and_marks_it_good() {
        node_fixture
        VERSION=2 node_manifest v2 app2.img
        "$KOS" bundle create -o data/kos/inbox/v2.kosb v2.json app2.img >/dev/null
        node_disk
        DONE_RE='reboot: Restarting|BOOT FAILED|System halted' node_boot boot-1.log
        grep -qa 'kos-node .*installed manifest v2 from v2.kosb' boot-1.log || fail "the bundle was not installed"
        grep -qa 'kos-node .*rebooting: to boot the new manifest' boot-1.log || fail "no reboot after the install"
        DONE_RE='marked good|BOOT FAILED|System halted' node_boot boot-2.log
        grep -qa 'manifest v2: on trial, this boot recorded, 2 tries left' boot-2.log || fail "v2 not booted on trial"
        grep -qa 'KOS-APP started version 2' boot-2.log || fail "the new app did not start"
        grep -qa 'kos-node .*boot of manifest v2 marked good' boot-2.log || fail "the boot was not marked good"
}

test_kos_hold_keeps_the_app_stopped_until_start_app() {
        V1_EXTRA=kos.hold node_fixture
        node_disk
        DONE_RE='marked good|BOOT FAILED|System halted' node_boot boot.log
        grep -qa 'kos-node .*kos.hold: the app waits for start-app' boot.log || fail "no hold"
        local held started
        held=$(grep -an 'KOS-TEST releasing the hold' boot.log | head -1 | cut -d: -f1)
        started=$(grep -an 'KOS-APP started version 1' boot.log | head -1 | cut -d: -f1)
        [ -n "$held" ] && [ -n "$started" ] || fail "the app never started after start-app"
        [ "$started" -gt "$held" ] || fail "the app started before start-app was called"
        grep -qa 'KOS-STATUS .*"state": "holding"' boot.log || fail "status did not say holding"
        # The API's socket is open to all, its mutating methods to root only.
        grep -qa 'KOS-TEST non-root start-app: .*PermissionDenied' boot.log || fail "start-app as nobody was not refused"
}

test_bundle_on_a_kos_update_drive_is_installed_once_and_booted() {
        node_fixture
        VERSION=2 node_manifest v2 app2.img
        mkdir usb && "$KOS" bundle create -o usb/v2.kosb v2.json app2.img >/dev/null
        mkfs.ext4 -q -F -L KOS-UPDATE -d usb usb.img 32M
        node_disk
        EXTRA_DRIVE=usb.img DONE_RE='reboot: Restarting|BOOT FAILED|System halted' node_boot boot-1.log
        grep -qa 'kos-node .*update drive /dev/vd[a-z]* found' boot-1.log || fail "the drive was not found"
        grep -qa 'kos-node .*installed manifest v2 from v2.kosb' boot-1.log || fail "the bundle was not installed"
        # The drive stays plugged in: the next boot runs v2, finds the same
        # bundle installed and active, and does not reboot again.
        EXTRA_DRIVE=usb.img DONE_RE='marked good|BOOT FAILED|System halted|reboot: Restarting' node_boot boot-2.log
        grep -qa 'KOS-APP started version 2' boot-2.log || fail "v2 did not start"
        grep -qa 'kos-node .*manifest v2 of v2.kosb is installed and active already' boot-2.log || fail "no no-op"
        grep -qa 'kos-node .*boot of manifest v2 marked good' boot-2.log || fail "v2 not marked good"
        ! grep -qa 'reboot: Restarting' boot-2.log || fail "rebooted again for the same bundle"
}

test_failed_update_falls_back_and_status_reports_it() {
        node_fixture
        # v2's System Kernel fails (broken kernel command line) every time.
        VERSION=2 node_manifest v2 app2.img kos.rw=bogus
        "$KOS" bundle create -o data/kos/inbox/v2.kosb v2.json app2.img >/dev/null
        node_disk
        local boot
        for boot in 1 2 3 4 5 6; do
                DONE_RE='KOS-STATUS|reboot: Restarting|System halted' node_boot "boot-$boot.log"
                grep -qa 'KOS-STATUS' "boot-$boot.log" && [ "$boot" -gt 1 ] && break
        done
        grep -qa 'manifest v2: rejected: tries-exhausted' "boot-$boot.log" || fail "no fallback by the Boot Kernel"
        grep -qa 'booting manifest v1' "boot-$boot.log" || fail "v1 was not booted"
        grep -qa 'KOS-STATUS .*"fallback": "v2 is first in active but v1 was booted: its tries were used up' "boot-$boot.log" ||
                fail "status does not report the fallback"
}

# "ls -l" of the ImageFS's directories inside disk.img, read with debugfs
# (nothing mounted).
imagefs_listing() {
        local start size
        start=$(sfdisk -J disk.img | jq '.partitiontable.partitions[0].start')
        size=$(sfdisk -J disk.img | jq '.partitiontable.partitions[0].size')
        dd if=disk.img of=p1.img bs=512 skip="$start" count="$size" status=none
        e2fsck -fy -E journal_only p1.img >/dev/null 2>&1 || true # replay what the guest committed
        for d in / /components /manifests /boot-state; do debugfs -R "ls -p $d" p1.img 2>/dev/null; done | cut -d/ -f2-6,8- 
        debugfs -R "cat /active" p1.img 2>/dev/null
}

test_bad_bundles_in_the_inbox_are_refused_and_change_nothing() {
        node_fixture
        "$KOS" keygen stranger.pem stranger.pub >/dev/null
        VERSION=2 node_manifest v2 app2.img
        "$KOS" manifest sign --key stranger.pem v2.json >/dev/null
        grep -v "$("$KOS" key-id public.pem)" v2.json.sig >s && mv s v2.json.sig # signed by the stranger only
        "$KOS" bundle create -o data/kos/inbox/1-untrusted.kosb v2.json app2.img >/dev/null
        VERSION=3 node_manifest v3 app2.img
        "$KOS" bundle create -o data/kos/inbox/2-flipped.kosb v3.json app2.img >/dev/null
        flip_byte data/kos/inbox/2-flipped.kosb 3000
        node_disk
        local before; before=$(imagefs_listing)
        DONE_RE='marked good|BOOT FAILED|System halted|reboot: Restarting' node_boot boot.log
        grep -qa 'bundle 1-untrusted.kosb refused: key-untrusted' boot.log || fail "untrusted bundle not refused"
        grep -qa 'bundle 2-flipped.kosb refused: component-hash-mismatch' boot.log || fail "flipped bundle not refused"
        grep -qa 'boot of manifest v1 marked good' boot.log || fail "v1 did not carry on"
        # Only v1's own boot state may have changed (marked good).
        local after; after=$(imagefs_listing)
        [ "$(grep -v '\.good' <<<"$after")" = "$(grep -v '\.good' <<<"$before")" ] ||
                fail "the ImageFS changed: $(diff <(echo "$before") <(echo "$after"))"
        grep -q "$(sha v1.json)\.good" <<<"$after" || fail "v1's boot state is not in the listing: $after"
}

test_hard_power_off_during_an_install_still_boots_and_the_install_completes() {
        node_fixture
        # A large new app layer, so that the install takes a while.
        head -c 200M /dev/urandom >app2/blob
        "$KOS" component build --type squashfs app2 app2.img >/dev/null
        VERSION=2 node_manifest v2 app2.img
        "$KOS" bundle create -o data/kos/inbox/v2.kosb v2.json app2.img >/dev/null
        IMAGEFS_EXTRA_MIB=400 node_disk
        # Pull the plug as soon as the install starts.
        DONE_RE='kos-node .*installing bundle' node_boot boot-1.log
        grep -qa 'installing bundle' boot-1.log || fail "the install did not start"
        ! grep -qa 'installed manifest v2' boot-1.log || fail "the install finished before the power cut"
        local boot
        for boot in 2 3 4; do
                DONE_RE='marked good|BOOT FAILED|System halted|reboot: Restarting' node_boot "boot-$boot.log"
                grep -qaE 'booting manifest v[12] ' "boot-$boot.log" || fail "boot $boot: nothing valid to boot"
                grep -qa 'boot of manifest v2 marked good' "boot-$boot.log" && break
        done
        grep -qa 'installed manifest v2 from v2.kosb' boot-2.log || fail "the install was not retried after the power cut"
        grep -qa 'boot of manifest v2 marked good' "boot-$boot.log" || fail "v2 never came up"
}
