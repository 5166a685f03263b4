#!/usr/bin/env bash
# Builds Buildbarn into $HEPBUILD_TEST_BIN (default ~/.cache/hepbuild-test/bin),
# once: bb_storage (a REAPI CAS + action cache server speaking the current
# API version, and the Execution frontend), and bb_scheduler, bb_worker and
# bb_runner for the remote executor's tests. All four come from one pinned
# bb-remote-execution version and one `go build`, so they agree on protos.
#
# bb-storage is built through the bb-remote-execution version it is pinned
# by, because that is the only version whose module files are served; the
# module proxy refuses its .info, so `go install pkg@version` fails while a
# wrapper go.mod and `go build` work. Buildbarn patches genproto's
# bytestream so that RegisterByteStreamServer takes a grpc.ServiceRegistrar;
# this does the same with a local replace.
set -euo pipefail
bin=${HEPBUILD_TEST_BIN:-$HOME/.cache/hepbuild-test/bin}
tools=(bb_storage bb_scheduler bb_worker bb_runner)
missing=0
for t in "${tools[@]}"; do [[ -x $bin/$t ]] || missing=1; done
((missing)) || exit 0
mkdir -p "$bin"
BBRE=v0.0.0-20260814085403-13313e6ab05b
BS=google.golang.org/genproto/googleapis/bytestream
export GOFLAGS=-mod=mod GOSUMDB=off
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
printf 'module services/bbbuild\n\ngo 1.26.6\n\nrequire github.com/buildbarn/bb-remote-execution %s\n' "$BBRE" > go.mod
cp -r "$(go list -f '{{.Module.Dir}}' "$BS")" bytestream
chmod -R u+w bytestream
sed -i 's/^func RegisterByteStreamServer(s \*grpc.Server,/func RegisterByteStreamServer(s grpc.ServiceRegistrar,/' bytestream/bytestream.pb.go
echo "replace $BS => ./bytestream" >> go.mod
# Build into a scratch directory and move each binary into place, so an
# interrupted build never leaves a half-written binary that looks done.
mkdir out
go build -o out/ \
  github.com/buildbarn/bb-storage/cmd/bb_storage \
  github.com/buildbarn/bb-remote-execution/cmd/bb_scheduler \
  github.com/buildbarn/bb-remote-execution/cmd/bb_worker \
  github.com/buildbarn/bb-remote-execution/cmd/bb_runner
for t in "${tools[@]}"; do
  mv "out/$t" "$bin/$t.tmp"
  mv "$bin/$t.tmp" "$bin/$t"
done
