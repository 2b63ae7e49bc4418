#!/usr/bin/env bash
# make soak CYCLES=N SEED=S: one KOS device (OVMF with Secure Boot, swtpm,
# the real chain as make demo builds it) driven through N update cycles of a
# seeded random schedule, with a fault in most of them, and the invariants
# of docs/soak.md checked after every cycle. State in build/soak/ (SOAK_DIR):
# an interrupted run resumes where it stopped (same SEED; CYCLES is the total
# to reach). build/soak/report.json gets a line per cycle and a summary line
# last. On a violation the cycle's disk, TPM state and consoles are kept in
# build/soak/violation-CYCLE/ and the command that reproduces it is printed.
#
# Where later work plugs in (docs/soak.md, "Extending the soak"):
#   SOAK_CHANNELS  how a release reaches the device (deliver_<channel>)
#   SOAK_KINDS     what the release is (make_release)
#   SOAK_FAULTS    what goes wrong, and when (fault_<name>, fault_kill_re)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD BUILD=${BUILD:-build}
KOS=$ROOT/$BUILD/kos
export ROOT BUILD KOS
# shellcheck source=qemu.sh
. scripts/qemu.sh
# shellcheck source=layers.sh
. scripts/layers.sh

CYCLES=${CYCLES:-10}
SEED=${SEED:-1}
SOAK=${SOAK_DIR:-$ROOT/$BUILD/soak}
# Boots a cycle may take: a good release with no fault is booted and marked
# good within PROGRESS_BOOTS (the install or pull boot, then its trial);
# with a fault, a never-up release (three tries, then the fallback) or a
# fallback, within MAX_BOOTS.
PROGRESS_BOOTS=2
MAX_BOOTS=7
BOOT_TIMEOUT=${SOAK_BOOT_TIMEOUT:-300}

SOAK_CHANNELS=(inbox drive registry)
# Weighted: most releases are good.
SOAK_KINDS=(good good good good never-up corrupt)
# Each fault is tied to an event (a console line, or the host's step between
# two boots), so that a seed gives the same schedule whatever TCG's speed.
SOAK_FAULTS=(none none none power-off-install power-off-boot power-off-mark-good power-off-scrub
        flip-component flip-active odd-file registry-garbage registry-stall full-imagefs below-floor)

mkdir -p "$SOAK"
cd "$SOAK"
# shellcheck disable=SC2034
say() { printf 'soak: %s\n' "$*" >&2; }

# --- The device, built once -------------------------------------------

# The runtime layer: the package kos-device, the keyring, the network for
# registry pulls (virtio_net, systemd-networkd with DHCP, kos-node-pull's
# libraries the base root lacks, /etc/kos/update.conf naming the registry
# QEMU's guestfwd forwards), and the soak's report unit: once the boot is
# marked good it prints the status, pulls when a network is there, and says
# SOAK-END.
soak_runtime_layer() {
        local dir=$1
        kos_runtime_layer "$dir" keyring "$(kos_device_deb)"
        kos_network_layer "$dir" "$REGISTRY_GUEST_URL/kos/device:stable" 604800 0
        mkdir -p "$dir/usr/lib/soak"
        # The console is the soak's report channel: no login prompt on it.
        ln -sf /dev/null "$dir/etc/systemd/system/serial-getty@ttyS0.service"
        cat >"$dir/usr/lib/soak/soak-report" <<'SH'
#!/bin/sh
# Once the boot is marked good: the status, a pull when there is a network,
# then SOAK-END (the host powers the device off there).
until kos node status 2>/dev/null | grep -q '"marked_good": true'; do sleep 1; done
# Node Manager's Boot Kernel slot step follows the marking; the status is
# printed (and the device powered off) once it is done.
i=0
until journalctl -b -q -u kos-node-manager.service | grep -q 'Boot Kernel slots: done' || [ $i -ge 60 ]; do
        sleep 1; i=$((i + 1))
done
echo "SOAK-STATUS $(kos node status | tr -d '\n')" >/dev/console
if ls /sys/class/net | grep -q '^en'; then
        i=0
        # QEMU's user network, 10.0.2.0/24 (0002000A in /proc/net/route).
        until grep -q '^en[^ 	]*[ 	]*0002000A' /proc/net/route || [ $i -ge 30 ]; do sleep 1; i=$((i + 1)); done
        echo "SOAK-NET after $i s: $(grep -c '^en' /proc/net/route) route(s)" >/dev/console
        echo "SOAK-PULL $(kos node check-update 2>&1 | tr -d '\n')" >/dev/console
fi
echo "SOAK-END" >/dev/console
SH
        chmod 755 "$dir/usr/lib/soak/soak-report"
        # The feeder: what lands in the DataFS's inbox, written on the device
        # (the DataFS is LUKS2: the host cannot write it), from a drive
        # labelled SOAK-FEED, before Node Manager looks at the inbox.
        cat >"$dir/usr/lib/soak/soak-feed" <<'SH'
#!/bin/sh
for d in /dev/vd[b-z]; do
        [ -b "$d" ] && [ "$(blkid -s LABEL -o value "$d")" = SOAK-FEED ] || continue
        mkdir -p /run/soak-feed /data/kos/inbox
        mount -o ro "$d" /run/soak-feed || exit 1
        cp -a /run/soak-feed/inbox/. /data/kos/inbox/
        sync
        echo "SOAK-FEED $(ls /run/soak-feed/inbox | tr '\n' ' ')into /data/kos/inbox" >/dev/console
        umount /run/soak-feed
done
SH
        chmod 755 "$dir/usr/lib/soak/soak-feed"
        cat >"$dir/etc/systemd/system/soak-feed.service" <<'UNIT'
[Unit]
Description=KOS soak: the inbox's deliveries, from the SOAK-FEED drive
DefaultDependencies=no
After=local-fs.target
Before=kos-node-manager.service

[Service]
Type=oneshot
ExecStart=/usr/lib/soak/soak-feed

[Install]
WantedBy=multi-user.target
UNIT
        ln -sf ../soak-feed.service "$dir/etc/systemd/system/multi-user.target.wants/"
        cat >"$dir/etc/systemd/system/soak-report.service" <<'UNIT'
[Unit]
Description=KOS soak: report once the boot is marked good
After=kos-node-manager.service

[Service]
Type=oneshot
ExecStart=/usr/lib/soak/soak-report

[Install]
WantedBy=multi-user.target
UNIT
        ln -sf ../soak-report.service "$dir/etc/systemd/system/multi-user.target.wants/"
}

