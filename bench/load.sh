#!/usr/bin/env bash
# Times loading plus analysis of the peer workload (gen.py) at 2k, 20k, 200k
# and 1M actions, with peak memory, to show that both grow linearly with the
# number of actions. Loading plus analysis is `hepbuild build --nobuild //:all`,
# which loads and analyses every rule of the package and runs nothing;
# loading alone is `hepbuild query 'deps(//:all)'`. Each is the best of three
# runs (one at 1M).
#
# Targets (issue 2): 20k within 0.5 s and 250 MB; query deps(//:all) on 20k
# within 1 s. Targets (issue 15, scale): 1M within 15 s and 2 GB; query
# deps(//:all) on 1M within 10 s; with --build-200k, a full build of 200k
# actions (gen.py 100 500 4, --sandbox=none) within 1 GB of hepbuild's own
# peak memory. That build runs 200,000 commands: it takes long on a small
# machine.
#
# Usage: bench/load.sh [--no-1m] [--build-200k]   HEPBUILD=path measures a
#        given binary; HEPBUILD_GEN=path the generator.
set -uo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

sizes=(10,50,4 40,125,4 100,500,4 250,1000,4)
build200k=false
for arg in "$@"; do
	case $arg in
	--no-1m) sizes=("${sizes[@]:0:3}") ;;
	--build-200k) build200k=true ;;
	*)
		echo "usage: bench/load.sh [--no-1m] [--build-200k]" >&2
		exit 2
		;;
	esac
done

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
		checks+=("1M loading+analysis $aw s (target <= 15) $(verdict "$aw" '<=' 15), $am MB (target <= 2048) $(verdict "$am" '<=' 2048)")
		checks+=("1M query deps(//:all) $qw s (target <= 10) $(verdict "$qw" '<=' 10)") ;;
	esac
	if [[ $n == 200405 ]] && $build200k; then
		# %M is the largest peak of hepbuild and its children, not
		# their sum: the commands are small, so it is hepbuild's own.
		timed "$hb" build --sandbox=none //:all
		bw=$wall bm=$rss
		((rc == 0)) || bw=n/a bm=n/a
		printf '%-9s %12s %10s   (full build, --sandbox=none)\n' "$n" "$bw" "$bm"
		checks+=("200k full build $bw s, hepbuild peak $bm MB (target <= 1024) $(verdict "$bm" '<=' 1024)")
	fi
	cd "$tmp" && rm -rf "$ws"
done
echo
printf '%s\n' "${checks[@]}"
