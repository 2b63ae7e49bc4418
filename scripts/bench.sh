#!/usr/bin/env bash
# make bench: how long selection takes against plain sequential hashing.
# An ImageFS with two 512 MiB components, warm page cache; in the same run:
#   (1) openssl dgst -sha256 over the two files, one after the other
#   (2) kos select (signature check, then both files hashed in parallel)
# Each is run 5 times; the median is reported, with kos select's peak RSS.
# Targets: ratio (2)/(1) <= 0.6, peak RSS < 16 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
KOS=$PWD/build/kos
dir=${BENCH_DIR:-build/bench}
size_mib=${BENCH_SIZE_MIB:-512}
runs=5
mkdir -p "$dir"
cd "$dir"

if [ ! -s c1.img ] || [ "$(stat -c %s c1.img)" != $((size_mib << 20)) ]; then
        echo "creating two ${size_mib} MiB components..."
        head -c $((size_mib << 20)) /dev/urandom >c1.img
        head -c $((size_mib << 20)) /dev/urandom >c2.img
        rm -rf img keyring
fi
if [ ! -d img ]; then
        head -c 8M /dev/urandom >vmlinuz
        head -c 4M /dev/urandom >initrd
        rm -f bench.key bench.pem && "$KOS" keygen bench.key bench.pem >/dev/null
        mkdir -p keyring && cp bench.pem keyring/
        "$KOS" imagefs init img
        "$KOS" component add img vmlinuz initrd c1.img c2.img >/dev/null
        "$KOS" manifest create --name bench --version 1 --kernel vmlinuz --initrd initrd \
                --component one=c1.img:squashfs --component two=c2.img:squashfs -o bench.json
        "$KOS" manifest sign --key bench.key bench.json >/dev/null
        "$KOS" install img bench.json >/dev/null
        "$KOS" activate img bench
fi
c1=img/components/$(sha256sum <c1.img | cut -d' ' -f1)
c2=img/components/$(sha256sum <c2.img | cut -d' ' -f1)
cat "$c1" "$c2" img/components/* >/dev/null # warm the page cache

now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

openssl_times=() kos_times=() rss=()
for _ in $(seq $runs); do
        t0=$(now)
        openssl dgst -sha256 "$c1" >/dev/null
        openssl dgst -sha256 "$c2" >/dev/null
        t1=$(now)
        /usr/bin/time -f %M -o rss.txt "$KOS" select img --keyring keyring >/dev/null
        t2=$(now)
        openssl_times+=($(((t1 - t0) / 1000000)))
        kos_times+=($(((t2 - t1) / 1000000)))
        rss+=("$(cat rss.txt)")
done
o=$(printf '%s\n' "${openssl_times[@]}" | median)
k=$(printf '%s\n' "${kos_times[@]}" | median)
r=$(printf '%s\n' "${rss[@]}" | sort -n | tail -1)
ratio=$(awk -v k="$k" -v o="$o" 'BEGIN {printf "%.2f", k / o}')
verdict() { if [ "$1" = 1 ]; then echo "meets target"; else echo "MISSES target"; fi; }

echo "components:                     2 x ${size_mib} MiB (+ 8 MiB kernel, 4 MiB initrd for kos)"
echo "openssl dgst -sha256, serial:   ${o} ms (median of $runs)"
echo "kos select:                     ${k} ms (median of $runs)"
echo "ratio kos/openssl:              ${ratio} ($(verdict "$(awk -v x="$ratio" 'BEGIN {print (x <= 0.6)}')") <= 0.6)"
echo "kos select peak RSS:            $((r / 1024)).$(((r % 1024) * 10 / 1024)) MiB ($(verdict "$(awk -v x="$r" 'BEGIN {print (x < 16384)}')") < 16 MiB)"
