# Shared helpers of the bench/ scripts; sourced, not run.
# shellcheck shell=bash

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# gen is the peer workload generator: $HEPBUILD_GEN, or ../shared/bench/gen.py
# beside the repository.
gen=${HEPBUILD_GEN:-$repo/../shared/bench/gen.py}
if [[ ! -f $gen ]]; then
	echo "workload generator not found at $gen (set HEPBUILD_GEN)" >&2
	exit 2
fi

# need installs the Debian packages whose command is missing, when root.
# Arguments are command:package pairs.
need() {
	local missing=()
	for pair in "$@"; do
		command -v "${pair%%:*}" >/dev/null 2>&1 || [[ -x ${pair%%:*} ]] || missing+=("${pair#*:}")
	done
	((${#missing[@]})) || return 0
	if [[ $(id -u) != 0 ]]; then
		echo "missing ${missing[*]}: install them (apt-get install -y ${missing[*]})" >&2
		return 0
	fi
	echo "installing ${missing[*]}" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 ||
		{ apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1; } ||
		echo "could not install ${missing[*]}" >&2
}

# build_hepbuild compiles the repository's hepbuild into $1, unless
# $HEPBUILD names a binary to measure instead.
build_hepbuild() {
	if [[ -n ${HEPBUILD:-} ]]; then
		cp "$HEPBUILD" "$1"
		return
	fi
	(cd "$repo" && go build -o "$1" ./cmd/hepbuild)
}

# timed CMD... runs the command with output discarded and sets $wall
# (seconds, 3 decimals), $rss (peak resident set, MB), $cpu (user + system
# seconds of the command and every process it waited for) and $rc.
timed() {
	local t0 t1 out
	out=$(mktemp)
	t0=$EPOCHREALTIME
	/usr/bin/time -o "$out" -f '%M %U %S' "$@" >/dev/null 2>"$out.err"
	rc=$?
	t1=$EPOCHREALTIME
	wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
	rss=$(awk 'END { printf "%.0f", $1 / 1024 }' "$out")
	cpu=$(awk 'END { printf "%.2f", $2 + $3 }' "$out")
	if ((rc != 0)); then
		echo "FAILED ($rc): $*" >&2
		tail -5 "$out.err" >&2
	fi
	# keep_err=FILE keeps the command's standard error.
	[[ -n ${keep_err:-} ]] && cp "$out.err" "$keep_err"
	rm -f "$out" "$out.err"
	return 0
}

# ratio A B prints A/B with two decimals, or n/a.
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || a == "n/a" || b == "n/a" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'
}

# verdict VALUE OP LIMIT prints PASS or FAIL (OP is <= < >=).
verdict() {
	awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN {
		if (v == "n/a" || v == "") { print "n/a"; exit }
		ok = (op == "<=" && v + 0 <= l + 0) || (op == "<" && v + 0 < l + 0) || (op == ">=" && v + 0 >= l + 0)
		print (ok ? "PASS" : "FAIL")
	}'
}
