"""label, annotate, wait, delete --cascade and ReplicationControllers on the real lab, through
the CLI only (one lab for the module, 2 nodes)."""

import json

import pytest
import yaml

from tests.e2e.conftest import nodes_lab
from tests.helpers import wait_until

IMAGE = "skiff/busybox:latest"


@pytest.fixture(scope="module")
def lab(request):
    with nodes_lab(request, "cascade", 2) as cli:
        yield cli


def template(app, grace_s=1):
    return {"metadata": {"labels": {"app": app}},
            "spec": {"terminationGracePeriodSeconds": grace_s,
                     "containers": [{"name": "main", "image": IMAGE, "imagePullPolicy": "Never",
                                     "command": ["sleep", "3600"]}]}}


def apply(lab, doc):
    return lab.out("apply", "-f", "-", input=yaml.safe_dump(doc))


def pods(lab, app) -> list:
    return json.loads(lab.out("get", "pods", "-l", f"app={app}", "-o", "json"))["items"]


def wait_pod_count(lab, app, n):
    wait_until(lambda: len([p for p in pods(lab, app) if not p["metadata"].get("deletionTimestamp")]) == n,
               60, f"{n} pods of {app}")


def test_replication_controller_wait_and_scale(lab):
    out = apply(lab, {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "legacy"},
                      "spec": {"replicas": 2, "template": template("legacy")}})
    assert out.strip() == "replicationcontroller/legacy created"
    wait_pod_count(lab, "legacy", 2)
    out = lab.out("wait", "--for=condition=Ready", "pod", "-l", "app=legacy", "--timeout=90s", timeout=200)
    assert [line.split()[1:] for line in out.splitlines()] == [["condition", "met"]] * 2, out
    assert lab.out("scale", "rc", "legacy", "--replicas", "3").strip() == "replicationcontroller/legacy scaled"
    out = lab.out("wait", "--for=jsonpath={.status.readyReplicas}=3", "rc/legacy", "--timeout=90s", timeout=120)
    assert out.strip() == "replicationcontroller/legacy condition met"
    table = lab.out("get", "rc", "legacy", "-o", "wide").splitlines()
    assert table[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]
    row = table[1].split()
    assert row[:4] == ["legacy", "3", "3", "3"] and row[-1] == "app=legacy"
    assert any(line.split()[:4] == ["legacy", "3", "3", "3"] for line in lab.out("get", "all").splitlines())


def test_wait_times_out_like_kubectl(lab):
    name = pods(lab, "legacy")[0]["metadata"]["name"]
    r = lab.run("wait", "--for=condition=Nope", f"pod/{name}", "--timeout=1s", check=False)
    assert r.returncode == 1
    assert r.stderr.strip() == f"error: timed out waiting for the condition on pods/{name}"


def test_label_and_annotate(lab):
    assert lab.out("label", "rc", "legacy", "tier=web").strip() == "replicationcontroller/legacy labeled"
    r = lab.run("label", "rc/legacy", "tier=db", check=False)
    assert r.returncode == 1
    assert r.stderr.strip() == "error: 'tier' already has a value (web), and --overwrite is false"
    assert lab.out("label", "rc/legacy", "tier=db", "--overwrite").strip() == "replicationcontroller/legacy labeled"
    labels = json.loads(lab.out("get", "rc", "legacy", "-o", "json"))["metadata"]["labels"]
    assert labels == {"app": "legacy", "tier": "db"}
    assert lab.out("label", "rc", "legacy", "tier-").strip() == "replicationcontroller/legacy unlabeled"
    out = lab.out("label", "pods", "-l", "app=legacy", "checked=yes")
    assert out.count(" labeled") == 3
    assert lab.out("annotate", "rc", "legacy", "note=hello world").strip() == "replicationcontroller/legacy annotated"
    r = lab.run("annotate", "rc", "legacy", "note=other", check=False)
    assert r.returncode == 1 and "--overwrite is false but found the following declared annotation(s): " \
        "'note' already has a value (hello world)" in r.stderr
    meta = json.loads(lab.out("get", "rc", "legacy", "-o", "json"))["metadata"]
    assert meta["annotations"]["note"] == "hello world" and "tier" not in meta["labels"]


def test_delete_orphan_keeps_the_pods_running(lab):
    before = {p["metadata"]["uid"] for p in pods(lab, "legacy")}
    assert lab.out("delete", "rc", "legacy", "--cascade=orphan").strip() == "replicationcontroller/legacy deleted"
    assert lab.out("wait", "--for=delete", "rc/legacy", "--timeout=30s").strip() == \
        "replicationcontroller/legacy condition met"
    left = pods(lab, "legacy")
    assert {p["metadata"]["uid"] for p in left} == before
    assert all(not p["metadata"].get("ownerReferences") and not p["metadata"].get("deletionTimestamp")
               and p["status"]["phase"] == "Running" for p in left)
    assert "deleted" in lab.out("delete", "pods", "-l", "app=legacy")


def test_delete_foreground_waits_for_the_pods(lab):
    apply(lab, {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "fg"},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "fg"}},
                         "template": template("fg", grace_s=6)}})
    wait_pod_count(lab, "fg", 2)
    lab.out("wait", "--for=condition=Ready", "pod", "-l", "app=fg", "--timeout=90s", timeout=200)
    assert lab.out("delete", "rs", "fg", "--cascade=foreground").strip() == "replicaset.apps/fg deleted"
    rs = json.loads(lab.out("get", "rs", "fg", "-o", "json"))        # still there: its pods are stopping
    assert rs["metadata"]["deletionTimestamp"] and rs["metadata"]["finalizers"] == ["foregroundDeletion"]
    assert lab.out("wait", "--for=delete", "rs/fg", "--timeout=60s", timeout=90).strip() == \
        "replicaset.apps/fg condition met"
    assert pods(lab, "fg") == []


def test_delete_background_with_wait(lab):
    apply(lab, {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "bg"},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "bg"}}, "template": template("bg")}})
    wait_pod_count(lab, "bg", 1)
    out = lab.out("delete", "rs", "bg", "--cascade=background", "--wait", timeout=90)
    assert out.strip() == "replicaset.apps/bg deleted"
    wait_until(lambda: pods(lab, "bg") == [], 60, "the background GC to delete the pod")
