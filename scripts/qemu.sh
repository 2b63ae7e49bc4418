# The QEMU machine KOS is built and shown on: the accelerator (KVM only when a
# guest really runs under it), a headless run whose serial console is read
# with a time limit and which always ends, OVMF with Secure Boot and the keys
# enrolled, a TPM (swtpm), GPT disks made without mounting anything.
# Sourced by make demo (scripts/demo.sh), the boot benchmark and the VM
# tests (tests/vm/lib.sh). Expects ROOT (the repository) and BUILD; VM_CACHE
# (default BUILD/vm) holds what is made once per machine.

VM_CACHE=${VM_CACHE:-$ROOT/$BUILD/vm}
mkdir -p "$VM_CACHE"

# shellcheck source=swtpm.sh
. "$ROOT/scripts/swtpm.sh"

# vm_locked LOCK COMMAND...: COMMAND while holding the file lock LOCK (flock):
# what is made once and shared, per machine (VM_CACHE) or per run
# (KOS_RUN_CACHE), is made by one test at a time (the runner can run JOBS
# tests at once).
vm_locked() {
        local lock=$1
        shift
        ( flock 9 && "$@" ) 9>"$lock"
}

vm_kernel_dir() { vm_locked "$VM_CACHE/.kernel.lock" "$ROOT/scripts/fetch-kernel.sh"; }

# vm_accel_boots ACCEL: true when QEMU with ACCEL runs a Linux kernel far
# enough to print on the serial console within a few seconds. The kernel
# (Debian's, which the VM tests boot anyway) gets no root file system, so it
# stops at once with "Kernel panic - not syncing: VFS: Unable to mount root
# fs": about 1 s under KVM, 4 s under TCG. Seen here: /dev/kvm opens and a
# boot sector even runs under -accel kvm, yet a Linux kernel never prints a
# byte (QEMU sits at 100% CPU), so only a kernel that really ran proves the
# accelerator works.
vm_accel_boots() {
        local accel=$1 dir pid i ok=1 cpu=max kernel
        kernel=$(ls "$(vm_kernel_dir)"/boot/vmlinuz-* | head -n 1) || return 1
        [ "$accel" = kvm ] && cpu=host
        dir=$(mktemp -d /tmp/kos-accel-XXXXXX)
        qemu-system-x86_64 -accel "$accel" -cpu "$cpu" -M pc -m 128 -display none -monitor none -nic none \
                -serial "file:$dir/serial" -kernel "$kernel" -append "console=ttyS0 panic=-1" -no-reboot \
                </dev/null >"$dir/qemu.log" 2>&1 &
        pid=$!
        for i in $(seq 1 "${VM_ACCEL_PROBE_TENTHS:-100}"); do
                grep -q 'Kernel panic' "$dir/serial" 2>/dev/null && { ok=0; break; }
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
        done
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        rm -rf "$dir"
        return $ok
}

# The processors of every guest, VM_SMP when set (from 1 to 99), else 2: a
# boot alone on the machine runs faster with two (tests/run.sh gives the VM
# suite's side-by-side boots one each).
case "${VM_SMP:-2}" in
[1-9] | [1-9][0-9]) ;;
*)
        echo "VM_SMP must be a number of processors from 1 to 99, not '$VM_SMP'" >&2
        exit 1
        ;;
esac

# The accelerator every VM of this shell uses, decided once when this file
# is sourced (and exported, so the tests' subshells inherit it): KVM only
# when a guest really runs under it, TCG otherwise. VM_ACCEL=tcg|kvm overrides.
case "${VM_ACCEL:-}" in
tcg | kvm) ;;
"")
        VM_ACCEL=tcg
        # Its stderr closed: bash reports a QEMU that aborts under a broken
        # KVM ("Aborted"), which is the probe's answer, not an error.
        [ -w /dev/kvm ] && vm_accel_boots kvm 2>/dev/null && VM_ACCEL=kvm
        ;;
