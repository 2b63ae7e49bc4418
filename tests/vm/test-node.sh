# Node Manager in the full chain: staged bundles, hold, and the status a
# fallback reports. The root is the mmdebstrap base, a runtime layer carrying
# Node Manager and its units, and a demo app layer.

# shellcheck source=system-lib.sh
. "$ROOT/tests/vm/system-lib.sh"

NODE_CMDLINE="console=ttyS0 loglevel=4 panic=-1 kos.fail_delay=1 kos.settle=3"

# node_manifest NAME APP_IMAGE [EXTRA CMDLINE]: writes and signs NAME.json.
node_manifest() {
        "$KOS" manifest create --name "$1" --version "${VERSION:-1}" ${SECURITY:+--security-version "$SECURITY"} \
                --kernel vmlinuz --initrd initrd \
                --cmdline "$NODE_CMDLINE${3:+ $3}" --component base=base.img --component runtime=runtime.img \
                --component "app=$2" -o "$1.json"
        "$KOS" manifest sign --key secret.pem "$1.json" >/dev/null
}

node_fixture() {
        local kd; kd=$(vm_kernel_dir)
        chain_keys_and_boot_kernel "$kd"
        vm_cached initrd "$KOS" mkinitrd --kernel-dir "$kd" --keyring keyring --output initrd >/dev/null
        vm_test_base base.img
        make_node_runtime_layer runtime && "$KOS" component build --type erofs runtime runtime.img >/dev/null 2>&1
        make_node_app_layer app1 1
        [ -z "${NODE_EXTRA:-}" ] || "$NODE_EXTRA" app1 # a test's own units in v1's app layer
        "$KOS" component build --type squashfs app1 app1.img >/dev/null
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
        vm_run_kernel "$1" "${VM_TIMEOUT:-240}" "${DONE_RE:-$NODE_DONE}" "${extra[@]}" || true
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

# The boot is the API boot (boot_api, below).
test_kos_hold_keeps_the_app_stopped_until_start_app() {
        vm_shared_boot api boot_api
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
        mkfifo usb/0-fifo.kosb # first in name order: must not hang Node Manager
        mkfs.ext4 -q -F -L KOS-UPDATE -d usb usb.img 32M
        node_disk
        EXTRA_DRIVE=usb.img DONE_RE='reboot: Restarting|BOOT FAILED|System halted' node_boot boot-1.log
        grep -qa 'kos-node .*update drive /dev/vd[a-z]* found' boot-1.log || fail "the drive was not found"
        grep -qa 'kos-node .*bundle 0-fifo.kosb refused: it is a FIFO' boot-1.log || fail "the FIFO on the drive was not refused"
        grep -qa 'kos-node .*installed manifest v2 from v2.kosb' boot-1.log || fail "the bundle was not installed"
        # The drive stays plugged in: the next boot runs v2, finds the same
        # bundle installed and active, and does not reboot again.
        EXTRA_DRIVE=usb.img DONE_RE='marked good|BOOT FAILED|System halted|reboot: Restarting' node_boot boot-2.log
        grep -qa 'KOS-APP started version 2' boot-2.log || fail "v2 did not start"
        grep -qa 'kos-node .*manifest v2 of v2.kosb is installed and active already' boot-2.log || fail "no no-op"
        grep -qa 'kos-node .*boot of manifest v2 marked good' boot-2.log || fail "v2 not marked good"
        ! grep -qa 'reboot: Restarting' boot-2.log || fail "rebooted again for the same bundle"
}

# The update is installed and put on trial with one try on the host, as a
# bundle install does on the device (test_node_manager_installs_a_staged_bundle_...,
# make check-long, and the chunked pull of test-node-oci.sh check that): the
# subject here is what happens when it fails.
# v2's app has a daemon, wanted by kos-app.target, that crashes a second
# after it starts: its start job is done and the target stays active (only
# the failed daemon shows it), so the test fails if Node Manager judges the
# app by the target alone.
test_update_whose_app_daemon_crashes_is_not_marked_good_falls_back_and_status_reports_it() {
        node_fixture
        cat >app2/etc/systemd/system/kos-test-crash.service <<'UNIT'
[Unit]
PartOf=kos-app.target

[Service]
ExecStart=/bin/sh -c 'echo "KOS-TEST app daemon up" >/dev/console; sleep 1; exit 3'

[Install]
WantedBy=kos-app.target
UNIT
        ln -s ../kos-test-crash.service app2/etc/systemd/system/kos-app.target.wants/
        rm app2.img && "$KOS" component build --type squashfs app2 app2.img >/dev/null
        VERSION=2 node_manifest v2 app2.img
        "$KOS" component add img app2.img >/dev/null
        "$KOS" install img v2.json >/dev/null
        "$KOS" activate img v2 --tries 1
        node_disk
        DONE_RE='boot of manifest v2 marked good|reboot: Restarting|System halted' node_boot boot-1.log
        grep -qa 'manifest v2: on trial, this boot recorded, 0 tries left' boot-1.log || fail "v2 was not booted on trial"
        grep -qa 'KOS-TEST app daemon up' boot-1.log || fail "v2's app daemon did not start"
        grep -qa 'kos-node .*kos-test-crash.service is failed (failed, result exit-code) after 3 s: the boot is not marked good' boot-1.log ||
                fail "the crashed daemon was not seen"
        ! grep -qa 'kos-node .*boot of manifest v2 marked good' boot-1.log || fail "v2 was marked good"
        grep -qa 'kos-node .*rebooting: manifest on trial failed and has no tries left' boot-1.log || fail "no reboot"
        DONE_RE='KOS-STATUS|reboot: Restarting|System halted' node_boot boot-2.log
        grep -qa 'manifest v2: rejected: tries-exhausted' boot-2.log || fail "no fallback by the Boot Kernel"
        grep -qa 'booting manifest v1' boot-2.log || fail "v1 was not booted"
        grep -qa 'KOS-STATUS .*"fallback": "v2 is first in active but v1 was booted: its tries were used up' boot-2.log ||
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
        vm_shared_boot inbox boot_inbox
        grep -qa 'bundle 1-untrusted.kosb refused: key-untrusted' boot.log || fail "untrusted bundle not refused"
        grep -qa 'bundle 2-flipped.kosb refused: component-hash-mismatch' boot.log || fail "flipped bundle not refused"
        grep -qa 'boot of manifest v1 marked good' boot.log || fail "v1 did not carry on"
        # Only v1's own boot state may have changed: marked good, which
        # raised the floor to v1's security_version.
        [ "$(grep -v -e '\.good' -e 'rollback-floor' listing-after)" = "$(grep -v -e '\.good' -e 'rollback-floor' listing-before)" ] ||
                fail "the ImageFS changed: $(diff listing-before listing-after)"
        grep -q "$(sha v1.json)\.good" listing-after || fail "v1's boot state is not in the listing: $(cat listing-after)"
        debugfs -R 'cat /boot-state/rollback-floor' p1.img 2>/dev/null | grep -qx 2 || fail "the stored floor is not v1's 2"
}

test_hard_power_off_during_an_install_still_boots_and_the_install_completes() {
        node_fixture
        # A large new app layer, so that the install takes a while.
        head -c 64M /dev/urandom >app2/blob
        "$KOS" component build --type squashfs app2 app2.img >/dev/null
        VERSION=2 node_manifest v2 app2.img
        "$KOS" bundle create -o data/kos/inbox/v2.kosb v2.json app2.img >/dev/null
        IMAGEFS_EXTRA_MIB=160 node_disk
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

# --- Untrusted DataFS, update drives and local users (security review) ---

# extra_unit DIR NAME SCRIPT: a service in the app layer DIR, started with
# multi-user.target, running SCRIPT (sh) with its output on the console.
extra_unit() {
        mkdir -p "$1/etc/systemd/system/multi-user.target.wants" "$1/usr/local/bin"
        printf '#!/bin/sh\n%s\n' "$3" >"$1/usr/local/bin/$2"
        chmod 755 "$1/usr/local/bin/$2"
        cat >"$1/etc/systemd/system/$2.service" <<UNIT
[Unit]
After=kos-node-manager.service

[Service]
Type=oneshot
ExecStart=/usr/local/bin/$2
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
UNIT
        ln -s "../$2.service" "$1/etc/systemd/system/multi-user.target.wants/"
}

# Prints /data/kos/events and whether /etc/ld.so.preload exists, then KOS-TEST-DONE.
REPORT_EVENTS='sleep 8
[ -e /etc/ld.so.preload ] && echo "KOS-TEST preload=present" || echo "KOS-TEST preload=absent"
echo "KOS-TEST events-file=$(stat -c %F /data/kos/events 2>&1)"
sed "s/^/KOS-EVENTS /" /data/kos/events
echo KOS-TEST-DONE'
report_events_layer() { extra_unit "$1" kos-test-events "$REPORT_EVENTS"; }

# One boot (vm_shared_boot inbox) for the rules of what Node Manager finds
# in its inbox and DataFS. v1 (security_version 2) runs on a floor of 1; in
# the inbox: a bundle signed by an untrusted key, one with a flipped byte, one
# of an older release (security_version 0), a library and a non-bundle whose
# name holds a blank; the events log is a symbolic link to
# /etc/ld.so.preload. Once v1 is marked good, a unit prints the events and
# whether /etc/ld.so.preload exists. The ImageFS is listed before and after.
REPORT_EVENTS_WHEN_GOOD='until kos node status | grep -q "\"marked_good\": true"; do sleep 1; done
'"$REPORT_EVENTS"
boot_inbox() {
        SECURITY=2 NODE_EXTRA=report_events_when_good_layer node_fixture
        mkdir -p img/boot-state && echo 1 >img/boot-state/rollback-floor
        "$KOS" keygen stranger.pem stranger.pub >/dev/null
        VERSION=2 SECURITY=2 node_manifest v2 app2.img
        "$KOS" manifest sign --key stranger.pem v2.json >/dev/null
        grep -v "$("$KOS" key-id public.pem)" v2.json.sig >s && mv s v2.json.sig # signed by the stranger only
        "$KOS" bundle create -o data/kos/inbox/1-untrusted.kosb v2.json app2.img >/dev/null
        VERSION=3 SECURITY=2 node_manifest v3 app2.img
        "$KOS" bundle create -o data/kos/inbox/2-flipped.kosb v3.json app2.img >/dev/null
        flip_byte data/kos/inbox/2-flipped.kosb 3000
        VERSION=0 SECURITY=0 node_manifest old app2.img
        "$KOS" bundle create -o data/kos/inbox/old.kosb old.json app2.img >/dev/null
        # The attack: the events log points at /etc/ld.so.preload, a library
        # sits in the inbox, and a bundle's name puts its path on a line.
        ln -s /etc/ld.so.preload data/kos/events
        printf '#include <fcntl.h>\n#include <unistd.h>\n__attribute__((constructor)) static void pwn(void) {
int fd = open("/dev/console", O_WRONLY); if (fd >= 0) write(fd, "KOS-PWNED\\n", 10); }\n' >evil.c
        gcc -shared -fPIC -o data/kos/inbox/evil.so evil.c
        echo 'not a bundle' >'data/kos/inbox/evil.so x.kosb'
        node_disk
        imagefs_listing >listing-before
        DONE_RE='KOS-TEST-DONE|BOOT FAILED|System halted|reboot: Restarting' node_boot boot.log
        grep -a 'KOS-TEST\|KOS-EVENTS' boot.log | sed 's/^/  | /' >&2
        imagefs_listing >listing-after
}
report_events_when_good_layer() { extra_unit "$1" kos-test-events "$REPORT_EVENTS_WHEN_GOOD"; }

test_datafs_is_opened_beneath_without_symlinks_and_logged_names_are_escaped() {
        vm_shared_boot inbox boot_inbox
        ! grep -qa 'KOS-PWNED' boot.log || fail "the inbox library was preloaded into a root process"
        grep -qa 'KOS-TEST preload=absent' boot.log || fail "/etc/ld.so.preload was written"
        grep -qa 'events/ is a symbolic link\|events is a symbolic link, not a regular file: replacing it' boot.log ||
                fail "the symlinked events log was not noticed"
        grep -qa 'KOS-TEST events-file=regular file' boot.log || fail "no regular events log in /data/kos"
        grep -qaF 'KOS-EVENTS' boot.log || fail "the events log is empty"
        grep -qaF 'bundle evil.so\x20x.kosb refused' boot.log || fail "the inbox name was not escaped in the events log"
        ! grep -qaF 'evil.so x.kosb' boot.log || fail "an unescaped name reached a log"
}

# Once the boot-time installs are over: kos node install of a FIFO (refused)
# and of a bundle (installed, answered when done), then the events.
API_INSTALL='until kos node status | grep -q "\"state\": \"\(starting-app\|settling\|running\)\""; do sleep 1; done
echo "KOS-TEST api-fifo: $(kos node install /data/api/fifo.kosb 2>&1)"
echo "KOS-TEST api-install: $(kos node install /data/api/v2.kosb 2>&1 | tr -d "\n")"'
api_install_layer() { extra_unit "$1" kos-test-events "$API_INSTALL
$REPORT_EVENTS"; }

# One boot (vm_shared_boot api) for the rules of Node Manager's API and of
# what it finds at boot: v1 under kos.hold (kos-test-node.service, in every
# node app layer, releases the hold as root after trying as nobody); a FIFO
# in the inbox; an update drive formatted ext2; once the app runs, kos node
# install of a FIFO and of a bundle; then the events.
boot_api() {
        V1_EXTRA=kos.hold NODE_EXTRA=api_install_layer node_fixture
        mkfifo data/kos/inbox/a-fifo.kosb
        VERSION=2 node_manifest v2 app2.img
        mkdir data/api && mkfifo data/api/fifo.kosb
        "$KOS" bundle create -o data/api/v2.kosb v2.json app2.img >/dev/null
        # An update drive with a filesystem outside vfat, exfat, ext4.
        mkdir usb && "$KOS" bundle create -o usb/v2.kosb v2.json app2.img >/dev/null
        mkfs.ext2 -q -F -L KOS-UPDATE -d usb usb.img 32M
        node_disk
        EXTRA_DRIVE=usb.img DONE_RE='KOS-TEST-DONE|BOOT FAILED|System halted|reboot: Restarting' node_boot boot.log
        grep -a 'KOS-TEST\|KOS-EVENTS\|KOS-STATUS' boot.log | cut -c1-300 | sed 's/^/  | /' >&2
}

test_inbox_fifo_is_refused_without_hanging_and_foreign_update_drive_is_not_mounted() {
        vm_shared_boot api boot_api
        grep -qa 'KOS-EVENTS .*bundle a-fifo.kosb refused: it is a FIFO, not a regular file' boot.log ||
                fail "the FIFO was not refused with its reason in the events log"
        grep -qa 'KOS-EVENTS .*update drive /dev/vd[a-z]* refused: it holds ext2' boot.log ||
                fail "the ext2 drive was not refused with its reason in the events log"
        ! grep -qa 'installed manifest v2 from v2.kosb' boot.log || fail "a bundle from the ext2 drive was installed"
        grep -qa 'kos-node .*starting kos-app.target' boot.log || fail "Node Manager did not go on to the app"
        grep -qa 'KOS-TEST api-fifo: .*BundleRefused not a regular file' boot.log || fail "the API installed from a FIFO"
        grep -qa 'KOS-TEST api-install: {}' boot.log || fail "the API install did not answer success"
        grep -qa 'KOS-EVENTS .*installed manifest v2 from /data/api/v2.kosb through the API' boot.log ||
                fail "the API install is not in the events log"
        [ "$(grep -ac 'kos-node .*Node Manager started' boot.log)" = 1 ] || fail "Node Manager was restarted"
}

# A client that sends a Status call one byte every 1.5 s, reconnecting
# whenever the server closes the connection; says how far it got each time.
DRIP_C='#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
int main(void) {
        const char msg[] = "{\"method\":\"io.kos.Node.Status\"}";
        struct sockaddr_un sa = {.sun_family = AF_UNIX, .sun_path = "/run/kos/node.sock"};
        for (;;) {
                int fd = socket(AF_UNIX, SOCK_STREAM, 0);
                size_t i = 0;
                if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
                        for (; i < sizeof msg - 1 && send(fd, msg + i, 1, MSG_NOSIGNAL) == 1; i++)
                                usleep(1500000);
                printf("KOS-TEST drip cut after %zu bytes\n", i);
                fflush(stdout);
                close(fd);
                sleep(1);
        }
}'

slow_clients_layer() {
        printf '%s\n' "$DRIP_C" >drip.c
        mkdir -p "$1/usr/local/bin" && gcc -static -O2 -o "$1/usr/local/bin/kos-test-drip" drip.c
        extra_unit "$1" kos-test-slow 'for i in 1 2 3 4 5 6; do setpriv --reuid=65534 --regid=65534 --clear-groups kos-test-drip & done
sleep 3
for i in 1 2 3; do
        start=$(date +%s%N); timeout 20 kos node status >/dev/null; rc=$?; end=$(date +%s%N)
        echo "KOS-TEST status rc=$rc in $(( (end - start) / 1000000 )) ms"; sleep 2
done'
}

test_slow_unprivileged_clients_do_not_stall_node_manager() {
        V1_EXTRA=kos.settle=15 NODE_EXTRA=slow_clients_layer node_fixture
        node_disk
        DONE_RE='marked good|BOOT FAILED|System halted|reboot: Restarting' VM_TIMEOUT=200 node_boot boot.log
        grep -a 'KOS-TEST' boot.log | sed 's/^/  | /' >&2
        local answers; answers=$(grep -ac 'KOS-TEST status rc=0 in' boot.log)
        [ "$answers" -ge 1 ] || fail "root's kos node status did not answer while slow clients were connected"
        grep -ao 'KOS-TEST status rc=[0-9]* in [0-9]* ms' boot.log |
                awk '{ split($3, rc, "=") } rc[2] != 0 || $5 >= 3000 { bad = 1 } END { exit !bad }' &&
                fail "root's kos node status failed or took 3 s or more"
        grep -qa 'KOS-TEST drip cut after [0-9]* bytes' boot.log || fail "no slow client was cut off"
        grep -qa 'kos-node .*boot of manifest v1 marked good' boot.log || fail "the boot was not marked good"
        [ "$(grep -ac 'kos-node .*Node Manager started' boot.log)" = 1 ] || fail "Node Manager was restarted"
}

# Node Manager's watchdog at 5 s and its reads throttled to 2 MB/s: a 24 MiB
# bundle takes far longer to install than a watchdog period.
slow_install_layer() {
        mkdir -p "$1/etc/systemd/system/kos-node-manager.service.d"
        printf '[Service]\nWatchdogSec=5\nIOReadBandwidthMax=/dev/vda 2M\n' \
                >"$1/etc/systemd/system/kos-node-manager.service.d/test-slow.conf"
        extra_unit "$1" kos-test-progress 'for i in $(seq 40); do echo "KOS-PROGRESS $(kos node status | tr -d "\n ")"; sleep 1; done'
}

test_an_install_longer_than_the_watchdog_period_completes_without_a_restart() {
        NODE_EXTRA=slow_install_layer node_fixture
        head -c 24M /dev/urandom >app2/blob
        "$KOS" component build --type squashfs app2 app2.img >/dev/null
        VERSION=2 node_manifest v2 app2.img
        "$KOS" bundle create -o data/kos/inbox/v2.kosb v2.json app2.img >/dev/null
        IMAGEFS_EXTRA_MIB=100 node_disk
        DONE_RE='reboot: Restarting|BOOT FAILED|System halted' VM_TIMEOUT=240 node_boot boot.log
        grep -a 'KOS-PROGRESS' boot.log | cut -c1-300 | sed 's/^/  | /' >&2
        grep -a 'kos-node' boot.log | sed 's/^/  | /' >&2
        local started; started=$(grep -an 'kos-node .*installing bundle /data/kos/inbox/v2.kosb' boot.log | head -1 | cut -d: -f1)
        local finished; finished=$(grep -an 'kos-node .*installed manifest v2 from v2.kosb' boot.log | head -1 | cut -d: -f1)
        [ -n "$finished" ] || fail "the install did not complete"
        [ "$(grep -ac 'kos-node .*installing bundle /data/kos/inbox/v2.kosb' boot.log)" = 1 ] || fail "the install was started more than once"
        [ "$(grep -ac 'kos-node .*Node Manager started' boot.log)" = 1 ] || fail "Node Manager was restarted"
        ! grep -qai 'kos-node-manager.service: Watchdog timeout' boot.log || fail "the watchdog fired"
        grep -qa 'kos-node .*installing bundle v2.kosb: [0-9]* of [0-9]* bytes' boot.log || fail "no progress in the events log"
        grep -qa 'KOS-PROGRESS .*"install":{"bundle":"v2.kosb","done_bytes":[0-9]*,"total_bytes":[0-9]*}' boot.log ||
                fail "kos node status showed no progress"
        # It really outlasted the watchdog: progress events are 5 s apart.
        local progress; progress=$(sed -n "${started},${finished}p" boot.log | grep -ac 'installing bundle v2.kosb: ')
        [ "$progress" -ge 1 ] || fail "the install took less than the watchdog period"
}

crash_layer() { extra_unit "$1" kos-test-crash 'echo "KOS-TEST killing Node Manager"; systemctl kill --signal=SIGKILL kos-node-manager.service'; }

test_node_manager_restarted_after_a_crash_still_marks_the_boot_good() {
        V1_EXTRA=kos.settle=20 NODE_EXTRA=crash_layer node_fixture
        node_disk
        DONE_RE='marked good|cannot mark|BOOT FAILED|System halted|reboot: Restarting' VM_TIMEOUT=200 node_boot boot.log
        grep -qa 'KOS-TEST killing Node Manager' boot.log || fail "Node Manager was not killed"
        [ "$(grep -ac 'kos-node .*Node Manager started' boot.log)" = 2 ] || fail "Node Manager was not restarted once"
        ! grep -qa 'cannot mount the ImageFS' boot.log || fail "the restarted Node Manager lost the ImageFS"
        grep -qa 'kos-node .*boot of manifest v1 marked good' boot.log || fail "the boot was not marked good"
}
