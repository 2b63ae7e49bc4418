# Node Manager pulls an update from an OCI registry (Debian's docker-registry
# on the host's 127.0.0.1, which the guest reaches as 10.0.2.100:5000 through
# QEMU's user-mode network with restrict=on and a guestfwd to the registry
# alone: the guest reaches nothing else, and nothing leaves this machine), in
# its installer child, rebuilding the changed app layer from the chunks of
# the one it has, and reboots into it as it does for a bundle.

# shellcheck source=system-lib.sh
. "$ROOT/tests/vm/system-lib.sh"
# node_fixture, node_manifest, node_disk, node_boot: test-node.sh (the runner sources every test file).

OCI_VM_PID=
oci_vm_registry_stop() {
        [ -n "$OCI_VM_PID" ] || return 0
        kill "$OCI_VM_PID" 2>/dev/null || true
        wait "$OCI_VM_PID" 2>/dev/null || true
        OCI_VM_PID=
}

# A plain-http registry on a free port of 127.0.0.1: sets OCI_VM_PORT.
oci_vm_registry_start() {
        local i
        for i in $(seq 100); do
                OCI_VM_PORT=$((20000 + RANDOM % 40000))
                (exec 3<>"/dev/tcp/127.0.0.1/$OCI_VM_PORT") 2>/dev/null || break
        done
        mkdir -p registry/data
        printf 'version: 0.1\nlog:\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' \
                "$PWD/registry/data" "$OCI_VM_PORT" >registry/config.yml
        trap oci_vm_registry_stop EXIT
        docker-registry serve registry/config.yml >registry/log 2>&1 &
        OCI_VM_PID=$!
        for i in $(seq 100); do
                [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$OCI_VM_PORT/v2/")" = 200 ] && return 0
                sleep 0.1
        done
        fail "docker-registry did not start: $(tail -3 registry/log)"
}

# What v1's app layer gets: the network (virtio_net and its modules,
# systemd-networkd with DHCP), kos-node-pull with the shared libraries the
# base root lacks (libcurl and its own), the update source, and a unit that
# asks for an update once the app runs.
oci_vm_extra() {
        local dir=$1 kd ver lib base_root
        kd=$(vm_kernel_dir); base_root=$(vm_rootfs); ver=$(basename "$(ls -d "$kd"/lib/modules/*)")
        mkdir -p "$dir/usr/lib/modules/$ver/kernel/drivers/net" "$dir/usr/lib/modules/$ver/kernel/net/core"
        cp "$kd/lib/modules/$ver/kernel/drivers/net/virtio_net.ko" "$kd/lib/modules/$ver/kernel/drivers/net/net_failover.ko" \
                "$dir/usr/lib/modules/$ver/kernel/drivers/net/"
        cp "$kd/lib/modules/$ver/kernel/net/core/failover.ko" "$dir/usr/lib/modules/$ver/kernel/net/core/"
        depmod -b "$dir/usr" "$ver"
        mkdir -p "$dir/etc/systemd/network" "$dir/etc/systemd/system/multi-user.target.wants" "$dir/usr/lib/kos" \
                "$dir/usr/lib/x86_64-linux-gnu" "$dir/etc/modules-load.d"
        echo virtio_net >"$dir/etc/modules-load.d/kos-test-net.conf"
        printf '[Match]\nName=en* eth*\n\n[Network]\nDHCP=ipv4\n' >"$dir/etc/systemd/network/20-kos-test.network"
        ln -sf /lib/systemd/system/systemd-networkd.service "$dir/etc/systemd/system/multi-user.target.wants/"
        cp "$ROOT/$BUILD/kos-node-pull" "$dir/usr/lib/kos/"
        for lib in $(ldd "$ROOT/$BUILD/kos-node-pull" | awk '$3 ~ /^\// {print $3}'); do
                [ -e "$base_root/usr/lib/x86_64-linux-gnu/$(basename "$lib")" ] ||
                        cp -L "$lib" "$dir/usr/lib/x86_64-linux-gnu/"
        done
        mkdir -p "$dir/etc/kos"
        printf 'registry = http://10.0.2.100:5000/kos/device:stable\ninterval = 3600\njitter = 0\n' \
                >"$dir/etc/kos/update.conf"
        # 3 MiB both app layers hold: v2's app is rebuilt from v1's chunks.
        mkdir -p "$dir/usr/share/kos-test" && cp oci-payload "$dir/usr/share/kos-test/payload"
        cat >"$dir/etc/systemd/system/kos-test-pull.service" <<'UNIT'
[Unit]
Description=KOS test: ask Node Manager for an update from the registry
After=kos-node-manager.service systemd-networkd.service

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'sleep 12; echo "KOS-TEST check-update: $(kos node check-update 2>&1 | tr -d "\\n")" >/dev/console'

[Install]
WantedBy=multi-user.target
UNIT
        ln -sf ../kos-test-pull.service "$dir/etc/systemd/system/multi-user.target.wants/"
}

