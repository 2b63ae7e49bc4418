#!/usr/bin/env bash
# scripts/secureboot-keys.sh DIR: DEVELOPMENT Secure Boot keys for a KOS
# device, made once in DIR (kept when they exist):
#
#   PK.key  PK.crt    platform key: signs KEK updates (and PK's own)
#   KEK.key KEK.crt   key exchange key: signs db updates
#   db.key  db.crt    the vendor's signing key: signs the Boot Kernel UKI
#   *.esl             EFI signature lists of the certificates
#   PK.auth KEK.auth db.auth
#                     authenticated variables that enroll them into a
#                     firmware in setup mode (systemd-boot's
#                     loader/keys/auto/, or efi-updatevar)
#
# The keys are RSA-2048, unencrypted, named "KOS development ..." in their
# certificates: for tests and the demo only. A production key set lives in
# an HSM (not done here; see docs/trust-chain.md).
set -euo pipefail
dir=${1:?usage: $0 DIR}
mkdir -p "$dir"
cd "$dir"
# One maker at a time (tests run side by side): a second caller waits, then
# finds the keys.
exec 9>.lock
flock 9
[ -s PK.auth ] && [ -s KEK.auth ] && [ -s db.auth ] && exit 0

for tool in openssl cert-to-efi-sig-list sign-efi-sig-list; do
        command -v "$tool" >/dev/null || { echo "secureboot-keys: $tool is missing (packages openssl, efitools)" >&2; exit 1; }
done
# The owner GUID the signature lists carry: one per key set.
[ -s guid ] || cat /proc/sys/kernel/random/uuid >guid
guid=$(cat guid)
for name in PK KEK db; do
        openssl req -new -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -subj "/CN=KOS development $name (not for production)/" \
                -keyout "$name.key" -out "$name.crt" 2>/dev/null
        cert-to-efi-sig-list -g "$guid" "$name.crt" "$name.esl" >/dev/null
done
# PK signs itself and KEK; KEK signs db (loader.conf(5)'s recipe).
sign-efi-sig-list -c PK.crt -k PK.key PK PK.esl PK.auth >/dev/null
sign-efi-sig-list -c PK.crt -k PK.key KEK KEK.esl KEK.auth >/dev/null
sign-efi-sig-list -c KEK.crt -k KEK.key db db.esl db.auth >/dev/null
echo "secureboot-keys: development PK, KEK and db made in $dir" >&2
