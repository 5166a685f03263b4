#!/usr/bin/env bash
# Remote data: downloading one large file (default 1 GiB) from a real
# XRootD server on loopback with xrdcp, beside hepbuild's XRootD storage
# client (storage/xrootd: Open and io.Copy into a file, as remote data
# fills the cache), in one run, alternating, best of N each. Goal:
# hepbuild at least 80% of xrdcp's throughput.
#
# Usage: bench/remote-data-download.sh [MiB] [rounds]
#        (xrootd and xrdcp from .ci/services/xrootd.sh)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)

MB=${1:-1024} N=${2:-3}
bash "$repo/.ci/services/xrootd.sh"
tmp=$(mktemp -d)
chmod 755 "$tmp"
pid=
cleanup() {
	if [[ -n $pid ]]; then
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$tmp/data" "$tmp/admin" "$tmp/run" "$tmp/out"
cat >"$tmp/xrd.cfg" <<CFG
all.export /
oss.localroot $tmp/data
xrd.port $port
all.adminpath $tmp/admin
all.pidpath $tmp/run
xrootd.chksum adler32
xrd.allow host localhost
CFG
head -c "$((MB << 20))" /dev/urandom >"$tmp/data/big"
asroot=()
if [[ $(id -u) == 0 ]]; then
	chown -R xrootd: "$tmp" # it writes its log there
	asroot=(-R xrootd)
fi
xrootd -c "$tmp/xrd.cfg" -l "$tmp/xrd.log" "${asroot[@]}" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "xrootd did not start:" >&2; cat "$tmp/xrd.log" >&2; exit 1; }
(cd "$repo" && go build -o "$tmp/xrddownload" ./bench/xrddownload)

url=root://127.0.0.1:$port//big
bytes=$((MB << 20))
# secs CMD...: wall seconds of one run, output file removed after.
secs() {
	local t0 t1
	t0=$EPOCHREALTIME
	"$@" >/dev/null 2>"$tmp/err" || { echo "FAILED: $*" >&2; cat "$tmp/err" >&2; exit 1; }
	t1=$EPOCHREALTIME
	rm -f "$tmp/out/f"
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}
best() { tr ' ' '\n' | sort -g | head -1; }
# The file is in the page cache after the first read; warm it for both.
cat "$tmp/data/big" >/dev/null
mbps() { awk -v b="$bytes" -v s="$1" 'BEGIN { printf "%.0f", b / s / 1e6 }'; }
echo "file: $MB MiB on XRootD $(xrootd -v 2>&1 | head -1) over loopback; best of $N, alternating"
# Into a file (what filling the cache does) and into /dev/null (the
# transfer alone, without the disk).
for dest in "$tmp/out/f" /dev/null; do
	x=() h=()
	for _ in $(seq "$N"); do
		x+=("$(secs xrdcp -f -s "$url" "$dest")")
		h+=("$(secs "$tmp/xrddownload" "$url" "$dest")")
	done
	xb=$(echo "${x[*]}" | best) hb=$(echo "${h[*]}" | best)
	[[ $dest == /dev/null ]] || xfile=$xb
	[[ $dest == /dev/null ]] && to=/dev/null || to="a file"
	printf '%-44s %6s MB/s   (runs: %s s)\n' "xrdcp, to $to" "$(mbps "$xb")" "${x[*]}"
	printf '%-44s %6s MB/s   (runs: %s s)\n' "hepbuild storage/xrootd Open, to $to" "$(mbps "$hb")" "${h[*]}"
	ratio=$(awk -v a="$xb" -v b="$hb" 'BEGIN { printf "%.2f", a / b }')
	verdict=$(awk -v r="$ratio" 'BEGIN { print (r >= 0.8 ? "PASS" : "FAIL") }')
	echo "  hepbuild / xrdcp throughput, to $to: $ratio (goal >= 0.80: $verdict)"
done

# The whole path a build takes: a remote_files target whose fetch action
# downloads the file into the output tree, verifies its adler32, hashes it
# (SHA-256) and stores it in an empty disk cache. hepbuild's own wall time
# includes loading, validation (one stat; the checksum is asked on the
# first round only) and writing the result.
(cd "$repo" && go build -o "$tmp/hepbuild" ./cmd/hepbuild)
mkdir -p "$tmp/ws"
touch "$tmp/ws/WORKSPACE.hep"
echo "remote_files(name = \"big\", urls = [\"$url\"])" >"$tmp/ws/BUILD"
c=()
for i in $(seq "$N"); do
	rm -rf "$tmp/cache" "$tmp/ob"
	c+=("$(secs "$tmp/hepbuild" -C "$tmp/ws" //:big --progress=none --disk-cache "$tmp/cache" --output-base "$tmp/ob" --sandbox=none)")
done
cb=$(echo "${c[*]}" | best)
printf '%-44s %6s MB/s   (runs: %s s)\n' "hepbuild build: download into the cache" "$(mbps "$cb")" "${c[*]}"
# xrdcp verifying the copy as hepbuild does (adler32 against the server's).
v=()
for _ in $(seq "$N"); do
	v+=("$(secs xrdcp -f -s --cksum adler32:source "$url" "$tmp/out/f")")
done
vb=$(echo "${v[*]}" | best)
printf '%-44s %6s MB/s   (runs: %s s)\n' "xrdcp --cksum adler32:source, to a file" "$(mbps "$vb")" "${v[*]}"
# Both land on the disk: compare with xrdcp to a file.
ratio=$(awk -v a="$xfile" -v b="$cb" 'BEGIN { printf "%.2f", a / b }')
verdict=$(awk -v r="$ratio" 'BEGIN { print (r >= 0.8 ? "PASS" : "FAIL") }')
echo "  hepbuild build / xrdcp to a file: $ratio (goal >= 0.80: $verdict)"
echo "  hepbuild build / xrdcp --cksum to a file: $(awk -v a="$vb" -v b="$cb" 'BEGIN { printf "%.2f", a / b }')"
