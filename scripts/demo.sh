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
#   kos-app, boot marked good.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD BUILD=build KOS=$PWD/build/kos
export ROOT BUILD KOS
# shellcheck source=qemu.sh
. scripts/qemu.sh
# shellcheck source=layers.sh
. scripts/layers.sh

demo=$PWD/build/demo
mkdir -p "$demo"
cd "$demo"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

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
echo "runtime layer: package kos-device $(dpkg-deb -f "$deb" Version) (dpkg-deb -x), the keyring, a status report unit"
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
"$KOS" mkboot --kernel "$bk" --keyring keyring --output bootk --uki bootk/kos-boot.efi \
        --cmdline "console=ttyS0 panic=-1 loglevel=4 kos.tpm=required" --sign-key "$sbkeys/db.key" --sign-cert "$sbkeys/db.crt"
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

vm_swtpm_start tpm

if [ "${RUN:-}" = 1 ]; then
        step "Booting with an interactive console (exit: Ctrl-A X)"
        vm_machine_args && ovmf_machine_args OVMF_VARS.fd disk.img
        exec qemu-system-x86_64 "${VM_ARGS[@]}" -nographic -serial mon:stdio "${OVMF_ARGS[@]}" "${VM_TPM_ARGS[@]}"
fi

step "Booting in QEMU ($(vm_accel)); the console goes to build/demo/console.log"
start=$(date +%s)
ovmf_run console.log 400 'KOS-STATUS|BOOT FAILED|System halted|Access Denied' OVMF_VARS.fd disk.img "${VM_TPM_ARGS[@]}" || true
swtpm_stop tpm
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
if [ -n "$status" ] && jq -e '.app == "active"' >/dev/null <<<"$status"; then
        echo "kos node status: $(jq -c '{state, booted: .booted.name, app, marked_good, rollback_floor, datafs,
                boot_kernel_slot: .boot_kernel.booted_slot}' <<<"$status")"
        echo "DEMO OK: manifest $(jq -r .booted.name <<<"$status") booted (Boot Kernel ${bk_slot:-slot unknown}), kos-app.target active"
else
        echo "DEMO FAILED: see build/demo/console.log" >&2
        exit 1
fi
