#!/usr/bin/env bash
# Vagrant's shell provisioner for one machine (see the Vagrantfile): runs the installer
# from the synced checkout with the machine's role and private address.
#   vagrant-provision.sh ROLE NAME ADDRESS CONTROLPLANES JOIN_DIR POD_NETWORK
set -euo pipefail
role=$1 name=$2 address=$3 controlplanes=$4 join_dir=$5 network=$6
args=(--role "$role" --name "$name" --address "$address" --controlplanes "$controlplanes"
      --join-dir "$join_dir")
if [ "$role" = controlplane ]; then
  args+=(--network "$network")
fi
exec bash /vagrant/deploy/install.sh "${args[@]}"