# The soak's app (one per release, the whole of kos-app.target): appends a
# checksummed record to /data/soak/records, syncs it, then prints every
# record on the console (SOAK-RECORD, or SOAK-RECORD-BAD for one whose sum
# is wrong) and their count. A never-up release fails before it writes.
soak_app_layer() { # DIR RELEASE KIND
        local dir=$1
        mkdir -p "$dir/etc/systemd/system/kos-app.target.wants" "$dir/usr/lib/soak"
        echo "$2" >"$dir/usr/lib/soak/release"
        [ "$3" = never-up ] && touch "$dir/usr/lib/soak/never-up"
        cat >"$dir/usr/lib/soak/soak-app" <<'SH'
#!/bin/sh
release=$(cat /usr/lib/soak/release)
if [ -e /usr/lib/soak/never-up ]; then
        echo "SOAK-APP $release never comes up" >/dev/console
        exit 1
fi
f=/data/soak/records
mkdir -p /data/soak
# A record torn by a power cut does not swallow the next one.
[ -s $f ] && [ "$(tail -c 1 $f | od -An -tx1 | tr -d ' ')" != 0a ] && echo >>$f
n=$(grep -c . $f 2>/dev/null) || n=0
payload="$((n + 1)) $release $(cat /proc/sys/kernel/random/boot_id)"
echo "$payload $(printf '%s' "$payload" | sha256sum | cut -c1-16)" >>$f
sync $f
while read -r a b c d; do
        if [ "$(printf '%s' "$a $b $c" | sha256sum | cut -c1-16)" = "$d" ]; then echo "SOAK-RECORD $a $b $c $d"
        else echo "SOAK-RECORD-BAD $a $b $c $d"; fi
done <$f >/dev/console
echo "SOAK-RECORDS $((n + 1)) app $release up" >/dev/console
SH
        chmod 755 "$dir/usr/lib/soak/soak-app"
        cat >"$dir/etc/systemd/system/soak-app.service" <<'UNIT'
[Unit]
Description=KOS soak app: a checksummed record per boot on the DataFS
PartOf=kos-app.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/lib/soak/soak-app

[Install]
WantedBy=kos-app.target
UNIT
        ln -sf ../soak-app.service "$dir/etc/systemd/system/kos-app.target.wants/"
}

CMDLINE="console=ttyS0 loglevel=4 panic=-1 kos.settle=5 kos.datafs=luks2 no_timer_check"

# make_uki OUT BK_SECURITY_VERSION: the Boot Kernel UKI, signed with the
# development db key (the factory's, and each Boot Kernel update's).
make_uki() {
        local keys; keys=$(sb_keys)
        rm -rf "$1.d"
        "$KOS" mkboot --kernel "$(BUILD="$ROOT/$BUILD" nice -n 10 "$ROOT/scripts/build-boot-kernel.sh")" \
                --keyring dev/keyring --output "$1.d" --uki "$1" --security-version "$2" \
                --cmdline "console=ttyS0 panic=-1 loglevel=4 kos.tpm=required no_timer_check" --sign-key "$keys/db.key" \
                --sign-cert "$keys/db.crt" >/dev/null
        rm -rf "$1.d"
}

