#!/bin/sh
# scripts/version.sh: prints KOS's version, the one `kos --version` and the
# Debian packages carry (make sets -DKOS_VERSION from it).
#
#   in a git checkout   from `git describe` against the release tags vX.Y[.Z]:
#                         on a tag                 X.Y.Z (vX.Y-rc1: X.Y~rc1)
#                         N commits after it       X.Y.Z+gitN.HASH
#                         no release tag yet       0.0~gitN.HASH (N: commits in HEAD)
#                       with "+dirty" appended when tracked files have changes
#   elsewhere           the first line of VERSION, which `make dist` writes
#                       into its tarball (a tarball has no .git)
#   neither             0.0~unknown, and a warning on standard error
#
# scripts/version.sh --date prints the time of that commit instead (Unix
# seconds; the second line of VERSION), for SOURCE_DATE_EPOCH: the manual
# pages and the packages' changelog carry it, so they are reproducible.
#
# Every form is a valid Debian version of a native package (digits first, no
# hyphen) and sorts the way releases follow each other: "~" before the first
# tag, "+" after the tag it counts from.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
want=version
[ "${1:-}" = --date ] && want="date"

# Only the repository's own .git: a tarball unpacked inside some other
# checkout must not take that checkout's history for its own. The checkout
# may belong to another user (CI's clone): safe.directory for this one only.
if [ -e "$root/.git" ] && command -v git >/dev/null; then
        g() { git -c safe.directory="$root" -C "$root" "$@"; }
        if g rev-parse --verify -q HEAD >/dev/null; then
                if [ "$want" = date ]; then
                        g log -1 --format=%ct HEAD
                        exit 0
                fi
                hash=$(g rev-parse --short=12 HEAD)
                dirty=
                g update-index -q --refresh >/dev/null 2>&1 || true
                g diff-index --quiet HEAD -- 2>/dev/null || dirty=+dirty
                if tag=$(g describe --tags --abbrev=0 --match 'v[0-9]*' HEAD 2>/dev/null); then
                        base=$(echo "${tag#v}" | tr - "~") # v1.0-rc1: 1.0~rc1, before 1.0
                        n=$(g rev-list --count "$tag..HEAD")
                        if [ "$n" = 0 ]; then
                                echo "$base$dirty"
                        else
                                echo "$base+git$n.$hash$dirty"
                        fi
                else
                        echo "0.0~git$(g rev-list --count HEAD).$hash$dirty"
                fi
                exit 0
        fi
fi
if [ -s "$root/VERSION" ]; then
        if [ "$want" = date ]; then
                sed -n 2p "$root/VERSION"
        else
                head -n1 "$root/VERSION"
        fi
        exit 0
fi
echo "scripts/version.sh: no git history and no VERSION file: version 0.0~unknown" >&2
if [ "$want" = date ]; then date +%s; else echo "0.0~unknown"; fi
