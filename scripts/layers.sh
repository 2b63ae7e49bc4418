# Recipes for the layers a KOS device's root is stacked from, beyond the base
# OS: the runtime layer (Node Manager and what it needs) and the demo app.
# Sourced by scripts/demo.sh, by the VM tests (which add their own test files
# on top), and by anyone building a device: copy kos_runtime_layer into your
# build, or source this file. Needs ROOT (the repository) and BUILD.

# kos_runtime_layer DIR KEYRING_DIR [KOS_DEVICE_DEB]: the package kos-device
# unpacked into DIR (dpkg-deb -x: we ship what we run), then the keyring
# that bundles are checked against (/etc/kos/keyring, as the inits use). The
# package holds Node Manager and kos-node-pull (/usr/lib/kos), a static kos
# for `kos node ...` on the device (/usr/bin/kos), and the units:
# kos-node-manager.service, started by multi-user.target, and kos-app.target,
# which only Node Manager starts. Without KOS_DEVICE_DEB, `make deb` builds
# it (or finds it up to date) in this checkout.
kos_runtime_layer() {
        local dir=$1 keyring=$2 deb=${3:-}
        if [ -z "$deb" ]; then
                deb=$(kos_device_deb) || return 1
        fi
        mkdir -p "$dir/etc/kos/keyring"
        dpkg-deb -x "$deb" "$dir"
        cp "$keyring"/*.pem "$dir/etc/kos/keyring/"
}

# kos_network_layer DIR REGISTRY_URL INTERVAL [JITTER]: what a runtime layer
# (DIR, kos_runtime_layer's) needs to pull updates from a registry over
# QEMU's network: the virtio_net module and its dependencies from the Debian
# kernel the device boots, systemd-networkd with DHCP on en*/eth*, the libraries kos-node-pull needs that the base root
# lacks, and /etc/kos/update.conf naming REGISTRY_URL (a tag reference,
# e.g. http://10.0.2.100:5000/kos/device:stable), polled every INTERVAL
# seconds plus up to JITTER (default 0) by Node Manager (node/updates.c).
# Needs the base root (vm_rootfs) and the Debian kernel (vm_kernel_dir).
kos_network_layer() {
        local dir=$1 url=$2 interval=$3 jitter=${4:-0} kd ver lib base_root net
        kd=$(vm_kernel_dir) && base_root=$(vm_rootfs) || return 1
        ver=$(basename "$(ls -d "$kd"/lib/modules/*)")
        net=$kd/lib/modules/$ver/kernel
        mkdir -p "$dir/usr/lib/modules/$ver/kernel/drivers/net" "$dir/usr/lib/modules/$ver/kernel/net/core" \
                "$dir/etc/systemd/network" "$dir/etc/systemd/system/multi-user.target.wants" \
                "$dir/usr/lib/x86_64-linux-gnu" "$dir/etc/modules-load.d" "$dir/etc/kos"
        cp "$net/drivers/net/virtio_net.ko" "$net/drivers/net/net_failover.ko" "$dir/usr/lib/modules/$ver/kernel/drivers/net/"
        cp "$net/net/core/failover.ko" "$dir/usr/lib/modules/$ver/kernel/net/core/"
        depmod -b "$dir/usr" "$ver"
        echo virtio_net >"$dir/etc/modules-load.d/kos-net.conf"
        printf '[Match]\nName=en* eth*\n\n[Network]\nDHCP=ipv4\n' >"$dir/etc/systemd/network/20-kos.network"
        ln -sf /lib/systemd/system/systemd-networkd.service "$dir/etc/systemd/system/multi-user.target.wants/"
        for lib in $(ldd "$ROOT/$BUILD/kos-node-pull" | awk '$3 ~ /^\// {print $3}'); do
                [ -e "$base_root/usr/lib/x86_64-linux-gnu/$(basename "$lib")" ] ||
                        cp -L "$lib" "$dir/usr/lib/x86_64-linux-gnu/"
        done
        printf 'registry = %s\ninterval = %s\njitter = %s\n' "$url" "$interval" "$jitter" >"$dir/etc/kos/update.conf"
}

# kos_device_deb: the kos-device package of this checkout's version, made or
# brought up to date by `make deb`; prints its path.
kos_device_deb() {
        local version arch deb
        version=$("$ROOT/scripts/version.sh") && arch=$(dpkg --print-architecture) || return 1
        make -C "$ROOT" --no-print-directory -s BUILD="$BUILD" KOS_VERSION="$version" deb >&2 || return 1
        case $BUILD in /*) deb=$BUILD ;; *) deb=$ROOT/$BUILD ;; esac
        deb=$deb/deb/kos-device_${version}_$arch.deb
        [ -s "$deb" ] || { echo "kos_device_deb: make deb did not make $deb" >&2; return 1; }
        echo "$deb"
}

# kos_demo_app_layer DIR VERSION: the demo app, a daemon that is part of
# kos-app.target and says on the console which version started.
kos_demo_app_layer() {
        local dir=$1 version=$2
        mkdir -p "$dir/etc/systemd/system/kos-app.target.wants"
        echo app >"$dir/etc/kos-layer"
        sed "s/@VERSION@/$version/g" "$ROOT/node/units/kos-demo-app.service" >"$dir/etc/systemd/system/kos-demo-app.service"
        ln -sf ../kos-demo-app.service "$dir/etc/systemd/system/kos-app.target.wants/"
}

# kos_status_report_unit DIR: a unit that prints Node Manager's status on the
# console once, as "KOS-STATUS {json}" (how make demo reads the outcome).
kos_status_report_unit() {
        local dir=$1
        mkdir -p "$dir/etc/systemd/system/multi-user.target.wants"
        cat >"$dir/etc/systemd/system/kos-status-report.service" <<'UNIT'
[Unit]
Description=KOS: print Node Manager's status on the console once
After=kos-node-manager.service

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'sleep 5; echo "KOS-VERSION $(kos --version)" >/dev/console; echo "KOS-STATUS $(kos node status | tr -d "\\n")" >/dev/console'

[Install]
WantedBy=multi-user.target
UNIT
        ln -sf ../kos-status-report.service "$dir/etc/systemd/system/multi-user.target.wants/"
}

# The mmdebstrap systemd root (scripts/mkrootfs.sh), built once per machine.
vm_rootfs() { vm_locked "$VM_CACHE/.rootfs.lock" "$ROOT/scripts/mkrootfs.sh"; }

# The base OS component (mmdebstrap root as squashfs with dm-verity), built
# once per machine (VM_CACHE, scripts/qemu.sh; KOS the kos tool).
sys_base_image() { vm_locked "$VM_CACHE/.base.lock" sys_base_image_make; }
sys_base_image_make() {
        local rootfs out=$VM_CACHE/base.img
        rootfs=$(vm_rootfs)
        if [ ! -s "$out.meta" ] || [ "$rootfs/.done" -nt "$out" ]; then
                "$KOS" component build --type squashfs --verity "$rootfs" "$out" >&2
        fi
        echo "$out"
}
