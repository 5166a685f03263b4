#!/usr/bin/env bash
# Compares hepbuild's file hashing (cache.FromFile) with sha256sum on one
# 2 GB file. The target: hepbuild at >= 90% of sha256sum's speed.
# Usage: bench/hash.sh [size-in-MiB]   (default 2048)
set -euo pipefail
cd "$(dirname "$0")/.."

size_mib=${1:-2048}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
file=$tmp/blob

echo "writing a ${size_mib} MiB file in $tmp"
head -c "$((size_mib * 1024 * 1024))" /dev/urandom >"$file"
go test -c -o "$tmp/cache.test" ./cache

# Warm the page cache, so both read from memory and the hash speed is compared.
cat "$file" >/dev/null

if grep -qw sha_ni /proc/cpuinfo; then echo "cpu: SHA-NI available"; else echo "cpu: no SHA-NI"; fi

now() { date +%s.%N; }
best_sum=""
for _ in 1 2 3; do
	t0=$(now); sha256sum "$file" >/dev/null; t1=$(now)
	t=$(echo "$t1 - $t0" | bc -l)
	if [[ -z $best_sum ]] || (($(echo "$t < $best_sum" | bc -l))); then best_sum=$t; fi
done

best_go=""
for _ in 1 2 3; do
	t0=$(now)
	HEPBUILD_HASH_FILE=$file "$tmp/cache.test" -test.run XXX -test.bench BenchmarkFromFile -test.benchtime 1x >/dev/null
	t1=$(now)
	t=$(echo "$t1 - $t0" | bc -l)
	if [[ -z $best_go ]] || (($(echo "$t < $best_go" | bc -l))); then best_go=$t; fi
done

mib_s() { echo "scale=0; $size_mib / $1" | bc -l; }
printf 'sha256sum:        %6.3f s  %6s MiB/s\n' "$best_sum" "$(mib_s "$best_sum")"
printf 'hepbuild FromFile: %6.3f s  %6s MiB/s (whole test binary, best of 3)\n' "$best_go" "$(mib_s "$best_go")"
printf 'speed ratio hepbuild/sha256sum: %.2f (target >= 0.90)\n' "$(echo "$best_sum / $best_go" | bc -l)"
