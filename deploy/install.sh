#!/usr/bin/env bash
# Install skiff on this Debian/Ubuntu machine (as root) for one role, or bring an existing
# install up to date. Safe to run again: with the same inputs nothing is rewritten and
# nothing restarts; with a changed input exactly that changes (see skiff/install/).
#
#   deploy/install.sh --role controlplane --name cp1 --address 192.168.56.11 \
#       --controlplanes cp1=192.168.56.11,cp2=192.168.56.12,cp3=192.168.56.13 [--join-dir DIR]
#   deploy/install.sh --role agent --name node1 --address 192.168.56.21 \
#       --controlplanes cp1=192.168.56.11,cp2=192.168.56.12,cp3=192.168.56.13 [--join-dir DIR]
#
# What it does:
#   1. the system packages (apt, only those missing): python3-venv, iproute2, iptables, kmod,
#      procps, util-linux, systemd-timesyncd; docker.io on agents (docker.service enabled);
#   2. skiff itself into a virtualenv at /opt/skiff/venv, from this checkout (reinstalled only
#      when the source's digest changes; a new digest restarts the daemons: an upgrade);
#   3. python -m skiff.install with every other option: configs in /etc/skiff, state in
#      /var/lib/skiff, kernel modules + sysctls, the systemd units, /etc/hosts, time sync.
#
# Options of this script (the rest go to python -m skiff.install, see --help there):
#   --no-packages     skip step 1 (the packages are there already)
#   --python PATH     skip step 2: run skiff with this interpreter (skiff importable, e.g. a
#                     dev checkout's .venv with --source-dir) instead of /opt/skiff/venv
#   --source-dir DIR  the checkout to install from (default: the one holding this script);
#                     with --python it is also put on the units' PYTHONPATH
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(dirname "$here")
prefix=/opt/skiff
packages=1
python=""
role=""
pass=()
while [ $# -gt 0 ]; do
  case "$1" in
    --no-packages) packages=0; shift ;;
    --python) python=$2; shift 2 ;;
    --source-dir) src=$2; shift 2 ;;
    --role) role=$2; pass+=("$1" "$2"); shift 2 ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) pass+=("$1"); shift ;;
  esac
done
if [ "$(id -u)" != 0 ]; then
  echo "install.sh: run as root" >&2; exit 1
fi
case "$role" in
  controlplane|agent) ;;
  *) echo "install.sh: --role controlplane|agent is required" >&2; exit 2 ;;
esac

have_systemd() { [ -d /run/systemd/system ]; }

# 1. packages
if [ "$packages" = 1 ]; then
  export DEBIAN_FRONTEND=noninteractive
  need=()
  wanted=(python3-venv iproute2 iptables kmod procps util-linux)
  if have_systemd; then wanted+=(systemd-timesyncd); fi
  if [ "$role" = agent ]; then wanted+=(docker.io); fi
  for pkg in "${wanted[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
  if [ ${#need[@]} -gt 0 ]; then
    echo "install.sh: installing ${need[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
  if [ "$role" = agent ] && have_systemd; then
    systemctl is-enabled --quiet docker.service || systemctl enable docker.service
    systemctl is-active --quiet docker.service || systemctl start docker.service
  fi
fi

# 2. skiff itself; its digest covers what the daemons run.
version=$(cd "$src" && find skiff controlplane nodeagent proto pyproject.toml -type f \
            \( -name '*.py' -o -name '*.proto' -o -name '*.toml' -o -name '*.c' \) -print0 \
          | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
if [ -z "$python" ]; then
  python=$prefix/venv/bin/python
  if [ ! -x "$python" ]; then
    python3 -m venv "$prefix/venv"
  fi
  if [ "$(cat "$prefix/version" 2>/dev/null || true)" != "$version" ]; then
    echo "install.sh: installing skiff $version into $prefix/venv"
    # Build from a private copy: the synced folder is shared by machines installing at once.
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    tar -C "$src" --exclude=.git --exclude=.venv --exclude=.vagrant --exclude=.vagrant-skiff \
        --exclude=build --exclude='*.egg-info' --exclude=__pycache__ -cf - . | tar -C "$tmp" -xf -
    "$python" -m pip install -q --upgrade pip >/dev/null
    "$python" -m pip install -q "$tmp"
    rm -rf "$tmp"   # the trap does not run across the exec below
    trap - EXIT
    echo "$version" > "$prefix/version"
  fi
  if [ "$(readlink /usr/local/bin/skiff || true)" != "$prefix/venv/bin/skiff" ]; then
    ln -sfn "$prefix/venv/bin/skiff" /usr/local/bin/skiff
  fi
else
  pass+=(--source-dir "$src")
  export PYTHONPATH="$src"
fi

# 3. configs, units, kernel settings, services
cd /
exec "$python" -m skiff.install --python "$python" --code-version "$version" "${pass[@]}"
