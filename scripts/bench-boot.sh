#!/usr/bin/env bash
# make bench-boot: boot time of the whole verified chain against stock Debian.
#
# One run, one machine, the same QEMU settings (scripts/qemu.sh vm_run), the
# same Debian kernel as System Kernel and the same systemd root (the
# mmdebstrap root of make demo plus a marker unit), booted to the marker
# unit, which runs once multi-user.target is reached and prints the guest's
# times:
#   kos     the full chain, BIOS (-kernel/-initrd, the same firmware as the
#           others): the Boot Kernel with its own kernel
#           (scripts/build-boot-kernel.sh, kos mkboot --kernel, LZ4) selects and
#           verifies 2 components + kernel + initrd, kexec, System Kernel
#           initrd (dm-verity base, overlay of the two components, DataFS),
#           systemd
#   kos-tree the same chain with the base component marked "verify": "hash-tree"
#           in its signed manifest (kos manifest create --hash-tree base): the
#           Boot Kernel checks base's dm-verity hash tree against the signed
#           root hash instead of hashing all of it, and dm-verity checks each
#           block when it is read. Each boot starts from the same disk image,
#           as a device whose last boot was confirmed (the bench's root has no
#           Node Manager to clear the Boot Kernel's "unconfirmed" record,
#           which would make the next boot check base in full)
#   stock   the Debian kernel with Debian's own initramfs-tools initrd, the
#           strongest stock setup: MODULES=dep, built by mmdebstrap as
#           MODULES=list with exactly the modules the root needs (virtio_pci,
#           virtio_blk, squashfs, overlay and their dependencies: what dep
#           picks on the device; in the chroot dep would inspect the host's
#           root), zstd, root=/dev/vda rootfstype=squashfs, the same root as
#           one squashfs image
#   direct  the System Kernel and our initrd started directly, no Boot Kernel
#   kos-deb the kos chain with the old Boot Kernel: Debian's kernel and its
#           modules (kos mkboot --kernel-dir), for comparison only
#   kos-sb  the kos chain under UEFI Secure Boot: OVMF, the Boot Kernel as a
#           signed UKI on an ESP (as make demo); BENCH_SB_BOOTS boots
#           (default 1). The firmware's time (host wall time from QEMU's start
#           to the EFI stub's first line) is reported apart.
# Every kernel gets "console=ttyS0 loglevel=4 panic=-1" (loglevel=4 is what
# Debian's "quiet" sets).
#
# The time of a boot is guest time from the (first) kernel's start to the
# marker. For kos it spans two kernels: both inits log the CPU cycle counter
# (not reset by kexec), so the System Kernel's start is placed on the Boot
# Kernel's clock; the kexec itself (purgatory, decompression) is counted.
# Host wall time from QEMU's start to the marker is shown as a cross-check.
#
#   BENCH_BOOTS=N     boots of kos, kos-tree, stock and direct (default 5; the
#                     median is reported)
#   BENCH_SB_BOOTS=N  boots of kos-sb (default 1; 0 leaves it out)
#   BENCH_DEB=0       leaves kos-deb out (default: BENCH_BOOTS boots of it)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD BUILD=build KOS=$PWD/build/kos
export ROOT BUILD KOS
# shellcheck source=qemu.sh
. scripts/qemu.sh
# shellcheck source=layers.sh
. scripts/layers.sh

boots=${BENCH_BOOTS:-5}
sb_boots=${BENCH_SB_BOOTS:-1}
deb_boots=$boots
[ "${BENCH_DEB:-1}" = 0 ] && deb_boots=0
work=$PWD/build/bench-boot
mkdir -p "$work"
cd "$work"
COMMON="console=ttyS0 loglevel=4 panic=-1"
MARKER_RE='KOS-BENCH-MARKER|BOOT FAILED|System halted|Kernel panic'

say() { echo "$*" >&2; }

