#!/usr/bin/env bash
# The main job: set this machine up, start a local skiff lab (3 control-plane replicas,
# 3 nodes with their own Docker engines), run the demo workload, and break things on
# purpose: power off a node, kill the Raft leader, and watch the cluster heal.
# As root on Debian/Ubuntu:
#     bash deploy/lab-demo.sh
# The lab keeps running afterwards; `.venv/bin/skiff lab down` removes it.
# Settings: SKIFF_LAB_DIR (default /var/lib/skiff-lab), SKIFF_CONFIG (~/.skiff/config),
# SKIFF_LAB_PREFIX (skiff), SKIFF_LAB_SUBNET (10.200.0.0/24).
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/dev-setup.sh
SKIFF=.venv/bin/skiff
LAB_DIR=${SKIFF_LAB_DIR:-/var/lib/skiff-lab}
LAB=(--lab-dir "$LAB_DIR")
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ skiff %s\n' "$*"; "$SKIFF" "$@"; }
# wait_for DESCRIPTION SECONDS COMMAND...: poll until COMMAND succeeds.
wait_for() {
  local what=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then echo "timed out waiting for $what" >&2; return 1; fi
    sleep 0.5
  done
}
web_ready() { [ "$("$SKIFF" get po -n demo -l app=web | grep -c ' 1/1 .* Running ')" -eq 3 ]; }
web_running_off() { web_ready && ! "$SKIFF" get po -n demo -l app=web -o wide | grep -q " $1 *$"; }

say "starting the lab: 3 control-plane replicas + 3 nodes on this host"
"$SKIFF" lab down "${LAB[@]}" >/dev/null 2>&1 || true
"$SKIFF" lab up "${LAB[@]}" --nodes 3 --prefix "${SKIFF_LAB_PREFIX:-skiff}" \
  --subnet "${SKIFF_LAB_SUBNET:-10.200.0.0/24}"
run get nodes

say "the demo workload: a 3-replica web Deployment with its config, secret and service"
run apply -f examples/demo.yaml
wait_for "3 web pods ready" 120 web_ready
run get pods -n demo -o wide
pod=$("$SKIFF" get po -n demo -l app=web -o name | head -1 | cut -d/ -f2)
run exec -n demo "$pod" -- sh -c 'echo "GREETING=$GREETING"; printf "GET / HTTP/1.0\r\n\r\n" | nc 127.0.0.1 8080 | tail -1'
run describe pod -n demo "$pod" | tail -12

say "the Service: one name and one ClusterIP in front of the three pods (iptables on every node)"
run get svc,endpoints -n demo
run exec -n demo "$pod" -- sh -c 'for i in 1 2 3 4 5 6 7 8 9; do wget -qO- http://web/pod; done | sort | uniq -c'

say "chaos: power off the node running $pod, and kill the Raft leader"
node=$("$SKIFF" get po -n demo "$pod" -o wide | awk 'NR==2 {print $7}')
run chaos kill-node "$node" "${LAB[@]}"
run chaos kill-controlplane leader "${LAB[@]}"
wait_for "the web pods replaced away from $node" 120 web_running_off "$node"
run get nodes
run get pods -n demo -o wide
run cluster status

say "bringing $node and the killed replica back"
killed=$("$SKIFF" cluster status | awk '$7 == "no" {print $1; exit}')
[ -n "$killed" ] && run chaos start-controlplane "$killed" "${LAB[@]}"
run chaos start-node "$node" "${LAB[@]}"
wait_for "$node Ready" 90 sh -c "'$SKIFF' get nodes | grep -q '^$node *Ready'"
run get nodes
run cluster status

say "done: the lab is still running ($SKIFF lab status ${LAB[*]}; $SKIFF lab down ${LAB[*]})"
