#!/usr/bin/env bash
# Batch execution on a single-node Slurm cluster (bench/slurm-cluster.sh),
# in one run:
#  1. the peer workload (../shared/bench/gen.py D F S, default 10 50 4:
#     2,045 actions) built locally and with --executor=slurm: wall times, the
#     sbatch and squeue calls (counted by wrappers on PATH; goal: submit calls
#     <= actions/100, one squeue per poll tick), hepbuild's own cpu per action;
#  2. 10,000 independent actions in flight as jobs held pending (--begin),
#     sampling hepbuild's memory and cpu while it polls: both must stay flat.
# One machine: the cluster's 16 slots share its cores with hepbuild, so the
# wall-time ratio measures overhead, not what a real cluster would gain.
#
# Usage: bench/batch.sh [D F S]   (root; installs Slurm through .ci/services/slurm.sh)
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

D=${1:-10} F=${2:-50} S=${3:-4}
APJ=${APJ:-25}
tmp=$(mktemp -d)
cleanup() {
	bash "$repo/bench/slurm-cluster.sh" stop "$tmp/slurm" || true
	rm -rf "$tmp"
}
trap cleanup EXIT

eval "$(bash "$repo/bench/slurm-cluster.sh" start "$tmp/slurm")"
build_hepbuild "$tmp/hepbuild"
python3 "$gen" "$tmp/ws" "$D" "$F" "$S" >/dev/null

# Wrappers count every call of the Slurm tools hepbuild makes.
mkdir -p "$tmp/wrap"
for tool in sbatch squeue sacct scancel; do
	real=$(command -v "$tool")
	printf '#!/bin/sh\necho %s >> %s/calls\nexec %s "$@"\n' "$tool" "$tmp" "$real" >"$tmp/wrap/$tool"
	chmod +x "$tmp/wrap/$tool"
done
export PATH=$tmp/wrap:$PATH
calls() { grep -cx "$1" "$tmp/calls" 2>/dev/null || true; }

run() {
	local name=$1
	shift
	/usr/bin/time -f '%e %U %S %M' -o "$tmp/$name.time" \
		"$tmp/hepbuild" build //:all -C "$tmp/ws" --sandbox=none --progress=none -j2 \
		--disk-cache "$tmp/$name.cache" --output-base "$tmp/$name.out" "$@" >/dev/null 2>"$tmp/$name.log" ||
		{ echo "$name failed:"; tail -20 "$tmp/$name.log"; exit 1; }
	cat "$tmp/$name.time"
}

read -r lwall luser lsys lrss < <(run local)
: >"$tmp/calls"
read -r swall suser ssys srss < <(run slurm --executor=slurm --actions-per-job="$APJ" --batch-window=1s --batch-poll=2s)
n=$(grep -o 'hepbuild: [0-9]* actions' "$tmp/local.log" | grep -o '[0-9]*' | head -1)
stats=$(grep 'hepbuild: slurm:' "$tmp/slurm.log" || true)
queries=$(sed -n 's/.* \([0-9]*\) status queries.*/\1/p' <<<"$stats")
jobs=$(sed -n 's/.* in \([0-9]*\) jobs.*/\1/p' <<<"$stats")
sb=$(calls sbatch) sq=$(calls squeue) sa=$(calls sacct)

echo "workload: gen.py $D $F $S, $n actions; --actions-per-job=$APJ"
printf '%-46s %8.2f s  [hepbuild cpu %.2f s, max rss %d MB]\n' "local build (-j2, --sandbox=none)" "$lwall" "$(bc -l <<<"$luser + $lsys")" $((lrss / 1024))
printf '%-46s %8.2f s  (%.2fx)  [hepbuild cpu %.2f s, max rss %d MB]\n' "--executor=slurm (16 slots on the same cores)" "$swall" "$(bc -l <<<"$swall / $lwall")" "$(bc -l <<<"$suser + $ssys")" $((srss / 1024))
printf '%-46s %8d    (goal <= %d = actions/100; %s jobs)\n' "sbatch calls" "$sb" $((n / 100)) "$jobs"
printf '%-46s %8d    (hepbuild counted %s poll ticks: one call per tick)\n' "squeue calls" "$sq" "$queries"
printf '%-46s %8d\n' "sacct calls (accounting off here)" "$sa"
printf '%-46s %8.2f ms\n' "hepbuild cpu per action, slurm" "$(bc -l <<<"($suser + $ssys) * 1000 / $n")"
printf '%-46s %8.2f ms\n' "wall overhead per action vs local" "$(bc -l <<<"($swall - $lwall) * 1000 / $n")"

# 2. 10,000 actions in flight, held pending by --begin: what does following
# them cost hepbuild?
N=${N:-10000}
mkdir -p "$tmp/many"
touch "$tmp/many/WORKSPACE.hep"
python3 - "$tmp/many/BUILD" "$N" <<'EOF'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        f.write(f'task(name = "t{i}", outs = ["t{i}.txt"], cmd = "echo {i} > $@")\n')
EOF
: >"$tmp/calls"
"$tmp/hepbuild" build //:all -C "$tmp/many" --sandbox=none --progress=none --disk-cache "$tmp/many.cache" \
	--output-base "$tmp/many.out" --executor=slurm --actions-per-job=10 --batch-jobs=2000 --batch-poll=5s \
	--batch-option=slurm:--begin=now+3600 --events "$tmp/many.events" >/dev/null 2>"$tmp/many.log" &
pid=$!
for _ in $(seq 600); do
	[[ $(grep -c '"job_submitted"' "$tmp/many.events" 2>/dev/null || true) -ge $N ]] && break
	sleep 0.5
done
echo "$N actions submitted as $(calls sbatch) sbatch calls; sampling hepbuild while they wait (poll every 5 s):"
printf '  %6s %10s %12s %8s\n' "t (s)" "rss (MB)" "cpu (s)" "squeue"
clk=$(getconf CLK_TCK)
for t in 0 10 20 30 40 50 60; do
	read -r ut st < <(awk '{print $14, $15}' "/proc/$pid/stat")
	rss=$(awk '/VmRSS/{print $2}' "/proc/$pid/status")
	printf '  %6d %10d %12.2f %8d\n' "$t" $((rss / 1024)) "$(bc -l <<<"($ut + $st) / $clk")" "$(calls squeue)"
	[[ $t -lt 60 ]] && sleep 10
done
kill -INT "$pid"
wait "$pid" || true
left=$(squeue -h -r | wc -l)
echo "after Ctrl-C: $(calls scancel) scancel calls, $left jobs left in the queue"