*)
        echo "VM_ACCEL must be tcg or kvm, not '$VM_ACCEL'" >&2
        exit 1
        ;;
esac
export VM_ACCEL
vm_accel() { echo "$VM_ACCEL"; }

# vm_machine_args: VM_ARGS, the accelerator, CPU, memory and processors of
# every boot (make run's interactive one too). Under TCG the CPU is "max":
# with AVX2 and friends emulated, hashing runs 2.5x faster.
vm_machine_args() {
        local cpu=max
        [ "$(vm_accel)" = kvm ] && cpu=host
        VM_ARGS=(-accel "$(vm_accel)" -cpu "$cpu" -m 1024 -smp "${VM_SMP:-2}")
}

# vm_run LOG TIMEOUT DONE_REGEX QEMU_ARGS...: boots headless, console to LOG,
# until DONE_REGEX appears, QEMU exits, or TIMEOUT seconds pass. The QEMU
# process is always gone afterwards. Returns 0 when DONE_REGEX was seen, with
# VM_SEEN_AT set to the host time it was ($EPOCHREALTIME, 0.1 s polling).
vm_run() {
        local log=$1 timeout=$2 done_re=$3
        shift 3
        : >"$log"
        local monitor=none
        [ -n "${VM_MONITOR:-}" ] && monitor="unix:$VM_MONITOR,server,nowait"
        vm_machine_args
        qemu-system-x86_64 "${VM_ARGS[@]}" -display none -monitor "$monitor" \
                -serial "file:$log" -no-reboot "$@" </dev/null >"$log.qemu" 2>&1 &
        local pid=$! waited=0 seen=1 started=$EPOCHREALTIME
        while [ "$waited" -lt $((timeout * 10)) ]; do
                if grep -qE "$done_re" "$log" 2>/dev/null; then seen=0 VM_SEEN_AT=$EPOCHREALTIME; break; fi
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
                waited=$((waited + 1))
        done
        grep -qE "$done_re" "$log" 2>/dev/null && seen=0
        sleep 0.3 # let the last console lines land
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        # The boots a test makes and their seconds (tests/runner.sh reports them).
        [ -z "${KOS_TEST_BOOTS:-}" ] || awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f\n", b - a }' >>"$KOS_TEST_BOOTS"
        [ "$waited" -ge $((timeout * 10)) ] && echo "  (timed out after ${timeout}s)" >&2
        return $seen
}

# vm_run_kernel LOG TIMEOUT DONE_REGEX [QEMU ARGS...]: vm_run of a direct
# kernel boot on the test's disk: the Boot Kernel of bootk/ (VM_KERNEL and
# VM_INITRD name another kernel and initrd), its command line VM_APPEND
# (default: the console, halt on panic), disk.img (VM_DISK names another) as
# the first virtio disk (none with NO_DISK=1); QEMU ARGS add disks, a TPM, a
# network card. Every boot that starts at a kernel goes through here.
vm_run_kernel() {
        local log=$1 timeout=$2 done_re=$3 disk=()
        shift 3
        [ "${NO_DISK:-}" = 1 ] || disk=(-drive "file=${VM_DISK:-disk.img},if=virtio,format=raw")
        vm_run "$log" "$timeout" "$done_re" -kernel "${VM_KERNEL:-bootk/vmlinuz}" -initrd "${VM_INITRD:-bootk/initramfs.img}" \
                -append "${VM_APPEND:-$VM_BOOT_APPEND}" "${disk[@]}" "$@"
}

# The Boot Kernel's command line in every test (no_timer_check: under TCG on
# a loaded host the kernel's IO-APIC timer check can time out and panic).
VM_BOOT_APPEND="console=ttyS0 panic=-1 loglevel=4 no_timer_check"

# --- A TPM for the guest (swtpm) -----------------------------------------

