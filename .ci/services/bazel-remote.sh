#!/usr/bin/env bash
# Builds bazel-remote v1.3.3 (a REAPI cache over gRPC and the HTTP cache
# protocol) into $HEPBUILD_TEST_BIN (default ~/.cache/hepbuild-test/bin),
# once. `go install ...@v1.3.3` cannot be used: the module proxy refuses the
# version list it asks for, so this builds from the module's own files.
set -euo pipefail
bin=${HEPBUILD_TEST_BIN:-$HOME/.cache/hepbuild-test/bin}
[[ -x $bin/bazel-remote ]] && exit 0
mkdir -p "$bin"
export GOFLAGS=-mod=mod GOSUMDB=off
src=$(go mod download -json github.com/buchgr/bazel-remote@v1.3.3 | sed -n 's/.*"Dir": "\(.*\)",/\1/p')
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r "$src/." "$tmp"
chmod -R u+w "$tmp"
(cd "$tmp" && go build -o "$bin/bazel-remote.tmp" .)
mv "$bin/bazel-remote.tmp" "$bin/bazel-remote"
