# The VM tests' fixtures: test disks and initrds, the Boot Kernel of the
# tests, what the tests of one run share, and the assertions on a console.
# The machine itself (QEMU, OVMF and Secure Boot, swtpm) is the product's,
# scripts/qemu.sh, which make demo uses too. Expects ROOT (the repository)
# and BUILD; tests run in their own directory.

# shellcheck source=../host/lib.sh
. "$ROOT/tests/host/lib.sh"
# shellcheck source=../../scripts/qemu.sh
. "$ROOT/scripts/qemu.sh"

# cpio_gz DIR OUT: a gzip newc archive of DIR, for test initrds.
cpio_gz() {
        (cd "$1" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 --reproducible | gzip -n) >"$2"
}

# disk_part_get DISK N OUT / disk_part_put DISK N IN: partition N of the
# disk image DISK copied to OUT, or IN written over it (nothing mounted; IN
# no longer than the partition).
disk_part_get() {
        local start size
        read -r start size < <(partx -g -o START,SECTORS -n "$2" "$1")
        dd if="$1" of="$3" bs=512 skip="$start" count="$size" status=none
}
disk_part_put() {
        local start
        start=$(partx -g -o START -n "$2" "$1")
        dd if="$3" of="$1" bs=512 seek="$start" conv=notrunc status=none
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
        vm_locked "$k.lock" vm_dev_key_make "$k"
        cp "$k/secret.pem" "$k/public.pem" .
}
vm_dev_key_make() { # DIR
        [ -s "$1/public.pem" ] && return
        mkdir -p "$1.new" && "$KOS" keygen "$1.new/secret.pem" "$1.new/public.pem" >/dev/null && mv "$1.new" "$1"
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
        mkdir -p "$KOS_RUN_CACHE/cached"
        vm_locked "$KOS_RUN_CACHE/cached/$key.lock" vm_cached_make "$KOS_RUN_CACHE/cached/$key" "$out" "$@"
}
vm_cached_make() { # CACHE_DIR OUT COMMAND...
        local c=$1 out=$2
        shift 2
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
        local name=$1 fn=$2 dir
        [ -n "${KOS_RUN_CACHE:-}" ] || { "$fn"; return; }
        dir=$KOS_RUN_CACHE/shared/$name
        mkdir -p "$dir"
        vm_locked "$dir.lock" vm_shared_boot_make "$dir" "$fn"
        cat "$dir.log" >&2
        [ "$(cat "$dir.status")" = 0 ] || fail "the shared boot '$name' failed"
        IMAGEFS_UUID=$(cat "$dir.uuid")
        cd "$dir"
}
vm_shared_boot_make() { # DIR FUNCTION
        local dir=$1 fn=$2 rc=0
        if [ -e "$dir.status" ]; then
                echo "  (this boot was made by another test of this run)" >&2
                return
        fi
        (cd "$dir" && set -e && "$fn" && echo "${IMAGEFS_UUID:-}" >"$dir.uuid") >"$dir.log" 2>&1 || rc=$?
        echo "$rc" >"$dir.status"
}

# --- The systemd root of the VM tests ---------------------------------------

# The units of Debian's systemd root that no VM test looks at: login prompts,
# utmp records, kernel file systems and module loads nothing uses, the
# journal's flush to /var, the random seed, users already made at install,
# timers. Under TCG each costs a second or more of a boot to
# multi-user.target (the journal flush and utmp alone, about 6 s of its
# critical path). Kept: journald, udev, tmpfiles, sysctl (the kernel's
# protections, fs.protected_*), modules-load (virtio_net for the pulls),
# networkd, and all of KOS.
# Likewise the generators that find nothing to do in it (no crypttab,
# veritytab or integritytab, no SysV scripts without a unit, no rc.local, no
# resume=, no /system-update, the root an overlay, not a GPT partition, login
# prompts masked): each is a process systemd waits for before it loads a unit.
# Kept: fstab, debug (systemd.mask= and the like) and run (systemd.run=).
VM_TEST_MASKED_GENERATORS="systemd-cryptsetup-generator systemd-veritysetup-generator
        systemd-integritysetup-generator systemd-sysv-generator systemd-rc-local-generator
        systemd-hibernate-resume-generator systemd-system-update-generator systemd-gpt-auto-generator
        systemd-getty-generator"
VM_TEST_MASKED="getty@.service serial-getty@.service getty-static.service systemd-update-utmp.service
        systemd-update-utmp-runlevel.service dev-hugepages.mount dev-mqueue.mount sys-kernel-debug.mount
        sys-kernel-tracing.mount sys-kernel-config.mount sys-fs-fuse-connections.mount modprobe@.service
        systemd-journal-flush.service systemd-random-seed.service systemd-sysusers.service
        dpkg-db-backup.timer fstrim.timer systemd-tmpfiles-clean.timer"

# vm_test_base DEST: the base OS component of the VM tests as DEST (and its
# .meta): Debian's systemd root (vm_rootfs) with VM_TEST_MASKED masked, as
# squashfs with dm-verity, built once per machine. make demo and the soak
# boot Debian's root as it is (sys_base_image, scripts/layers.sh).
vm_test_base() {
        local img
        img=$(vm_locked "$VM_CACHE/.base-test.lock" vm_test_base_make) || return 1
        cp "$img" "$1" && cp "$img.meta" "$1.meta"
}
vm_test_base_make() {
        local rootfs out=$VM_CACHE/base-test.img tag d u
        rootfs=$(vm_rootfs) || return 1
        tag=$(echo $VM_TEST_MASKED $VM_TEST_MASKED_GENERATORS | sha256sum | cut -c1-16)
        if [ ! -s "$out.meta" ] || [ "$rootfs/.done" -nt "$out" ] || [ "$(cat "$out.masked" 2>/dev/null)" != "$tag" ]; then
                d=$(mktemp -d "$VM_CACHE/base-test-XXXXXX")
                cp -a "$rootfs/." "$d/root"
                for u in $VM_TEST_MASKED; do ln -sfn /dev/null "$d/root/etc/systemd/system/$u"; done
                mkdir -p "$d/root/etc/systemd/system-generators"
                for u in $VM_TEST_MASKED_GENERATORS; do ln -sfn /dev/null "$d/root/etc/systemd/system-generators/$u"; done
                "$KOS" component build --type squashfs --verity "$d/root" "$out" >&2 || { rm -rf "$d"; return 1; }
                echo "$tag" >"$out.masked"
                rm -rf "$d"
        fi
        echo "$out"
}

# --- The Boot Kernel's fixture -------------------------------------------

# The stand-in System Kernel initrd, built once.
vm_test_initrd() { vm_locked "$VM_CACHE/.test-initrd.lock" vm_test_initrd_make; }
vm_test_initrd_make() {
        local out=$VM_CACHE/test-system-initrd.img
        if [ ! -s "$out" ] || [ "$ROOT/$BUILD/vm/test-system-init" -nt "$out" ]; then
                local d; d=$(mktemp -d)
                cp "$ROOT/$BUILD/vm/test-system-init" "$d/init"
                cpio_gz "$d" "$out.new" && mv "$out.new" "$out"
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

# expect_in LOG REGEX [MESSAGE]: like expect_log, on another log (one boot of
# several); MESSAGE says what is wrong, else the regex is named.
expect_in() { grep -qaE "$2" "$1" || fail "${3:-$1 lacks: $2}"; }
