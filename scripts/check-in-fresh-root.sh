#!/usr/bin/env bash
# scripts/check-in-fresh-root.sh [COMMAND...]
#
# Runs COMMAND (default: make check) on a clone of this commit inside a fresh
# minimal Debian 12 root, as a newcomer's machine would be: mmdebstrap
# --variant=minbase with only git, make and ca-certificates. Everything else
# the suite needs must be installed by the project's own scripts
# (scripts/deps.sh), so a package installed by hand on the host cannot hide a
# missing install step. /dev, /dev/pts, /proc and /sys are bind-mounted (QEMU,
# loop devices); every mount and the root itself are removed afterwards, also
# on failure or interruption. Prints the time each part took.
#
# KOS_FRESH_ROOT_KEEP=1 keeps the root (for a look after a failure).
# KOS_FRESH_ROOT_NO_CACHE=1 does not reuse the machine's Boot Kernel build
# cache (/var/cache/kos/boot-kernel, keyed by the hash of its inputs) nor the
# packages' test root (/var/cache/kos/debian-root).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
[ $# -gt 0 ] || set -- make check
[ "$(id -u)" = 0 ] || { echo "$0: needs root (mmdebstrap, chroot, bind mounts)" >&2; exit 1; }

t0=$SECONDS
stamp() { printf '[fresh root] %s (%d s)\n' "$1" $((SECONDS - t0)); }

if ! command -v mmdebstrap >/dev/null; then
        stamp "installing mmdebstrap on the host"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null
fi

root=$(mktemp -d /var/tmp/kos-fresh-root-XXXXXX)
# Unmounts everything below the root, deepest first (tests may leave loop or
# overlay mounts behind when they fail), then removes it without crossing
# into any file system that could not be unmounted.
cleanup() {
        local rc=$? m
        trap - EXIT INT TERM
        for m in $(awk -v r="$root" '$5 == r || index($5, r "/") == 1 {print $5}' /proc/self/mountinfo | sort -r); do
                umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
        done
        if [ "${KOS_FRESH_ROOT_KEEP:-}" = 1 ]; then
                echo "[fresh root] kept at $root"
        else
                rm -rf --one-file-system "$root"
        fi
        exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The host's apt sources and settings, so the root reaches the same archive.
sources=()
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
        [ -s "$f" ] && grep -q 'debian' "$f" && sources+=("$f")
done
aptopts=()
for f in /etc/apt/apt.conf.d/*; do
        [ -f "$f" ] && grep -q 'Check-Valid-Until\|Proxy\|proxy' "$f" && aptopts+=(--aptopt="$f")
done

stamp "building a minimal Debian 12 root in $root"
mmdebstrap --quiet --variant=minbase --include=git,make,ca-certificates "${aptopts[@]}" \
        bookworm "$root" "${sources[@]}"
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
stamp "root ready"

# The commit under test, and ../shared beside it as CI lays it out.
git clone --quiet --no-hardlinks "$repo" "$root/src/kos"
git -C "$root/src/kos" checkout --quiet --detach "$(git -C "$repo" rev-parse HEAD)"
[ -d "$repo/../shared" ] && cp -r "$repo/../shared" "$root/src/shared"

for m in dev dev/pts proc sys; do
        mount --bind "/$m" "$root/$m"
done
# The Boot Kernel's own kernel is cached by the hash of its inputs
# (scripts/build-boot-kernel.sh), "once per machine": the machine's cache is
# kept outside the throw-away root, so a CI run builds it only when its
# inputs changed. KOS_FRESH_ROOT_NO_CACHE=1 builds it inside, from nothing.
if [ "${KOS_FRESH_ROOT_NO_CACHE:-}" != 1 ]; then
        mkdir -p /var/cache/kos/boot-kernel "$root/src/kos/build/boot-kernel"
        mount --bind /var/cache/kos/boot-kernel "$root/src/kos/build/boot-kernel"
        # Likewise the minimal Debian root the packages' test installs into
        # (tests/host/test-packages.sh: mmdebstrap once a week, about a minute).
        mkdir -p /var/cache/kos/debian-root "$root/var/cache/kos/debian-root"
        mount --bind /var/cache/kos/debian-root "$root/var/cache/kos/debian-root"
fi

stamp "running '$*' in the fresh root"
log=$root/src/run.log
set +e # pipefail: the status is the command's, whatever tee does
chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 TERM=dumb CI="${CI:-}" \
        bash -c 'cd /src/kos && "$@"' bash "$@" 2>&1 | tee "$log"
rc=$?
set -e
stamp "'$*' finished with status $rc"
# The summary stays the last line, as CI reads it.
summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1 || true)
[ -n "$summary" ] && echo "$summary"
exit "$rc"
