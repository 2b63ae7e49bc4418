#!/usr/bin/env bash
# make bench-boot: boot time of the whole verified chain against stock Debian.
#
# One run, one machine, the same QEMU settings (tests/vm/lib.sh vm_run), the
# same Debian kernel and the same systemd root (the mmdebstrap root of make
# demo plus a marker unit), booted three ways to the marker unit, which runs
# once multi-user.target is reached and prints the guest's times:
#   kos     the full chain: Boot Kernel (select, verify 2 components + kernel +
#           initrd), kexec, System Kernel initrd (dm-verity base, overlay of
#           the two components, DataFS), systemd
#   stock   the same kernel with Debian's own initramfs-tools initrd (built by
#           mmdebstrap with initramfs-tools, zstd and the kernel package, the
#           squashfs and overlay modules added) and root=/dev/vda
#           rootfstype=squashfs, the same root as one squashfs image
#   direct  the System Kernel and our initrd started directly, no Boot Kernel
# Every kernel gets "console=ttyS0 loglevel=4 panic=-1" (loglevel=4 is what
# Debian's "quiet" sets).
#
# The time of a boot is guest time from the (first) kernel's start to the
# marker. For kos it spans two kernels: both inits log the CPU cycle counter
# (not reset by kexec), so the System Kernel's start is placed on the Boot
# Kernel's clock; the kexec itself (purgatory, decompression) is counted.
# Host wall time from QEMU's start to the marker is shown as a cross-check.
#
#   BENCH_BOOTS=N   boots of each kind (default 5; the median is reported)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD BUILD=build KOS=$PWD/build/kos
export ROOT BUILD KOS
# shellcheck source=../tests/vm/lib.sh
. tests/vm/lib.sh
# shellcheck source=../tests/vm/system-lib.sh
. tests/vm/system-lib.sh

boots=${BENCH_BOOTS:-5}
work=$PWD/build/bench-boot
mkdir -p "$work"
cd "$work"
COMMON="console=ttyS0 loglevel=4 panic=-1"
MARKER_RE='KOS-BENCH-MARKER|BOOT FAILED|System halted|Kernel panic'

say() { echo "$*" >&2; }

# Debian's own initrd for the kernel: what update-initramfs makes when the
# kernel package is installed on a Debian 12 system (MODULES=most, zstd).
stock_initrd() { # KERNEL_VERSION
        local out=$work/stock-initrd.img-$1
        if [ ! -s "$out" ]; then
                say "building Debian's initramfs-tools initrd for $1 with mmdebstrap (once; a few minutes)..."
                rm -rf "$work/stock-boot" && mkdir -p "$work/stock-boot"
                mmdebstrap --variant=essential --include="initramfs-tools,zstd,linux-image-$1" \
                        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
                        --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt=force-unsafe-io \
                        --essential-hook='mkdir -p "$1/usr/share/initramfs-tools/modules.d" &&
                                printf "squashfs\noverlay\n" >"$1/usr/share/initramfs-tools/modules.d/kos-bench"' \
                        --customize-hook="copy-out /boot $work/stock-boot" \
                        bookworm /dev/null >"$work/stock-mmdebstrap.log" 2>&1 ||
                        { tail -20 "$work/stock-mmdebstrap.log" >&2; exit 1; }
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
"$KOS" mkboot --kernel-dir "$kd" --keyring keyring --output bootk >/dev/null
"$KOS" mkinitrd --kernel-dir "$kd" --keyring keyring --output initrd >/dev/null
"$KOS" imagefs init img
"$KOS" component add img vmlinuz initrd base.img marker.img >/dev/null
"$KOS" manifest create --name bench --version 1 --kernel vmlinuz --initrd initrd --cmdline "$COMMON" \
        --component base=base.img --component marker=marker.img -o bench.json
"$KOS" manifest sign --key bench.key bench.json >/dev/null
"$KOS" install --keyring keyring img bench.json >/dev/null
"$KOS" activate img bench
id=$(sha bench.json)
uuid=$(cat /proc/sys/kernel/random/uuid)
DATA_MIB=64 DATA_FORMAT=1 imagefs_disk img kos-disk.img "$uuid" >/dev/null 2>&1
# The Boot Kernel's handoff (docs/boot-kernel.md), which "direct" passes as it would.
partuuid=$(sfdisk --part-uuid kos-disk.img 1 | tr 'A-Z' 'a-z')

# --- Boot ------------------------------------------------------------------

# boot MODE N: one boot, console in MODE-N.log; prints the host microseconds from
# QEMU's start to the marker.
boot() {
        local log=$1-$2.log start
        start=${EPOCHREALTIME/./}
        case $1 in
        kos) vm_run "$log" 300 "$MARKER_RE" -kernel bootk/vmlinuz -initrd bootk/initramfs.img \
                -append "$COMMON" -drive file=kos-disk.img,if=virtio,format=raw ;;
        stock) vm_run "$log" 300 "$MARKER_RE" -kernel vmlinuz -initrd "$stock" \
                -append "$COMMON root=/dev/vda rootfstype=squashfs" \
                -drive file=stock-root.img,if=virtio,format=raw,readonly=on ;;
        direct) vm_run "$log" 300 "$MARKER_RE" -kernel vmlinuz -initrd initrd \
                -append "$COMMON kos.manifest=$id kos.imagefs=UUID=$uuid kos.imagefs_partuuid=$partuuid" \
                -drive file=kos-disk.img,if=virtio,format=raw ;;
        esac || { say "$1 boot $2 did not reach the marker: see $work/$log"; tail -5 "$log" >&2; exit 1; }
        echo $(( ${VM_SEEN_AT/./} - start ))
}

