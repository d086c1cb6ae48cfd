#!/usr/bin/env bash
# The main job: set this machine up, start a local skiff lab (3 control-plane
# replicas), run the demo workload, and show the cluster healing from the loss
# of its Raft leader. As root on Debian/Ubuntu:
#     bash deploy/lab-demo.sh
# The lab keeps running afterwards; `.venv/bin/skiff lab down` removes it.
# Settings: SKIFF_LAB_DIR (default /var/lib/skiff-lab), SKIFF_API_PORT (7100),
# SKIFF_RAFT_PORT (7200), SKIFF_CONFIG (default ~/.skiff/config).
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/dev-setup.sh
SKIFF=.venv/bin/skiff
LAB_DIR=${SKIFF_LAB_DIR:-/var/lib/skiff-lab}
API_PORT=${SKIFF_API_PORT:-7100}
RAFT_PORT=${SKIFF_RAFT_PORT:-7200}
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ skiff %s\n' "$*"; "$SKIFF" "$@"; }

say "starting the lab (control plane only: nodes arrive with the node agent)"
"$SKIFF" lab down --lab-dir "$LAB_DIR" >/dev/null 2>&1 || true
"$SKIFF" lab up --nodes 0 --lab-dir "$LAB_DIR" --api-port "$API_PORT" --raft-port "$RAFT_PORT"

say "the demo workload"
run apply -f examples/demo.yaml
run get deploy,svc,cm,secret -n demo
run cluster status

say "chaos: kill -9 the Raft leader while writing"
run chaos kill-controlplane leader --lab-dir "$LAB_DIR"
for i in 1 2 3 4 5; do
  printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: after-kill-%s, namespace: demo}\ndata: {n: "%s"}\n' "$i" "$i" \
    | "$SKIFF" apply -f -
done
run cluster status
killed=$("$SKIFF" cluster status | awk '$7 == "no" {print $1; exit}')
if [ -n "$killed" ]; then
  run chaos start-controlplane "$killed" --lab-dir "$LAB_DIR"
fi
for _ in $(seq 1 50); do
  if ! "$SKIFF" cluster status | grep -q ' no '; then break; fi
  sleep 0.2
done
run cluster status
run get cm -n demo

say "done: the lab is still running ($SKIFF lab status --lab-dir $LAB_DIR; $SKIFF lab down --lab-dir $LAB_DIR)"
