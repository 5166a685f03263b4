#!/usr/bin/env bash
# Builds Buildbarn's bb_storage (a REAPI CAS + action cache server speaking
# the current API version) into $HEPBUILD_TEST_BIN (default
# ~/.cache/hepbuild-test/bin), once. Only the storage daemon: the cache
# client needs no scheduler or worker.
#
# bb-storage is built through the bb-remote-execution version it is pinned
# by, because that is the only version whose module files are served; the
# module proxy refuses its .info, so `go install pkg@version` fails while a
# wrapper go.mod and `go build` work. Buildbarn patches genproto's
# bytestream so that RegisterByteStreamServer takes a grpc.ServiceRegistrar;
# this does the same with a local replace.
set -euo pipefail
bin=${HEPBUILD_TEST_BIN:-$HOME/.cache/hepbuild-test/bin}
[[ -x $bin/bb_storage ]] && exit 0
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
go build -o "$bin/bb_storage.tmp" github.com/buildbarn/bb-storage/cmd/bb_storage
mv "$bin/bb_storage.tmp" "$bin/bb_storage"