# make_release N KIND SECURITY_VERSION [BK_SECURITY_VERSION]: release rN (app
# layer rN; with BK_SECURITY_VERSION, a new Boot Kernel UKI too) signed and
# installed in pub/ (what the vendor publishes), bundle rN.kosb.
make_release() {
        local n=$1 kind=$2 sv=$3 bk_sv=${4:-} bk=()
        rm -rf "rel/app$n" "rel/uki$n.efi" && mkdir -p rel
        if [ -n "$bk_sv" ]; then
                make_uki "rel/uki$n.efi" "$bk_sv"
                bk=(--boot-kernel "uki$n.efi")
                "$KOS" component add pub "rel/uki$n.efi" >/dev/null
        fi
        soak_app_layer "rel/app$n" "r$n" "$kind"
        "$KOS" component build --type squashfs "rel/app$n" "rel/app$n.img" >/dev/null
        (cd rel && "$KOS" manifest create --name "r$n" --version "$n" --security-version "$sv" --kernel ../dev/vmlinuz \
                --initrd ../dev/initrd --cmdline "$CMDLINE" --component base=../dev/base.img \
                --component runtime=../dev/runtime.img --component "app=app$n.img" --hash-tree base "${bk[@]}" -o "r$n.json" &&
                "$KOS" manifest sign --key ../dev/soak-dev.key "r$n.json" >/dev/null)
        "$KOS" component add pub "rel/app$n.img" >/dev/null
        "$KOS" install --keyring dev/keyring pub "rel/r$n.json"
        "$KOS" bundle create -o "rel/r$n.kosb" "rel/r$n.json" "rel/app$n.img" ${bk_sv:+"rel/uki$n.efi"} >/dev/null
        [ "$kind" != corrupt ] || flip_file_byte "rel/r$n.kosb" $(( $(stat -c %s "rel/r$n.kosb") / 2 ))
}

flip_file_byte() { # FILE OFFSET
        local b; b=$(od -An -tu1 -j "$2" -N 1 "$1" | tr -d ' ')
        printf "$(printf '\\%03o' $(( (b ^ 0x5a) & 255 )))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

setup_device() {
        [ -e dev/.done ] && return
        say "building the device (once): keys, Boot Kernel UKI, initrd, base, runtime, release r1"
        rm -rf dev pub rel && mkdir -p dev && cd dev
        "$KOS" keygen soak-dev.key soak-dev.pem >/dev/null
        mkdir keyring && cp soak-dev.pem keyring/
        local kd
        kd=$(vm_kernel_dir)
        cp "$(sys_base_image)" base.img && cp "$VM_CACHE/base.img.meta" base.img.meta
        cp "$kd"/boot/vmlinuz-* vmlinuz
        soak_runtime_layer runtime
        "$KOS" component build --type erofs runtime runtime.img 2>/dev/null | grep -v '^mkfs.erofs' || true
        cp "$(sb_enrolled_vars)" OVMF_VARS.fd
        # The DataFS's recovery certificate (DEVELOPMENT, as the demo's).
        openssl req -x509 -newkey rsa:2048 -nodes -keyout recovery.key -out recovery.pem \
                -subj "/CN=KOS soak DataFS recovery (DEVELOPMENT)" -days 3650 2>/dev/null
        "$KOS" mkinitrd --kernel-dir "$kd" --keyring keyring --recovery-cert recovery.pem --output initrd >/dev/null
        cd ..
        make_uki dev/kos-boot.efi 1
        "$KOS" imagefs init pub
        "$KOS" component add pub dev/vmlinuz dev/initrd dev/base.img dev/runtime.img >/dev/null
        make_release 1 good 1
        "$KOS" imagefs init dev/img
        "$KOS" component add dev/img dev/vmlinuz dev/initrd dev/base.img dev/runtime.img rel/app1.img >/dev/null
        "$KOS" install --keyring dev/keyring dev/img rel/r1.json
        "$KOS" activate dev/img r1
        touch dev/.done
}

# --- The disk, seen from the host --------------------------------------

# part_offset NAME, part_size NAME: of the GPT partition named NAME in
# disk.img (kos image: "kos-imagefs", "KOS-DATA").
part_offset() { part_field "$1" start; }
part_size() { part_field "$1" size; }
part_field() {
        local v; v=$(sfdisk -J disk.img | jq -er --arg n "$1" --arg f "$2" '.partitiontable.partitions[] | select(.name == $n) | .[$f] * 512') ||
                { say "disk.img has no partition named $1"; return 1; }
        echo "$v"
}

# with_mounted NAME ro|rw COMMAND...: COMMAND in a directory where the
# partition NAME of disk.img is mounted (a loop device: the kernel replays
# the journal a power cut left, as the device's next mount would).
with_mounted() {
        local name=$1 mode=$2 dev mnt rc=0 offset size
        shift 2
        offset=$(part_offset "$name") && size=$(part_size "$name") || return 1
        dev=$(losetup --find --show -o "$offset" --sizelimit "$size" disk.img) || return 1
        mnt=$(mktemp -d /tmp/kos-soak-mnt-XXXXXX)
        if mount -t ext4 -o "$mode,nosuid,nodev,noexec" "$dev" "$mnt"; then
                (cd "$mnt" && "$@") || rc=$?
                umount "$mnt"
        else
                rc=1
        fi
        losetup -d "$dev"
        rmdir "$mnt"
        return $rc
}

# --- Boots ----------------------------------------------------------------

DONE_RE='SOAK-END|reboot: Restarting|reboot: Power down|BOOT FAILED|System halted|Kernel panic|Access Denied'

# boot LOG KILL_RE NET: one power-on; the device is powered off (QEMU
# killed) at SOAK-END, at KILL_RE (the fault's event) or when it reboots.
# NET: none, registry (guestfwd to the docker-registry), garbage or stall
# (guestfwd to a command that answers garbage, or nothing).
boot() {
        local log=$1 kill_re=$2 net=$3 re=$DONE_RE netargs=()
        [ -n "$kill_re" ] && re="$kill_re|$DONE_RE"
        case $net in
        none) ;;
        registry) netargs=(-netdev "user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:5000-tcp:127.0.0.1:$REGISTRY_PORT") ;;
        garbage) netargs=(-netdev "user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:5000-cmd:head -c 65536 /dev/urandom") ;;
        stall) netargs=(-netdev "user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:5000-cmd:sleep 600") ;;
        esac
        # shellcheck disable=SC2054 # QEMU's own commas
        [ "$net" = none ] || netargs+=(-device virtio-net-pci,netdev=n0,romfile=)
        [ -z "${EXTRA_DRIVE:-}" ] || netargs+=(-drive "file=$EXTRA_DRIVE,if=virtio,format=raw")
        # What the inbox gets this boot (deliver_inbox, the odd-file fault):
        # written by the device's feeder, then gone.
        if [ -d feed ]; then
                mkfs.ext4 -q -F -L SOAK-FEED -d feed feed.img 64M
                netargs+=(-drive "file=feed.img,if=virtio,format=raw")
        fi
        vm_swtpm_start tpm
        ovmf_run "$log" "$BOOT_TIMEOUT" "$re" dev/vars.fd disk.img "${VM_TPM_ARGS[@]}" "${netargs[@]}" || true
        swtpm_stop tpm
        rm -rf feed feed.img
}

