#!/usr/bin/env bash
# Times hepbuild side by side with ninja on the shared peer workload (gen.py),
# in one run on this machine, and checks the targets of the speed issue:
#
#   - full build at -j2 within 1.3x ninja (its usual `sh -c`) with
#     --sandbox=none and within 1.5x with the default linux sandbox;
#   - null build under 0.3 s and within 3x ninja's, the first one right after
#     the full build included;
#   - hepbuild's own CPU per action at most 1 ms: all the CPU it used less
#     what its commands used (its summary line says), per action;
#   - rebuild from the cache after `hepbuild clean` within 0.05x the full build;
#   - outputs byte-identical to ninja's.
#
# ninja runs each workload twice: as people use it (`sh -c CMD`), and running
# each command the way a task runs it (`/bin/bash -c 'set -euo pipefail;
# CMD'`), which shows what bash itself costs on this machine. With --all-peers
# make, snakemake (up to 5,000 actions) and bazel run too. --scale adds
# bench/load.sh (1,000,000 actions: loading and analysis within 15 s and 2 GB,
# query within 10 s) and the peak memory of a 200,000-action build (under
# 1 GB); --no-hash leaves out bench/hash.sh (hashing a 2 GB file at >= 90% of
# sha256sum's speed).
#
# Usage: bench/peers.sh [--all-peers] [--scale] [--no-hash] [D,F,S ...]
#        (default sizes 10,50,4 and 40,125,4: 2,045 and 20,165 actions).
#        HEPBUILD=path measures a given binary instead of building the
#        repository's; HEPBUILD_GEN=path the generator.
set -uo pipefail
# shellcheck source=lib.sh
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

all_peers=0 scale=0 hash=1 sizes=()
for a in "$@"; do
	case $a in
	--all-peers) all_peers=1 ;;
	--scale) scale=1 ;;
	--no-hash) hash=0 ;;
	-*) echo "unknown option $a" >&2; exit 2 ;;
	*) sizes+=("$a") ;;
	esac
