#!/usr/bin/env bash
# Installs the Debian packages a target needs, or says which are missing.
#   scripts/deps.sh build   compile kos and run the demo on the host
#   scripts/deps.sh demo    make demo and make run (adds the Boot Kernel's own
#                           kernel, the UKI and Secure Boot in OVMF, and
#                           make deb for the runtime layer)
#   scripts/deps.sh check   the whole test suite
set -euo pipefail

build=(gcc make libc6-dev pkg-config openssl libssl-dev libjansson-dev libblkid-dev zlib1g-dev
       libcryptsetup-dev libsystemd-dev libcurl4-openssl-dev libzstd-dev libfdisk-dev cryptsetup-bin squashfs-tools erofs-utils e2fsprogs jq time
       cpio kmod apt mmdebstrap fdisk qemu-system-x86 swtpm swtpm-tools libp11-kit-dev zstd)
# The Boot Kernel's own kernel (scripts/build-boot-kernel.sh), its UKI and the
# Secure Boot tests (OVMF, development keys, an ESP made without mounting).
boot=(linux-source-6.1 xz-utils bc flex bison libelf-dev binutils lz4 systemd-boot-efi sbsigntool efitools ovmf
      mtools dosfstools)
# Manual pages and Debian packages (make man, make deb; make demo's runtime
# layer is the kos-device package). dpkg-buildpackage checks for
# build-essential itself, whatever the Build-Depends say.
pkg=(scdoc debhelper dpkg-dev fakeroot build-essential)
# softhsm2, opensc (pkcs11-tool) and p11-kit (its proxy module, kos's default):
# a PKCS#11 token for the HSM signing tests. docker-registry (Distribution
# 2.8) and htpasswd (apache2-utils): the OCI tests' local registry.
# lintian and man-db: the packages' tests (tests/host/test-packages.sh).
# python3 (standard library only): the TPM bus sniffer, a relay that records
# every byte between kos and swtpm (tests/host/test-tpm-policy.sh).
check=("${build[@]}" "${boot[@]}" "${pkg[@]}" lintian man-db clang libclang-rt-14-dev socat tpm2-tools softhsm2 opensc p11-kit
       docker-registry apache2-utils curl bmap-tools python3)

case "${1:-build}" in
build) want=("${build[@]}") ;;
demo) want=("${build[@]}" "${boot[@]}" "${pkg[@]}") ;;
check) want=("${check[@]}") ;;
*) echo "usage: $0 build|demo|check" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
        echo "Missing Debian packages: ${missing[*]}" >&2
        echo "Install them with: sudo apt-get install ${missing[*]}" >&2
        exit 1
fi
echo "Installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