# What a console says.
booted_name() { { grep -a 'kos-boot .*booting manifest ' "$1" || true; } | tail -1 | sed 's/.*booting manifest \([^ ]*\) .*/\1/'; }
status_json() { { grep -a 'SOAK-STATUS {' "$1" || true; } | tail -1 | sed 's/.*SOAK-STATUS //' | tr -d '\r'; }

# --- The registry (Debian's docker-registry on 127.0.0.1) -----------------

# shellcheck source=registry.sh
. "$ROOT/scripts/registry.sh"

# --- Delivery channels ------------------------------------------------------

deliver_inbox() { # N
        mkdir -p feed/inbox && cp "rel/r$1.kosb" feed/inbox/
        NET=none EXTRA_DRIVE=
}
deliver_drive() { # N
        rm -rf usb && mkdir usb && cp "rel/r$1.kosb" usb/
        mkfs.ext4 -q -F -L KOS-UPDATE -d usb usb.img 32M
        NET=none EXTRA_DRIVE=usb.img
}
deliver_registry() { # N
        "$KOS" push pub "r$1" "http://127.0.0.1:$REGISTRY_PORT/kos/device:stable" >/dev/null
        if [ "$KIND" = corrupt ]; then
                # The app layer's blob, one byte changed in the registry's store.
                local digest blob
                digest=$(sha256sum "rel/app$1.img" | cut -d' ' -f1)
                blob=registry/data/docker/registry/v2/blobs/sha256/${digest:0:2}/$digest/data
                flip_file_byte "$blob" $(( $(stat -c %s "$blob") / 2 ))
        fi
        NET=registry EXTRA_DRIVE=
}

# --- The cycle ----------------------------------------------------------------

# State (state.sh): cycle done, the newest release marked good and its
# security_version, the highest floor seen, the records seen, the counters.
load_state() {
        if [ -s state.sh ]; then
                # shellcheck disable=SC1091
                . ./state.sh
                [ "$STATE_SEED" = "$SEED" ] || { say "build/soak holds a run of seed $STATE_SEED: rm -rf $SOAK, or SEED=$STATE_SEED"; exit 2; }
        else
                STATE_SEED=$SEED DONE=0 GOOD=r1 GOOD_SV=1 FLOOR_MAX=0 LAST_SV=1 NEXT_N=2 IN_CYCLE=0 ADOPTED=0 VIOLATIONS=0 RECOVERIES=0
                BK_LAST_SV=1 BK_FLOOR_MAX=0 BK_ADOPTED=0
                : >records.seen
        fi
}
save_state() {
        declare -p STATE_SEED DONE GOOD GOOD_SV FLOOR_MAX LAST_SV NEXT_N IN_CYCLE ADOPTED VIOLATIONS RECOVERIES \
                BK_LAST_SV BK_FLOOR_MAX BK_ADOPTED | sed 's/^declare -- //' >state.sh.new
        mv state.sh.new state.sh
}