# vm_swtpm_start DIR: a TPM for the next QEMU: VM_TPM_ARGS holds the QEMU
# arguments (a TIS device, as on a PC); call swtpm_stop DIR after the boot.
vm_swtpm_start() {
        local dir; mkdir -p "$1"; dir=$(realpath "$1")
        SWTPM_WAIT_FOR=$dir/qemu.sock swtpm_launch "$dir" --ctrl type=unixio,path="$dir/qemu.sock"
        VM_TPM_ARGS=(-chardev "socket,id=chrtpm,path=$dir/qemu.sock" -tpmdev emulator,id=tpm0,chardev=chrtpm
                -device tpm-tis,tpmdev=tpm0)
}

# --- UEFI and Secure Boot (OVMF) -----------------------------------------

OVMF_CODE=/usr/share/OVMF/OVMF_CODE_4M.secboot.fd
OVMF_VARS_EMPTY=/usr/share/OVMF/OVMF_VARS_4M.fd

# The development Secure Boot keys (PK, KEK, db), made once per machine
# (SB_KEYS_DIR: another key set, e.g. make demo's own).
sb_keys() {
        local dir=${SB_KEYS_DIR:-$ROOT/$BUILD/secureboot/dev-keys}
        vm_locked "$VM_CACHE/.sb-keys.lock" "$ROOT/scripts/secureboot-keys.sh" "$dir" && echo "$dir"
}

