# shellcheck source=../../scripts/layers.sh
. "$ROOT/scripts/layers.sh"

# Fixture for the full chain: Boot Kernel -> kexec -> System Kernel initrd ->
# OverlayFS root of three components -> systemd. Sourced by test-system.sh.

# The runtime layer: overrides /etc/kos-layer, carries a 16 KiB file whose
# bytes are a known marker (for tampering tests).
make_runtime_layer() { # DIR
        mkdir -p "$1/etc"
        echo runtime >"$1/etc/kos-layer"
        echo runtime >"$1/etc/kos-runtime"
        for _ in $(seq 512); do printf 'KOS-VICTIM-DATA-0123456789abcdef'; done >"$1/etc/kos-victim"
}

# The app layer: the report service, run once multi-user.target is reached.
make_app_layer() { # DIR
        mkdir -p "$1/etc/systemd/system/multi-user.target.wants" "$1/usr/local/bin"
        echo app >"$1/etc/kos-layer"
        cat >"$1/usr/local/bin/kos-test-report" <<'SH'
#!/bin/sh
say() { echo "KOS-REPORT $*" >/dev/console; }
say "layer=$(cat /etc/kos-layer) runtime=$(cat /etc/kos-runtime)"
say "manifest=$(grep -m1 '"name"' /run/kos/boot.json | cut -d'"' -f4)"
if head -c 64 /etc/kos-victim >/tmp/victim 2>/tmp/victim.err; then say "victim=$(cat /tmp/victim)"; else say "victim-error=$(cat /tmp/victim.err)"; fi
[ -e /etc/kos-written ] && say "etc-file=present" || say "etc-file=absent"
[ -e /data/kos-persist ] && say "data-file=present" || say "data-file=absent"
echo x >/etc/kos-written
echo x >/data/kos-persist
sync
say "multi-user=$(systemctl is-active multi-user.target) uptime=$(cut -d' ' -f1 /proc/uptime)"
systemctl poweroff --no-block
SH
        chmod 755 "$1/usr/local/bin/kos-test-report"
        cat >"$1/etc/systemd/system/kos-test-report.service" <<'UNIT'
[Unit]
Description=KOS test report
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/usr/local/bin/kos-test-report

[Install]
WantedBy=multi-user.target
UNIT
        ln -s ../kos-test-report.service "$1/etc/systemd/system/multi-user.target.wants/kos-test-report.service"
}

SYS_CMDLINE="console=ttyS0 loglevel=4 panic=-1 kos.fail_delay=1"

# chain_keys_and_boot_kernel KERNEL_DIR: keys (secret.pem, keyring/, an empty
# keystore/), Debian's kernel as vmlinuz, the Boot Kernel bootk/ on the
# kernel made for it (as on a device; Debian's kernel as the Boot Kernel,
# loading its modules, is tests/vm/test-boot.sh's subject).
chain_keys_and_boot_kernel() {
        vm_dev_key
        mkdir keyring keystore && cp public.pem keyring/dev.pem
        cp "$1"/boot/vmlinuz-* vmlinuz
        VM_BOOT_KERNEL=kos vm_mkboot_cached --keyring keyring --output bootk >/dev/null
}

# Keys, the Boot Kernel, the System Kernel initrd (keyring and key store), the
# three components, an ImageFS img/ with manifest "sys" active.
sys_fixture() {
        local kd; kd=$(vm_kernel_dir)
        chain_keys_and_boot_kernel "$kd"
        make_runtime_layer runtime && make_app_layer app
        "$KOS" component build --type erofs --verity runtime runtime.img >/dev/null 2>&1
        "$KOS" component build --type squashfs app app.img >/dev/null
        vm_cached initrd "$KOS" mkinitrd --kernel-dir "$kd" --keyring keyring --keystore keystore --output initrd >/dev/null
        vm_test_base base.img
        "$KOS" imagefs init img
        IMAGEFS_UUID=$(cat /proc/sys/kernel/random/uuid)
        sys_manifest sys runtime.img
        activate sys
}

# sys_manifest NAME RUNTIME_IMAGE: signs and installs a manifest of base, runtime, app.
sys_manifest() {
        "$KOS" component add img vmlinuz initrd base.img "$2" app.img >/dev/null
        "$KOS" manifest create --name "$1" --version 1 --kernel vmlinuz --initrd initrd \
                --cmdline "$SYS_CMDLINE" --component base=base.img --component "runtime=$2" --component app=app.img -o "$1.json"
        "$KOS" manifest sign --key secret.pem "$1.json" >/dev/null
        "$KOS" install img "$1.json" >/dev/null
}

SYS_DONE='KOS-REPORT multi-user|BOOT FAILED|reboot: Power down|reboot: Restarting|System halted'

# sys_boot: the whole chain, console in console.log. KEEP_DISK=1 boots the
# disk of the previous boot again (a reboot).
sys_boot() {
        [ "${KEEP_DISK:-}" = 1 ] || DATA_MIB=64 imagefs_disk img disk.img "$IMAGEFS_UUID"
        vm_run_kernel console.log "${VM_TIMEOUT:-240}" "$SYS_DONE" || true
        grep -aE 'kos-boot|kos-system|KOS-REPORT|Reached target.*Multi-User' console.log | sed 's/^/  | /' >&2
}