# The schedule of cycle C: a function of SEED and C alone.
schedule() { # C
        RANDOM=$(( (SEED * 7919 + $1) % 32768 ))
        CHANNEL=${SOAK_CHANNELS[RANDOM % ${#SOAK_CHANNELS[@]}]}
        KIND=${SOAK_KINDS[RANDOM % ${#SOAK_KINDS[@]}]}
        FAULT=${SOAK_FAULTS[RANDOM % ${#SOAK_FAULTS[@]}]}
        # One release in three raises security_version (and so the floor,
        # once marked good, which retires the releases below it).
        SV_BUMP=$((RANDOM % 3 == 0))
        # One good release in four carries a new Boot Kernel UKI (its own
        # security version one up); a third of those lose power in the new
        # UKI's trial boot, when no other fault is scheduled.
        BK_BUMP=$((RANDOM % 4 == 0)); local bk_cut=$((RANDOM % 3 == 0))
        [ "$KIND" = good ] || BK_BUMP=0
        [ "$BK_BUMP" = 1 ] && [ "$FAULT" = none ] && [ "$bk_cut" = 1 ] && FAULT=power-off-bk-trial
        # A fault that needs a channel or a good release, on another, is none.
        case $FAULT in registry-*) [ "$CHANNEL" = registry ] || FAULT=none ;; esac
        case $FAULT in power-off-*|flip-component) [ "$KIND" = good ] || FAULT=none ;; esac
        [ "$FAULT" != below-floor ] || KIND=good
}

# The console line a power-off fault waits for, and in which boot.
fault_kill_re() {
        case $FAULT in
        power-off-install) [ "$CHANNEL" = registry ] && echo 'kos-node .*checking for an update' ||
                echo 'kos-node .*installing bundle' ;;
        power-off-boot) echo 'kos-system .*System Kernel init started' ;;
        power-off-scrub) echo 'kos-node .*scrubbing [0-9]* hash-tree component' ;;
        power-off-mark-good) echo 'kos-node .*scrub of the hash-tree components done' ;;
        power-off-bk-trial) echo "kos-boot .*Boot Kernel security version $BK_SV_NEW: PCR 14 extended" ;;
        esac
}
# The boot of the cycle the power-off hits: install/pull in the first, the
# rest in the trial boot of the new release.
fault_boot() {
        case $FAULT in
        power-off-install) echo 1 ;;
        power-off-bk-trial) echo any ;; # the first boot of the new UKI
        power-off-*) echo 2 ;;
        *) echo 0 ;;
        esac
}

violation() { # WHAT
        say "VIOLATION in cycle $C: $*"
        CYCLE_VIOLATIONS+=("$*")
}

# Faults done by the host before the first boot (or between boots).
fault_before_boot() {
        case $FAULT in
        odd-file) mkdir -p feed/inbox/0-odd-dir.kosb && mkfifo feed/inbox/0-odd-fifo.kosb &&
                ln -sf /etc/shadow feed/inbox/0-odd-link.kosb ;;
        flip-active) with_mounted kos-imagefs rw sh -c 'printf "\377garbage\n" >>active && sync' ;;
        full-imagefs) with_mounted kos-imagefs rw sh -c '{ dd if=/dev/zero of=soak-filler bs=1M status=none 2>/dev/null || true; }; sync' ;;
        esac
}
# The host's step between the install boot and the trial boot.
fault_between_boots() {
        case $FAULT in
        flip-component)
                local id; id=$(jq -r '.components[] | select(.name == "app") | .sha256' "rel/r$N.json")
                with_mounted kos-imagefs rw sh -c "[ -f components/$id ] || { echo 'soak: flip-component: components/$id is not there' >&2; exit 1; }; printf X | dd of=components/$id bs=1 seek=100 conv=notrunc status=none && sync" ;;
        full-imagefs) with_mounted kos-imagefs rw sh -c 'rm -f soak-filler && sync' ;;
        esac
}

# The records: every record printed before is printed again, none is bad.
check_records() { # LOG
        local log=$1
        # Matched anywhere on a line: the console interleaves other writers
        # (a getty's prompt once stood before a record: a false loss).
        grep -aq 'SOAK-RECORDS ' "$log" || return 0
        grep -a 'SOAK-RECORD-BAD ' "$log" | tr -d '\r' | sed 's/.*SOAK-RECORD-BAD /  /' >bad.tmp || true
        [ -s bad.tmp ] && say "records with a bad sum (torn by a power cut): $(cat bad.tmp)"
        grep -ao 'SOAK-RECORD [0-9]* [^ ]* [^ ]* [0-9a-f]\{16\}' "$log" | cut -d' ' -f2- | sort -u >now.tmp
        local lost; lost=$(comm -23 <(sort -u records.seen) now.tmp | head -3)
        [ -z "$lost" ] || violation "records lost: $lost"
        sort -u records.seen now.tmp >records.seen.new && mv records.seen.new records.seen
}

