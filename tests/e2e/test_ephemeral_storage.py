"""Local ephemeral storage on the real lab (1 node, its engine and agent), through the CLI:

- the node reports capacity/allocatable ephemeral-storage (its agent's data dir filesystem);
- a pod requesting more ephemeral-storage than the node has stays Pending, its
  FailedScheduling message saying "Insufficient ephemeral-storage";
- a pod writing 20 MiB into its writable layer with a 10Mi limit is evicted: Failed,
  reason Evicted, the kubelet's message, its container stopped, an Evicted event;
- a pod writing 20 MiB into a disk-backed emptyDir with sizeLimit 10Mi is evicted with
  the emptyDir message;
- a pod writing 2 MiB with a 10Mi limit keeps running across several measurement periods.
"""

import json
import time

import pytest
import yaml

from tests.e2e.conftest import nodes_lab
from tests.helpers import wait_until

IMAGE = "skiff/busybox:latest"
NS = "skiff-ephemeral"
RESYNC_S = 5.0          # the agent's resync period: pods with limits are measured once per period
POD_MESSAGE = "Pod ephemeral local storage usage exceeds the total limit of containers 10Mi. "
EMPTYDIR_MESSAGE = 'Usage of EmptyDir volume "data" exceeds the limit "10Mi". '


@pytest.fixture(scope="module")
def lab(request):
    with nodes_lab(request, "ephemeral", 1) as cli:
        cli.out("apply", "-f", "-", input=yaml.safe_dump({"apiVersion": "v1", "kind": "Namespace",
                                                          "metadata": {"name": NS}}))
        yield cli


def apply(lab, doc):
    return lab.out("apply", "-f", "-", input=yaml.safe_dump(doc))


def writer(name, script, resources=None, **spec):
    c = {"name": "app", "image": IMAGE, "imagePullPolicy": "Never", "command": ["sh", "-c", script]}
    if resources:
        c["resources"] = resources
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS},
            "spec": {"containers": [c], "terminationGracePeriodSeconds": 30, **spec}}


def get_pod(lab, name) -> dict:
    return json.loads(lab.out("get", "po", name, "-n", NS, "-o", "json"))


def status(lab, name) -> dict:
    return get_pod(lab, name).get("status", {})


def running(lab, name) -> bool:
    st = status(lab, name)
    return st.get("phase") == "Running" and bool(st.get("containerStatuses")) and all(
        "running" in cs.get("state", {}) for cs in st["containerStatuses"])


def evicted(lab, name):
    st = status(lab, name)
    return st if st.get("phase") == "Failed" and st.get("reason") == "Evicted" else None


def wrote(lab, name) -> bool:
    r = lab.run("exec", name, "-n", NS, "--", "cat", "/tmp/written", check=False)
    return r.returncode == 0 and "done" in r.stdout


def holds_for(predicate, duration_s: float, what: str, interval_s: float = 0.5):
    """predicate stays true, checked every interval_s, for duration_s (a negative check:
    nothing must happen over several of the agent's measurement periods)."""
    until = time.monotonic() + duration_s
    while time.monotonic() < until:
        assert predicate(), f"{what}: no longer true"
        time.sleep(interval_s)


def test_the_node_reports_its_ephemeral_storage(lab):
    node = json.loads(lab.out("get", "node", "node1", "-o", "json"))
    cap = node["status"]["capacity"]["ephemeral-storage"]
    assert cap.endswith("Ki") and int(cap[:-2]) > 100 * 1024, cap     # a real filesystem's size
    assert node["status"]["allocatable"]["ephemeral-storage"] == cap


def test_a_pod_requesting_more_than_the_node_has_stays_pending(lab):
    apply(lab, writer("huge", "sleep 3600", {"requests": {"ephemeral-storage": "100Ei"}}))
    msg = "0/1 nodes are available: 1 Insufficient ephemeral-storage."
    wait_until(lambda: msg in lab.out("describe", "po", "huge", "-n", NS), 30, "FailedScheduling in describe")
    assert "FailedScheduling" in lab.out("get", "events", "-n", NS)
    assert lab.out("get", "po", "huge", "-n", NS).splitlines()[1].split()[2] == "Pending"
    assert not get_pod(lab, "huge")["spec"].get("nodeName")
    lab.out("delete", "po", "huge", "-n", NS)


def test_over_the_limit_evicted_within_it_keeps_running(lab):
    limit = {"limits": {"ephemeral-storage": "10Mi"}}
    apply(lab, writer("hog", "dd if=/dev/zero of=/big bs=1M count=20 && sync && sleep 3600", limit))
    apply(lab, writer("modest", "dd if=/dev/zero of=/small bs=1M count=2 && sync && echo done > /tmp/written"
                                " && sleep 3600", limit))

    st = wait_until(lambda: evicted(lab, "hog"), 60 + 3 * RESYNC_S, "pod hog evicted")
    assert st["message"] == POD_MESSAGE
    assert any(c["type"] == "DisruptionTarget" and c["status"] == "True" for c in st["conditions"])
    wait_until(lambda: all("terminated" in cs["state"] for cs in status(lab, "hog")["containerStatuses"]),
               30, "hog's container stopped")
    events = lab.out("get", "events", "-n", NS)
    assert "Evicted" in events and "exceeds the total limit of containers 10Mi" in events
    described = lab.out("describe", "po", "hog", "-n", NS)
    assert "Evicted" in described and POD_MESSAGE.strip() in described

    # modest wrote its 2 MiB before hog was judged; it stays Running through more measurements
    wait_until(lambda: wrote(lab, "modest"), 60, "pod modest wrote its file")
    holds_for(lambda: running(lab, "modest"), 2.5 * RESYNC_S, "pod modest running")
    lab.out("delete", "po", "hog", "modest", "-n", NS)


def test_an_emptydir_over_its_size_limit_is_evicted(lab):
    apply(lab, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "filler", "namespace": NS},
                "spec": {"terminationGracePeriodSeconds": 30,
                         "containers": [{"name": "app", "image": IMAGE, "imagePullPolicy": "Never",
                                         "command": ["sh", "-c", "dd if=/dev/zero of=/data/big bs=1M count=20"
                                                                 " && sync && sleep 3600"],
                                         "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                         "volumes": [{"name": "data", "emptyDir": {"sizeLimit": "10Mi"}}]}})
    st = wait_until(lambda: evicted(lab, "filler"), 60 + 3 * RESYNC_S, "pod filler2 evicted")
    assert st["phase"] == "Failed" and st["message"] == EMPTYDIR_MESSAGE
    lab.out("delete", "po", "filler", "-n", NS)
