#!/usr/bin/env bash
# Installs a real ARC CE (NorduGrid A-REX 6 with the fork LRMS) and its
# client tools for the ARC batch backend's tests, and prepares the
# credentials they need, once. Starting A-REX is the test helper's job
# (internal/testserver.StartARC): it is a global service (/etc/arc.conf,
# port 443), so each test run starts and stops its own. Runs as root.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

packages=(nordugrid-arc-arex nordugrid-arc-client nordugrid-arc-plugins-needed nordugrid-arc-arcctl)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get install -y -q "${missing[@]}" >/dev/null ||
    { apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; }
fi

# The package's postinst makes a test CA and a host certificate for this
# host name; both expire (90 and 30 days), so renew them for ten years when they
# would lapse within a week, rather than let a long-lived machine fail later.
week=604800
ca=$(ls /etc/grid-security/certificates/ARC-TestCA-*.pem 2>/dev/null | grep -v -- -key.pem | head -n1 || true)
if [ -z "$ca" ] || ! openssl x509 -in "$ca" -noout -checkend $week >/dev/null; then
  arcctl test-ca init --validity 3650 --force >/dev/null
  rm -f /etc/grid-security/testCA-hostcert.pem ~/.globus/usercert.pem
fi
if ! openssl x509 -in /etc/grid-security/testCA-hostcert.pem -noout -checkend $week >/dev/null 2>&1; then
  arcctl test-ca hostcert --validity 3650 --force >/dev/null
fi

# The user certificate the tests make proxies from, in ~/.globus where
# arcproxy looks; --install-user also lists its subject in
# /etc/grid-security/testCA.allowed-subjects, which the default arc.conf
# authorises.
if ! openssl x509 -in ~/.globus/usercert.pem -noout -checkend $week >/dev/null 2>&1; then
  (cd /tmp && arcctl test-ca usercert --install-user root --validity 3650 --force >/dev/null)
fi

# A-REX's web service generates 4096-bit Diffie-Hellman parameters in the
# background when the control folder has none, which takes minutes on two
# cores and keeps a core busy; DSA-style parameters take a fraction of a
# second and pass its `openssl dhparam -check`.
dh=/var/spool/arc/jobstatus/dhparam.pem
if ! openssl dhparam -in "$dh" -check -noout >/dev/null 2>&1; then
  mkdir -p "$(dirname "$dh")"
  (umask 0177 && openssl dhparam -dsaparam -out "$dh" 2048 2>/dev/null)
fi