# After each boot: what it booted is signed by the key and not below the floor.
check_boot() { # LOG
        local log=$1 name status floor sv
        grep -aq 'Access Denied\|BOOT FAILED\|System halted\|Kernel panic' "$log" && violation "$(grep -ao 'Access Denied\|BOOT FAILED.*\|System halted\|Kernel panic.*' "$log" | head -1 | tr -d '\r')"
        name=$(booted_name "$log")
        [ -n "$name" ] || return 0 # powered off before the Boot Kernel chose
        grep -aq "kos-boot .*manifest $name: valid, signed by $(cat dev/key-id)" "$log" ||
                violation "booted $name without the Boot Kernel's 'valid, signed by' our key"
        sv=$(jq -r .security_version "rel/$name.json" 2>/dev/null) || sv=
        status=$(status_json "$log")
        if [ -n "$status" ]; then
                floor=$(jq -r '.rollback_floor.value // empty' <<<"$status")
                [ -n "$floor" ] || violation "no rollback floor in the status"
                if [ -n "$floor" ]; then
                        [ "$sv" -ge "$floor" ] || violation "booted $name (security_version $sv) below the floor $floor"
                        [ "$floor" -ge "$FLOOR_MAX" ] || violation "the floor went down from $FLOOR_MAX to $floor"
                        [ "$floor" -le "$FLOOR_MAX" ] || FLOOR_MAX=$floor
                fi
                local bk_floor bk_sv bk_state
                bk_floor=$(jq -r '.boot_kernel.floor // empty' <<<"$status")
                read -r bk_sv bk_state < <(jq -r '.boot_kernel.slots[]? | select(.booted and .security_version != null) |
                        "\(.security_version) \(.state)"' <<<"$status") || true
                [ -n "$bk_floor" ] || violation "no Boot Kernel floor in the status"
                if [ -n "$bk_floor" ]; then
                        [ "$bk_floor" -ge "$BK_FLOOR_MAX" ] || violation "the Boot Kernel floor went down from $BK_FLOOR_MAX to $bk_floor"
                        [ "$bk_floor" -le "$BK_FLOOR_MAX" ] || BK_FLOOR_MAX=$bk_floor
                        [ -z "$bk_sv" ] || [ "$bk_sv" -ge "$bk_floor" ] ||
                                violation "booted a Boot Kernel slot of security version $bk_sv, below the Boot Kernel floor $bk_floor"
                        # The status comes once the slot step is done: a good boot
                        # of the default slot has raised the floor to its version.
                        [ "$bk_state" != good ] || [ "$bk_floor" -ge "$bk_sv" ] ||
                                violation "the default Boot Kernel slot (security version $bk_sv) booted good and the Boot Kernel floor is still $bk_floor"
                fi
        fi
        check_records "$log"
}

# After the cycle: the disk as the Boot Kernel will find it.
check_disk() {
        cp dev/keyring/*.pem /tmp/kos-soak-keyring.$$.pem
        with_mounted kos-imagefs ro check_imagefs "$PWD" || violation "the ImageFS does not mount on the host"
        rm -f /tmp/kos-soak-keyring.$$.pem
        [ -s disk-check.out ] && while read -r line; do violation "$line"; done <disk-check.out
        rm -f disk-check.out
}
check_imagefs() { # SOAK_DIR (run in the mounted ImageFS)
        local out=$1/disk-check.out k; k=$(mktemp -d)
        : >"$out"
        cp /tmp/kos-soak-keyring.$$.pem "$k/dev.pem"
        "$KOS" select . --keyring "$k" --explain >"$1/select.out" 2>&1 ||
                echo "kos select finds nothing valid to boot: $(tail -3 "$1/select.out" | tr '\n' ' ')" >>"$out"
        # The newest good release is in active and would be chosen if all before it failed.
        grep -qx "$GOOD" active 2>/dev/null || grep -q "^$GOOD\$\|^$GOOD " active ||
                echo "the newest good release $GOOD is not in active: $(tr '\n' ' ' <active)" >>"$out"
        # Nothing half-installed: every installed manifest verifies; no temporary file left.
        local m
        for m in manifests/*.json; do
                [ -e "$m" ] || continue
                "$KOS" manifest verify --keyring "$k" "$m" >/dev/null 2>&1 || echo "installed manifest $m does not verify" >>"$out"
        done
        # A power cut leaves .tmp- files; the next install or pull that
        # completes removes them (format.md), so after an adoption none is left.
        local tmp; tmp=$(find . -name '.tmp-*' | head -3 | tr '\n' ' ')
        [ -z "$tmp" ] || [ "$ADOPTED_NOW" != 1 ] || echo "temporary files left after an install completed: $tmp" >>"$out"
        # The newest good release boots when all before it fail: selection
        # on an overlay of the ImageFS whose active names it alone.
        local ov; ov=$(mktemp -d /tmp/kos-soak-ov-XXXXXX)
        mkdir "$ov/u" "$ov/w" "$ov/m"
        if mount -t overlay overlay -o "lowerdir=$PWD,upperdir=$ov/u,workdir=$ov/w" "$ov/m"; then
                echo "$GOOD" >"$ov/m/active"
                "$KOS" select "$ov/m" --keyring "$k" --explain >"$1/select-good.out" 2>&1 || true
                grep -q "^selected $GOOD " "$1/select-good.out" ||
                        echo "the newest good release $GOOD would not boot: $(grep -A1 "^ *1\. " "$1/select-good.out" | tr -s ' \n' ' ')" >>"$out"
                umount "$ov/m"
        else
                echo "cannot mount an overlay of the ImageFS to check $GOOD" >>"$out"
        fi
        rm -rf "$ov"
        # The bound: the manifests active names, plus one in flight.
        local n_active n_manifests
        n_active=$(grep -c . active 2>/dev/null) || n_active=0
        n_manifests=$(ls manifests/*.json 2>/dev/null | wc -l)
        [ "$n_manifests" -le $((n_active + 1)) ] ||
                echo "the ImageFS holds $n_manifests manifests, active names $n_active (bound: active + 1)" >>"$out"
        echo "$n_active $n_manifests $(du -sm components | cut -f1)" >"$1/imagefs.count"
        rm -rf "$k"
}

run_cycle() {
        C=$1
        schedule "$C"
        # A release name is used once: a cycle cut short and run again
        # (resume) makes a new one.
        N=$NEXT_N NEXT_N=$((NEXT_N + 1)) IN_CYCLE=$C
        save_state
        local sv=$((LAST_SV + SV_BUMP)) bk_sha=
        [ "$FAULT" != below-floor ] || sv=$((FLOOR_MAX > 0 ? FLOOR_MAX - 1 : 0))
        BK_SV_NEW=
        [ "$BK_BUMP" = 0 ] || BK_SV_NEW=$((BK_LAST_SV + 1))
        CYCLE_VIOLATIONS=()
        local start=$EPOCHREALTIME dir=cycle-$C
        rm -rf "$dir" && mkdir -p "$dir"
        say "cycle $C: release r$N ($KIND, security_version $sv${BK_SV_NEW:+, Boot Kernel security version $BK_SV_NEW}) by $CHANNEL, fault $FAULT"
        make_release "$N" "$KIND" "$sv" "$BK_SV_NEW"
        [ -z "$BK_SV_NEW" ] || bk_sha=$(sha256sum "rel/uki$N.efi" | cut -d' ' -f1)
        "deliver_$CHANNEL" "$N"
        case $FAULT in registry-garbage) NET=garbage ;; registry-stall) NET=stall ;; esac
        fault_before_boot
        # Expected: a good release, not refused, becomes the newest good.
        local expect=$GOOD
        case $KIND/$FAULT in good/none | good/power-off-* | good/odd-file | good/full-imagefs | good/flip-active | good/registry-*) expect=r$N ;; esac
        # A release with a new UKI settles once that UKI is blessed (and
        # booted), or marked bad after a failed trial; expected: blessed,
        # unless the trial loses power.
        local expect_bk=
        [ -z "$bk_sha" ] || [ "$expect" != "r$N" ] || expect_bk=good-booted
        [ "$FAULT" != power-off-bk-trial ] || expect_bk=bad
        local b adopted=0 fb fired=0 bk_state=; fb=$(fault_boot)
        for b in $(seq 1 $MAX_BOOTS); do
                local kill_re=
                { [ "$b" = "$fb" ] || { [ "$fb" = any ] && [ "$fired" = 0 ]; }; } && kill_re=$(fault_kill_re)
                boot "$dir/boot-$b.log" "$kill_re" "$NET"
                [ -z "$kill_re" ] || ! grep -aqE "$kill_re" "$dir/boot-$b.log" || fired=1
                check_boot "$dir/boot-$b.log"
                if [ "$b" = 1 ]; then fault_between_boots || violation "$FAULT after the first boot: the host step failed (nothing installed?)"; fi
                # Garbage and stalls last one boot: then the registry is back.
                [ "$NET" = garbage ] || [ "$NET" = stall ] && NET=registry
                local name status; name=$(booted_name "$dir/boot-$b.log"); status=$(status_json "$dir/boot-$b.log")
                if [ -n "$status" ] && jq -e '.marked_good' >/dev/null <<<"$status" &&
                        ! grep -aq 'SOAK-PULL .*"changed": true' "$dir/boot-$b.log" &&
                        grep -aq 'SOAK-END' "$dir/boot-$b.log"; then
                        # Settled: a boot marked good, nothing more to install,
                        # and the release's UKI (if any) blessed or refused.
                        bk_state=
                        [ -z "$bk_sha" ] || bk_state=$(jq -r --arg h "$bk_sha" '.boot_kernel.slots[]? | select(.sha256 == $h) |
                                .state + (if .booted then "-booted" else "" end)' <<<"$status" | head -1)
                        if { [ "$name" = "$expect" ] || [ "$expect" = "$GOOD" ]; } &&
                                { [ -z "$expect_bk" ] || [ "$bk_state" = good-booted ] || [ "$bk_state" = bad ]; }; then
                                adopted=$([ "$name" = "r$N" ] && echo 1 || echo 0)
                                break
                        fi
                fi
        done
        local name; name=$(booted_name "$dir/boot-$b.log")
        [ "$name" = "$expect" ] || violation "settled on ${name:-nothing} after $b boots, expected $expect"
        [ -z "$expect_bk" ] || [ "$bk_state" = "$expect_bk" ] ||
                violation "the release's Boot Kernel UKI ended ${bk_state:-nowhere in the slots}, expected $expect_bk"
        # With a new UKI, one boot more: its trial.
        local bound=$((PROGRESS_BOOTS + (${#bk_sha} > 0)))
        [ "$KIND/$FAULT" != good/none ] || [ "$b" -le "$bound" ] ||
                violation "progress: a good release with no fault took $b boots (bound $bound)"
        if [ "$adopted" = 1 ]; then GOOD=r$N GOOD_SV=$sv ADOPTED=$((ADOPTED + 1)); fi
        [ -z "$BK_SV_NEW" ] || BK_LAST_SV=$BK_SV_NEW
        [ "$bk_state" != good-booted ] || BK_ADOPTED=$((BK_ADOPTED + 1))
        [ "$FAULT" = none ] || [ ${#CYCLE_VIOLATIONS[@]} -gt 0 ] || RECOVERIES=$((RECOVERIES + 1))
        [ "$FAULT" = below-floor ] || LAST_SV=$sv
        ADOPTED_NOW=$adopted
        check_disk
        local wall; wall=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')
        local counts; counts=$(cat imagefs.count 2>/dev/null || echo "0 0 0")
        jq -cn --argjson cycle "$C" --arg release "r$N" --arg kind "$KIND" --arg channel "$CHANNEL" --arg fault "$FAULT" \
                --arg booted "$name" --argjson boots "$b" --argjson adopted "$adopted" --argjson wall "$wall" \
                --arg counts "$counts" --argjson floor "$FLOOR_MAX" --arg bk_sv "$BK_SV_NEW" --arg bk_state "$bk_state" \
                --argjson bk_floor "$BK_FLOOR_MAX" '$ARGS.positional as $v |
                {cycle: $cycle, release: $release, kind: $kind, channel: $channel, fault: $fault, booted: $booted,
                 boots: $boots, adopted: ($adopted == 1), floor: $floor, wall_s: $wall,
                 boot_kernel: (if $bk_sv == "" then null else {security_version: ($bk_sv | tonumber), ended: $bk_state} end),
                 boot_kernel_floor: $bk_floor,
                 imagefs: ($counts | split(" ") | {active: (.[0]|tonumber), manifests: (.[1]|tonumber), components_mib: (.[2]|tonumber)}),
                 violations: $v}' --args "${CYCLE_VIOLATIONS[@]}" >>cycles.jsonl
        say "cycle $C: booted $name after $b boot(s) in $wall s; ${#CYCLE_VIOLATIONS[@]} violation(s)"
        if [ ${#CYCLE_VIOLATIONS[@]} -gt 0 ]; then
                VIOLATIONS=$((VIOLATIONS + ${#CYCLE_VIOLATIONS[@]}))
                rm -rf "violation-$C" && mkdir "violation-$C"
                cp -a disk.img dev/vars.fd tpm "$dir" state.sh "violation-$C/" 2>/dev/null || true
                say "kept in $SOAK/violation-$C; reproduce: rm -rf $SOAK && make soak SEED=$SEED CYCLES=$C"
        fi
        rm -rf "$dir"/*.qemu usb usb.img # the consoles stay (about 16 KiB a boot)
        DONE=$C IN_CYCLE=0
        save_state
}

# A run cut short in the middle of cycle IN_CYCLE: one boot without a
# delivery or a fault, to learn what the device runs now; that cycle then
# runs again from its start (with a new release name).
resync() {
        say "resuming: cycle $IN_CYCLE was cut short; one boot to see where the device is"
        C=$IN_CYCLE CYCLE_VIOLATIONS=() EXTRA_DRIVE=
        mkdir -p resync && boot resync/boot.log '' none
        check_boot resync/boot.log
        local name; name=$(booted_name resync/boot.log)
        if [ -n "$(status_json resync/boot.log)" ] && [ -n "$name" ]; then
                GOOD=$name GOOD_SV=$(jq -r .security_version "rel/$name.json")
        fi
        [ ${#CYCLE_VIOLATIONS[@]} = 0 ] || { VIOLATIONS=$((VIOLATIONS + ${#CYCLE_VIOLATIONS[@]})); say "violations at the resume"; }
        IN_CYCLE=0
        save_state
}

summary() {
        { cat cycles.jsonl 2>/dev/null
          jq -sc --argjson seed "$SEED" --argjson violations "$VIOLATIONS" --argjson recoveries "$RECOVERIES" '{summary: true, seed: $seed,
                cycles: length, adopted: map(select(.adopted)) | length,
                boot_kernel_updates: map(select(.boot_kernel)) | length,
                boot_kernels_blessed: map(select(.boot_kernel.ended == "good-booted")) | length,
                faults: (map(.fault) | group_by(.) | map({(.[0]): length}) | add // {}),
                channels: (map(.channel) | group_by(.) | map({(.[0]): length}) | add // {}),
                kinds: (map(.kind) | group_by(.) | map({(.[0]): length}) | add // {}),
                recoveries: $recoveries, violations: $violations,
                boots: (map(.boots) | add // 0),
                wall_s: {total: (map(.wall_s) | add // 0), max_without_fault: (map(select(.fault == "none" and .kind == "good") | .wall_s) | max),
                         mean: (if length > 0 then (map(.wall_s) | add / length | floor) else 0 end)}}' cycles.jsonl 2>/dev/null
        } >report.json
        tail -1 report.json
}

main() {
        if [ "${SOAK_PLAN:-}" = 1 ]; then # the schedule only, nothing booted
                local c
                for c in $(seq 1 "$CYCLES"); do schedule "$c"; echo "cycle $c: $KIND release$([ "$BK_BUMP" = 0 ] || echo " with a new Boot Kernel") by $CHANNEL, fault $FAULT"; done
                return
        fi
        setup_device
        "$KOS" key-id dev/keyring/soak-dev.pem >dev/key-id
        load_state
        trap 'registry_stop; swtpm_stop tpm 2>/dev/null || true' EXIT
        registry_start
        if [ "$DONE" = 0 ] && [ ! -e disk.img ]; then
                # The factory image: r1 active (never booted yet), the DataFS
                # formatted (so the inbox can be written before the first
                # boot), a fresh variable store and TPM. Cycle 1's first boot
                # is the device's first.
                say "factory image: r1 active, an empty DataFS"
                cp dev/OVMF_VARS.fd dev/vars.fd
                rm -rf tpm
                "$KOS" image --force --imagefs dev/img --imagefs-extra 256M --uki dev/kos-boot.efi \
                        --data-size 128M disk.img >/dev/null
                save_state
        fi
        [ "$IN_CYCLE" = 0 ] || resync
        while [ "$DONE" -lt "$CYCLES" ]; do
                run_cycle $((DONE + 1))
                summary >/dev/null # report.json is whole after every cycle
        done
        summary
        [ "$VIOLATIONS" = 0 ]
}

[ "${SOAK_SOURCE_ONLY:-}" = 1 ] || main "$@"
