#!/usr/bin/env bash
# Remote data: deciding "up to date" over N remote files (default 10,000) on
# a loopback XRootD server (a real xrootd with adler32 checksums), in one run
# beside what a script that asks storage one file at a time pays.
#
#  - fetch: hepbuild fetch, which asks every file's checksum (first lock);
#  - first build: validates, downloads every file once, runs one task per
#    100 files;
#  - up-to-date build: the same build again, nothing changed: the check is
#    one listing per folder, no checksum, no download;
#  - one file changed: the check asks one checksum, one download, one task;
#  - remote_files: the same files named one by one in 100 folders of 100;
#  - the naive peer: `xrdfs stat` then `xrdfs query checksum`, one process
#    per call, over a sample of files, extrapolated to N.
# Each line prints wall time and the queries hepbuild sent (its INFO line).
# Goal: the up-to-date check of 10,000 files under 5 s.
#
# Usage: bench/remote-data.sh [N]   (as root: xrootd runs as its own user)
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

N=${1:-10000}
bash "$repo/.ci/services/xrootd.sh"
tmp=$(mktemp -d /tmp/hepbuild-bench-remote-data.XXXXXX)
chmod 755 "$tmp"
xrd_pid=
cleanup() {
	[[ -n $xrd_pid ]] && kill "$xrd_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

build_hepbuild "$tmp/hepbuild"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$tmp/xrd/data/store/flat" "$tmp/xrd/admin" "$tmp/xrd/run"
printf 'all.export /\noss.localroot %s\nxrd.port %s\nall.adminpath %s\nall.pidpath %s\nxrootd.chksum adler32\nxrd.allow host localhost\n' \
	"$tmp/xrd/data" "$port" "$tmp/xrd/admin" "$tmp/xrd/run" >"$tmp/xrd/xrd.cfg"
# N small files in one folder, and the same N again in 100 folders.
python3 - "$tmp/xrd/data/store" "$N" <<'PY'
import os, sys
base, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    body = ("event %d\n" % i).encode()
    open(os.path.join(base, "flat", "f%05d.root" % i), "wb").write(body)
    d = os.path.join(base, "nested", "d%03d" % (i % 100))
    os.makedirs(d, exist_ok=True)
    open(os.path.join(d, "f%05d.root" % i), "wb").write(body)
PY
chown -R xrootd "$tmp/xrd"
xrootd -c "$tmp/xrd/xrd.cfg" -l "$tmp/xrd/xrd.log" -b -R xrootd -s "$tmp/xrd/xrootd.pid" >/dev/null
for _ in $(seq 50); do xrdfs "root://127.0.0.1:$port" ls / >/dev/null 2>&1 && break; sleep 0.2; done
xrd_pid=$(cat "$tmp/xrd/xrootd.pid")
url=root://127.0.0.1:$port

# Two workspaces: a remote_glob of the flat folder read by one task; and
# remote_files of the nested folders, 100 files a target, one task each.
python3 - "$tmp" "$url" "$N" <<'PY'
import os, sys
tmp, url, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
for ws in ("glob", "files"):
    os.makedirs(os.path.join(tmp, ws), exist_ok=True)
    open(os.path.join(tmp, ws, "WORKSPACE.hep"), "w").close()
with open(os.path.join(tmp, "glob", "BUILD"), "w") as b:
    b.write('remote_glob(name = "ds", url = "%s//store/flat/*.root")\n' % url)
    # $(SRCS) would be 10,000 paths, past the length of one argument.
    b.write('task(name = "count", srcs = [":ds"], outs = ["count.txt"], cmd = "cat $(RULEDIR)/ds/*.root | wc -l > $@")\n')
with open(os.path.join(tmp, "files", "BUILD"), "w") as b:
    for c in range((n + 99) // 100):
        urls = ['"%s//store/nested/d%03d/f%05d.root"' % (url, i % 100, i) for i in range(c * 100, min(n, c * 100 + 100))]
        b.write('remote_files(name = "c%d", urls = [%s])\n' % (c, ", ".join(urls)))
        b.write('task(name = "t%d", srcs = [":c%d"], outs = ["t%d.txt"], cmd = "cat $(SRCS) | wc -l > $@")\n' % (c, c, c))
PY

hb=$tmp/hepbuild
export XDG_CACHE_HOME=$tmp/xdg
queries() { grep -o 'remote files checked: .*' "$1" | head -1; }
step() { # step NAME WS ARGS...
	local name=$1 ws=$2
	shift 2
	local t0=$EPOCHREALTIME
	(cd "$tmp/$ws" && "$hb" "$@" >"$tmp/out" 2>"$tmp/err") || { echo "FAILED: $name" >&2; tail -5 "$tmp/err" >&2; }
	local wall
	wall=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
	printf '%-44s %7ss  %s%s\n' "$name" "$wall" "$(queries "$tmp/err")" "$(grep -o '[0-9]* queries to storage.*' "$tmp/out" || true)"
}

echo "== $N remote files on a loopback XRootD server ($(nproc) cores)"
step "remote_glob: hepbuild fetch (all checksums)" glob fetch
step "remote_glob: first build (downloads)" glob //:all --progress=none
step "remote_glob: up-to-date build" glob //:all --progress=none
step "remote_glob: up-to-date build, --offline" glob //:all --offline --progress=none
echo "changed" >"$tmp/xrd/data/store/flat/f00007.root"
step "remote_glob: one file changed" glob //:all --progress=none
step "remote_files (100 folders): first build" files //:all --progress=none
step "remote_files (100 folders): up-to-date build" files //:all --progress=none

sample=200
t0=$EPOCHREALTIME
for i in $(seq 0 $((sample - 1))); do
	f=$(printf '/store/flat/f%05d.root' "$i")
	xrdfs "$url" stat "$f" >/dev/null
	xrdfs "$url" query checksum "$f" >/dev/null
done
per=$(awk -v a="$t0" -v b="$EPOCHREALTIME" -v s=$sample 'BEGIN { printf "%.4f", (b - a) / s }')
printf '%-44s %7ss  (%s s per file over %d files, x %d)\n' "peer: xrdfs stat + checksum per file" \
	"$(awk -v p="$per" -v n="$N" 'BEGIN { printf "%.1f", p * n }')" "$per" "$sample" "$N"
