# The QEMU harness shared by the VM tests (and later stages): a cached Debian
# kernel, disk images built without mounting anything, a headless QEMU whose
# serial console is read with a time limit, always cleaned up.
# Expects ROOT (the repository) and BUILD; tests run in their own directory.

VM_CACHE=${VM_CACHE:-$ROOT/$BUILD/vm}
mkdir -p "$VM_CACHE"

# shellcheck source=../host/lib.sh
. "$ROOT/tests/host/lib.sh"

vm_kernel_dir() { "$ROOT/scripts/fetch-kernel.sh"; }

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

# The accelerator every VM of this shell uses, decided once when this file
# is sourced (and exported, so the tests' subshells inherit it): KVM only
# when a guest really runs under it, TCG otherwise. VM_ACCEL=tcg|kvm overrides.
case "${VM_ACCEL:-}" in
tcg | kvm) ;;
"")
        VM_ACCEL=tcg
        [ -w /dev/kvm ] && vm_accel_boots kvm && VM_ACCEL=kvm
        ;;
*)
        echo "VM_ACCEL must be tcg or kvm, not '$VM_ACCEL'" >&2
        exit 1
        ;;
esac
export VM_ACCEL
vm_accel() { echo "$VM_ACCEL"; }

# cpio_gz DIR OUT: a gzip newc archive of DIR, for test initrds.
cpio_gz() {
        (cd "$1" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 --reproducible | gzip -n) >"$2"
}

