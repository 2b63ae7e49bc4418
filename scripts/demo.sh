#!/usr/bin/env bash
# make demo: builds a whole signed KOS device from Debian's packages and boots
# it in QEMU, then prints what happened at each stage. `make run` (RUN=1)
# boots the same disk with an interactive console.
#
#   Debian kernel, mmdebstrap root -> components (base OS with dm-verity; a
#   runtime layer with Node Manager and the units; the demo app, two versions)
#   -> the app encrypted (LUKS2), its key sealed in the demo's TPM to PCR 7
#   (Secure Boot) + PCR 15 (the KOS marker) -> a development key -> two signed manifests (demo-previous, demo-current
#   on trial) -> Boot Kernel, System Kernel initrd -> GPT disk with ImageFS and
#   an empty DataFS -> QEMU: Boot Kernel, kexec, System Kernel (formats the
#   DataFS as LUKS2, its key sealed in the TPM), systemd, Node Manager,
#   kos-app, boot marked good -> an update over the network: docker-registry
#   on the host's 127.0.0.1 (the guest reaches nothing else: QEMU user
#   networking with restrict=on and a guestfwd), a new base with a few files
#   changed published as demo-update (chunks and a delta), Node Manager's
#   poller pulls it, the device reboots into it and marks it good; the bytes
#   fetched against the release's size.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD BUILD=build KOS=$PWD/build/kos
export ROOT BUILD KOS
# shellcheck source=qemu.sh
. scripts/qemu.sh
# shellcheck source=layers.sh
. scripts/layers.sh
# shellcheck source=registry.sh
. scripts/registry.sh

demo=$PWD/build/demo
mkdir -p "$demo"
cd "$demo"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
VM_PID=
# VM_PID: the boot that runs in the background (ovmf_run's shell); it and
# its QEMU go with the demo.
trap '[ -z "$VM_PID" ] || kill $(pgrep -P "$VM_PID") "$VM_PID" 2>/dev/null; registry_stop; swtpm_stop tpm 2>/dev/null || true' EXIT
trap 'exit 143' TERM INT
# The update source the runtime layer names: the guest's view of the registry
# (registry_netdev forwards 10.0.2.100:5000 to it), polled every 60 s (the
# shortest interval update.conf takes).
UPDATE_REF=kos/demo:stable
UPDATE_INTERVAL=60

step "Debian kernel and systemd root (downloaded and built once, then reused)"
kd=$(vm_kernel_dir)
echo "kernel: $kd"
base=$(sys_base_image)
echo "base OS component: $base ($(du -h "$base" | cut -f1), squashfs with dm-verity)"

step "Development signing key: build/demo/kos-dev-DO-NOT-SHIP.key (never for real devices)"
[ -s kos-dev-DO-NOT-SHIP.key ] || "$KOS" keygen kos-dev-DO-NOT-SHIP.key kos-dev-DO-NOT-SHIP.pem >/dev/null
rm -rf keyring && mkdir keyring && cp kos-dev-DO-NOT-SHIP.pem keyring/
echo "key id $("$KOS" key-id keyring/kos-dev-DO-NOT-SHIP.pem)"

step "Components"
rm -rf runtime app1 app2 img
# The runtime layer is the package kos-device, unpacked: we ship what we run.
deb=$(kos_device_deb)
kos_runtime_layer runtime keyring "$deb" && kos_status_report_unit runtime
kos_network_layer runtime "$REGISTRY_GUEST_URL/$UPDATE_REF" "$UPDATE_INTERVAL" 0
echo "runtime layer: package kos-device $(dpkg-deb -f "$deb" Version) (dpkg-deb -x), the keyring, a status report unit,"
echo "  the network (virtio_net, systemd-networkd) and /etc/kos/update.conf: $REGISTRY_GUEST_URL/$UPDATE_REF every ${UPDATE_INTERVAL} s"
"$KOS" component build --type erofs runtime runtime.img 2>/dev/null | grep -v '^mkfs.erofs'
# The app is encrypted (LUKS2) with the key demo-app, kept in build/demo/factory
# (the factory's store, never on the device: the initrd's key store stays
# empty); the device gets it sealed in its TPM below.
kos_demo_app_layer app1 1 && "$KOS" component build --type squashfs --encrypt demo-app --keystore factory app1 app1.img
kos_demo_app_layer app2 2 && "$KOS" component build --type squashfs --encrypt demo-app --keystore factory app2 app2.img
echo "app components: LUKS2 with key demo-app (build/demo/factory/demo-app, 0600; not in the System Kernel's initrd)"
cp "$base" base.img && cp "$base.meta" base.img.meta
cp "$kd"/boot/vmlinuz-* vmlinuz

