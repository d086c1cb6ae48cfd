"""PodDisruptionBudgets on the real lab (3 nodes), through the CLI only: `skiff drain` evicts
through the budget like kubectl — one pod, then, once its replacement is ready, the next —
and `skiff get pdb` shows the budget's numbers."""

import json
import threading
import time

import pytest
import yaml

from tests.e2e.conftest import nodes_lab
from tests.helpers import wait_until

IMAGE = "skiff/busybox:latest"
REFUSED = ("(will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget.")


@pytest.fixture(scope="module")
def lab(request):
    with nodes_lab(request, "disruption", 3) as cli:
        yield cli


def apply(lab, *docs):
    return lab.out("apply", "-f", "-", input=yaml.safe_dump_all(docs))


def deployment(name, replicas):
    """Pods that turn ready about 3 s after they start (a readiness probe on a file)."""
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {
                         "terminationGracePeriodSeconds": 1,
                         "containers": [{
                             "name": "app", "image": IMAGE, "imagePullPolicy": "Never",
                             "command": ["sh", "-c", "sleep 3; touch /tmp/ready; exec sleep 3600"],
                             "readinessProbe": {"exec": {"command": ["cat", "/tmp/ready"]},
                                                "periodSeconds": 1}}]}}}}


def budget(name, **spec):
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {"app": name}}, **spec}}


def live_pods(lab, app):
    items = json.loads(lab.out("get", "po", "-l", f"app={app}", "-o", "json"))["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def is_ready(p) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in p.get("status", {}).get("conditions", []))


def ready_count(lab, app) -> int:
    return sum(1 for p in live_pods(lab, app) if is_ready(p))


def pdb_row(lab, name) -> list:
    lines = lab.out("get", "pdb", name).splitlines()
    assert lines[0].split() == ["NAME", "MIN", "AVAILABLE", "MAX", "UNAVAILABLE", "ALLOWED", "DISRUPTIONS", "AGE"]
    return lines[1].split()


def test_drain_evicts_one_pod_at_a_time_through_the_budget(lab):
    # Two of the three pods on one node: only node1 and node2 take them.
    lab.out("cordon", "node3")
    apply(lab, deployment("web", 3), budget("web", minAvailable=2))
    wait_until(lambda: ready_count(lab, "web") == 3, 90, "3 ready web pods")
    lab.out("uncordon", "node3")
    wait_until(lambda: pdb_row(lab, "web")[1:4] == ["2", "N/A", "1"], 30, "pdb web: 1 disruption allowed")
    by_node = {}
    for p in live_pods(lab, "web"):
        by_node.setdefault(p["spec"]["nodeName"], []).append(p["metadata"]["name"])
    node, names = next((n, ps) for n, ps in by_node.items() if len(ps) == 2)

    samples = []          # (ready web pods, allowed disruptions) while the drain runs
    draining = threading.Event()

    def sample():
        while not draining.is_set():
            samples.append((ready_count(lab, "web"), pdb_row(lab, "web")[3]))
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    drain = lab.run("drain", node, "--timeout", "120", timeout=150)
    took_s = time.monotonic() - started
    draining.set()
    sampler.join(10)

    out, err = drain.stdout, drain.stderr
    for name in names:
        assert f"evicting pod default/{name}\n" in out
        assert f"pod/{name} evicted\n" in out
    assert out.rstrip().endswith(f"node/{node} drained")
    # The second eviction was refused until the first pod's replacement was ready.
    assert REFUSED in err and err.count(REFUSED) >= 1, err
    assert err.splitlines()[0].startswith('error when evicting pods/"'), err
    assert took_s > 3, "the replacement needs ~3 s to become ready before the second eviction"
    assert samples and min(ready for ready, _ in samples) >= 2, samples
    assert {"0", "1"} >= {allowed for _, allowed in samples}, samples

    wait_until(lambda: ready_count(lab, "web") == 3, 90, "3 ready web pods again")
    assert all(p["spec"]["nodeName"] != node for p in live_pods(lab, "web"))
    wait_until(lambda: pdb_row(lab, "web")[1:4] == ["2", "N/A", "1"], 30, "the budget back to 1")
    described = lab.out("describe", "pdb", "web")
    assert "Min available:" in described and "Allowed disruptions:  1" in described
    lab.out("uncordon", node)


def test_drain_waits_on_a_budget_that_allows_nothing_until_its_timeout(lab):
    apply(lab, deployment("db", 1), budget("db", maxUnavailable=0))
    wait_until(lambda: ready_count(lab, "db") == 1, 90, "1 ready db pod")
    wait_until(lambda: pdb_row(lab, "db")[1:4] == ["N/A", "0", "0"], 30, "pdb db: nothing allowed")
    [pod] = live_pods(lab, "db")
    node, name = pod["spec"]["nodeName"], pod["metadata"]["name"]
    r = lab.run("drain", node, "--ignore-daemonsets", "--timeout", "7", check=False, timeout=60)
    assert r.returncode != 0
    assert f'error when evicting pods/"{name}" -n "default" {REFUSED}' in r.stderr
    assert "drain did not complete within 7s" in r.stderr
    assert f"pod/{name}\n" in r.stderr                 # listed as pending
    assert [p["metadata"]["name"] for p in live_pods(lab, "db")] == [name]   # still there

    # --disable-eviction deletes without asking the budget, as kubectl does.
    out = lab.out("drain", node, "--disable-eviction", "--timeout", "60", timeout=90)
    assert f"pod/{name} deleted\n" in out and f"node/{node} drained" in out
    lab.out("uncordon", node)
    lab.out("delete", "deploy", "db")