test_node_manager_pulls_a_chunked_update_from_a_registry_and_reboots_into_it() {
        oci_vm_registry_start
        head -c 3M /dev/urandom >oci-payload
        NODE_EXTRA=oci_vm_extra node_fixture
        mkdir -p app2/usr/share/kos-test && cp oci-payload app2/usr/share/kos-test/payload
        "$KOS" component build --type squashfs app2 app2.img >/dev/null
        VERSION=2 node_manifest v2 app2.img
        # The vendor's side: v2 pushed; the device has everything but app2.
        "$KOS" imagefs init pub
        "$KOS" component add pub vmlinuz initrd base.img runtime.img app2.img >/dev/null
        "$KOS" install pub v2.json >/dev/null
        "$KOS" push pub v2 "http://127.0.0.1:$OCI_VM_PORT/kos/device:stable" >/dev/null || fail "push failed"
        node_disk
        DONE_RE='reboot: Restarting|BOOT FAILED|System halted' VM_TIMEOUT=300 node_boot_nic boot-1.log
        grep -qa 'KOS-TEST check-update: .*"changed": true' boot-1.log || fail "check-update did not install v2"
        grep -qa 'kos-node .*update from .*installed v2: fetched 1 of 5 components' boot-1.log ||
                fail "the pull did not fetch only app2"
        grep -qa 'kos-node .*rebooting: to boot the new manifest' boot-1.log || fail "no reboot after the pull"
        local app2 served; app2=$(sha256sum app2.img | cut -d' ' -f1)
        ! grep -q "GET /v2/kos/device/blobs/sha256:$app2 " registry/log || fail "app2's whole layer was fetched"
        served=$(grep -oE '"GET /v2/kos/device/blobs/[^"]*" 200 [0-9]+ ' registry/log | awk '{ s += $5 } END { print s + 0 }')
        echo "v1 -> v2: the registry served $served bytes of blobs, app2 is $(stat -c %s app2.img) bytes" >&2
        [ "$served" -lt $(($(stat -c %s app2.img) / 2)) ] || fail "the registry served $served bytes of blobs for app2"
        DONE_RE='marked good|BOOT FAILED|System halted' node_boot boot-2.log
        grep -qa 'manifest v2: on trial, this boot recorded, 2 tries left' boot-2.log || fail "v2 not booted on trial"
        grep -qa 'kos-node .*boot of manifest v2 marked good' boot-2.log || fail "the boot was not marked good"
}

# node_boot with a virtio network card on QEMU's user-mode network,
# restricted: the guest reaches only the registry, as 10.0.2.100:5000 (each
# connection a socat to the host's 127.0.0.1).
node_boot_nic() {
        vm_run_kernel "$1" "${VM_TIMEOUT:-240}" "${DONE_RE:-$NODE_DONE}" \
                -nic "user,model=virtio-net-pci,restrict=on,guestfwd=tcp:10.0.2.100:5000-cmd:socat - TCP:127.0.0.1:$OCI_VM_PORT" || true
        grep -aE 'kos-boot .*(manifest|booting)|kos-node|KOS-APP|KOS-STATUS|KOS-TEST|BOOT FAILED' "$1" | sed 's/^/  | /' >&2
}
