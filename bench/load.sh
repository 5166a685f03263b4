#!/usr/bin/env bash
# Times loading plus analysis of the peer workload (gen.py) at 2k, 20k, 200k
# and 1M actions, with peak memory, to show that both grow linearly with the
# number of actions. Loading plus analysis is `hepbuild build --nobuild //:all`,
# which loads and analyses every rule of the package and runs nothing;
# loading alone is `hepbuild query 'deps(//:all)'`. Each is the best of three
# runs (one at 1M).
#
# Targets (issue 2): 20k within 0.5 s and 250 MB; query deps(//:all) on 20k
# within 1 s; 1M within 30 s and 4 GB.
#
# Usage: bench/load.sh [--no-1m]   HEPBUILD=path measures a given binary;
#        HEPBUILD_GEN=path the generator.
set -uo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

sizes=(10,50,4 40,125,4 100,500,4 250,1000,4)
[[ ${1:-} == --no-1m ]] && sizes=("${sizes[@]:0:3}")

tmp=$(mktemp -d /tmp/hepbuild-load.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
hb=$tmp/hepbuild
build_hepbuild "$hb" || exit 1
export XDG_CACHE_HOME=$tmp/xdg

# best CMD... runs it up to $runs times; sets $bwall and $brss of the fastest.
best() {
	bwall="" brss=""
	for ((i = 0; i < runs; i++)); do
		timed "$@"
		((rc == 0)) || { bwall=n/a brss=n/a; return; }
		if [[ -z $bwall ]] || awk -v a="$wall" -v b="$bwall" 'BEGIN { exit !(a < b) }'; then
			bwall=$wall brss=$rss
		fi
	done
}

printf '%-9s %12s %10s %12s %12s %10s\n' actions analyse_s peakMB us/action query_s peakMB
checks=()
for size in "${sizes[@]}"; do
	IFS=, read -r D F S <<<"$size"
	n=$((D * F * S + D * S + S + 1))
	ws=$tmp/ws-$n
	python3 "$gen" "$ws" "$D" "$F" "$S" >/dev/null
	# Only the hepbuild files matter here; the peers' files are large at 1M.
	rm -rf "$ws/bazel" "$ws/Makefile" "$ws/build.ninja" "$ws/Snakefile"
	runs=3
	((n > 500000)) && runs=1
	cd "$ws" || exit 1
	best "$hb" build --nobuild //:all
	aw=$bwall am=$brss
	best "$hb" query 'deps(//:all)'
	qw=$bwall qm=$brss
	per=$(awk -v w="$aw" -v n="$n" 'BEGIN { if (w == "n/a") print "n/a"; else printf "%.1f", w * 1e6 / n }')
	printf '%-9s %12s %10s %12s %12s %10s\n' "$n" "$aw" "$am" "$per" "$qw" "$qm"
	case $n in
	20165)
		checks+=("20k loading+analysis $aw s (target <= 0.5) $(verdict "$aw" '<=' 0.5), $am MB (target <= 250) $(verdict "$am" '<=' 250)")
		checks+=("20k query deps(//:all) $qw s (target <= 1) $(verdict "$qw" '<=' 1)") ;;
	1001005)
		checks+=("1M loading+analysis $aw s (target <= 30) $(verdict "$aw" '<=' 30), $am MB (target <= 4096) $(verdict "$am" '<=' 4096)") ;;
	esac
	cd "$tmp" && rm -rf "$ws"
done
echo
printf '%s\n' "${checks[@]}"
