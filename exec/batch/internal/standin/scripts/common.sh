# common.sh is sourced by every stand-in command. It records the call,
# applies scripted failures and holds the job bookkeeping shared by the
# three systems. State lives in $STANDIN_STATE:
#   calls.log         one line per invocation: the tool, then its arguments, tab-separated
#   fail/TOOL         TOOL prints this to stderr and exits 1 (or fail/TOOL.code)
#   garbage/TOOL      TOOL prints this to stdout and exits 0
#   plan/N            trouble for the N-th job submitted (1-based): hold REASON | memory | walltime | vanish
#   paused            while it exists, queued jobs do not start
#   jobs/KEY/         one folder per job: status, exit, reason, pid, seq, array, the job's outputs
# A job's status is one of queued running done held memory walltime removed gone;
# each tool prints it in its system's documented format.
set -u
: "${STANDIN_STATE:?STANDIN_STATE is not set: install the stand-ins with standin.Install}"
S=$STANDIN_STATE
TOOL=${0##*/}

record_call() {
	local line=$TOOL a
	for a in "$@"; do
		a=${a//$'\n'/\\n}
		line+=$'\t'${a//$'\t'/\\t}
	done
	printf '%s\n' "$line" >>"$S/calls.log"
}
record_call "$@"
if [ -f "$S/fail/$TOOL" ]; then
	cat "$S/fail/$TOOL" >&2
	exit "$(cat "$S/fail/$TOOL.code" 2>/dev/null || echo 1)"
fi
if [ -f "$S/garbage/$TOOL" ]; then
	cat "$S/garbage/$TOOL"
	exit 0
fi

# with_lock runs a command while holding the state folder's lock.
with_lock() {
	(
		flock 9
		"$@"
	) 9>>"$S/lock"
}

# next_number prints the next number of counter $1, starting at $2.
next_number() {
	local f="$S/counter.$1" n
	n=$2
	[ -f "$f" ] && read -r n <"$f"
	echo $((n + 1)) >"$f"
	echo "$n"
}

# set_file writes a job file atomically.
set_file() { printf '%s\n' "$2" >"$1.tmp" && mv -f "$1.tmp" "$1"; }

# job_get prints the first line of a job file, or $3 when absent; it
# starts no process, as each one costs milliseconds here.
job_get() {
	local line
	if [ -f "$S/jobs/$1/$2" ]; then
		IFS= read -r line <"$S/jobs/$1/$2"
		printf '%s' "$line"
	else
		printf '%s' "${3-}"
	fi
}

# launch KEY ARRAY OUT ERR DIR ARGV... registers a queued job and starts
# it in its own session, like a batch node would, with the job's standard
# output and error in OUT and ERR, in folder DIR.
launch() {
	local key=$1 array=$2 out=$3 err=$4 dir=$5
	shift 5
	local j="$S/jobs/$key" seq
	mkdir -p "$j"
	seq=$(with_lock next_number jobs 1)
	printf '%s\n' "$seq" >"$j/seq"
	printf '%s\n' "$array" >"$j/array"
	set_file "$j/status" queued
	setsid bash "$BIN/standin-run-job" "$j" "$out" "$err" "$dir" "$@" </dev/null >/dev/null 2>&1 &
}

# end_job KEY STATUS [REASON] ends a job that has not ended: it claims the
# job's end (mkdir is atomic, so a job that finishes at the same moment
# keeps its own end), writes the status and kills the job's session.
end_job() {
	local j="$S/jobs/$1" pid
	mkdir "$j/end" 2>/dev/null || return 1
	[ $# -ge 3 ] && set_file "$j/reason" "$3"
	set_file "$j/status" "$2"
	pid=$(cat "$j/pid" 2>/dev/null || true)
	if [ -n "$pid" ]; then kill -TERM -- "-$pid" 2>/dev/null || true; fi
	return 0
}

# json_string prints $1 as a JSON string.
json_string() {
	local s=$1
	s=${s//\\/\\\\}
	s=${s//\"/\\\"}
	s=${s//$'\n'/\\n}
	s=${s//$'\t'/\\t}
	s=${s//$'\r'/\\r}
	printf '"%s"' "$s"
}