# timeline MODE LOG: "stage seconds" lines on the first kernel's clock.
timeline() { awk -v mode="$1" -f "$ROOT/scripts/bench-boot-timeline.awk" "$2"; }

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

say "booting each of kos, stock, direct $boots times ($(vm_accel); about 30 s of wall time per boot)..."
for n in $(seq "$boots"); do
        for mode in kos stock direct; do
                host_ms=$(boot "$mode" "$n")
                timeline "$mode" "$mode-$n.log" >"$mode-$n.times" ||
                        { say "cannot read the times of $work/$mode-$n.log: $(cat "$mode-$n.times")"; exit 1; }
                echo "$host_ms" >"$mode-$n.host"
                say "  $mode boot $n: marker at $(sed -n 's/^marker //p' "$mode-$n.times") s guest, $(awk '{printf "%.2f", $1 / 1e6}' "$mode-$n.host") s host"
        done
done

# med MODE STAGE: the median over the boots of one stage's time.
med() { for n in $(seq "$boots"); do sed -n "s/^$2 //p" "$1-$n.times"; done | median; }
hostmed() { for n in $(seq "$boots"); do awk '{print $1 / 1e6}' "$1-$n.host"; done | median; }

echo
echo "Boot to the marker unit in multi-user.target: QEMU $(vm_accel), -m 1024 -smp 2, kernel $version"
echo "median of $boots boots, seconds of guest time since the first kernel started"
echo
printf '%-46s %8s %8s %8s\n' "stage" kos stock direct
row() { # LABEL STAGE [MODES...]
        local label=$1 stage=$2 out
        out=$(printf '%-46s' "$label")
        for mode in kos stock direct; do
                if grep -q "^$stage " "$mode-1.times"; then out+=$(printf ' %8.2f' "$(med "$mode" "$stage")")
                else out+=$(printf ' %8s' -); fi
        done
        echo "$out"
}
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
printf '%-46s %8.2f %8.2f %8.2f\n' "host wall time, QEMU start to marker" "$(hostmed kos)" "$(hostmed stock)" "$(hostmed direct)"

echo
echo "Where the kos chain's time goes (differences of the medians above)"
span() { # LABEL FROM TO
        awk -v a="$(med kos "$2")" -v b="$(med kos "$3")" -v l="$1" 'BEGIN {printf "  %-58s %6.2f s\n", l, b - a}'
}
printf '  %-58s %6.2f s\n' "Boot Kernel: Debian kernel start to our init" "$(med kos boot-init)"
span "Boot Kernel init: modules, ImageFS, select and verify" boot-init selected
span "Boot Kernel init: rest of the kexec load, then jump" selected jump
span "kexec: purgatory's hash check, decompression, early boot" jump system-kernel
span "System Kernel: kernel start to our init" system-kernel initrd-init
span "System Kernel init: modules, verity, overlay, DataFS" initrd-init root-assembled
span "System Kernel init: switch root, systemd starts" root-assembled systemd
span "systemd: to sysinit.target (udev, journald, mounts)" systemd sysinit
span "systemd: to multi-user.target, then the marker" sysinit marker
printf '  %-58s %6.2f s\n' "direct boot, for comparison: kernel start to the marker" "$(med direct marker)"

echo
echo "Sizes and memory"
size_mib() { awk '{printf "%.1f MiB", $1 / 1048576}' <<<"$(stat -c %s "$1")"; }
printf '%-46s %s\n' "Boot Kernel initramfs" "$(size_mib bootk/initramfs.img)"
printf '%-46s %s\n' "System Kernel initrd (kos mkinitrd)" "$(size_mib initrd)"
printf '%-46s %s\n' "Debian initramfs-tools initrd (stock)" "$(size_mib "$stock")"
printf '%-46s %s\n' "kernel (bzImage, shared by all)" "$(size_mib vmlinuz)"
peak=$(grep -ah 'peak memory of this init' kos-*.log | sed -n 's/.*peak memory of this init \([0-9]*\) KiB.*/\1/p' | median)
printf '%-46s %s\n' "Boot Kernel init peak memory (max RSS)" "$(awk -v k="$peak" 'BEGIN {printf "%.1f MiB", k / 1024}')"
printf '%-46s %s\n' "verified by the Boot Kernel per boot" "$(grep -ah 'bytes verified' kos-1.log | sed -n 's/.*, \([0-9]*\) bytes verified in \([0-9.]*\) s.*/\1 bytes in \2 s/p')"

kos=$(med kos marker) stock_t=$(med stock marker) direct=$(med direct marker)
echo
awk -v a="$kos" -v b="$stock_t" -v c="$direct" 'BEGIN {
        printf "targets: kos/stock <= 1.0 %s, kos/direct <= 1.4 %s\n", (a / b <= 1.0) ? "met" : "NOT met", (a / c <= 1.4) ? "met" : "NOT met"
        printf "boot ratios: kos/stock=%.2f kos/direct=%.2f\n", a / b, a / c }'