step "Secure Boot: the demo's own DEVELOPMENT PK, KEK and db (build/demo/secureboot), enrolled in OVMF's variable store"
export SB_KEYS_DIR=$demo/secureboot
sbkeys=$(sb_keys)
cp "$(sb_enrolled_vars)" OVMF_VARS.fd
echo "db certificate: $(openssl x509 -in "$sbkeys/db.crt" -noout -subject | sed 's/^subject=//')"
echo "variable store with PK, KEK and db enrolled: build/demo/OVMF_VARS.fd (Secure Boot enforcing)"

step "Boot Kernel (its own kernel, built once from linux-source-6.1) as a UKI signed with the db key; System Kernel initrd"
bk=$(BUILD="$ROOT/build" nice -n 10 "$ROOT/scripts/build-boot-kernel.sh")
echo "Boot Kernel kernel: $bk ($(du -h "$bk" | cut -f1))"
# no_timer_check: under TCG on a loaded host the kernel's IO-APIC timer check
# can time out and panic (as VM_BOOT_APPEND in scripts/qemu.sh says); the
# demo boots twice. Boot Kernel security version 1: the UKI measures it
# into PCR 14 and refuses to run below the Boot Kernel floor (trust-chain.md).
"$KOS" mkboot --kernel "$bk" --keyring keyring --output bootk --uki bootk/kos-boot.efi --security-version 1 \
        --cmdline "console=ttyS0 panic=-1 loglevel=4 kos.tpm=required no_timer_check" --sign-key "$sbkeys/db.key" --sign-cert "$sbkeys/db.crt"
sbverify --cert "$sbkeys/db.crt" bootk/kos-boot.efi
# The vendor's DataFS recovery certificate (DEVELOPMENT, like every demo
# key): in the signed initrd; its private key stays in build/demo.
[ -s recovery.pem ] || openssl req -x509 -newkey rsa:2048 -nodes -keyout recovery.key -out recovery.pem \
        -subj "/CN=KOS demo DataFS recovery (DEVELOPMENT)" -days 3650 2>/dev/null
"$KOS" mkinitrd --kernel-dir "$kd" --keyring keyring --recovery-cert recovery.pem --output initrd

step "ImageFS: two signed manifests; demo-current first and on trial, demo-previous as fallback"
"$KOS" imagefs init img
"$KOS" component add img vmlinuz initrd base.img runtime.img app1.img app2.img >/dev/null
for m in "demo-previous 1 app1.img" "demo-current 2 app2.img"; do
        set -- $m
        "$KOS" manifest create --name "$1" --version "$2" --security-version 1 --kernel vmlinuz --initrd initrd \
                --cmdline "console=ttyS0 loglevel=4 panic=-1 kos.settle=5 kos.datafs=luks2" --component base=base.img \
                --component runtime=runtime.img --component "app=$3" -o "$1.json"
        "$KOS" manifest sign --key kos-dev-DO-NOT-SHIP.key "$1.json" >/dev/null
        "$KOS" install --keyring keyring img "$1.json"
done
"$KOS" activate img demo-previous
"$KOS" activate img demo-current --tries 3
"$KOS" list img

