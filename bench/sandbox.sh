#!/usr/bin/env bash
# Sandbox overhead: the full-build wall time of the 2,045-action peer workload
# (../shared/bench/gen.py 10 50 4) with --sandbox none, symlink and linux, and
# ninja's time on the same workload when ninja is installed. The target:
# linux within 2x of none, and within 2x of ninja.
#
# The tools take turns, round after round, and each keeps its best time: on
# a shared two-core machine a single run says more about the neighbours
# than about the tool.
#
# Usage: bench/sandbox.sh [ROUNDS]   (default 3; HEPBUILD_GEN overrides the
#        path of gen.py, HEPBUILD measures a given binary)
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

rounds=${1:-3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

build_hepbuild "$tmp/hepbuild"
python3 "$gen" "$tmp/ws" 10 50 4 >/dev/null
"$tmp/hepbuild" info sandbox -C "$tmp/ws"
"$tmp/hepbuild" info resource_limits -C "$tmp/ws"

now() { date +%s.%N; }
tools=(none symlink linux)
command -v ninja >/dev/null && tools+=(ninja)
declare -A best
for ((r = 1; r <= rounds; r++)); do
	line="round $r:"
	for s in "${tools[@]}"; do
		# Every run starts from nothing built, and nothing is deleted just
		# before it: ext4 makes the creation of files right after the
		# deletion of thousands slow, which would time the file system.
		if [[ $s == ninja ]]; then
			t0=$(now)
			(cd "$tmp/ws" && ninja -j2 >/dev/null)
			t1=$(now)
			# ninja writes into the workspace; left there, its files would
			# be source files named like hepbuild's outputs, an error.
			mv "$tmp/ws/out" "$tmp/ninja-out-$r"
		else
			# A fresh cache and output base per run: every action runs.
			t0=$(now)
			XDG_CACHE_HOME=$tmp/cache-$s-$r "$tmp/hepbuild" build //:all -C "$tmp/ws" --sandbox "$s" --progress=none -j2 \
				>/dev/null 2>"$tmp/$s.log" ||
				{ echo "build with --sandbox $s failed:"; tail -20 "$tmp/$s.log"; exit 1; }
			t1=$(now)
		fi
		took=$(echo "$t1 - $t0" | bc -l)
		line+=$(printf ' %s %.2f s' "$s" "$took")
		if [[ -z ${best[$s]:-} ]] || (($(echo "$took < ${best[$s]}" | bc -l))); then
			best[$s]=$took
		fi
	done
	echo "$line"
done
echo "best of $rounds:"
for s in "${tools[@]}"; do
	printf '%-8s %6.2f s\n' "$s" "${best[$s]}"
done
printf 'linux / none: %.2fx (target <= 2)\n' "$(echo "${best[linux]} / ${best[none]}" | bc -l)"
if [[ -n ${best[ninja]:-} ]]; then
	printf 'linux / ninja: %.2fx (target <= 2)\n' "$(echo "${best[linux]} / ${best[ninja]}" | bc -l)"
else
	echo "ninja: not installed"
fi