done
((${#sizes[@]})) || sizes=(10,50,4 40,125,4)

tools=(ninja ninja-bash hepbuild hb-linux)
# bubblewrap: hb-linux is the default linux sandbox.
need /usr/bin/time:time ninja:ninja-build bwrap:bubblewrap
if ((all_peers)); then
	tools=(make ninja ninja-bash snakemake bazel hepbuild hb-linux)
	need make:make snakemake:snakemake bazel:bazel-bootstrap
fi

tmp=$(mktemp -d /tmp/hepbuild-peers.XXXXXX)
cleanup() {
	if command -v bazel >/dev/null && [[ -d $tmp/bazel-root ]]; then
		for w in "$tmp"/*/bazel; do
			[[ -d $w ]] && (cd "$w" && bazel --output_user_root="$tmp/bazel-root" shutdown >/dev/null 2>&1)
		done
	fi
	chmod -R u+w "$tmp" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
hb=$tmp/hepbuild
build_hepbuild "$hb" || exit 1

lines=()
checks=()
row() { lines+=("$(printf '%-8s %-11s %8s %8s %8s %8s %8s %7s' "$@")"); }
check() { checks+=("$(printf '%-8s %-52s = %8s  (target %s %s)  %s' "$1" "$2" "$3" "$4" "$5" "$(verdict "$3" "$4" "$5")")"); }

# hepbuild_runs SANDBOX: full build, the null build right after it, a
# second null build, then the rebuild from the cache after clean.
hepbuild_runs() {
	local tool=$1 sb=$2
	export XDG_CACHE_HOME=$tmp/xdg-$tool-$n
	keep_err=$tmp/full.err timed "$hb" //:all -j2 --progress=none --sandbox="$sb"
	((rc == 0)) && full[$tool]=$wall cpu[$tool]=$cpu
	# The summary says what the commands used: the rest is hepbuild's.
	own[$tool]=$(sed -n "s/.*commands' CPU \([0-9hms.]*\).*/\1/p" "$tmp/full.err" | awk -v t="$cpu" -v n="$n" '
		# 12.3s, 2m05s or 1h05m, as the summary writes durations
		/h/ { split($0, a, /[hm]/); c = a[1] * 3600 + a[2] * 60 }
		/m[0-9]/ { split($0, a, /[ms]/); c = a[1] * 60 + a[2] }
		/^[0-9.]+s$/ { c = $0 + 0 }
		END { if (NR) printf "%.2f", (t - c) * 1000 / n }')
	[[ -n ${own[$tool]} ]] || own[$tool]=n/a
	local peak=$rss
	timed "$hb" //:all -j2 --progress=none --sandbox="$sb"
	((rc == 0)) && null1[$tool]=$wall
	timed "$hb" //:all -j2 --progress=none --sandbox="$sb"
	((rc == 0)) && null2[$tool]=$wall
	"$hb" clean >/dev/null 2>&1
	timed "$hb" //:all -j2 --progress=none --sandbox="$sb"
	((rc == 0)) && cached[$tool]=$wall
	((rss > peak)) && peak=$rss
	mem[$tool]=$peak
	unset XDG_CACHE_HOME
	if diff -r "$tmp/ninja-$n/out" "$w/hepbuild-out/out" >"$tmp/diff" 2>&1; then
		identical[$tool]="outputs identical to ninja's: OK"
	else
		identical[$tool]="outputs differ from ninja's: $(head -c 400 "$tmp/diff")"
	fi
}

for size in "${sizes[@]}"; do
	IFS=, read -r D F S <<<"$size"
	n=$((D * F * S + D * S + S + 1))
	src=$tmp/src-$n
	python3 "$gen" "$src" "$D" "$F" "$S" >/dev/null
	declare -A full=() null1=() null2=() cached=() mem=() cpu=() own=() identical=()
	for tool in "${tools[@]}"; do
		full[$tool]=n/a null1[$tool]=n/a null2[$tool]=n/a cached[$tool]=n/a mem[$tool]=n/a cpu[$tool]=n/a
		case $tool in
		hepbuild | hb-linux | ninja-bash) ;;
		snakemake) ((n <= 5000)) || continue ;&
		*) command -v "$tool" >/dev/null || { echo "$tool: not installed, skipped" >&2; continue; } ;;
		esac
		w=$tmp/$tool-$n
		cp -r "$src" "$w"
		echo "size $n: $tool" >&2
		cd "$w" || exit 1
		case $tool in
		make)
			timed make -j2 -s && full[$tool]=$wall mem[$tool]=$rss cpu[$tool]=$cpu
			timed make -j2 -s && null1[$tool]=$wall ;;
		ninja)
			timed ninja -j2 && full[$tool]=$wall mem[$tool]=$rss cpu[$tool]=$cpu
			timed ninja -j2 && null1[$tool]=$wall ;;
		ninja-bash)
			# Each command the way a task runs it.
			sed -i 's|^\(  command = \)\(.*\)$|\1/bin/bash -c "set -euo pipefail; \2"|' build.ninja
			timed ninja -j2 && full[$tool]=$wall mem[$tool]=$rss cpu[$tool]=$cpu
			timed ninja -j2 && null1[$tool]=$wall
			diff -r "$tmp/ninja-$n/out" out >/dev/null || echo "ninja-bash: outputs differ from ninja's" >&2 ;;
		snakemake)
			timed snakemake -j2 -q --nolock && full[$tool]=$wall mem[$tool]=$rss cpu[$tool]=$cpu
			timed snakemake -j2 -q --nolock && null1[$tool]=$wall ;;
		bazel)
			cd "$w/bazel" || continue
			bz=(bazel --output_user_root="$tmp/bazel-root")
			timed timeout 1200 "${bz[@]}" build -j 2 //:all
			if ((rc != 0)); then
				echo "bazel failed, skipped" >&2
			else
				full[$tool]=$wall mem[$tool]=$rss
				# The work happens in the server: take its peak, not the client's.
				pid=$("${bz[@]}" info server_pid 2>/dev/null)
				hwm=$(awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$pid/status" 2>/dev/null)
				[[ -n $hwm ]] && ((hwm > rss)) && mem[$tool]=$hwm
				timed "${bz[@]}" build -j 2 //:all && null1[$tool]=$wall
			fi
			"${bz[@]}" shutdown >/dev/null 2>&1 ;;
		hepbuild)
			# Like the peers, no isolation.
			hepbuild_runs hepbuild none ;;
		hb-linux)
			# The default: every action in its own namespaces.
			hepbuild_runs hb-linux linux ;;
		esac
		cd "$tmp" || exit 1
	done
	for tool in "${tools[@]}"; do
		row "$n" "$tool" "${full[$tool]}" "${cpu[$tool]}" "${null1[$tool]}" "${null2[$tool]}" "${cached[$tool]}" "${mem[$tool]}"
	done
	for tool in hepbuild hb-linux; do
		sb=none limit=1.3
		[[ $tool == hb-linux ]] && sb=linux limit=1.5
		check "$n" "full, --sandbox=$sb / ninja full" "$(ratio "${full[$tool]}" "${full[ninja]}")" '<=' $limit
		check "$n" "full, --sandbox=$sb / ninja running bash" "$(ratio "${full[$tool]}" "${full[ninja-bash]}")" '<=' 1
		check "$n" "null right after full, --sandbox=$sb (s)" "${null1[$tool]}" '<' 0.3
		check "$n" "null right after full, --sandbox=$sb / ninja null" "$(ratio "${null1[$tool]}" "${null1[ninja]}")" '<=' 3
		check "$n" "second null, --sandbox=$sb (s)" "${null2[$tool]}" '<' 0.3
		check "$n" "rebuild from cache after clean / full, $sb" "$(ratio "${cached[$tool]}" "${full[$tool]}")" '<=' 0.05
		checks+=("$n      --sandbox=$sb: ${identical[$tool]}")
	done
	# hepbuild's own CPU: all it used less what its commands used (its
	# summary line says), per action.
	check "$n" "hepbuild's own CPU per action, none (ms)" "${own[hepbuild]}" '<=' 1
	check "$n" "hepbuild's own CPU per action, linux (ms)" "${own[hb-linux]}" '<=' 1
	bash_share=$(awk -v b="${cpu[ninja-bash]}" -v n="${cpu[ninja]}" 'BEGIN { if (b == "n/a" || n == "n/a" || b == 0) print "n/a"; else printf "%.0f%%", (b - n) * 100 / b }')
	checks+=("$n      bash's share of ninja-bash's CPU (what tasks would cost run in bash): $bash_share")
	rm -rf "${tmp:?}"/*-"$n" "$tmp"/xdg-*-"$n"
done

echo
echo "$(nproc) cores; wall and CPU (user + system, commands included) in seconds; peak RSS in MB (bazel: its server)"
echo "hepbuild: --sandbox=none like the peers; hb-linux: the default linux sandbox."
echo "null1 is the null build right after the full build, null2 the next; cache = rebuild after hepbuild clean"
echo "ninja-bash runs each command as a task would: /bin/bash -c 'set -euo pipefail; CMD'"
printf '%-8s %-11s %8s %8s %8s %8s %8s %7s\n' actions tool full cpu null1 null2 cache peakMB
printf '%s\n' "${lines[@]}"
echo
printf '%s\n' "${checks[@]}"

if ((hash)); then
	echo
	bash "$here/hash.sh" 2048 | tail -3
fi
if ((scale)); then
	echo
	HEPBUILD=$hb bash "$here/load.sh" --build-200k
fi