# imagefs_disk DIR OUT [UUID] [LABEL]: a GPT disk with one ext4 partition made
# from DIR with mkfs.ext4 -d (nothing is mounted). With DATA_MIB set, a second,
# empty partition named KOS-DATA of that size follows (the DataFS, formatted
# by the System Kernel on first boot; already formatted with DATA_FORMAT=1).
# IMAGEFS_EXTRA_MIB adds free space for updates.
imagefs_disk() {
        local dir=$1 out=$2 uuid=${3:-$(cat /proc/sys/kernel/random/uuid)} label=${4:-KOS-IMAGEFS}
        local mib=$(( $(du -sm "$dir" | cut -f1) * 3 / 2 + 16 + ${IMAGEFS_EXTRA_MIB:-0} )) data=${DATA_MIB:-0}
        rm -f "$out.part" "$out"
        mkfs.ext4 -q -F -L "$label" -U "$uuid" -d "$dir" -E root_owner=0:0 "$out.part" "${mib}M"
        truncate -s $(((mib + data + 2) << 20)) "$out"
        {
                echo "label: gpt"
                echo "start=2048, size=$((mib * 2048)), type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=\"kos-imagefs\""
                [ "$data" = 0 ] || echo "size=$((data * 2048)), type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=\"KOS-DATA\""
        } | sfdisk -q "$out"
        dd if="$out.part" of="$out" bs=1M seek=1 conv=notrunc,sparse status=none
        if [ "$data" != 0 ] && [ "${DATA_FORMAT:-}" = 1 ]; then
                rm -f "$out.part"
                mkfs.ext4 -q -F -L KOS-DATA "$out.part" "${data}M"
                dd if="$out.part" of="$out" bs=1M seek=$((mib + 1)) conv=notrunc,sparse status=none
        fi
        rm -f "$out.part"
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
        local cpu=max # TCG: emulate AVX2 and friends, hashing runs 2.5x faster
        [ "$(vm_accel)" = kvm ] && cpu=host
        qemu-system-x86_64 -accel "$(vm_accel)" -cpu "$cpu" -m 1024 -smp 2 -display none -monitor "$monitor" \
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

# --- What the tests of one run share -------------------------------------
# KOS_RUN_CACHE (made by tests/runner.sh for one run, then removed) holds the
# run's development key, the outputs of reproducible kos commands, and the
# boots that several tests check. Without it every test makes its own.

# vm_dev_key: secret.pem and public.pem, the trusted key of the VM tests, the
# same for every test of the run (which makes the Boot Kernels and initrds
# holding it reusable, vm_cached).
vm_dev_key() {
        local k=${KOS_RUN_CACHE:-}/dev-key
        if [ -z "${KOS_RUN_CACHE:-}" ]; then
                "$KOS" keygen secret.pem public.pem >/dev/null
                return
        fi
        if [ ! -s "$k/public.pem" ]; then
                mkdir -p "$k.new" && "$KOS" keygen "$k.new/secret.pem" "$k.new/public.pem" >/dev/null && mv "$k.new" "$k"
        fi
        cp "$k/secret.pem" "$k/public.pem" .
}

# vm_cached OUT COMMAND...: runs COMMAND, which writes OUT (a file or a
# directory), or copies OUT from the first run of the same command on the
# same inputs in this run. The key covers the command's words, the content of
# each word that names a file or directory under the test's directory, and
# the kos programs; a word with an absolute path counts as its name (the
# kernels' paths carry their version or hash). For reproducible commands
# only (kos mkboot, kos mkinitrd): a copy is what the command would write.
vm_cached() {
        local out=$1 key w
        shift
        [ -n "${KOS_RUN_CACHE:-}" ] || { "$@"; return; }
        key=$({
                printf '%s\n' "$@"
                sha256sum "$KOS" "$(dirname "$KOS")"/kos-*-init 2>/dev/null
                for w in "$@"; do
                        [ "$w" = "$out" ] && continue
                        case $w in /*) continue ;; esac
                        if [ -f "$w" ]; then
                                sha256sum "$w"
                        elif [ -d "$w" ]; then
                                (cd "$w" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum)
                        fi
                done
        } | sha256sum | cut -c1-32)
        local c=$KOS_RUN_CACHE/cached/$key
        if [ -e "$c/done" ]; then
                rm -rf "$out" && cp -a "$c/out" "$out"
                return
        fi
        "$@" || return
        rm -rf "$c" && mkdir -p "$c" && cp -a "$out" "$c/out" && touch "$c/done"
}

# vm_shared_boot NAME FUNCTION: FUNCTION (a fixture and its boots) runs once
# per run, in a directory of its own; every test that calls vm_shared_boot
# with the same NAME then checks its own rule on what that run left (logs,
# disk, files, and IMAGEFS_UUID), in that directory: the test's working
# directory changes to it, so what follows must only read. A FUNCTION that
# failed fails each of those tests, with its output. A test run alone (a
# filter) boots for itself.
vm_shared_boot() {
        local name=$1 fn=$2 dir rc=0
        [ -n "${KOS_RUN_CACHE:-}" ] || { "$fn"; return; }
        dir=$KOS_RUN_CACHE/shared/$name
        if [ ! -e "$dir.status" ]; then
                mkdir -p "$dir"
                (cd "$dir" && set -e && "$fn" && echo "${IMAGEFS_UUID:-}" >"$dir.uuid") >"$dir.log" 2>&1 || rc=$?
                echo "$rc" >"$dir.status"
        else
                echo "  (the boot '$name' was made by an earlier test of this run)" >&2
        fi
        cat "$dir.log" >&2
        [ "$(cat "$dir.status")" = 0 ] || fail "the shared boot '$name' failed"
        IMAGEFS_UUID=$(cat "$dir.uuid")
        cd "$dir"
}

# --- The Boot Kernel's fixture -------------------------------------------

# The stand-in System Kernel initrd, built once.
vm_test_initrd() {
        local out=$VM_CACHE/test-system-initrd.img
        if [ ! -s "$out" ] || [ "$ROOT/$BUILD/vm/test-system-init" -nt "$out" ]; then
                local d; d=$(mktemp -d)
                cp "$ROOT/$BUILD/vm/test-system-init" "$d/init"
                cpio_gz "$d" "$out"
                rm -rf "$d"
        fi
        echo "$out"
}

# The Boot Kernel's kernel: VM_BOOT_KERNEL=debian (default) is Debian's
# kernel with its modules, VM_BOOT_KERNEL=kos the kernel made for the job
# (scripts/build-boot-kernel.sh, built once per machine, drivers built in).
vm_boot_kernel_image() { "$ROOT/scripts/build-boot-kernel.sh"; }

# vm_mkboot_kernel: kos mkboot's arguments for the kernel VM_BOOT_KERNEL names.
vm_mkboot_kernel() {
        case "${VM_BOOT_KERNEL:-debian}" in
        debian) echo --kernel-dir "$(vm_kernel_dir)" ;;
        kos) echo --kernel "$(vm_boot_kernel_image)" ;;
        *) fail "VM_BOOT_KERNEL must be debian or kos, not '$VM_BOOT_KERNEL'" ;;
        esac
}

# vm_mkboot ARGS...: kos mkboot for the kernel VM_BOOT_KERNEL names;
# vm_mkboot_cached ARGS... --output DIR: the same through vm_cached.
vm_mkboot() {
        local kernel; kernel=$(vm_mkboot_kernel) || return
        # shellcheck disable=SC2086 # two words, paths without blanks
        "$KOS" mkboot $kernel "$@"
}
vm_mkboot_cached() {
        local kernel; kernel=$(vm_mkboot_kernel) || return
        # shellcheck disable=SC2086
        vm_cached "${*: -1}" "$KOS" mkboot $kernel "$@"
}

# The stand-in System Kernel of the Boot Kernel's tests: the small kernel
# made for the Boot Kernel, which boots in seconds and which kexec loads in
# under one (Debian's takes ten times as long under TCG); what the Boot
# Kernel checks and hands on does not depend on the kernel it starts.
# VM_SYSTEM_KERNEL=debian is Debian's kernel (the Secure Boot tests, whose
# subject is how Debian's kernel behaves under it).
vm_system_kernel() {
        case "${VM_SYSTEM_KERNEL:-kos}" in
        kos) vm_boot_kernel_image ;;
        debian) ls "$(vm_kernel_dir)"/boot/vmlinuz-* ;;
        *) fail "VM_SYSTEM_KERNEL must be kos or debian, not '$VM_SYSTEM_KERNEL'" ;;
        esac
}

# Keys, the stand-in System Kernel, the test initrd, two squashfs layers, an
# ImageFS img/, and the Boot Kernel bootk/ trusting keyring/.
vm_fixture() {
        vm_dev_key
        "$KOS" keygen stranger.pem stranger.pub >/dev/null
        mkdir keyring && cp public.pem keyring/dev.pem
        cp "$(vm_system_kernel)" vmlinuz
        cp "$(vm_test_initrd)" initrd
        mkdir -p base/etc base2/etc && echo one >base/etc/layer && echo two >base2/etc/layer
        mksquashfs base base.img -quiet -noappend >/dev/null
        mksquashfs base2 base2.img -quiet -noappend >/dev/null
        "$KOS" imagefs init img
        "$KOS" component add img vmlinuz initrd base.img base2.img >/dev/null
        vm_mkboot_cached --keyring keyring --output bootk >/dev/null
        IMAGEFS_UUID=$(cat /proc/sys/kernel/random/uuid)
}

# vm_manifest NAME [LAYER] [KEY]: a manifest booting the test initrd with
# cmdline "console=ttyS0 kos.test=NAME", installed in img/.
vm_manifest() {
        "$KOS" manifest create --name "$1" --version 1 --kernel vmlinuz --initrd initrd \
                --cmdline "console=ttyS0 kos.test=$1" --component "base=${2:-base.img}" -o "$1.json"
        "$KOS" manifest sign --key "${3:-secret.pem}" "$1.json" >/dev/null
        cp "$1.json" "$1.json.sig" img/manifests/
}

VM_DONE='KOS-TEST-SYSTEM|reboot: System halted|rebooting in|reboot: Restarting'

# vm_boot [APPEND] [QEMU ARGS...]: boots the Boot Kernel with img/ as its
# disk (unless NO_DISK=1), console in console.log.
vm_boot() {
        local append=${1:-}
        shift || true
        [ "${NO_DISK:-}" = 1 ] || imagefs_disk img disk.img "$IMAGEFS_UUID"
        VM_APPEND="$VM_BOOT_APPEND $append" vm_run_kernel console.log "${VM_TIMEOUT:-120}" "$VM_DONE" "$@" || true
        grep -E 'kos-boot|KOS-TEST-SYSTEM' console.log | sed 's/^/  | /' >&2
}

# The command line the System Kernel received, or empty.
system_cmdline() { sed -n 's/^KOS-TEST-SYSTEM cmdline=\[\(.*\)\]\r*$/\1/p' console.log; }

expect_booted() { # NAME
        local cmdline; cmdline=$(system_cmdline)
        [ -n "$cmdline" ] || fail "no System Kernel started"
        grep -q "kos.test=$1 " <<<"$cmdline" || fail "booted '$cmdline', wanted $1"
        grep -q "kos.manifest=$(sha "img/manifests/$1.json")" <<<"$cmdline" || fail "wrong kos.manifest in '$cmdline'"
        grep -q "kos.imagefs=UUID=$IMAGEFS_UUID" <<<"$cmdline" || fail "wrong kos.imagefs in '$cmdline'"
}

expect_log() { # REGEX
        grep -qE "$1" console.log || fail "console lacks /$1/"
}

# --- A TPM 2.0 (swtpm) ---------------------------------------------------
# The TPM's state lives in a directory that outlives each boot of a test, so
# what the Boot Kernel writes (the floor counter) is there at the next boot,
# as on a device. Each boot gets its own swtpm process (QEMU's control
# channel is a unix socket); the host reaches the same state between boots
# with swtpm_host_start (tests/host/lib.sh: kos with KOS_TPM, tpm2-tools
# with TPM2TOOLS_TCTI). Every swtpm is stopped when the test's shell exits.

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
        "$ROOT/scripts/secureboot-keys.sh" "$dir" && echo "$dir"
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
        vm_run "$log" "$timeout" "$done_re" -machine q35,smm=on -global driver=cfi.pflash01,property=secure,value=on \
                -global ICH9-LPC.disable_s3=1 -nic none \
                -drive if=pflash,format=raw,unit=0,readonly=on,file="$OVMF_CODE" \
                -drive if=pflash,format=raw,unit=1,file="$vars" \
                -drive file="$disk",if=virtio,format=raw "$@"
}

# sb_enrolled_vars: an OVMF variable store with the development PK, KEK and
# db enrolled: Secure Boot enforcing from the first boot with it. Made once
# per key set (cached by the hash of the .auth files): systemd-boot 252
# with `secure-boot-enroll force` finds loader/keys/auto/*.auth on the ESP of
# a firmware in setup mode (the empty OVMF_VARS_4M.fd), writes db, KEK, PK,
# then resets, which ends QEMU (-no-reboot). Prints the path of the store.
sb_enrolled_vars() {
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

# sb_expected_pcr7 KEYS_DIR: PCR 7 (SHA-256 bank, hex) of OVMF booting, with
# Secure Boot enforcing, an image signed by KEYS_DIR's db key from a variable
# store holding only its PK, KEK and db (sb_enrolled_vars; no dbx, no dbt),
# computed on the host, no boot needed. EDK2's Tcg2Dxe (MeasureAllSecureVariables)
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
        var_event "$imagesec" dbx "$d/none" | extend
        head -c 4 /dev/zero | openssl dgst -sha256 -binary | extend
        var_event "$imagesec" db "$d/authority" | extend
        pcr=$(od -An -tx1 -v "$d/pcr" | tr -d ' \n')
        rm -rf "$d"
        echo "$pcr"
}
