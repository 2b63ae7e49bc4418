#!/usr/bin/env bash
# Runs every test_* of tests/host/test-*.sh, each in a new empty directory,
# and prints "PASS name" or "FAIL name". KOS names the binary under test.
set -u
here=$(cd "$(dirname "$0")" && pwd)
: "${KOS:?set KOS to the kos binary}"
KOS=$(realpath "$KOS")
export KOS
prefix=${PREFIX:-}
filter=${1:-}

# shellcheck source=lib.sh
. "$here/lib.sh"
for f in "$here"/test-*.sh; do
        # shellcheck disable=SC1090
        . "$f"
done

status=0
for t in $(declare -F | awk '{print $3}' | grep '^test_' ); do
        [ -n "$filter" ] && [[ $t != *$filter* ]] && continue
        dir=$(mktemp -d /tmp/kos-host-XXXXXX)
        # Not in an if-condition: bash ignores set -e there, and a test must
        # stop at its first failing command.
        (cd "$dir" && set -e && "$t") >"$dir.log" 2>&1
        rc=$?
        if [ "$rc" = 0 ]; then
                echo "PASS ${prefix}${t#test_}"
        else
                echo "FAIL ${prefix}${t#test_}"
                sed 's/^/    /' "$dir.log" | tail -20
                status=1
        fi
        rm -rf "$dir" "$dir.log"
done
exit $status