# Debian's own initrd for the kernel as MODULES=dep makes it on the device:
# initramfs-tools with MODULES=list and exactly the root's modules (mkinitramfs
# adds their dependencies), zstd. MODULES=dep itself is not used in
# mmdebstrap's chroot: it looks at the device under / , which there is the
# host's. The list of modules in it is kept beside it (.modules).
stock_initrd() { # KERNEL_VERSION
        local out=$work/stock-dep-initrd.img-$1
        if [ ! -s "$out" ]; then
                say "building Debian's initramfs-tools initrd (MODULES=dep equivalent) for $1 with mmdebstrap (once)..."
                rm -rf "$work/stock-boot" && mkdir -p "$work/stock-boot"
                mmdebstrap --variant=essential --include="initramfs-tools,zstd,linux-image-$1" \
                        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
                        --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt=force-unsafe-io \
                        --essential-hook='mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/usr/share/initramfs-tools/modules.d" &&
                                echo MODULES=list >"$1/etc/initramfs-tools/conf.d/kos-bench" &&
                                printf "virtio_pci\nvirtio_blk\nsquashfs\noverlay\n" >"$1/usr/share/initramfs-tools/modules.d/kos-bench"' \
                        --customize-hook="chroot \"\$1\" lsinitramfs /boot/initrd.img-$1 | grep '\\.ko' >\"\$1/boot/modules-$1\"" \
                        --customize-hook="copy-out /boot $work/stock-boot" \
                        bookworm /dev/null >"$work/stock-mmdebstrap.log" 2>&1 ||
                        { tail -20 "$work/stock-mmdebstrap.log" >&2; exit 1; }
                mv "$work/stock-boot/boot/modules-$1" "$out.modules"
                mv "$work/stock-boot/boot/initrd.img-$1" "$out"
                rm -rf "$work/stock-boot"
        fi
        echo "$out"
}

# The marker: one oneshot unit ordered after multi-user.target, in a layer of
# its own (a KOS component; copied into the stock root).
make_marker_layer() { # DIR
        mkdir -p "$1/etc/systemd/system/multi-user.target.wants" "$1/usr/local/bin"
        cat >"$1/usr/local/bin/kos-bench-marker" <<'SH'
#!/bin/sh
# Times since this kernel started: now, when /init of the initramfs ran, when
# systemd started in the real root.
read -r up _ </proc/uptime
init=$(dmesg | sed -n 's/^\[ *\([0-9.]*\)\] Run \/init as init process.*/\1/p' | head -1)
sd=$(systemctl show -P UserspaceTimestampMonotonic)
t() { systemctl show -P ActiveEnterTimestampMonotonic "$1"; }
echo "KOS-BENCH-MARKER uptime=$up initramfs=${init:-0} systemd_us=$sd sysinit_us=$(t sysinit.target)" \
        "basic_us=$(t basic.target) multiuser_us=$(t multi-user.target) cpus=$(nproc)" \
        "clocksource=$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)" >/dev/console
SH
        chmod 755 "$1/usr/local/bin/kos-bench-marker"
        cat >"$1/etc/systemd/system/kos-bench-marker.service" <<'UNIT'
[Unit]
Description=KOS boot benchmark marker
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/usr/local/bin/kos-bench-marker

[Install]
WantedBy=multi-user.target
UNIT
        ln -sf ../kos-bench-marker.service "$1/etc/systemd/system/multi-user.target.wants/"
}

# --- Build -----------------------------------------------------------------

kd=$(vm_kernel_dir)
version=$(basename "$kd")
stock=$(stock_initrd "$version")
rootfs=$("$ROOT/scripts/mkrootfs.sh")
base=$(sys_base_image)

