#!/usr/bin/env bash
# Remote cache: restoring the peer workload (../shared/bench/gen.py D F S,
# default 40 125 4: 20,165 actions) into a fresh checkout with an empty disk
# cache from bazel-remote over gRPC, beside restoring it from the disk cache,
# in one run; and a full build with and without --remote-cache. Prints the
# remote calls per restored action. Goals: remote restore at most 2x the
# disk restore (1.2x with --remote-download-outputs=toplevel), a full build
# with --remote-cache at most 10% slower than without.
#
# Usage: bench/remote.sh [D F S]   (bazel-remote from .ci/services/bazel-remote.sh)
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

D=${1:-40} F=${2:-125} S=${3:-4}
tmp=$(mktemp -d)
br_pid=
cleanup() {
	[[ -n $br_pid ]] && kill "$br_pid" 2>/dev/null && wait "$br_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

bash "$repo/.ci/services/bazel-remote.sh"
bin=${HEPBUILD_TEST_BIN:-$HOME/.cache/hepbuild-test/bin}
build_hepbuild "$tmp/hepbuild"
python3 "$gen" "$tmp/ws" "$D" "$F" "$S" >/dev/null

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
hp=$(port) gp=$(port)
"$bin/bazel-remote" --dir "$tmp/br" --max_size 10 --host 127.0.0.1 --port "$hp" --grpc_port "$gp" >"$tmp/br.log" 2>&1 &
br_pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$hp/status" >/dev/null && break; sleep 0.1; done
remote=grpc://127.0.0.1:$gp

servercpu() { awk '{print ($14+$15)/100}' "/proc/$br_pid/stat"; }
# run NAME ARGS...: one build of //:all in the workspace; prints its wall
# time, and keeps in $tmp/NAME.cpu hepbuild's cpu time (user+sys) and the
# server's, since on one machine the server's work competes with the build.
run() {
	local name=$1
	shift
	local s0 s1
	s0=$(servercpu)
	/usr/bin/time -f '%e %U %S' -o "$tmp/$name.time" \
		"$tmp/hepbuild" build //:all -C "$tmp/ws" --sandbox=none --progress=none -j2 "$@" >/dev/null 2>"$tmp/$name.log" ||
		{ echo "$name failed:"; tail -20 "$tmp/$name.log"; exit 1; }
	s1=$(servercpu)
	read -r wall user sys <"$tmp/$name.time"
	echo "$(echo "$user + $sys" | bc -l) $(echo "$s1 - $s0" | bc -l)" >"$tmp/$name.cpu"
	echo "$wall"
}
cpus() { read -r h s <"$tmp/$1.cpu"; printf '  [hepbuild cpu %.1f s, bazel-remote cpu %.1f s]' "$h" "$s"; }

full_local=$(run full-local --disk-cache "$tmp/d1" --output-base "$tmp/o1")
full_remote=$(run full-remote --disk-cache "$tmp/d2" --output-base "$tmp/o2" --remote-cache "$remote")
restore_disk=$(run restore-disk --disk-cache "$tmp/d2" --output-base "$tmp/o3")
restore_remote=$(run restore-remote --disk-cache "$tmp/d4" --output-base "$tmp/o4" --remote-cache "$remote")
top=
if "$tmp/hepbuild" build --help | grep -q -- --remote-download-outputs; then
	top=$(run restore-toplevel --disk-cache "$tmp/d5" --output-base "$tmp/o5" --remote-cache "$remote" --remote-download-outputs=toplevel)
fi

n=$(grep -o 'hepbuild: [0-9]* actions' "$tmp/restore-remote.log" | grep -o '[0-9]*' || true)
calls=$(grep -o '[0-9]* calls' "$tmp/restore-remote.log" | grep -o '[0-9]*' || true)
echo "workload: gen.py $D $F $S${n:+, $n actions}"
printf '%-44s %8.2f s%s\n' "full build, disk cache only" "$full_local" "$(cpus full-local)"
printf '%-44s %8.2f s  (%.2fx; goal <= 1.10x)%s\n' "full build, --remote-cache (uploads waited)" "$full_remote" "$(echo "$full_remote / $full_local" | bc -l)" "$(cpus full-remote)"
printf '%-44s %8.2f s%s\n' "restore from the disk cache" "$restore_disk" "$(cpus restore-disk)"
printf '%-44s %8.2f s  (%.2fx; goal <= 2x)%s\n' "restore from bazel-remote (gRPC), empty disk" "$restore_remote" "$(echo "$restore_remote / $restore_disk" | bc -l)" "$(cpus restore-remote)"
if [[ -n $top ]]; then
	printf '%-44s %8.2f s  (%.2fx; goal <= 1.2x)%s\n' "  same, --remote-download-outputs=toplevel" "$top" "$(echo "$top / $restore_disk" | bc -l)" "$(cpus restore-toplevel)"
fi
echo "(one machine: the server's cpu competes with the build's; a group's server runs elsewhere)"
if [[ -n $n && -n $calls && $n -gt 0 ]]; then
	printf 'remote calls per restored action: %.2f (%s calls for %s actions)\n' "$(echo "$calls / $n" | bc -l)" "$calls" "$n"
fi
grep -h 'INFO: remote cache' "$tmp/restore-remote.log" || true
