#!/usr/bin/env bash
# Regenerates golden/NN.txt from Bazel: for each expression of queries.txt,
# `bazel query --noimplicit_deps --output=label EXPR` in ws/, sorted. Bazel
# reads BUILD.bazel and hepbuild BUILD.hep; the two differ only in genrule →
# task, which this script checks, and BUILD file labels are renamed from
# BUILD.bazel to BUILD.hep so the golden sets are hepbuild's answers.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ws=$here/ws
command -v bazel >/dev/null || { echo "regen.sh: bazel is not installed" >&2; exit 1; }

for f in $(cd "$ws" && find . -name BUILD.bazel); do
	if ! diff <(sed 's/^genrule(/task(/' "$ws/$f") "$ws/${f%.bazel}.hep" >/dev/null; then
		echo "regen.sh: $f and ${f%.bazel}.hep differ beyond genrule → task" >&2
		exit 1
	fi
done

# Bazel wants a writable home and output root; keep both out of the workspace.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bazel_q() {
	(cd "$ws" && HOME=$tmp/home bazel --output_user_root="$tmp/root" --batch \
		query --noimplicit_deps --output=label "$1" 2>"$tmp/stderr") || {
		cat "$tmp/stderr" >&2
		return 1
	}
}

rm -rf "$here/golden"
mkdir -p "$here/golden"
n=0
while IFS= read -r expr; do
	case "$expr" in '' | '#'*) continue ;; esac
	n=$((n + 1))
	out=$(printf '%s/golden/%02d.txt' "$here" "$n")
	{
		printf '# %s\n' "$expr"
		bazel_q "$expr" | sed 's/:BUILD\.bazel$/:BUILD.hep/' | LC_ALL=C sort
	} >"$out"
done <"$here/queries.txt"
echo "regen.sh: wrote $n golden files"