step "TPM: swtpm with its state in build/demo/tpm (kept, like a device's TPM: the rollback floor and the sealing key live there)"
# PCR 7 is computed, not read from a boot: OVMF's measurements of SecureBoot,
# PK, KEK, db and dbx, the separator, and the db certificate that verified
# the UKI (sb_expected_pcr7 in scripts/qemu.sh). PCR 15 is the Boot Kernel's
# marker, also computed. The TPM need not be in that state to seal.
pcr7=$(sb_expected_pcr7 "$sbkeys")
echo "swtpm $(swtpm --version 2>/dev/null | head -n 1 | grep -o '[0-9][0-9.]*' | head -n 1), attached to the VM as a TIS device"
swtpm_host_start tpm
rm -rf img/sealed-keys
KOS_TPM=$demo/tpm/host.sock "$KOS" key seal --key-file factory/demo-app --pcrs 7,15 --pcr-value "7=$pcr7" --output img/sealed-keys
swtpm_stop tpm
echo "sealed-keys/demo-app on the ImageFS: key demo-app sealed to PCR 7 = ${pcr7:0:16}... (Secure Boot enforcing with the demo's PK, KEK and db; computed on the host, no boot) and PCR 15 = the KOS verified-boot marker"

step "Disk: GPT with an EFI system partition (the UKI as \\EFI\\BOOT\\BOOTX64.EFI), the ImageFS and an empty DataFS"
# kos image writes the factory image a vendor flashes (bmaptool copy --bmap
# disk.bmap disk.img /dev/DEVICE): the DataFS is left empty, the System
# Kernel formats it at first boot: LUKS2 (kos.datafs=luks2 in the signed
# cmdline), its key made and sealed on the device.
"$KOS" image --force --imagefs img --imagefs-extra 256M --uki bootk/kos-boot.efi --data-size 128M --bmap disk.bmap \
        disk.img

# demo_update_build: demo-update, the release the device pulls after its
# first boot: the base with a few files changed (a file under /etc, one
# added, a small binary), built as the first base was (kos component build
# --verity is reproducible: the unchanged parts give the same bytes, so their
# chunks match), everything else as in demo-current. Signed and installed in
# img, the vendor's ImageFS the factory image was made from (kos push
# publishes from an ImageFS). Built while the device boots; published only
# once its first boot is marked good.
demo_update_build() {
        local rootfs
        rootfs=$(vm_rootfs)
        rm -rf base2-root base2.img base2.img.meta
        cp -a "$rootfs" base2-root
        rm -f base2-root/etc/issue base2-root/usr/bin/hostid
        printf 'KOS demo-update \\n \\l\n\n' >base2-root/etc/issue
        printf 'demo-update: the base with a few files changed, pulled over the network\n' >base2-root/etc/kos-demo-release
        # A small binary, changed: hostid with a note after its last section
        # (the ELF loader maps what the headers name, nothing after).
        { cat "$rootfs/usr/bin/hostid"; printf 'KOS demo-update\n'; } >base2-root/usr/bin/hostid
        chmod 755 base2-root/usr/bin/hostid
        touch -r "$rootfs/usr/bin/hostid" base2-root/usr/bin/hostid
        nice -n 5 "$KOS" component build --type squashfs --verity base2-root base2.img >/dev/null
        rm -rf base2-root
        "$KOS" component add img base2.img >/dev/null
        "$KOS" manifest create --name demo-update --version 3 --security-version 1 --kernel vmlinuz --initrd initrd \
                --cmdline "console=ttyS0 loglevel=4 panic=-1 kos.settle=5 kos.datafs=luks2" --component base=base2.img \
                --component runtime=runtime.img --component app=app2.img -o demo-update.json
        "$KOS" manifest sign --key kos-dev-DO-NOT-SHIP.key demo-update.json >/dev/null
        "$KOS" install --keyring keyring img demo-update.json >/dev/null
        echo "demo-update built while the device boots: base2.img ($(du -h base2.img | cut -f1)): /etc/issue and /usr/bin/hostid changed, /etc/kos-demo-release added"
}

