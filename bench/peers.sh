#!/usr/bin/env bash
# Times hepbuild side by side with make, ninja, snakemake and bazel on the
# shared peer workload (gen.py), in one run on this machine, and checks the
# targets of the build issue: full build at -j2 within 1.5x ninja, null build
# within 3x ninja and under 0.3 s, rebuild from the cache after cleaning the
# output tree within 15% of the full build's time, peak memory under 300 MB, and
# snakemake at least 20x slower on the small size. hepbuild's outputs must be
# byte-identical to ninja's.
#
# Usage: bench/peers.sh [D,F,S ...]   (default: 10,50,4 and 40,125,4:
#        2,045 and 20,165 actions). HEPBUILD=path measures a given binary
#        instead of building the repository's; HEPBUILD_GEN=path the generator.
# Installs what it needs (ninja-build, snakemake, bazel-bootstrap, time) when
# run as root. Snakemake runs only on sizes up to 5,000 actions (it needs
# minutes beyond); bazel is skipped when it fails.
set -uo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

sizes=("$@")
((${#sizes[@]})) || sizes=(10,50,4 40,125,4)

need /usr/bin/time:time ninja:ninja-build make:make snakemake:snakemake bazel:bazel-bootstrap

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
row() { lines+=("$(printf '%-8s %-10s %9s %9s %9s %9s' "$@")"); }

for size in "${sizes[@]}"; do
	IFS=, read -r D F S <<<"$size"
	n=$((D * F * S + D * S + S + 1))
	src=$tmp/src-$n
	python3 "$gen" "$src" "$D" "$F" "$S" >/dev/null
	declare -A full=() null=() cached=() mem=()
	for tool in make ninja snakemake bazel hepbuild hb-linux; do
		full[$tool]=n/a null[$tool]=n/a cached[$tool]=n/a mem[$tool]=n/a
		case $tool in
		hepbuild | hb-linux) ;;
		snakemake) ((n <= 5000)) || continue ;&
		*) command -v "$tool" >/dev/null || { echo "$tool: not installed, skipped" >&2; continue; } ;;
		esac
		w=$tmp/$tool-$n
		cp -r "$src" "$w"
		echo "size $n: $tool" >&2
		case $tool in
		make)
			cd "$w" && timed make -j2 -s && full[$tool]=$wall mem[$tool]=$rss
			timed make -j2 -s && null[$tool]=$wall ;;
		ninja)
			cd "$w" && timed ninja -j2 && full[$tool]=$wall mem[$tool]=$rss
			timed ninja -j2 && null[$tool]=$wall ;;
		snakemake)
			cd "$w" && timed snakemake -j2 -q --nolock && full[$tool]=$wall mem[$tool]=$rss
			timed snakemake -j2 -q --nolock && null[$tool]=$wall ;;
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
				timed "${bz[@]}" build -j 2 //:all && null[$tool]=$wall
			fi
			"${bz[@]}" shutdown >/dev/null 2>&1 ;;
		hb-linux)
			# The default strategy: every action in its own namespaces.
			export XDG_CACHE_HOME=$tmp/xdg-linux-$n
			cd "$w" || continue
			timed "$hb" //:all -j2 --progress=none --sandbox=linux
			((rc == 0)) && full[$tool]=$wall mem[$tool]=$rss
			timed "$hb" //:all -j2 --progress=none --sandbox=linux
			((rc == 0)) && null[$tool]=$wall
			unset XDG_CACHE_HOME ;;
		hepbuild)
			# Like the peers, no isolation (--sandbox=none): the issue's
			# targets compare the tools, not the sandboxes (bench/sandbox.sh
			# measures those).
			export XDG_CACHE_HOME=$tmp/xdg-$n
			cd "$w" || continue
			timed "$hb" //:all -j2 --progress=none --sandbox=none
			((rc == 0)) && full[$tool]=$wall
			peak=$rss
			timed "$hb" //:all -j2 --progress=none --sandbox=none
			((rc == 0)) && null[$tool]=$wall
			((rss > peak)) && peak=$rss
			if "$hb" clean --help >/dev/null 2>&1; then
				"$hb" clean >/dev/null 2>&1
			else
				rm -rf "$(readlink hepbuild-out)"
			fi
			timed "$hb" //:all -j2 --progress=none --sandbox=none
			((rc == 0)) && cached[$tool]=$wall
			((rss > peak)) && peak=$rss
			mem[$tool]=$peak
			unset XDG_CACHE_HOME
			if diff -r "$tmp/ninja-$n/out" "$w/hepbuild-out/out" >"$tmp/diff" 2>&1; then
				identical="outputs identical to ninja's: OK"
			else
				identical="outputs differ from ninja's: $(head -c 400 "$tmp/diff")"
			fi ;;
		esac
		cd "$tmp" || exit 1
	done
	for tool in make ninja snakemake bazel hepbuild hb-linux; do
		row "$n" "$tool" "${full[$tool]}" "${null[$tool]}" "${cached[$tool]}" "${mem[$tool]}"
	done
	checks+=("$n actions: $identical")
	if ((n < 5000)); then
		# The issue's targets at this size: Snakemake only; the rest are for 20k.
		r=$(ratio "${full[hepbuild]}" "${full[ninja]}")
		checks+=("$n actions: hepbuild full / ninja full        = $r  (no target at this size)")
		if [[ ${full[snakemake]} != n/a ]]; then
			r=$(ratio "${full[snakemake]}" "${full[hepbuild]}")
			checks+=("$n actions: snakemake full / hepbuild full   = $r  (target >= 20) $(verdict "$r" '>=' 20)")
		fi
		rm -rf "$tmp/ninja-$n" "$tmp"/*-"$n" "$tmp/xdg-$n" "$tmp/xdg-linux-$n"
		continue
	fi
	r=$(ratio "${full[hepbuild]}" "${full[ninja]}")
	checks+=("$n actions: hepbuild full / ninja full        = $r  (target <= 1.5)  $(verdict "$r" '<=' 1.5)")
	r=$(ratio "${null[hepbuild]}" "${null[ninja]}")
	checks+=("$n actions: hepbuild null / ninja null        = $r  (target <= 3)    $(verdict "$r" '<=' 3)")
	checks+=("$n actions: hepbuild null                     = ${null[hepbuild]} s  (target < 0.3 s) $(verdict "${null[hepbuild]}" '<' 0.3)")
	r=$(ratio "${cached[hepbuild]}" "${full[hepbuild]}")
	checks+=("$n actions: rebuild from cache / full build  = $r  (target <= 0.15) $(verdict "$r" '<=' 0.15)")
	checks+=("$n actions: hepbuild peak memory              = ${mem[hepbuild]} MB (target < 300) $(verdict "${mem[hepbuild]}" '<' 300)")
	if [[ ${full[snakemake]} != n/a ]]; then
		r=$(ratio "${full[snakemake]}" "${full[hepbuild]}")
		checks+=("$n actions: snakemake full / hepbuild full   = $r  (target >= 20) $(verdict "$r" '>=' 20)")
	fi
	rm -rf "$tmp/ninja-$n" "$tmp"/*-"$n" "$tmp/xdg-$n" "$tmp/xdg-linux-$n"
done

echo
echo "$(nproc) cores; wall seconds; peak RSS in MB (bazel: its server); cache rebuild = after removing the output tree"
echo "hepbuild runs with --sandbox=none like the peers; hb-linux is hepbuild's default, the linux sandbox"
printf '%-8s %-10s %9s %9s %9s %9s\n' actions tool full null cache peakMB
printf '%s\n' "${lines[@]}"
echo
printf '%s\n' "${checks[@]}"
