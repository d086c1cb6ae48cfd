#!/usr/bin/env bash
# Prepare this Debian/Ubuntu machine (as root) to run skiff from this checkout:
# the system packages the lab and the tests use, and a virtualenv in .venv with
# skiff installed (editable) and the test tools. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
need=()
# docker.io: the per-node engines; busybox-static + gcc/libc6-dev: the lab's images
# (busybox, and the static pause binary); util-linux: nsenter, unshare; vagrant, shellcheck,
# systemd (systemd-analyze): CI's checks of the Vagrantfile, the scripts and the units
# (tests/unit/test_deploy_checks.py; none of them needs systemd as PID 1 or a VM provider).
for pkg in iproute2 iptables procps util-linux python3-venv docker.io busybox-static gcc libc6-dev \
           vagrant shellcheck systemd; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ "${SKIFF_WITH_BENCH:-0}" = 1 ]; then
  for pkg in etcd-server etcd-client; do dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg"); done
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "dev-setup: installing ${need[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q -e '.[test]'
echo "dev-setup: ready (.venv/bin/skiff, .venv/bin/skiff-controlplane)"
