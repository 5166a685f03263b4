#!/usr/bin/env bash
# Installs Slurm (slurm-wlm: slurmctld, slurmd, the client tools) and munge
# for the batch tests, once. The tests start a single-node cluster of their
# own (internal/testserver StartSlurm: its own slurm.conf through
# SLURM_CONF, its own state folder, stopped by pid); nothing is started here.
set -euo pipefail
if command -v sbatch >/dev/null && command -v slurmctld >/dev/null && command -v munged >/dev/null; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "slurm.sh: Slurm is not installed and this is not root: install slurm-wlm and munge" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
