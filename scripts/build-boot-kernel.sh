#!/usr/bin/env bash
# scripts/build-boot-kernel.sh [FRAGMENT...]: builds the Boot Kernel's own
# kernel from Debian's kernel source (package linux-source-6.1) with
# `make tinyconfig` plus boot/kernel/kos-boot.config plus each FRAGMENT (a
# vendor's extra drivers, same syntax), and prints the path of its bzImage.
#
# The result is cached under build/boot-kernel/<hash>/, the hash taken over
# every input: the fragments' options, the source package's version and this
# script.
# A cold build prints how long it took (on stderr); a cached one is instant.
# Every option a fragment sets must survive `make olddefconfig`; one that
# does not (an unmet dependency) stops the build with its name.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) out_root=$BUILD/boot-kernel ;; *) out_root=$ROOT/$BUILD/boot-kernel ;; esac
tarball=/usr/src/linux-source-6.1.tar.xz
jobs=${BOOT_KERNEL_JOBS:-$(nproc)}

fragments=("$ROOT/boot/kernel/kos-boot.config")
for f in "$@"; do
        [ -r "$f" ] || { echo "build-boot-kernel: cannot read fragment $f" >&2; exit 2; }
        fragments+=("$(realpath "$f")")
done

if ! version=$(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null) || [ ! -r "$tarball" ]; then
        echo "build-boot-kernel: needs the Debian package linux-source-6.1 ($tarball); scripts/deps.sh check installs it" >&2
        exit 1
fi

# The options, not the comments: editing a fragment's prose rebuilds nothing.
hash=$({ echo "linux-source-6.1 $version"; sha256sum <"$0"; for f in "${fragments[@]}"; do
        grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$f" | sha256sum; done; } | sha256sum | cut -c1-16)
dir=$out_root/$hash
mkdir -p "$out_root"
exec 9>"$out_root/.lock"
flock 9 # one build at a time; a second caller waits, then finds the cache
if [ -s "$dir/bzImage" ]; then
        echo "$dir/bzImage"
        exit 0
fi

start=$(date +%s.%N)
src=$out_root/src-$version
if [ ! -f "$src/.complete" ]; then
        echo "build-boot-kernel: unpacking $tarball" >&2
        rm -rf "$src" "$src.tmp"
        mkdir -p "$src.tmp"
        tar -C "$src.tmp" --strip-components=1 -xJf "$tarball"
        touch "$src.tmp/.complete"
        mv "$src.tmp" "$src"
fi

rm -rf "$dir"
obj=$dir.obj
rm -rf "$obj"
mkdir -p "$obj"
log=$obj/build.log
kmake() { make -C "$src" O="$obj" ARCH=x86_64 KBUILD_BUILD_TIMESTAMP=@0 KBUILD_BUILD_USER=kos KBUILD_BUILD_HOST=kos "$@"; }
echo "build-boot-kernel: building $hash (log: $log)" >&2
if ! {
        kmake tinyconfig &&
        "$src/scripts/kconfig/merge_config.sh" -m -O "$obj" "$obj/.config" "${fragments[@]}" &&
        kmake olddefconfig
} >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        exit 1
fi

# Every option the fragments ask for, as the final configuration has it.
missing=$(cat "${fragments[@]}" | sed -n 's/^\(CONFIG_[A-Za-z0-9_]*\)=\(.*\)$/\1 \2/p' | while read -r name value; do
        if [ "$value" = n ]; then
                grep -q "^$name=" "$obj/.config" && echo "$name=n"
        else
                grep -qx "$name=$value" "$obj/.config" || echo "$name=$value"
        fi
done || true)
if [ -n "$missing" ]; then
        echo "build-boot-kernel: these options did not survive olddefconfig (unmet dependencies?):" >&2
        echo "$missing" | sed 's/^/  /' >&2
        exit 1
fi

if ! kmake -j"$jobs" bzImage >>"$log" 2>&1; then
        tail -n 30 "$log" >&2
        exit 1
fi
mkdir -p "$dir.tmp"
cp "$obj/arch/x86/boot/bzImage" "$dir.tmp/bzImage"
cp "$obj/.config" "$dir.tmp/config"
printf '%s\n' "linux-source-6.1 $version" "${fragments[@]}" >"$dir.tmp/inputs"
rm -rf "$dir"
mv "$dir.tmp" "$dir"
rm -rf "$obj"
seconds=$(echo "$(date +%s.%N) - $start" | bc)
printf 'build-boot-kernel: cold build took %.0f s, bzImage %s bytes\n' "$seconds" "$(stat -c %s "$dir/bzImage")" >&2
echo "$dir/bzImage"
