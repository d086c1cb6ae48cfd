"""NoExecute taints on the real lab (2 nodes), through the CLI: `skiff taint nodes node1
k=v:NoExecute` evicts what does not tolerate it (a Deployment's pods move to node2), a pod
tolerating it for 5 s goes after about 5 s, one tolerating it forever stays, and removing
the taint before the deadline keeps the pod."""

import contextlib
import json
import time

import pytest
import yaml

from tests.e2e.conftest import nodes_lab
from tests.helpers import wait_until

NS = "skiff-noexec"
VICTIM, OTHER = "node1", "node2"
BUSYBOX = {"image": "skiff/busybox:latest", "imagePullPolicy": "Never", "command": ["sleep", "3600"]}


@pytest.fixture(scope="module")
def lab(request):
    with nodes_lab(request, "noexec", 2) as cli:
        cli.out("apply", "-f", "-", input=yaml.safe_dump({"apiVersion": "v1", "kind": "Namespace",
                                                         "metadata": {"name": NS}}))
        yield cli


@contextlib.contextmanager
def tainted(lab, spec):
    """The victim node tainted with spec (KEY=VALUE:EFFECT) inside the block, untainted after
    (also after a failure: the module's later tests need a clean node)."""
    assert lab.out("taint", "nodes", VICTIM, spec).strip() == f"node/{VICTIM} tainted"
    try:
        yield time.monotonic()
    finally:
        lab.run("taint", "nodes", VICTIM, spec.split("=")[0] + ":NoExecute-", check=False)


def pods(lab, selector=None):
    args = ["get", "po", "-n", NS, "-o", "json"] + (["-l", selector] if selector else [])
    return json.loads(lab.out(*args))["items"]


def pod(lab, name):
    r = lab.run("get", "po", name, "-n", NS, "-o", "json", check=False)
    return json.loads(r.stdout) if r.returncode == 0 else None


def running(p) -> bool:
    return p is not None and not p["metadata"].get("deletionTimestamp") and p.get("status", {}).get("phase") == "Running"


def leaving(p) -> bool:
    """Gone or being deleted."""
    return p is None or bool(p["metadata"].get("deletionTimestamp"))


def events(lab, reason):
    items = json.loads(lab.out("get", "events", "-n", NS, "-o", "json"))["items"]
    return [(e["involvedObject"]["name"], e.get("message", "")) for e in items if e.get("reason") == reason]


def bare_pod(name, tolerations):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS},
            "spec": {"nodeName": VICTIM, "terminationGracePeriodSeconds": 1, "tolerations": tolerations,
                     "containers": [dict(BUSYBOX, name="app")]}}


def tolerate(key, seconds=None):
    t = {"key": key, "operator": "Exists", "effect": "NoExecute"}
    if seconds is not None:
        t["tolerationSeconds"] = seconds
    return t


def holds(predicate, seconds, what, interval_s=0.3):
    """Assert predicate stays true for `seconds` (a watch over a window, not a sleep)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert predicate(), what
        time.sleep(interval_s)


def test_deployment_pods_leave_a_node_tainted_noexecute(lab):
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": NS},
              "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
                       "template": {"metadata": {"labels": {"app": "web"}},
                                    "spec": {"terminationGracePeriodSeconds": 1,
                                             "containers": [dict(BUSYBOX, name="app")]}}}}
    lab.out("apply", "-f", "-", input=yaml.safe_dump(deploy))

    def on(node):
        return [p["metadata"]["name"] for p in pods(lab, "app=web") if running(p) and p["spec"]["nodeName"] == node]

    wait_until(lambda: len(on(VICTIM)) + len(on(OTHER)) == 4 and on(VICTIM), 90,
               "4 replicas Running, some on node1")
    evicted = on(VICTIM)
    with tainted(lab, "skiff-e2e=web:NoExecute"):
        wait_until(lambda: len(on(OTHER)) == 4 and not [p for p in pods(lab, "app=web")
                                                      if p["spec"].get("nodeName") == VICTIM], 60,
                   "every replica Running on node2, none left on node1")
        marked = events(lab, "TaintManagerEviction")
        for name in evicted:
            assert (name, f"Marking for deletion Pod {NS}/{name}") in marked, marked
        node = json.loads(lab.out("get", "node", VICTIM, "-o", "json"))
        taint = next(t for t in node["spec"]["taints"] if t["key"] == "skiff-e2e")
        assert taint["effect"] == "NoExecute" and taint["timeAdded"], taint   # stamped by the API
    lab.out("delete", "deploy", "web", "-n", NS)
    wait_until(lambda: not pods(lab, "app=web"), 60, "the deployment's pods gone")


def test_toleration_seconds_delay_the_eviction_and_forever_keeps_the_pod(lab):
    key = "skiff-e2e-timed"
    lab.out("apply", "-f", "-", input=yaml.safe_dump_all([
        bare_pod("waits-5s", [tolerate(key, 5)]),
        bare_pod("stays", [tolerate(key)]),
        bare_pod("intolerant", [])]))
    wait_until(lambda: all(running(pod(lab, n)) for n in ("waits-5s", "stays", "intolerant")), 90,
               "the three pods Running on node1")
    with tainted(lab, f"{key}=x:NoExecute") as t0:
        wait_until(lambda: leaving(pod(lab, "intolerant")), 10, "the intolerant pod evicted at once")
        at_once_s = time.monotonic() - t0
        assert running(pod(lab, "waits-5s")), "the 5 s toleration was not honoured"
        wait_until(lambda: leaving(pod(lab, "waits-5s")), 20, "the 5 s pod evicted")
        after_s = time.monotonic() - t0
        print(f"intolerant evicted after {at_once_s:.1f}s, tolerationSeconds=5 after {after_s:.1f}s")
        # timeAdded has whole seconds (up to 1 s early); the controller wakes just after the deadline.
        assert at_once_s < 3.0, at_once_s
        assert 3.5 <= after_s <= 12.0, after_s
        holds(lambda: running(pod(lab, "stays")), 4, "the pod tolerating forever was evicted")
    assert ("waits-5s", f"Marking for deletion Pod {NS}/waits-5s") in events(lab, "TaintManagerEviction")
    lab.out("delete", "pod", "stays", "-n", NS)


def test_removing_the_taint_before_the_deadline_keeps_the_pod(lab):
    key = "skiff-e2e-removed"
    lab.out("apply", "-f", "-", input=yaml.safe_dump(bare_pod("kept", [tolerate(key, 6)])))
    wait_until(lambda: running(pod(lab, "kept")), 90, "the pod Running on node1")
    with tainted(lab, f"{key}=x:NoExecute") as t0:
        holds(lambda: running(pod(lab, "kept")), 2, "evicted before its tolerationSeconds")
    assert time.monotonic() - t0 < 5, "too slow to remove the taint before the deadline"
    wait_until(lambda: ("kept", f"Cancelling deletion of Pod {NS}/kept") in events(lab, "TaintManagerEviction"),
               10, "the scheduled eviction cancelled")
    # Past the deadline the taint would have set, the pod is still there.
    holds(lambda: running(pod(lab, "kept")), 6, "the pod was evicted after its taint was removed")
    lab.out("delete", "pod", "kept", "-n", NS)