rm -rf marker merged img keyring
make_marker_layer marker
"$KOS" component build --type squashfs marker marker.img >/dev/null
# Rebuilt whenever the root or the marker changes.
stamp=$( (echo "$rootfs"; stat -c %Y "$rootfs/.done"; cd marker && find . -type f -exec sha256sum {} + | sort) | sha256sum)
if [ ! -s stock-root.img ] || [ "$(cat stock-root.stamp 2>/dev/null)" != "$stamp" ]; then
        say "building the stock root: the same root and marker as one squashfs..."
        cp -a "$rootfs" merged && cp -a marker/. merged/ && rm -f merged/.done
        # (mksquashfs warns that it cannot store the root's ACLs; the KOS base
        # component is built from the same root and lacks them the same way.)
        "$KOS" component build --type squashfs merged stock-root.img 2>&1 >/dev/null | grep -v 'xattr prefix' >&2 || true
        [ -s stock-root.img ] || { say "cannot build stock-root.img"; exit 1; }
        rm -rf merged
        echo "$stamp" >stock-root.stamp
fi

[ -s bench.key ] || "$KOS" keygen bench.key bench.pem >/dev/null
mkdir keyring && cp bench.pem keyring/
cp "$kd/boot/vmlinuz-$version" vmlinuz
cp "$base" base.img && cp "$base.meta" base.img.meta
# The Boot Kernel: its own kernel (cached build), LZ4 initramfs; the same
# files as a UKI signed with the development db key for kos-sb.
bk=$(BUILD="$ROOT/build" nice -n 10 "$ROOT/scripts/build-boot-kernel.sh")
sbkeys=$(sb_keys)
"$KOS" mkboot --kernel "$bk" --keyring keyring --output bootk --uki bootk/kos-boot.efi --cmdline "$COMMON" \
        --sign-key "$sbkeys/db.key" --sign-cert "$sbkeys/db.crt" >/dev/null
[ "$deb_boots" = 0 ] || "$KOS" mkboot --kernel-dir "$kd" --keyring keyring --output bootk-deb >/dev/null
"$KOS" mkinitrd --kernel-dir "$kd" --keyring keyring --output initrd >/dev/null
"$KOS" imagefs init img
"$KOS" component add img vmlinuz initrd base.img marker.img >/dev/null
"$KOS" manifest create --name bench --version 1 --kernel vmlinuz --initrd initrd --cmdline "$COMMON" \
        --component base=base.img --component marker=marker.img -o bench.json
"$KOS" manifest sign --key bench.key bench.json >/dev/null
"$KOS" install --keyring keyring img bench.json >/dev/null
"$KOS" activate img bench
id=$(sha256sum bench.json | cut -d" " -f1)
uuid=$(cat /proc/sys/kernel/random/uuid)
"$KOS" image --force --imagefs img --imagefs-uuid "$uuid" --data-size 64M --data-format kos-disk.img >/dev/null 2>&1
# kos-tree: the same files, base checked by its hash tree. Its disk is copied
# from kos-tree-disk.pristine before every boot.
rm -rf img-tree && "$KOS" imagefs init img-tree
"$KOS" component add img-tree vmlinuz initrd base.img marker.img >/dev/null
"$KOS" manifest create --name bench --version 1 --kernel vmlinuz --initrd initrd --cmdline "$COMMON" \
        --component base=base.img --component marker=marker.img --hash-tree base -o bench-tree.json
"$KOS" manifest sign --key bench.key bench-tree.json >/dev/null
"$KOS" install --keyring keyring img-tree bench-tree.json >/dev/null
"$KOS" activate img-tree bench
"$KOS" image --force --imagefs img-tree --data-size 64M --data-format kos-tree-disk.pristine >/dev/null 2>&1
# The Boot Kernel's handoff (docs/boot-kernel.md), which "direct" passes as it would.
partuuid=$(sfdisk --part-uuid kos-disk.img 1 | tr 'A-Z' 'a-z')
if [ "$sb_boots" -gt 0 ]; then
        # The same ImageFS behind an ESP holding the UKI; OVMF's variable
        # store with the development PK, KEK and db (made once, one boot).
        # Its DataFS formatted, as kos-disk.img's: no first boot's mkfs in the times.
        "$KOS" image --force --imagefs img --uki bootk/kos-boot.efi --data-size 64M --data-format sb-disk.img >/dev/null 2>&1
        sb_vars=$(sb_enrolled_vars)
