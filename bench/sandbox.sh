#!/usr/bin/env bash
# Sandbox overhead: the full-build wall time of the 2,045-action peer workload
# (../shared/bench/gen.py 10 50 4) with --sandbox none, symlink and linux, and
# ninja's time on the same workload when ninja is installed. The target:
# linux within 2x of none, and within 2x of ninja.
# Usage: bench/sandbox.sh   (HEPBUILD_GEN overrides the path of gen.py)
set -euo pipefail
cd "$(dirname "$0")/.."

gen=${HEPBUILD_GEN:-../shared/bench/gen.py}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

go build -o "$tmp/hepbuild" ./cmd/hepbuild
python3 "$gen" "$tmp/ws" 10 50 4 >/dev/null
"$tmp/hepbuild" info sandbox -C "$tmp/ws"
"$tmp/hepbuild" info resource_limits -C "$tmp/ws"

now() { date +%s.%N; }
declare -A took
for s in none symlink linux; do
	# A fresh cache and output base per run: every action runs.
	export XDG_CACHE_HOME=$tmp/cache-$s
	t0=$(now)
	"$tmp/hepbuild" build //:all -C "$tmp/ws" --sandbox "$s" --progress=none -j2 >/dev/null 2>"$tmp/$s.log" ||
		{ echo "build with --sandbox $s failed:"; tail -20 "$tmp/$s.log"; exit 1; }
	t1=$(now)
	took[$s]=$(echo "$t1 - $t0" | bc -l)
	printf '%-8s %6.2f s\n' "$s" "${took[$s]}"
done
printf 'linux / none: %.2fx\n' "$(echo "${took[linux]} / ${took[none]}" | bc -l)"

if command -v ninja >/dev/null; then
	(cd "$tmp/ws" && rm -rf out && t0=$(now) && ninja -j2 >/dev/null && t1=$(now) &&
		printf '%-8s %6.2f s\n' ninja "$(echo "$t1 - $t0" | bc -l)" >"$tmp/ninja.txt")
	cat "$tmp/ninja.txt"
	ninja_t=$(awk '{print $2}' "$tmp/ninja.txt")
	printf 'linux / ninja: %.2fx\n' "$(echo "${took[linux]} / $ninja_t" | bc -l)"
else
	echo "ninja: not installed"
fi
