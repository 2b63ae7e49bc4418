#!/usr/bin/env bash
# Builds the demo/test systemd root with mmdebstrap, once, into
# build/rootfs/base-<hash of the package list> (a directory, kept as a
# cache); prints its path. udev is there so that device units appear. Docs, man pages and
# locales are left out; nothing else is changed, so it is Debian's own root.
set -euo pipefail
cd "$(dirname "$0")/.."
packages=systemd,systemd-sysv,udev
# The directory name changes with the package list, so a changed list rebuilds.
out=$PWD/build/rootfs/base-$(echo "$packages" | sha256sum | cut -c1-8)
if [ -e "$out/.done" ]; then echo "$out"; exit 0; fi
mkdir -p "$(dirname "$out")"
rm -rf "$out" "$out.tmp"
echo "building a systemd root with mmdebstrap (once; about a minute)..." >&2
mmdebstrap --variant=essential --include="$packages" \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
        --customize-hook='echo kos > "$1/etc/hostname"' \
        --customize-hook='rm -f "$1/etc/machine-id" && touch "$1/etc/machine-id"' \
        bookworm "$out.tmp" >&2
mv "$out.tmp" "$out"
touch "$out/.done"
echo "$out"
