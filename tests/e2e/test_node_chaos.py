"""Node failure on the real lab (own lab: destructive): a Deployment spread over 3 nodes,
one node powered off, replacements on the survivors, the node back with nothing stale,
and a control-plane leader kill in the middle of it."""

import json
import time

import pytest
import yaml

from tests.e2e.conftest import node_docker, nodes_lab
from tests.helpers import wait_until

DEPLOY = {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "spread"},
    "spec": {"replicas": 6, "selector": {"matchLabels": {"app": "spread"}},
             "template": {"metadata": {"labels": {"app": "spread"}},
                          "spec": {"terminationGracePeriodSeconds": 2,
                                   "containers": [{"name": "app", "image": "skiff/busybox:latest",
                                                   "imagePullPolicy": "Never",
                                                   "command": ["sleep", "3600"]}]}}}}


@pytest.fixture(scope="module")
def lab(request):
    with nodes_lab(request, "chaos", 3) as cli:
        yield cli


def pods(lab):
    items = json.loads(lab.out("get", "po", "-l", "app=spread", "-o", "json"))["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def running_by_node(lab):
    out = {}
    for p in pods(lab):
        if p.get("status", {}).get("phase") == "Running":
            out.setdefault(p["spec"].get("nodeName"), []).append(p["metadata"]["name"])
    return out


def test_deployment_spreads_then_heals_after_node_kill_and_leader_kill(lab):
    lab.out("apply", "-f", "-", input=yaml.safe_dump(DEPLOY))
    wait_until(lambda: sorted(len(v) for v in running_by_node(lab).values()) == [2, 2, 2], 120,
               "6 replicas Running, 2 per node")
    victim = "node2"
    t_kill = time.monotonic()
    assert "node2" in lab.out("chaos", "kill-node", victim)
    # The control plane's leader dies too, in the middle of the recovery.
    lab.out("chaos", "kill-controlplane", "leader")

    def healed():
        by_node = running_by_node(lab)
        return victim not in by_node and sum(len(v) for v in by_node.values()) == 6 and len(pods(lab)) == 6

    wait_until(healed, 60, "6 replicas Running on the two surviving nodes")
    heal_s = time.monotonic() - t_kill
    print(f"node kill -> 6 replicas running elsewhere: {heal_s:.1f}s")
    status = lab.out("get", "nodes")
    assert any(line.split()[:2] == [victim, "NotReady"] for line in status.splitlines()), status
    names = [p["metadata"]["name"] for p in pods(lab)]
    assert len(names) == len(set(names)) == 6, "duplicated replicas"

    # Bring back the dead replica and the node.
    st = lab.out("cluster", "status")
    dead = [line.split()[0] for line in st.splitlines()[1:] if " no " in line or line.rstrip().endswith(")")]
    for name in dead:
        if name.startswith("cp"):
            lab.out("chaos", "start-controlplane", name)
    lab.out("chaos", "start-node", victim)
    wait_until(lambda: any(line.split()[:2] == [victim, "Ready"] for line in lab.out("get", "nodes").splitlines()),
               90, f"{victim} Ready again")
    engine = node_docker(lab, victim)

    def nothing_stale():
        live = {p["metadata"]["uid"] for p in json.loads(lab.out("get", "po", "-A", "-o", "json"))["items"]
                if p["spec"].get("nodeName") == victim}
        for c in engine.containers.list(all=True):
            if c.labels.get("io.skiff.pod.uid") not in live:
                return False
        return True

    wait_until(nothing_stale, 60, f"{victim} runs no container of a pod that is gone")
    assert len(pods(lab)) == 6
    assert "leader" in lab.out("cluster", "status")
    lab.out("delete", "deploy", "spread")
    wait_until(lambda: not pods(lab), 90, "deployment's pods deleted with it")