fi

# --- Boot ------------------------------------------------------------------

# boot MODE N: one boot, console in MODE-N.log; prints the host microseconds from
# QEMU's start to the marker.
boot() {
        local log=$1-$2.log start
        start=${EPOCHREALTIME/./}
        case $1 in
        kos) VM_APPEND=$COMMON VM_DISK=kos-disk.img vm_run_kernel "$log" 300 "$MARKER_RE" ;;
        kos-tree) cp --sparse=always kos-tree-disk.pristine kos-tree-disk.img
                VM_APPEND=$COMMON VM_DISK=kos-tree-disk.img vm_run_kernel "$log" 300 "$MARKER_RE" ;;
        kos-deb) VM_KERNEL=bootk-deb/vmlinuz VM_INITRD=bootk-deb/initramfs.img VM_APPEND=$COMMON VM_DISK=kos-disk.img \
                vm_run_kernel "$log" 300 "$MARKER_RE" ;;
        stock) VM_KERNEL=vmlinuz VM_INITRD=$stock VM_APPEND="$COMMON root=/dev/vda rootfstype=squashfs" NO_DISK=1 \
                vm_run_kernel "$log" 300 "$MARKER_RE" -drive file=stock-root.img,if=virtio,format=raw,readonly=on ;;
        direct) VM_KERNEL=vmlinuz VM_INITRD=initrd VM_DISK=kos-disk.img \
                VM_APPEND="$COMMON kos.manifest=$id kos.imagefs=UUID=$uuid kos.imagefs_partuuid=$partuuid kos.tpm_marker=0" \
                vm_run_kernel "$log" 300 "$MARKER_RE" ;;
        kos-sb) cp "$sb_vars" sb-vars.fd && : >"$log"
                firmware_watch "$log" "$start" >/dev/null &
                ovmf_run "$log" 300 "$MARKER_RE|Access Denied" sb-vars.fd sb-disk.img ;;
        esac || { say "$1 boot $2 did not reach the marker: see $work/$log"; tail -5 "$log" >&2; exit 1; }
        grep -aq 'KOS-BENCH-MARKER' "$log" || { say "$1 boot $2 failed: see $work/$log"; tail -5 "$log" >&2; exit 1; }
        echo $(( ${VM_SEEN_AT/./} - start ))
}

# firmware_watch LOG START: (in the background) writes LOG.firmware, the host
# microseconds from START to the EFI stub's first console line: the time
# OVMF takes up to starting the UKI's kernel (Secure Boot checks included).
firmware_watch() {
        local _
        rm -f "$1.firmware"
        for _ in $(seq 3000); do
                if grep -aqE 'EFI stub|kos-boot' "$1" 2>/dev/null; then
                        echo $(( ${EPOCHREALTIME/./} - $2 )) >"$1.firmware"
                        return 0
                fi
                sleep 0.05
        done
}

