#!/usr/bin/env bash
# Installs a real XRootD server and its client tools (Debian xrootd-server,
# xrootd-client) for the root:// remote cache tests, once. Runs as root;
# does nothing when xrootd and xrdfs are already on PATH. The tests start
# their own servers (internal/testserver.StartXRootD).
set -euo pipefail
command -v xrootd >/dev/null && command -v xrdfs >/dev/null && exit 0
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q xrootd-server xrootd-client >/dev/null || {
  apt-get update -q >/dev/null
  apt-get install -y -q xrootd-server xrootd-client >/dev/null
}
