#!/usr/bin/env bash
# scripts/check-links.sh BUILD: fails when a program links code of a stage
# after its own. Each program's link map (-Wl,-Map) names every archive
# member it took in; the archives are the folders of lib/ (Makefile,
# "lib/ is split by where its code may run"):
#   kos-boot-init     the Boot Kernel's PID 1: lib/boot only
#   kos-system-init   the System Kernel's PID 1: lib/boot, lib/system
#   kos-node-manager  and the device's kos: lib/boot, lib/system, lib/device
# lib/registry and lib/host never reach any of them.
set -euo pipefail
build=${1:?usage: check-links.sh BUILD}
status=0

check() { # PROGRAM ALLOWED_FOLDER...
        local program=$1 map=$build/$1.map used bad
        shift
        if [ ! -s "$map" ]; then
                echo "check-links: no link map $map (build $program first)" >&2
                return 1
        fi
        used=$(grep -o 'libkos-[a-z]*\.a([^)]*)' "$map" | sort -u || true)
        bad=$(grep -v -E "^libkos-($(IFS='|'; echo "$*"))\.a\(" <<<"$used" | grep . || true)
        if [ -n "$bad" ]; then
                echo "check-links: $program may link only lib/{$(IFS=,; echo "$*")}, but it took in:" >&2
                sed 's/^/  /' <<<"$bad" >&2
                return 1
        fi
}

check kos-boot-init boot || status=1
check kos-system-init boot system || status=1
check kos-node-manager boot system device || status=1
check kos-static boot system device || status=1
exit $status