# esp_image DIR OUT: a FAT ESP holding DIR's tree, made without mounting.
esp_image() {
        local mib=$(( $(du -sm "$1" | cut -f1) + 8 ))
        [ "$mib" -ge 34 ] || mib=34
        rm -f "$2"
        mkfs.vfat -C -n KOS-ESP -i 4b05e5f0 "$2" $((mib * 1024)) >/dev/null
        mcopy -s -i "$2" "$1"/* ::/
}

# uefi_disk ESP_DIR OUT [IMG_DIR UUID]: a GPT disk with an EFI system
# partition made from ESP_DIR, then (with IMG_DIR) the ImageFS made from it,
# then with DATA_MIB an empty DataFS, as imagefs_disk lays them out.
uefi_disk() {
        local esp_dir=$1 out=$2 img=${3:-} uuid=${4:-$(cat /proc/sys/kernel/random/uuid)}
        local data=${DATA_MIB:-0} esp_mib mib=0
        esp_image "$esp_dir" "$out.esp"
        esp_mib=$(( $(stat -c %s "$out.esp") >> 20 ))
        rm -f "$out.part" "$out"
        if [ -n "$img" ]; then
                mib=$(( $(du -sm "$img" | cut -f1) * 3 / 2 + 16 + ${IMAGEFS_EXTRA_MIB:-0} ))
                mkfs.ext4 -q -F -L KOS-IMAGEFS -U "$uuid" -d "$img" -E root_owner=0:0 "$out.part" "${mib}M"
        fi
        truncate -s $(((esp_mib + mib + data + 2) << 20)) "$out"
        {
                echo "label: gpt"
                echo "start=2048, size=$((esp_mib * 2048)), type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=\"EFI system\""
                [ "$mib" = 0 ] || echo "size=$((mib * 2048)), type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=\"kos-imagefs\""
                [ "$data" = 0 ] || echo "size=$((data * 2048)), type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=\"KOS-DATA\""
        } | sfdisk -q "$out"
        dd if="$out.esp" of="$out" bs=1M seek=1 conv=notrunc,sparse status=none
        [ "$mib" = 0 ] || dd if="$out.part" of="$out" bs=1M seek=$((esp_mib + 1)) conv=notrunc,sparse status=none
        rm -f "$out.part" "$out.esp"
}

# ovmf_run LOG TIMEOUT DONE_REGEX VARS DISK [QEMU ARGS...]: vm_run on OVMF
# with Secure Boot (SMM, secure flash), VARS as the variable store (written
# by the firmware), DISK as a virtio disk and no network.
ovmf_run() {
        local log=$1 timeout=$2 done_re=$3 vars=$4 disk=$5
        shift 5
        ovmf_machine_args "$vars" "$disk"
        vm_run "$log" "$timeout" "$done_re" "${OVMF_ARGS[@]}" "$@"
}

# ovmf_machine_args VARS DISK: OVMF_ARGS, the machine of ovmf_run (and of
# make run): q35 with SMM and a secure flash, so only the firmware writes
# the authenticated variables of Secure Boot.
ovmf_machine_args() {
        OVMF_ARGS=(-machine q35,smm=on -global driver=cfi.pflash01,property=secure,value=on
                -global ICH9-LPC.disable_s3=1 -nic none
                -drive "if=pflash,format=raw,unit=0,readonly=on,file=$OVMF_CODE"
                -drive "if=pflash,format=raw,unit=1,file=$1"
                -drive "file=$2,if=virtio,format=raw")
}

# sb_enrolled_vars: an OVMF variable store with the development PK, KEK and
# db enrolled: Secure Boot enforcing from the first boot with it. Made once
# per key set (cached by the hash of the .auth files): systemd-boot 252
# with `secure-boot-enroll force` finds loader/keys/auto/*.auth on the ESP of
# a firmware in setup mode (the empty OVMF_VARS_4M.fd), writes db, KEK, PK,
# then resets, which ends QEMU (-no-reboot). Prints the path of the store.
sb_enrolled_vars() { vm_locked "$VM_CACHE/.sb-vars.lock" sb_enrolled_vars_make; }
sb_enrolled_vars_make() {
        local keys; keys=$(sb_keys) || return 1
        local hash; hash=$(cat "$keys"/PK.auth "$keys"/KEK.auth "$keys"/db.auth | sha256sum | cut -c1-16)
        local out=$VM_CACHE/secureboot/$hash/OVMF_VARS.fd
        if [ ! -s "$out" ]; then
                local d; d=$(mktemp -d /tmp/kos-enroll-XXXXXX)
                mkdir -p "$d/esp/EFI/BOOT" "$d/esp/loader/keys/auto"
                cp /usr/lib/systemd/boot/efi/systemd-bootx64.efi "$d/esp/EFI/BOOT/BOOTX64.EFI"
                printf 'timeout 0\nsecure-boot-enroll force\n' >"$d/esp/loader/loader.conf"
                cp "$keys"/PK.auth "$keys"/KEK.auth "$keys"/db.auth "$d/esp/loader/keys/auto/"
                uefi_disk "$d/esp" "$d/disk.img"
                cp "$OVMF_VARS_EMPTY" "$d/vars.fd"
                local start=$EPOCHREALTIME
                ovmf_run "$d/console.log" 300 'a^' "$d/vars.fd" "$d/disk.img" || true
                if ! grep -aq 'KOS development db' "$d/vars.fd" || ! grep -aq 'KOS development PK' "$d/vars.fd"; then
                        echo "Secure Boot key enrollment failed; console:" >&2
                        tail -c 2000 "$d/console.log" >&2
                        rm -rf "$d"
                        return 1
                fi
                echo "enrolled the development keys into OVMF_VARS in $(echo "$EPOCHREALTIME - $start" | bc) s" >&2
                mkdir -p "$(dirname "$out")"
                cp "$d/vars.fd" "$out.tmp" && mv "$out.tmp" "$out"
                rm -rf "$d"
        fi
        echo "$out"
}

# sb_expected_pcr7 KEYS_DIR [DBX]: PCR 7 (SHA-256 bank, hex) of OVMF booting,
# with Secure Boot enforcing, an image signed by KEYS_DIR's db key from a
# variable store holding only its PK, KEK and db (sb_enrolled_vars; no dbt),
# and no dbx, or dbx holding the file DBX (the signature lists a dbx update
# appended to an empty dbx: dbx_update_lists), computed on the host, no boot
# needed. EDK2's Tcg2Dxe (MeasureAllSecureVariables)
# extends PCR 7 with one EV_EFI_VARIABLE_DRIVER_CONFIG event each for
# SecureBoot, PK, KEK, db and dbx (an absent variable is measured with no
# data), at ReadyToBoot the EV_SEPARATOR (four zero bytes), then
# DxeImageVerificationLib one EV_EFI_VARIABLE_AUTHORITY for the db entry
# that verified the boot image (its EFI_SIGNATURE_DATA: owner GUID and
# certificate). Each digest is over a UEFI_VARIABLE_DATA: the vendor GUID,
# the name's length in characters and the data's in bytes (little-endian
# UINT64), the name in UTF-16LE without its NUL, the data. Nothing of KOS
# extends PCR 7 (systemd-stub 252 enters the kernel by the EFI handover, no
# second image load).
sb_expected_pcr7() {
        local keys=$1 d pcr
        [ -z "${2:-}" ] || [ -f "$2" ] || { echo "sb_expected_pcr7: no such file: $2" >&2; return 1; }
        d=$(mktemp -d /tmp/kos-pcr7-XXXXXX)
        local global=61dfe48bca93d211aa0d00e098032b8c imagesec=cbb219d73a3d9645a3bcdad00e67656f
        bin() { printf "$(sed 's/../\\x&/g' <<<"$1")"; }
        le64() { local v=$1 i; for i in 0 1 2 3 4 5 6 7; do printf "\\x$(printf %02x $(((v >> (8 * i)) & 255)))"; done; }
        var_event() { # GUID NAME DATA_FILE
                local n=$2 i
                { bin "$1"; le64 ${#n}; le64 "$(stat -c %s "$3")"
                  for ((i = 0; i < ${#n}; i++)); do printf '%s\0' "${n:i:1}"; done; cat "$3"; } |
                        openssl dgst -sha256 -binary
        }
        head -c 32 /dev/zero >"$d/pcr"
        extend() { cat "$d/pcr" - | openssl dgst -sha256 -binary >"$d/next" && mv "$d/next" "$d/pcr"; }
        printf '\001' >"$d/secureboot" && : >"$d/none"
        tail -c +29 "$keys/db.esl" >"$d/authority" # the list's one EFI_SIGNATURE_DATA, past its 28-byte header
        var_event "$global" SecureBoot "$d/secureboot" | extend
        var_event "$global" PK "$keys/PK.esl" | extend
        var_event "$global" KEK "$keys/KEK.esl" | extend
        var_event "$imagesec" db "$keys/db.esl" | extend
        var_event "$imagesec" dbx "${2:-$d/none}" | extend
        head -c 4 /dev/zero | openssl dgst -sha256 -binary | extend
        var_event "$imagesec" db "$d/authority" | extend
        pcr=$(od -An -tx1 -v "$d/pcr" | tr -d ' \n')
        rm -rf "$d"
        echo "$pcr"
}

# dbx_update_lists AUTH OUT: the EFI_SIGNATURE_LISTs of a KEK-signed dbx
# update (kos dbx create): past its EFI_VARIABLE_AUTHENTICATION_2 header, a
# 16-byte EFI_TIME then a WIN_CERTIFICATE whose dwLength (little-endian, at
# offset 16) covers the certificate. What dbx holds once the update is
# appended to an empty dbx.
dbx_update_lists() {
        local len
        len=$(od -An -tu4 -j16 -N4 "$1" | tr -d ' ')
        [ -n "$len" ] && [ "$len" -gt 0 ] || { echo "dbx_update_lists: $1 is not an authenticated variable" >&2; return 1; }
        tail -c +$((16 + len + 1)) "$1" >"$2"
        [ -s "$2" ] || { echo "dbx_update_lists: $1 carries no signature list" >&2; return 1; }
}
