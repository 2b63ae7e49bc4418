#!/usr/bin/env bash
# tests/runner.sh SUITE_DIR [FILTER]: runs every test_* function of
# SUITE_DIR/test-*.sh (after SUITE_DIR/lib.sh), each in a new empty directory,
# and prints "PASS name" or "FAIL name" with the failing test's output.
# KOS names the kos binary under test; PREFIX is put before each name.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
here=$(cd "$1" && pwd)
: "${KOS:?set KOS to the kos binary}"
KOS=$(realpath "$KOS")
export KOS ROOT BUILD
prefix=${PREFIX:-}
filter=${2:-}

# shellcheck source=/dev/null
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
                sed 's/^/    /' "$dir.log" | tail -${TAIL_LINES:-20}
                status=1
        fi
        rm -rf "$dir" "$dir.log"
done
exit $status