# demo_update_publish: pushes demo-update to the tag the device polls, with
# a zstd delta of each changed component from demo-current (kos push
# --delta-from; the chunks are published too, for devices that lack
# demo-current's base). REGISTRY_LOG_FROM: the first line of the registry's
# log after the push, where the device's requests for it start.
demo_update_publish() {
        local t=$SECONDS
        step "Publishing demo-update to $UPDATE_REF (chunks, and a delta from demo-current); the device polls it"
        "$KOS" push --delta-from demo-current img demo-update "http://127.0.0.1:$REGISTRY_PORT/$UPDATE_REF" | grep -v "^digest: "
        REGISTRY_LOG_FROM=$(($(wc -l <registry/log) + 1))
        echo "pushed in $((SECONDS - t)) s"
}
REGISTRY_LOG_FROM=

step "Registry: docker-registry on 127.0.0.1 (build/demo/registry), for $UPDATE_REF"
rm -rf registry
registry_start registry
registry_netdev
echo "the guest reaches it as $REGISTRY_GUEST_URL and nothing else (QEMU user network, restrict=on, guestfwd to 127.0.0.1:$REGISTRY_PORT)"

vm_swtpm_start tpm

if [ "${RUN:-}" = 1 ]; then
        step "Booting with an interactive console (exit: Ctrl-A X)"
        vm_machine_args && ovmf_machine_args OVMF_VARS.fd disk.img
        qemu-system-x86_64 "${VM_ARGS[@]}" -nographic -serial mon:stdio "${OVMF_ARGS[@]}" "${VM_TPM_ARGS[@]}" \
                "${REGISTRY_NETDEV_ARGS[@]}"
        exit
fi

step "Booting in QEMU ($(vm_accel)); the console goes to build/demo/console.log"
# The device runs on while the update is built and published: Node Manager
# polls the registry every 60 s, pulls the new release, and reboots into it.
# QEMU runs with -no-reboot (as every boot here), so that reboot ends this
# QEMU and the demo powers the device on again below: the second boot is the
# device's own reboot.
start=$(date +%s)
ovmf_run console.log 720 'BOOT FAILED|System halted|Access Denied|Kernel panic|kos-node .*update from .*refused' OVMF_VARS.fd disk.img \
        "${VM_TPM_ARGS[@]}" "${REGISTRY_NETDEV_ARGS[@]}" &
VM_PID=$!
# While the device boots: demo-current published (its first polls find it
# up to date), and demo-update built.
"$KOS" push img demo-current "http://127.0.0.1:$REGISTRY_PORT/$UPDATE_REF" | grep "^pushed"
demo_update_build
until grep -aq 'KOS-STATUS' console.log; do
        kill -0 "$VM_PID" 2>/dev/null || break
        [ $(($(date +%s) - start)) -lt 600 ] || break
        sleep 1
done
echo "first boot: $(grep -a 'kos-node .*marked good' console.log | head -1 | tr -d '\r' | sed 's/.*kos-node \[ *[0-9.]*\] //') ($(($(date +%s) - start)) s of wall time)"
if grep -aq 'KOS-STATUS .*"marked_good": true' console.log; then
        demo_update_publish
else
        echo "the first boot was not marked good: nothing published" >&2
fi
wait "$VM_PID" || true
VM_PID=
swtpm_stop tpm
grep -a -e 'kos-node .*update source' -e 'kos-node .*update from' -e 'kos-node .*reboot' console.log | tr -d '\r' |
        sed 's/^.*kos-node \[ *\([0-9.]*\)\] /  \1 s  /' || true

if grep -aq 'kos-node .*update from .*installed demo-update' console.log; then
        step "Second boot: the device's reboot into demo-update (console: build/demo/console-update.log)"
        vm_swtpm_start tpm
        ovmf_run console-update.log 600 'KOS-STATUS|BOOT FAILED|System halted|Access Denied|Kernel panic' OVMF_VARS.fd \
                disk.img "${VM_TPM_ARGS[@]}" "${REGISTRY_NETDEV_ARGS[@]}" || true
        swtpm_stop tpm