# handoff MANIFEST: what the Boot Kernel appends for MANIFEST on disk.img
# (early_handoff_format in early/early.h); HANDOFF_TPM_MARKER=1 says it
# extended PCR 15 with the verified-boot marker (default 0: no Boot Kernel ran).
handoff() {
        local partuuid=${HANDOFF_PARTUUID:-$(sfdisk --part-uuid disk.img 1 | tr 'A-Z' 'a-z')}
        echo "kos.manifest=$(sha "img/manifests/$1.json") kos.imagefs=UUID=$IMAGEFS_UUID kos.imagefs_partuuid=$partuuid" \
                "kos.tpm_marker=${HANDOFF_TPM_MARKER:-0}"
}

# sys_boot_direct MANIFEST [EXTRA [QEMU ARGS...]]: the System Kernel and its initrd started
# directly (no Boot Kernel) with the command line the Boot Kernel would give
# it - what an attacker who changed the disk after the Boot Kernel's check
# would leave the System Kernel with. EXTRA goes between the signed cmdline
# and the handoff; SIGNED replaces the signed cmdline, HANDOFF_PARTUUID the
# partition UUID handed on.
sys_boot_direct() {
        local manifest=$1 extra=${2:-} signed
        signed=${SIGNED:-$(jq -r .cmdline "img/manifests/$manifest.json")}
        shift; shift || true
        VM_KERNEL=vmlinuz VM_INITRD=initrd VM_APPEND="$signed${extra:+ $extra} $(handoff "$manifest")" \
                vm_run_kernel console.log "${VM_TIMEOUT:-240}" "$SYS_DONE|KOS-TEST-SYSTEM" "$@" || true
        grep -aE 'kos-system|KOS-REPORT|KOS-TEST|device-mapper|verity' console.log | sed 's/^/  | /' >&2
}

# --- A small root without systemd (System Kernel rules that need no OS) ---

# Keys, the Boot Kernel, the System Kernel initrd and an ImageFS img/; the
# bottom layer mini.img holds only /sbin/init = tests/vm/test-system-init,
# which reports what was assembled (KOS-TEST-ROOT) and powers off.
mini_fixture() {
        local kd; kd=$(vm_kernel_dir)
        chain_keys_and_boot_kernel "$kd"
        vm_cached initrd "$KOS" mkinitrd --kernel-dir "$kd" --keyring keyring --keystore keystore --output initrd >/dev/null
        mkdir -p mini/sbin mini/etc && cp "$ROOT/$BUILD/vm/test-system-init" mini/sbin/init && echo 0 >mini/etc/kos-layer-0
        mksquashfs mini mini.img -quiet -noappend >/dev/null
        "$KOS" imagefs init img
        IMAGEFS_UUID=$(cat /proc/sys/kernel/random/uuid)
}

# mini_manifest NAME NAME=IMAGE...: signs, installs and activates a manifest
# of those components (first at the bottom) with cmdline $SYS_CMDLINE and
# the initrd MINI_INITRD (default initrd); each image's type, encryption and
# verity come from the .meta kos component build wrote, if any.
mini_manifest() {
        local name=$1 c images=() components=() initrd=${MINI_INITRD:-initrd}
        shift
        for c in "$@"; do
                images+=("${c#*=}")
                components+=(--component "$c")
        done
        "$KOS" component add img vmlinuz "$initrd" "${images[@]}" >/dev/null
        "$KOS" manifest create --name "$name" --version 1 --kernel vmlinuz --initrd "$initrd" --cmdline "$SYS_CMDLINE" \
                "${components[@]}" -o "$name.json"
        "$KOS" manifest sign --key secret.pem "$name.json" >/dev/null
        "$KOS" install img "$name.json" >/dev/null
        activate "$name"
}

MINI_DONE='KOS-TEST-SYSTEM|BOOT FAILED|reboot: Power down|reboot: Restarting|System halted'

# mini_boot [QEMU ARGS...]: the whole chain on the small root, console in
# console.log. KEEP_DISK=1 boots the disk of the previous boot again.
mini_boot() {
        [ "${KEEP_DISK:-}" = 1 ] || imagefs_disk img disk.img "$IMAGEFS_UUID"
        vm_run_kernel console.log "${VM_TIMEOUT:-240}" "$MINI_DONE" "$@" || true
        grep -aE 'kos-boot|kos-system|KOS-TEST' console.log | sed 's/^/  | /' >&2
}

report() { grep -a "KOS-REPORT $1" console.log | tail -1 | tr -d '\r'; }

# --- Layers with Node Manager (node tests and make demo) ---

make_node_runtime_layer() { # DIR
        make_runtime_layer "$1"
        kos_runtime_layer "$1" "${KEYRING_DIR:-keyring}"
}

# An app layer of the given version (the demo app, scripts/layers.sh) and a
# test helper.
make_node_app_layer() { # DIR VERSION
        kos_demo_app_layer "$1" "$2"
        mkdir -p "$1/etc/systemd/system/multi-user.target.wants"
        # Test helper: prints Node Manager's status on the console; under kos.hold,
        # tries start-app as nobody (must be refused), then releases the hold as root.
        cat >"$1/etc/systemd/system/kos-test-node.service" <<'UNIT'
[Unit]
Description=KOS test: report Node Manager's status, release a hold
After=kos-node-manager.service

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'sleep 5; echo "KOS-STATUS $(kos node status | tr -d "\\n")" >/dev/console; \
  if grep -q kos.hold /proc/cmdline; then \
    echo "KOS-TEST non-root start-app: $(setpriv --reuid=65534 --regid=65534 --clear-groups kos node start-app 2>&1 | tr -d "\\n")" >/dev/console; \
    sleep 2; echo "KOS-TEST releasing the hold" >/dev/console; kos node start-app; fi'

[Install]
WantedBy=multi-user.target
UNIT
        ln -s ../kos-test-node.service "$1/etc/systemd/system/multi-user.target.wants/"
}

