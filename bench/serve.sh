#!/usr/bin/env bash
# hepbuild serve under load, in one run on this machine:
#
#  - the peer workload (default 40,125,4: 20,165 actions) built in full, -j2,
#    three times from a cold cache: alone; streaming its events to a
#    `hepbuild serve` on the same machine (--server --no-coordinate); and
#    also claiming every action there (--server). Goal: at most 5% slower;
#  - how fast the pages of that build render in headless Chromium (build page
#    goal: under 1 s);
#  - a finished build of 1,000,000 actions reported through the API, and its
#    pages (graph goal: under 2 s).
#
# Usage: bench/serve.sh [D,F,S] [MILLION]   (MILLION=0 leaves the big build out)
# HEPBUILD=path measures a given binary instead of building the repository's.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

IFS=, read -r D F S <<<"${1:-40,125,4}"
big=${2:-1000000}
need /usr/bin/time:time /usr/bin/chromium:chromium

tmp=$(mktemp -d /tmp/hepbuild-bench-serve.XXXXXX)
serve_pid=
cleanup() {
	[[ -n $serve_pid ]] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null
	chmod -R u+w "$tmp" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
hb=$tmp/hepbuild
build_hepbuild "$hb"
(cd "$repo" && go build -o "$tmp/servepages" ./bench/servepages)

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$hb" serve --addr "127.0.0.1:$port" --db "$tmp/history.db" >"$tmp/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/api/v1/ping" >/dev/null 2>&1 && break; sleep 0.1; done
url=http://127.0.0.1:$port

n=$((D * F * S + D * S + S + 1))
python3 "$gen" "$tmp/ws-alone" "$D" "$F" "$S" >/dev/null
cp -a "$tmp/ws-alone" "$tmp/ws-served"
cp -a "$tmp/ws-alone" "$tmp/ws-reported"

# cpu PID prints the CPU seconds (user + system) the process used so far.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }

# build NAME [FLAGS...]: a full build from a cold cache of its own; sets
# $wall, $bcpu (the build's CPU, its commands included) and $scpu (the
# server's CPU meanwhile).
build() {
	local ws=$tmp/ws-$1 s0 out
	shift
	out=$(mktemp)
	s0=$(cpu "$serve_pid")
	XDG_CACHE_HOME=$tmp/cache-$(basename "$ws") /usr/bin/time -o "$out" -f '%e %U %S' \
		"$hb" -C "$ws" build -j2 --progress=none "$@" //:all >/dev/null 2>"$out.err" ||
		{ echo "FAILED: build $*" >&2; tail -5 "$out.err" >&2; }
	read -r wall u sy <"$out"
	bcpu=$(awk -v a="$u" -v b="$sy" 'BEGIN { printf "%.1f", a + b }')
	scpu=$(awk -v a="$s0" -v b="$(cpu "$serve_pid")" 'BEGIN { printf "%.1f", b - a }')
	rm -f "$out" "$out.err"
}
row() { printf '%-40s %9s %7s %12s %12s\n' "$@"; }
build alone
alone=$wall r1=$(row "alone" "${wall}s" "" "${bcpu}s" "${scpu}s")
build reported --server "$url" --no-coordinate
reported=$wall r2=$(row "reporting (--server --no-coordinate)" "${wall}s" "$(ratio "$wall" "$alone")x" "${bcpu}s" "${scpu}s")
build served --server "$url"
served=$wall r3=$(row "reporting, coordinating (--server)" "${wall}s" "$(ratio "$wall" "$alone")x" "${bcpu}s" "${scpu}s")
id=$(curl -sf "$url/api/v1/builds" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')

echo
echo "== $n actions, full build, -j2, cold cache"
row "" "wall" "ratio" "build CPU" "server CPU"
printf '%s\n' "$r1" "$r2" "$r3"
r=$(ratio "$served" "$alone")
echo "ratio $r (goal <= 1.05): $(verdict "$r" "<=" 1.05)"
echo
echo "== pages of that build"
"$tmp/servepages" -server "$url" -build "$id"
echo "server peak memory so far: $(awk '/VmHWM/ { printf "%.0f MB", $2 / 1024 }' "/proc/$serve_pid/status")"
if ((big > 0)); then
	echo
	echo "== a $big-action build"
	"$tmp/servepages" -server "$url" -synthetic "$big"
fi
echo
echo "server peak memory: $(awk '/VmHWM/ { printf "%.0f MB", $2 / 1024 }' "/proc/$serve_pid/status")"
