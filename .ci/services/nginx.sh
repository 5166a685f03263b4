#!/usr/bin/env bash
# Installs nginx with the WebDAV extension module (Debian nginx and
# libnginx-mod-http-dav-ext), which internal/testserver.StartNginxDAV runs
# as a Bazel HTTP cache. Idempotent; needs root for apt-get.
set -euo pipefail
if command -v nginx >/dev/null && [[ -f /usr/lib/nginx/modules/ngx_http_dav_ext_module.so ]]; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q nginx libnginx-mod-http-dav-ext >/dev/null ||
  { apt-get update -q >/dev/null && apt-get install -y -q nginx libnginx-mod-http-dav-ext >/dev/null; }
