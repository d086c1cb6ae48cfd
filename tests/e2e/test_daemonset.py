"""DaemonSets on the real lab (one 3-node lab for the module), through the CLI: a pod on every
node, a nodeSelector, a node that gets the label, a rolling update node by node within
maxUnavailable (observed through a watch), `drain --ignore-daemonsets`, and a node that dies,
leaves and joins again."""

import json
import re
import threading
import time

import pytest
import yaml

from skiff import client as clientmod
from tests.e2e.conftest import nodes_lab
from tests.helpers import wait_until

NODES = ("node1", "node2", "node3")
HASH = "controller-revision-hash"


def daemonset(name, version="1", node_selector=None, unavailable=1):
    spec = {"terminationGracePeriodSeconds": 1,
            "containers": [{"name": "agent", "image": "skiff/busybox:latest", "imagePullPolicy": "Never",
                            "command": ["sleep", "3600"], "env": [{"name": "VERSION", "value": version}],
                            "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1}}]}
    if node_selector:
        spec["nodeSelector"] = node_selector
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {"app": name}},
                     "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": unavailable}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}}


@pytest.fixture(scope="module")
def lab(request):
    with nodes_lab(request, "daemonset", 3) as cli:
        yield cli


def pods(lab, app):
    items = json.loads(lab.out("get", "po", "-l", f"app={app}", "-o", "json"))["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def ready(p) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in p.get("status", {}).get("conditions", []))


def ready_by_node(lab, app) -> dict:
    return {p["spec"]["nodeName"]: p for p in pods(lab, app) if ready(p)}


def ds_row(lab, name) -> list:
    lines = lab.out("get", "ds", name).splitlines()
    assert lines[0].split()[:8] == ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE",
                                    "SELECTOR"], lines[0]
    return lines[1].split()


def apply(lab, doc):
    return lab.out("apply", "-f", "-", input=yaml.safe_dump(doc))


def test_a_pod_on_every_node_and_kubectls_columns(lab):
    assert "daemonset.apps/agent created" in apply(lab, daemonset("agent"))
    wait_until(lambda: sorted(ready_by_node(lab, "agent")) == list(NODES), 120, "a ready agent pod on every node")
    wait_until(lambda: ds_row(lab, "agent")[1:6] == ["3"] * 5, 30, "DESIRED..AVAILABLE 3")
    assert ds_row(lab, "agent")[6] == "<none>"
    every = lab.out("get", "all").splitlines()
    header = next(i for i, line in enumerate(every) if "NODE SELECTOR" in line)   # the DaemonSets' table
    assert every[header + 1].split()[:2] == ["agent", "3"], every
    described = lab.out("describe", "ds", "agent")
    assert re.search(r"^Desired Number of Nodes Scheduled:\s+3$", described, re.M), described
    assert "SuccessfulCreate" in lab.out("get", "events")


def test_node_selector_and_a_node_that_gets_the_label(lab):
    apply(lab, daemonset("edge", node_selector={"role": "edge"}))
    wait_until(lambda: ds_row(lab, "edge")[1] == "0", 30, "no node is an edge node yet")
    assert ds_row(lab, "edge")[6] == "role=edge"
    assert pods(lab, "edge") == []
    # label node3 the way a user without `skiff label` would: get, edit, apply
    node = yaml.safe_load(lab.out("get", "node", "node3", "-o", "yaml"))
    node["metadata"]["labels"]["role"] = "edge"
    node["metadata"].pop("resourceVersion", None)
    node.pop("status", None)
    apply(lab, node)
    wait_until(lambda: list(ready_by_node(lab, "edge")) == ["node3"], 60, "the edge pod on node3")
    wait_until(lambda: ds_row(lab, "edge")[1:6] == ["1"] * 5, 30, "DESIRED..AVAILABLE 1")
    lab.out("delete", "ds", "edge")
    wait_until(lambda: not pods(lab, "edge"), 60, "the edge pods collected with their DaemonSet")


class RolloutWatch:
    """Follows the pods of app through a watch (every change, not samples) and records the fewest
    nodes with a ready pod and the most pods on one node at any moment."""

    def __init__(self, lab, app):
        self.client = clientmod.Client.from_config(config_path=lab.config)
        self.app = app
        self.pods = {}
        self.min_ready_nodes = len(NODES)
        self.max_per_node = 1
        self.replaced_order = []
        self._stop = threading.Event()
        items, rv = self.client.list("pods", "default", label_selector=f"app={app}")
        for p in items:
            self.pods[p.metadata.uid] = p
        self._thread = threading.Thread(target=self._run, args=(rv,), daemon=True)
        self._thread.start()

    def _run(self, rv):
        for kind, pod, _ in self.client.watch("pods", "default", label_selector=f"app={self.app}",
                                              resource_version=rv, timeout_s=300):
            if self._stop.is_set():
                return
            if kind == "DELETED" or pod.metadata.deletion_timestamp:
                gone = self.pods.pop(pod.metadata.uid, None)
                if gone is not None and gone.spec.node_name not in self.replaced_order:
                    self.replaced_order.append(gone.spec.node_name)
            else:
                self.pods[pod.metadata.uid] = pod
            self._measure()

    def _measure(self):
        ready_nodes = set()
        per_node = {}
        for p in self.pods.values():
            per_node[p.spec.node_name] = per_node.get(p.spec.node_name, 0) + 1
            if any(c.type == "Ready" and c.status == "True" for c in p.status.conditions):
                ready_nodes.add(p.spec.node_name)
        self.min_ready_nodes = min(self.min_ready_nodes, len(ready_nodes))
        self.max_per_node = max([self.max_per_node, *per_node.values()])

    def close(self):
        self._stop.set()
        self.client.close()


