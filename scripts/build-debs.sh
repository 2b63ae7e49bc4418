#!/bin/sh
# scripts/build-debs.sh: `make deb`. Builds the Debian packages kos-tools and
# kos-device with debhelper (dpkg-buildpackage -b) from packaging/debian,
# copied into $BUILD/deb/kos-VERSION/ with a changelog entry for this
# version, so nothing is written into the checkout. The packages land in
# $BUILD/deb/; the build's output in $BUILD/deb/build.log (shown on failure).
# Needs KOS_VERSION and SOURCE_DATE_EPOCH (the Makefile passes both).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
: "${KOS_VERSION:?run make deb}" "${SOURCE_DATE_EPOCH:?run make deb}"
case $BUILD in /*) out=$BUILD ;; *) out=$root/$BUILD ;; esac
out=$out/deb
stage=$out/kos-$KOS_VERSION

rm -rf "$out"
mkdir -p "$stage"
cp -r "$root/packaging/debian" "$stage/debian"
# A native package: the changelog's one entry is this build.
from=$(git -c safe.directory="$root" -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo "a source tarball")
cat >"$stage/debian/changelog" <<EOF
kos ($KOS_VERSION) bookworm; urgency=medium

  * Built with make deb from $from.

 -- $(sed -n 's/^Maintainer: //p' "$stage/debian/control")  $(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")
EOF

echo "make deb: building kos-tools and kos-device $KOS_VERSION with debhelper"
if ! (cd "$stage" && KOS_SRC=$root KOS_BUILD=$BUILD dpkg-buildpackage -b -us -uc) >"$out/build.log" 2>&1; then
        tail -n 40 "$out/build.log" >&2
        echo "make deb: dpkg-buildpackage failed; the whole log is $out/build.log" >&2
        exit 1
fi
rm -rf "$stage"
ls "$out"/*.deb
