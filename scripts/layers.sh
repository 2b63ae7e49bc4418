# Recipes for the layers a KOS device's root is stacked from, beyond the base
# OS: the runtime layer (Node Manager and what it needs) and the demo app.
# Sourced by scripts/demo.sh, by the VM tests (which add their own test files
# on top), and by anyone building a device: copy kos_runtime_layer into your
# build, or source this file. Needs ROOT (the repository) and BUILD.

# kos_runtime_layer DIR KEYRING_DIR: Node Manager (/usr/lib/kos), a static
# kos for `kos node ...` on the device (/usr/bin/kos), the keyring that
# bundles are checked against (/etc/kos/keyring, as the inits use), and the
# units: kos-node-manager.service, started by multi-user.target, and
# kos-app.target, which only Node Manager starts.
kos_runtime_layer() {
        local dir=$1 keyring=$2
        mkdir -p "$dir/usr/lib/kos" "$dir/usr/bin" "$dir/etc/kos/keyring" "$dir/etc/systemd/system/multi-user.target.wants"
        cp "$ROOT/$BUILD/kos-node-manager" "$dir/usr/lib/kos/"
        cp "$ROOT/$BUILD/kos-static" "$dir/usr/bin/kos"
        cp "$keyring"/*.pem "$dir/etc/kos/keyring/"
        cp "$ROOT"/node/units/kos-node-manager.service "$ROOT"/node/units/kos-app.target "$dir/etc/systemd/system/"
        ln -sf ../kos-node-manager.service "$dir/etc/systemd/system/multi-user.target.wants/"
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
ExecStart=/bin/sh -c 'sleep 5; echo "KOS-STATUS $(kos node status | tr -d "\\n")" >/dev/console'

[Install]
WantedBy=multi-user.target
UNIT
        ln -sf ../kos-status-report.service "$dir/etc/systemd/system/multi-user.target.wants/"
}