def test_rolling_update_goes_node_by_node_within_max_unavailable(lab):
    before = {p["spec"]["nodeName"]: p["metadata"]["labels"][HASH] for p in pods(lab, "agent")}
    assert len(set(before.values())) == 1
    watch = RolloutWatch(lab, "agent")
    try:
        t0 = time.monotonic()
        apply(lab, daemonset("agent", version="2"))

        def done():
            now = ready_by_node(lab, "agent")
            return (sorted(now) == list(NODES) and len(pods(lab, "agent")) == 3
                    and all(p["metadata"]["labels"][HASH] != before["node1"] for p in now.values()))
        wait_until(done, 120, "every node runs a ready pod of the new template")
        print(f"daemonset rolling update on 3 nodes: {time.monotonic() - t0:.1f}s, "
              f"order {watch.replaced_order}")
        time.sleep(0.5)   # the watch thread sees the last events
        assert watch.min_ready_nodes == len(NODES) - 1, "maxUnavailable=1: one node at a time, and it did go"
        assert watch.max_per_node == 1
        assert sorted(watch.replaced_order) == list(NODES)
    finally:
        watch.close()
    wait_until(lambda: ds_row(lab, "agent")[4] == "3", 30, "UP-TO-DATE 3")


def test_drain_ignore_daemonsets_leaves_them(lab):
    apply(lab, {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                         "template": {"metadata": {"labels": {"app": "web"}},
                                      "spec": {"terminationGracePeriodSeconds": 1,
                                               "containers": [{"name": "web", "image": "skiff/busybox:latest",
                                                               "imagePullPolicy": "Never",
                                                               "command": ["sleep", "3600"]}]}}}})
    wait_until(lambda: len([p for p in pods(lab, "web") if ready(p)]) == 3, 90, "3 web pods ready")
    ds_pod = ready_by_node(lab, "agent")["node1"]["metadata"]["uid"]
    try:
        refused = lab.run("drain", "node1", check=False)
        assert refused.returncode != 0 and "cannot delete DaemonSet-managed Pods" in refused.stderr, refused.stderr
        out = lab.out("drain", "node1", "--ignore-daemonsets", timeout=120)
        assert "node/node1 drained" in out and "agent-" not in out, out
        web_nodes = [p["spec"]["nodeName"] for p in pods(lab, "web")]
        assert "node1" not in web_nodes
        assert ready_by_node(lab, "agent")["node1"]["metadata"]["uid"] == ds_pod, "the DaemonSet pod stayed"
        assert ds_row(lab, "agent")[1] == "3", "a cordoned node still should run its daemon pod"
    finally:
        lab.out("uncordon", "node1")
        lab.out("delete", "deploy", "web")


def test_a_dead_node_keeps_its_pod_a_deleted_node_loses_it_and_a_joining_node_gets_one(lab):
    on3 = ready_by_node(lab, "agent")["node3"]["metadata"]["uid"]
    lab.out("chaos", "kill-node", "node3")
    try:
        wait_until(lambda: any(line.split()[:2] == ["node3", "NotReady"] for line in lab.out("get", "nodes")
                               .splitlines()), 60, "node3 NotReady")
        time.sleep(5 + 3)   # the lab's podEvictionTimeoutS (5 s) and a margin: nothing evicts the daemon pod
        assert on3 in {p["metadata"]["uid"] for p in pods(lab, "agent")}
        lab.out("delete", "node", "node3")
        wait_until(lambda: "node3" not in {p["spec"]["nodeName"] for p in pods(lab, "agent")}, 60,
                   "the pod of the deleted node collected")
        wait_until(lambda: ds_row(lab, "agent")[1] == "2", 30, "DESIRED 2")
    finally:
        lab.out("chaos", "start-node", "node3")
    wait_until(lambda: sorted(ready_by_node(lab, "agent")) == list(NODES), 120, "node3 registered and got its pod")
    wait_until(lambda: ds_row(lab, "agent")[1:6] == ["3"] * 5, 30, "DESIRED..AVAILABLE 3 again")
