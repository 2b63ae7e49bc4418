#!/usr/bin/env bash
# make demo (until the QEMU boot lands): builds a signed demo ImageFS on this
# host from real parts - Debian's kernel, a squashfs base layer, erofs app
# layers - and shows the Boot Kernel's decision with `kos select --explain`:
# a tampered manifest rejected, the current one selected, the fallback kept.
set -euo pipefail
cd "$(dirname "$0")/.."
KOS=$PWD/build/kos
kernel_dir=$(scripts/fetch-kernel.sh)
demo=$PWD/build/demo
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

rm -rf "$demo/img" "$demo/layers" && mkdir -p "$demo/layers"
cd "$demo"

step "Development signing key (build/demo/kos-dev-DO-NOT-SHIP.key; never for real devices)"
if [ ! -s kos-dev-DO-NOT-SHIP.key ]; then
        "$KOS" keygen kos-dev-DO-NOT-SHIP.key kos-dev-DO-NOT-SHIP.pem
fi
rm -rf keyring && mkdir keyring && cp kos-dev-DO-NOT-SHIP.pem keyring/
echo "key id $("$KOS" key-id keyring/kos-dev-DO-NOT-SHIP.pem); keyring: build/demo/keyring/"

step "Layers: a squashfs base, two versions of an erofs app layer"
mkdir -p layers/base/etc layers/app1/etc layers/app2/etc
printf 'NAME="KOS demo"\n' >layers/base/etc/os-release
echo "demo app 1" >layers/app1/etc/kos-app
echo "demo app 2" >layers/app2/etc/kos-app
mksquashfs layers/base base.img -quiet -noappend -all-root >/dev/null
mkfs.erofs app1.img layers/app1 >/dev/null 2>&1
mkfs.erofs app2.img layers/app2 >/dev/null 2>&1
# Stand-in System Kernel initrd: a cpio of the app tree, until the System
# Kernel's own initrd (issue 3/5) replaces it.
(cd layers/app2 && find . | cpio -o -H newc --quiet | gzip -n) >initrd.img
cp "$kernel_dir"/boot/vmlinuz-* vmlinuz
ls -l vmlinuz initrd.img base.img app1.img app2.img | awk '{printf "  %-12s %10d bytes\n", $9, $5}'

step "ImageFS: components, three signed manifests, the active list"
"$KOS" imagefs init img
"$KOS" component add img vmlinuz initrd.img base.img app1.img app2.img | sed 's/^/  /'
make_manifest() { # NAME VERSION APP
        "$KOS" manifest create --name "$1" --version "$2" --kernel vmlinuz --initrd initrd.img \
                --cmdline "console=ttyS0 quiet" --component base=base.img --component "app=$3" -o "$1.json"
        "$KOS" manifest sign --key kos-dev-DO-NOT-SHIP.key "$1.json" | sed 's/^/  /'
        "$KOS" install --keyring keyring img "$1.json" | sed 's/^/  /'
}
make_manifest demo-previous 1 app1.img
make_manifest demo-current 2 app2.img
# demo-next's app layer is the only one no other manifest shares: tamper with it below.
mkdir -p layers/app3/etc && echo "demo app 3" >layers/app3/etc/kos-app
mkfs.erofs app3.img layers/app3 >/dev/null 2>&1
"$KOS" component add img app3.img >/dev/null
make_manifest demo-next 3 app3.img
"$KOS" activate img demo-previous
"$KOS" activate img demo-current
"$KOS" activate img demo-next
"$KOS" list img | sed 's/^/  /'

step "Tampering: one byte of demo-next's app layer flipped on the ImageFS"
target=img/components/$(sha256sum <app3.img | cut -d' ' -f1)
printf '\xff' | dd of="$target" bs=1 seek=1100 conv=notrunc status=none
echo "  changed byte 1100 of components/$(basename "$target" | cut -c1-16)..."

step "kos select --explain (the decision the Boot Kernel makes)"
"$KOS" select img --keyring keyring --explain | sed 's/^/  /'
echo
echo "The ImageFS is in build/demo/img; try: build/kos select build/demo/img --keyring build/demo/keyring --json"
