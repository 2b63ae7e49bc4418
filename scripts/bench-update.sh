#!/usr/bin/env bash
# make bench-update: what a device downloads for an update (issue 24).
#   v1  = mmdebstrap --variant=minbase bookworm
#   v2  = v1 with up to 7 library packages upgraded from bookworm-security
#   v2' = v1 with the whole point release and security update (bookworm-updates, bookworm-security)
# Each is a squashfs made by `kos component build`, the base component of a
# signed manifest pushed with `kos push` to a local docker-registry; a device
# ImageFS holding v1 pulls v2 and (another copy) v2'. Every response body the
# registry serves is counted from its access log. casync is measured in the
# same run, its index and chunks served by a logging HTTP server on
# 127.0.0.1, with the v1 image as seed. The trees and images are cached in
# build/bench-update/ (remove it to rebuild from today's archive).
# The last line prints both ratios (kos bytes / casync bytes).
set -euo pipefail
cd "$(dirname "$0")/.."
KOS=$(realpath "${KOS:-build/kos}")
W=$(realpath -m "${BENCH_DIR:-build/bench-update}")
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY=${SECURITY:-http://deb.debian.org/debian-security}
export SOURCE_DATE_EPOCH=1700000000 # the same times in every tree
mkdir -p "$W"
say() { echo "bench-update: $*" >&2; }
die() { say "$*"; exit 1; }
for tool in mmdebstrap casync docker-registry curl python3 mksquashfs /usr/bin/time; do
        command -v "$tool" >/dev/null || die "$tool is missing (apt-get install mmdebstrap casync docker-registry curl python3 squashfs-tools time)"
done

# --- The workload -----------------------------------------------------------

# tree NAME [OPTION...] bookworm MIRROR...: mmdebstrap into $W/NAME-root once.
tree() {
        local name=$1 options=()
        shift
        while [ "$1" != bookworm ]; do options+=("$1"); shift; done
        shift
        [ -e "$W/$name-root/.done" ] && return 0
        say "building the $name tree with mmdebstrap (once)..."
        rm -rf "$W/$name-root"
        mmdebstrap --variant=minbase "${options[@]}" bookworm "$W/$name-root" "$@" >"$W/$name.log" 2>&1 ||
                die "mmdebstrap $name: $(tail -5 "$W/$name.log")"
        touch "$W/$name-root/.done"
}

# Package and version of each package of a tree.
versions() { awk '/^Package:/ { p = $2 } /^Version:/ { print p, $2 }' "$W/$1-root/var/lib/dpkg/status" | sort; }

tree v1 bookworm "deb $MIRROR bookworm main"
tree v2full bookworm "deb $MIRROR bookworm main" "deb $MIRROR bookworm-updates main" "deb $SECURITY bookworm-security main"

# v2: the smallest library packages whose newer version is in bookworm-security.
if [ ! -e "$W/v2-root/.done" ]; then
        mkdir -p "$W/apt"
        printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s bookworm-security main\n' "$SECURITY" >"$W/apt/sources.list"
        apt_sec=(-o "Dir::Etc::SourceList=$W/apt/sources.list" -o "Dir::Etc::SourceParts=/dev/null" -o "Dir::State=$W/apt/state"
                 -o "Dir::Cache=$W/apt/cache" -o "Dir::State::status=/dev/null")
        mkdir -p "$W/apt/state/lists/partial" "$W/apt/cache/archives/partial"
        apt-get "${apt_sec[@]}" update >/dev/null 2>&1 || die "apt-get update of bookworm-security failed"
        join <(versions v1) <(versions v2full) | awk '$2 != $3 && $1 ~ /^lib/ { print $1, $3 }' >"$W/changed"
        : >"$W/v2-packages"
        while read -r pkg version; do
                if apt-cache "${apt_sec[@]}" madison "$pkg" 2>/dev/null | awk -v v="$version" '$3 == v { found = 1 } END { exit !found }'; then
                        size=$(awk -v p="$pkg" '/^Package:/ { q = $2 } /^Installed-Size:/ && q == p { print $2 }' "$W/v2full-root/var/lib/dpkg/status")
                        echo "${size:-0} $pkg" >>"$W/v2-packages"
                fi
        done <"$W/changed"
        sort -n "$W/v2-packages" | head -7 | awk '{ print $2 }' >"$W/v2-chosen"
        [ -s "$W/v2-chosen" ] || die "no library package of v1 is newer in bookworm-security"
        tree v2 --aptopt='APT::Default-Release "bookworm"' \
                --include="$(sed 's,$,/bookworm-security,' "$W/v2-chosen" | paste -sd,)" \
                bookworm "deb $MIRROR bookworm main" "deb $SECURITY bookworm-security main"
fi
say "v2 upgrades from bookworm-security: $(paste -sd' ' "$W/v2-chosen")"
say "v2' changes $(join <(versions v1) <(versions v2full) | awk '$2 != $3' | wc -l) packages"

# v1b: v1 and 4 KiB more at its end: all of it but the last chunk is on a
# device that holds v1, so its pull measures a rebuild from local chunks.
[ -e "$W/v1b.img" ] || { cp "$W/v1.img" "$W/v1b.img.tmp" && head -c 4096 /dev/urandom >>"$W/v1b.img.tmp" && mv "$W/v1b.img.tmp" "$W/v1b.img"; }
for v in v1 v2 v2full; do
        [ -e "$W/$v.img" ] || env -u SOURCE_DATE_EPOCH "$KOS" component build --type squashfs "$W/$v-root" "$W/$v.img" >/dev/null
done

# --- Publishing -------------------------------------------------------------

run=$(mktemp -d "$W/run-XXXXXX")
pids=()
cleanup() {
        for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
        rm -rf "$run"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

port=$(free_port)
mkdir -p "$run/registry"
printf 'version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' \
        "$run/registry" "$port" >"$run/registry.yml"
docker-registry serve "$run/registry.yml" >"$run/registry.log" 2>&1 &
pids+=($!)
REGISTRY=http://127.0.0.1:$port
for _ in $(seq 100); do curl -sf -o /dev/null "$REGISTRY/v2/" && break; sleep 0.1; done

cd "$run"
"$KOS" keygen key.pem pub.pem >/dev/null
mkdir keyring && cp pub.pem keyring/bench.pem
head -c 4096 /dev/zero >vmlinuz && head -c 4096 /dev/zero | tr '\0' 'i' >initrd
"$KOS" imagefs init img
"$KOS" component add img vmlinuz initrd >/dev/null
n=0
for v in v1 v2 v2full v1b; do
        n=$((n + 1))
        "$KOS" component add img "$W/$v.img" >/dev/null
        "$KOS" manifest create --name "$v" --version "$n" --kernel vmlinuz --initrd initrd --cmdline quiet \
                --component root="$W/$v.img" -o "$v.json"
        "$KOS" manifest sign --key key.pem "$v.json" >/dev/null
        "$KOS" install img "$v.json" >/dev/null
        /usr/bin/time -f '%e' -o "push-$v.time" "$KOS" push img "$v" "$REGISTRY/bench/device:$v" >"push-$v" || die "push $v: $(cat "push-$v")"
        say "pushed $v in $(cat "push-$v.time") s: $(paste -sd' ' "push-$v")"
done

# served_since LINE: bytes of the response bodies the registry served after line LINE of its log.
served_since() {
        tail -n +"$(($1 + 1))" registry.log | grep -oE '" [0-9]{3} [0-9]+ "' | awk '{ s += $3 } END { print s + 0 }'
}
lines() { wc -l <registry.log; }

# pull NAME DEVICE [REPOSITORY]: prints "bytes seconds max-rss-KiB"; each
# line of kos pull's output is stamped with the time it came (pull-NAME).
pull() {
        local before; before=$(lines)
        echo "$EPOCHREALTIME kos pull starts" >"pull-$1"
        /usr/bin/time -f '%e %M' -o "pull-$1.time" "$KOS" pull --keyring keyring "$REGISTRY/${3:-bench/device}:$1" "$2" |
                while IFS= read -r line; do echo "$EPOCHREALTIME $line"; done >>"pull-$1"
        grep -q ' pulled ' "pull-$1" || die "pull $1: $(cat "pull-$1")"
        echo "$(served_since "$before") $(cat "pull-$1.time")"
}

# The seconds between the first line of pull-NAME holding $2 and the first holding $3.
between() { awk -v a="$2" -v b="$3" 'index($0, a) && !ta { ta = $1 } index($0, b) && !tb { tb = $1 } END { printf "%.3f", tb - ta }' "pull-$1"; }

"$KOS" imagefs init dev
read -r fresh fresh_s fresh_kib < <(pull v1 dev)
cp -a dev dev2 && cp -a dev dev3 && cp -a dev dev4 && cp -a dev dev5
read -r kos_v2 v2_s v2_kib < <(pull v2 dev)
read -r kos_v2p v2p_s v2p_kib < <(pull v2full dev2)
cmp "$W/v2.img" "dev/components/$(sha256sum "$W/v2.img" | cut -d' ' -f1)"
release_v1=$(($(stat -c %s "$W/v1.img") + 8192 + $(stat -c %s img/manifests/v1.json) + $(stat -c %s img/manifests/v1.json.sig)))
# The rebuild from local chunks: from the line that starts it (the seeds
# are indexed by then) to the summary after the component is written.
read -r _ local_s local_kib < <(pull v1b dev5)
local_rebuild_s=$(between v1b 'rebuilding root' 'root: ')
seeding_s=$(between v2 'kos pull starts' 'rebuilding root')
chunks_v2=$(sed -n 's/.*root: .*, \([0-9]*\) chunks and the index fetched.*/\1/p' pull-v2)
rebuild_s=$(between v2 'rebuilding root' 'root: ')

# --- Deltas (kos push --delta-from) -----------------------------------------

for v in v2 v2full; do
        /usr/bin/time -f '%e' -o "push-delta-$v.time" "$KOS" push --delta-from v1 img "$v" "$REGISTRY/bench/delta:$v" >"push-delta-$v" ||
                die "push --delta-from v1 $v: $(cat "push-delta-$v")"
        say "pushed $v with a delta from v1 in $(cat "push-delta-$v.time") s: $(grep deltas "push-delta-$v")"
done
read -r delta_v2 delta_v2_s delta_v2_kib < <(pull v2 dev3 bench/delta)
read -r delta_v2p delta_v2p_s delta_v2p_kib < <(pull v2full dev4 bench/delta)
grep -q 'fetching the delta of root' pull-v2 || die "the delta of v2 was not used: $(cat pull-v2)"
cmp "$W/v2full.img" "dev4/components/$(sha256sum "$W/v2full.img" | cut -d' ' -f1)"

# --- casync, counted the same way -------------------------------------------

mkdir -p cas
for v in v1 v2 v2full; do casync make --store=cas/store "cas/$v.caibx" "$W/$v.img" >/dev/null; done
cat >serve.py <<'PY'
import http.server, os, sys
class H(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass
    def copyfile(self, src, dst):
        n = 0
        while True:
            b = src.read(65536)
            if not b: break
            dst.write(b); n += len(b)
        with open(os.environ["LOG"], "a") as f: f.write("%d %s\n" % (n, self.path))
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), lambda *a: H(*a, directory=sys.argv[2])).serve_forever()
PY
cport=$(free_port)
LOG=$run/cas.log python3 serve.py "$cport" cas &
pids+=($!)
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$cport/v1.caibx" && break; sleep 0.1; done
: >cas.log
casync_pull() { # NAME: bytes casync fetched for NAME with v1 as seed
        : >cas.log
        casync extract --seed="$W/v1.img" --store="http://127.0.0.1:$cport/store" "http://127.0.0.1:$cport/$1.caibx" "cas-$1.img" \
                >/dev/null 2>&1 || die "casync extract $1 failed"
        cmp "cas-$1.img" "$W/$1.img" || die "casync rebuilt another $1"
        awk '{ s += $1 } END { print s + 0 }' cas.log
}
cas_v2=$(casync_pull v2)
cas_v2p=$(casync_pull v2full)

# --- Report -----------------------------------------------------------------

size=$(stat -c %s "$W/v2.img")
printf '\n| method | v1 -> v2 | v1 -> v2'"'"' |\n|---|---|---|\n'
printf '| kos pull (chunks) | %s | %s |\n| kos pull (delta, zstd --patch-from) | %s | %s |\n| casync (v1 as seed) | %s | %s |\n' \
        "$kos_v2" "$kos_v2p" "$delta_v2" "$delta_v2p" "$cas_v2" "$cas_v2p"
printf '| the component | %s | %s |\n\n' "$size" "$(stat -c %s "$W/v2full.img")"
echo "fresh install of v1: $fresh bytes served for a release of $release_v1 bytes ($(awk -v a="$fresh" -v b="$release_v1" 'BEGIN { printf "%.4f", a / b }')x), $fresh_s s"
echo "pull v1 -> v2: $v2_s s, peak RSS $v2_kib KiB; seeds cut and hashed in $seeding_s s, the component rebuilt in $rebuild_s s ($(awk -v s="$size" -v t="$rebuild_s" 'BEGIN { printf "%.0f", (t > 0 ? s / t / 1e6 : 0) }') MB/s, $chunks_v2 chunks fetched among them)"
echo "pull v1 -> v2': $v2p_s s, peak RSS $v2p_kib KiB; by delta: v2 $delta_v2_s s ($delta_v2_kib KiB), v2' $delta_v2p_s s ($delta_v2p_kib KiB)"
echo "rebuild from local chunks (v1 -> v1 and 4 KiB, 1 chunk fetched): $local_rebuild_s s, $(awk -v s="$(stat -c %s "$W/v1b.img")" -v t="$local_rebuild_s" 'BEGIN { printf "%.0f", (t > 0 ? s / t / 1e6 : 0) }') MB/s; the whole pull $local_s s, peak RSS $local_kib KiB"
awk -v a="$kos_v2" -v b="$cas_v2" -v c="$kos_v2p" -v d="$cas_v2p" -v f="$fresh" -v r="$release_v1" \
        'BEGIN { printf "bench-update: v1->v2 kos/casync %.3f, v1->v2'"'"' kos/casync %.3f, fresh install %.4fx\n", a / b, c / d, f / r }'