# timeline MODE LOG: "stage seconds" lines on the first kernel's clock.
timeline() { awk -v mode="$1" -f "$ROOT/scripts/bench-boot-timeline.awk" "$2"; }

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# one MODE N: one boot, its times in MODE-N.times and MODE-N.host.
one() {
        local host_us
        host_us=$(boot "$1" "$2")
        timeline "${1%-*}" "$1-$2.log" >"$1-$2.times" ||
                { say "cannot read the times of $work/$1-$2.log: $(cat "$1-$2.times")"; exit 1; }
        echo "$host_us" >"$1-$2.host"
        say "  $1 boot $2: marker at $(sed -n 's/^marker //p' "$1-$2.times") s guest, $(awk '{printf "%.2f", $1 / 1e6}' "$1-$2.host") s host"
}
rm -f ./*.times ./*.host ./*.firmware
modes="kos kos-tree stock direct"
[ "$deb_boots" -gt 0 ] && modes+=" kos-deb"
say "booting each of $modes $boots times ($(vm_accel); about 30 s of wall time per boot)..."
for n in $(seq "$boots"); do
        for mode in ${modes}; do one "$mode" "$n"; done
done
[ "$sb_boots" -gt 0 ] && modes+=" kos-sb"
[ "$sb_boots" = 0 ] || say "booting kos-sb (UEFI Secure Boot, OVMF) $sb_boots time(s)..."
for n in $(seq "$sb_boots"); do
        one kos-sb "$n"
        [ -s "kos-sb-$n.log.firmware" ] || { say "no EFI stub line in $work/kos-sb-$n.log"; exit 1; }
done

# med MODE STAGE: the median over the boots of one stage's time.
count() { if [ "$1" = kos-sb ]; then echo "$sb_boots"; else echo "$boots"; fi; }
med() { for n in $(seq "$(count "$1")"); do sed -n "s/^$2 //p" "$1-$n.times"; done | median; }
hostmed() { for n in $(seq "$(count "$1")"); do awk '{print $1 / 1e6}' "$1-$n${2:-.host}"; done | median; }

echo
echo "Boot to the marker unit in multi-user.target: QEMU $(vm_accel), -m 1024 -smp ${VM_SMP:-2}, System Kernel $version"
echo "median of $boots boots (kos-sb: $sb_boots), seconds of guest time since the first kernel started"
echo "(kos-sb: since the Boot Kernel's kernel started, after the firmware; its firmware time is on its own row)"
echo
cols() { printf '%-46s' "$1"; shift; printf ' %8s' "$@"; echo; }
# shellcheck disable=SC2086 # $modes is a list of words
cols stage $modes
row() { # LABEL STAGE
        local label=$1 stage=$2 out mode
        out=$(printf '%-46s' "$label")
        for mode in $modes; do
                if grep -q "^$stage " "$mode-1.times"; then out+=$(printf ' %8.2f' "$(med "$mode" "$stage")")
                else out+=$(printf ' %8s' -); fi
        done
        echo "$out"
}
hostrow() { # LABEL SUFFIX: host seconds, from MODE-N.SUFFIX
        local out mode
        out=$(printf '%-46s' "$1")
        for mode in $modes; do
                if [ -s "$mode-1$2" ]; then out+=$(printf ' %8.2f' "$(hostmed "$mode" "$2")")
                else out+=$(printf ' %8s' -); fi
        done
        echo "$out"
}
hostrow "firmware: QEMU start to EFI stub (host wall)" .log.firmware
row "Boot Kernel: init started" boot-init
row "Boot Kernel: manifest selected and verified" selected
row "Boot Kernel: System Kernel loaded (kexec)" kexec-loaded
row "Boot Kernel: jump" jump
row "System Kernel: kernel started (after kexec)" system-kernel
row "initramfs init started" initrd-init
row "System Kernel init: root assembled" root-assembled
row "systemd started in the root" systemd
row "systemd: sysinit.target reached" sysinit
row "systemd: basic.target reached" basic
row "systemd: multi-user.target reached" multi-user
row "marker unit ran (after multi-user.target)" marker
hostrow "host wall time, QEMU start to marker" .host

echo
echo "Where the kos chain's time goes (differences of the medians above)"
span() { # LABEL FROM TO [MODE]
        awk -v a="$(med "${4:-kos}" "$2")" -v b="$(med "${4:-kos}" "$3")" -v l="$1" 'BEGIN {printf "  %-58s %6.2f s\n", l, b - a}'
}
printf '  %-58s %6.2f s\n' "Boot Kernel: its kernel's start to our init" "$(med kos boot-init)"
span "Boot Kernel init: ImageFS, select and verify" boot-init selected
span "Boot Kernel init: rest of the kexec load, then jump" selected jump
span "  kos-tree: ImageFS, select and verify (base by its tree)" boot-init selected kos-tree
span "  kos-tree: rest of the kexec load, then jump" selected jump kos-tree
span "kexec: purgatory, XZ decompression, early boot" jump system-kernel
span "System Kernel: kernel start to our init" system-kernel initrd-init
span "System Kernel init: modules, verity, overlay, DataFS" initrd-init root-assembled
span "System Kernel init: switch root, systemd starts" root-assembled systemd
span "systemd: to sysinit.target (udev, journald, mounts)" systemd sysinit
span "systemd: to multi-user.target, then the marker" sysinit marker
printf '  %-58s %6.2f s\n' "direct boot, for comparison: kernel start to the marker" "$(med direct marker)"
printf '  %-58s %6.2f s\n' "stock boot, for comparison: kernel start to the marker" "$(med stock marker)"

echo
echo "Sizes and memory"
size_mib() { awk '{printf "%.1f MiB", $1 / 1048576}' <<<"$(stat -c %s "$1")"; }
printf '%-46s %s\n' "Boot Kernel kernel (own build, LZ4 bzImage)" "$(size_mib bootk/vmlinuz)"
[ "$deb_boots" = 0 ] || printf '%-46s %s\n' "kos-deb Boot Kernel initramfs (gzip, modules)" "$(size_mib bootk-deb/initramfs.img)"
printf '%-46s %s\n' "Boot Kernel initramfs (LZ4)" "$(size_mib bootk/initramfs.img)"
printf '%-46s %s\n' "Boot Kernel UKI (both, signed; kos-sb)" "$(size_mib bootk/kos-boot.efi)"
printf '%-46s %s\n' "System Kernel initrd (kos mkinitrd)" "$(size_mib initrd)"
printf '%-46s %s\n' "Debian initrd (stock, MODULES=dep equivalent)" \
        "$(size_mib "$stock"), $(wc -l <"$stock.modules") modules"
printf '%-46s %s\n' "Debian kernel (System Kernel, stock, direct)" "$(size_mib vmlinuz)"
peak=$(grep -ah 'peak memory of this init' kos-[0-9]*.log | sed -n 's/.*peak memory of this init \([0-9]*\) KiB.*/\1/p' | median)
printf '%-46s %s\n' "Boot Kernel init peak memory (max RSS)" "$(awk -v k="$peak" 'BEGIN {printf "%.1f MiB", k / 1024}')"
verified() { grep -ah 'bytes verified' "$1-1.log" | sed -n 's/.*, \([0-9]*\) bytes verified in \([0-9.]*\) s.*/\1 bytes in \2 s/p'; }
printf '%-46s %s\n' "read and verified by the Boot Kernel (kos)" "$(verified kos)"
printf '%-46s %s\n' "read and verified by the Boot Kernel (kos-tree)" "$(verified kos-tree)"

kos=$(med kos marker) tree=$(med kos-tree marker) stock_t=$(med stock marker) direct=$(med direct marker)
echo
awk -v a="$kos" -v t="$tree" -v b="$stock_t" -v c="$direct" 'BEGIN {
        m = "met"; n = "NOT met"
        printf "targets, kos (full sha256, the default): kos/stock <= 1.1 %s, kos/direct <= 1.3 %s\n", (a / b <= 1.1) ? m : n, (a / c <= 1.3) ? m : n
        printf "targets, kos-tree (hash-tree base):      kos-tree/stock <= 1.1 %s, kos-tree/direct <= 1.3 %s\n", (t / b <= 1.1) ? m : n, (t / c <= 1.3) ? m : n
        printf "boot ratios: kos/stock=%.2f kos/direct=%.2f kos-tree/stock=%.2f kos-tree/direct=%.2f\n", a / b, a / c, t / b, t / c }'