fi
echo "done in $(($(date +%s) - start)) s of wall time"

step "Report"
log=console.log
t() { grep -a "$1" "$log" | head -1 | sed -n 's/.*\[ *\([0-9.]*\)\].*/\1/p'; }
grep -aq 'EFI stub: UEFI Secure Boot is enabled' "$log" && echo "Firmware: UEFI Secure Boot enforcing; the signed Boot Kernel UKI was verified and started"
printf '%-44s %s\n' "Boot Kernel: init started" "$(t 'kos-boot .*init started') s"
grep -a -e 'kos-boot .*manifest ' -e 'kos-boot .*rollback floor: security' -e 'kos-boot .*measured boot' "$log" |
        sed 's/^kos-boot \[ *\([0-9.]*\)\] /  \1 s  /'
printf '%-44s %s\n' "Boot Kernel: kexec into the System Kernel" "$(t 'kos-boot .*jumping') s"
printf '%-44s %s\n' "System Kernel: init started" "$(t 'kos-system .*init started') s (new clock)"
grep -aq 'Kernel is locked down from EFI Secure Boot' "$log" && echo "System Kernel: locked down (Secure Boot state handed on by kexec)"
grep -a -e 'kos-system .*key .* from the TPM' -e 'kos-system .*DataFS' -e 'kos-system .*sealed keys: ' \
        -e 'kos-system .*BOOT FAILED' "$log" |
        tr -d '\r' | sed 's/^kos-system \[ *\([0-9.]*\)\] /  \1 s  /'
printf '%-44s %s\n' "System Kernel: root assembled" "$(t 'kos-system .*root assembled') s"
printf '%-44s %s\n' "Node Manager started (systemd running)" "$(t 'Node Manager started') s"
printf '%-44s %s\n' "kos-app started" "$(t 'kos-app.target started') s"
printf '%-44s %s\n' "boot marked good" "$(t 'marked good') s"
# The Boot Kernel slot that booted (docs/trust-chain.md, "Boot Kernel
# updates"), as Node Manager read it from BootCurrent: on the factory
# image's first boot the firmware has no entry of ours yet and starts the
# removable path (a copy of slot A); Node Manager then makes slot A the default.
bk_slot=$(grep -a 'kos-node .*booted from ' "$log" | head -1 | tr -d '\r' | sed 's/.*booted from //; s/^Boot Kernel //' || true)
echo "Boot Kernel: booted from ${bk_slot:-an unknown slot (Node Manager did not say)}"
grep -a -e 'kos-node .*Boot Kernel slot [AB] is the default' -e 'kos-node .*Boot Kernel slot [AB] blessed' \
        -e 'kos-node .*Boot Kernel slot[s]* .*cannot' "$log" | tr -d '\r' | sed 's/^kos-node \[ *\([0-9.]*\)\] /  \1 s  /' || true
echo
grep -a 'KOS-APP started' "$log" | head -1 | sed 's/^/proof: /' || true
device_kos=$(grep -a 'KOS-VERSION ' "$log" | head -1 | sed 's/^KOS-VERSION //' | tr -d '\r')
echo "version: $("$KOS" --version) on the host; ${device_kos:-no kos --version} on the device (package kos-device $(dpkg-deb -f "$deb" Version))"
status=$(grep -a 'KOS-STATUS' "$log" | head -1 | sed 's/^KOS-STATUS //' | tr -d '\r')
if ! grep -aq 'EFI stub: UEFI Secure Boot is enabled' "$log"; then
        echo "DEMO FAILED: the Boot Kernel did not start under enforcing Secure Boot; see build/demo/console.log" >&2
        exit 1
fi
if ! grep -aq 'kos-system .*component app: key demo-app from the TPM' "$log"; then
        echo "DEMO FAILED: the app's key did not come from the TPM; see build/demo/console.log" >&2
        exit 1
