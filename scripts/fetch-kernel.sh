#!/usr/bin/env bash
# Downloads Debian's current amd64 kernel package (what linux-image-amd64
# depends on) and unpacks it under build/kernel/<version>/, once. Prints the
# unpacked directory. The vmlinuz is at boot/vmlinuz-<version>, modules under
# lib/modules/<version>/.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD/build/kernel
mkdir -p "$top"

pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -1)
if [ -z "$pkg" ]; then
        # apt's lists may be empty on a fresh machine.
        [ "$(id -u)" = 0 ] && apt-get update -qq >&2
        pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -1)
fi
if [ -z "$pkg" ]; then
        # Reuse a kernel fetched before when the archive cannot be asked.
        cached=$(ls -d "$top"/*/ 2>/dev/null | tail -1)
        [ -n "$cached" ] || { echo "cannot resolve linux-image-amd64 (run apt-get update)" >&2; exit 1; }
        echo "${cached%/}"
        exit 0
fi
version=${pkg#linux-image-}
dest=$top/$version
# One fetch at a time (tests run side by side): a second caller waits, then
# finds the kernel, instead of removing the tree the first one hands out.
exec 9>"$top/.lock"
flock 9
if [ ! -e "$dest/.done" ]; then
        echo "fetching Debian kernel $pkg..." >&2
        tmp=$(mktemp -d "$top/.fetch-XXXXXX")
        chmod 755 "$tmp" # apt downloads as the _apt user where it can
        id _apt >/dev/null 2>&1 && chown _apt "$tmp"
        (cd "$tmp" && apt-get download "$pkg" >&2)
        rm -rf "$dest"
        dpkg-deb -x "$tmp"/*.deb "$dest"
        # The package leaves modules.dep to its postinst; make it here.
        depmod -b "$dest" "$version"
        rm -rf "$tmp"
        touch "$dest/.done"
fi
echo "$dest"