fi
if ! grep -aq 'kos-system .*DataFS /dev/mapper/kos-data \(formatted\|mounted\) at /data (LUKS2' "$log"; then
        echo "DEMO FAILED: the DataFS is not LUKS2 with its key sealed in the TPM; see build/demo/console.log" >&2
        exit 1
fi
echo "DataFS: LUKS2 (aes-xts-plain64, 512-bit key) made at first boot, its key sealed in the TPM to PCR 7+15; recovery: kos datafs recover --key build/demo/recovery.key"
if [ -n "$status" ] && jq -e '.app == "active" and .marked_good == true' >/dev/null <<<"$status"; then
        echo "kos node status: $(jq -c '{state, booted: .booted.name, app, marked_good, rollback_floor, datafs,
                boot_kernel_slot: .boot_kernel.booted_slot}' <<<"$status")"
        echo "first boot: manifest $(jq -r .booted.name <<<"$status") booted (Boot Kernel ${bk_slot:-slot unknown}), kos-app.target active, marked good"
else
        echo "DEMO FAILED: the first boot was not marked good with kos-app.target active; see build/demo/console.log" >&2
        exit 1
fi

step "Update over the network: demo-update pulled from the registry, booted, marked good"
pulled=$(grep -a 'kos-node .*update from .*installed demo-update' console.log | head -1 | tr -d '\r' |
        sed 's/.*: installed /installed /' || true)
if [ -z "$pulled" ] || [ -z "$REGISTRY_LOG_FROM" ]; then
        echo "DEMO FAILED: the device did not pull demo-update; see build/demo/console.log and build/demo/registry/log" >&2
        exit 1
fi
# Node Manager counts the components the ImageFS gained and their size, not
# the bytes that came over the network (those are below).
echo "Node Manager: $pulled (components added to the ImageFS)"
grep -a 'kos-node-pull.*: .*\(delta\|chunks\)' console.log | tr -d '\r' | sed 's/^.*kos-node-pull[^:]*: /  kos-node-pull: /' || true
# What the device fetched: every response body the registry served to a GET
# from the push of demo-update on (the device is its only client then) until
# the device rebooted into it; the release's full size: its kernel, initrd
# and components, as kos pull fetched them before chunks and deltas.
read -r fetched requests < <(registry_served_bytes registry/log "$REGISTRY_LOG_FROM")
full=0
for f in vmlinuz initrd base2.img runtime.img app2.img; do full=$((full + $(stat -c %s "$f"))); done
base2=$(stat -c %s base2.img)
update_status=$(grep -a 'KOS-STATUS' console-update.log 2>/dev/null | head -1 | sed 's/^KOS-STATUS //' | tr -d '\r')
echo "second boot: $(grep -a 'kos-boot .*booting manifest' console-update.log | head -1 | tr -d '\r' | sed 's/^kos-boot \[ *[0-9.]*\] //')"
grep -a 'kos-node .*marked good' console-update.log | head -1 | tr -d '\r' | sed 's/^.*kos-node \[ *[0-9.]*\] /second boot: /' || true
grep -a 'KOS-APP started' console-update.log | head -1 | sed 's/^/proof: /' || true
awk -v f="$fetched" -v n="$requests" -v full="$full" -v b="$base2" 'BEGIN {
        printf "fetched over the network: %d bytes in %d requests (registry access log), %.2f%% of the release (%d bytes);\n", f, n, 100 * f / full, full
        printf "  without chunks and deltas the device would fetch the changed base whole: %d bytes (%.0fx as much)\n", b, b / (f > 0 ? f : 1) }'
if [ -n "$update_status" ] &&
        jq -e '.booted.name == "demo-update" and .marked_good == true and .app == "active"' >/dev/null <<<"$update_status"; then
        echo "kos node status: $(jq -c '{state, booted: .booted.name, app, marked_good}' <<<"$update_status")"
        echo "DEMO OK: demo-current booted and marked good; demo-update pulled over the network ($fetched of $full bytes), booted and marked good"
else
        echo "DEMO FAILED: demo-update was not booted and marked good; see build/demo/console-update.log" >&2
        exit 1
fi
