"""Inter-pod affinity, anti-affinity and topology spread on the real lab (3 nodes, real
engines), through the CLI only: the zones are node labels set with `skiff label node`
(node1, node2: zone a; node3: zone b), and every placement is read back from `skiff get`."""

import collections
import json

import pytest
import yaml

from tests.e2e.conftest import nodes_lab
from tests.helpers import wait_until

IMAGE = "skiff/busybox:latest"
ZONE = "topology.kubernetes.io/zone"
ZONES = {"node1": "a", "node2": "a", "node3": "b"}
HOSTNAME = "kubernetes.io/hostname"


@pytest.fixture(scope="module")
def lab(request):
    with nodes_lab(request, "affinity", 3) as cli:
        for node, zone in ZONES.items():
            cli.out("label", "node", node, f"{ZONE}={zone}")
        yield cli


def apply(lab, *docs):
    return lab.out("apply", "-f", "-", input=yaml.safe_dump_all(docs))


def container():
    return {"name": "app", "image": IMAGE, "imagePullPolicy": "Never", "command": ["sleep", "3600"]}


def deployment(name, replicas, **spec):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [container()], "terminationGracePeriodSeconds": 1,
                                           **spec}}}}


def pods(lab, app) -> list:
    return json.loads(lab.out("get", "po", "-l", f"app={app}", "-o", "json"))["items"]


def placement(lab, app) -> dict:
    """pod name -> node ("" while pending), for the pods not being deleted."""
    return {p["metadata"]["name"]: p["spec"].get("nodeName", "")
            for p in pods(lab, app) if not p["metadata"].get("deletionTimestamp")}


def running(lab, app) -> list:
    return [p for p in pods(lab, app) if p.get("status", {}).get("phase") == "Running"]


def delete(lab, kind, name, app):
    lab.out("delete", kind, name)
    wait_until(lambda: not pods(lab, app), 60, f"pods of {app} gone")


def test_zone_labels_set_through_the_cli(lab):
    for node, zone in ZONES.items():
        labels = json.loads(lab.out("get", "node", node, "-o", "json"))["metadata"]["labels"]
        assert labels[ZONE] == zone and labels[HOSTNAME] == node


def test_anti_affinity_spreads_one_per_node_and_leaves_the_fourth_pending_with_the_reason(lab):
    term = {"labelSelector": {"matchLabels": {"app": "solo"}}, "topologyKey": HOSTNAME}
    apply(lab, deployment("solo", 4, affinity={"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [term]}}))
    wait_until(lambda: len(running(lab, "solo")) == 3, 90, "3 solo pods running")
    where = wait_until(lambda: (lambda p: len(p) == 4 and p)(placement(lab, "solo")), 30, "4 solo pods")
    assert sorted(n for n in where.values() if n) == ["node1", "node2", "node3"], where
    [pending] = [name for name, node in where.items() if not node]

    want = "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules."
    out = wait_until(lambda: (lambda o: want in o and o)(lab.out("describe", "po", pending)), 30,
                     "the FailedScheduling reason in describe")
    assert "FailedScheduling" in out
    assert ("Rejected by: InterPodAffinity: node1, node2, node3 "
            "(node(s) didn't match pod anti-affinity rules).") in out
    pod = json.loads(lab.out("get", "po", pending, "-o", "json"))
    [cond] = [c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert (cond["status"], cond["reason"], cond["message"]) == ("False", "Unschedulable", want)
    delete(lab, "deploy", "solo", "solo")


def test_existing_anti_affinity_keeps_others_away(lab):
    """A pod's required anti-affinity also holds against pods that come after it."""
    loner = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "loner", "labels": {"app": "loner"}},
             "spec": {"containers": [container()], "terminationGracePeriodSeconds": 1,
                      "nodeSelector": {HOSTNAME: "node3"},
                      "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                          {"labelSelector": {"matchLabels": {"app": "crowd"}}, "topologyKey": ZONE}]}}}}
    apply(lab, loner)
    wait_until(lambda: running(lab, "loner"), 60, "loner running")
    apply(lab, deployment("crowd", 4))
    where = wait_until(lambda: (lambda p: len(p) == 4 and all(p.values()) and p)(placement(lab, "crowd")), 60,
                       "4 crowd pods bound")
    assert set(where.values()) <= {"node1", "node2"}, where    # zone b is the loner's
    delete(lab, "deploy", "crowd", "crowd")
    delete(lab, "po", "loner", "loner")


def test_affinity_co_locates_with_a_target_pod(lab):
    target = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "target", "labels": {"app": "target"}},
              "spec": {"containers": [container()], "terminationGracePeriodSeconds": 1,
                       "nodeSelector": {HOSTNAME: "node2"}}}
    apply(lab, target)
    wait_until(lambda: running(lab, "target"), 60, "target running")
    near = {"labelSelector": {"matchLabels": {"app": "target"}}, "topologyKey": HOSTNAME}
    apply(lab, deployment("buddy", 3, affinity={"podAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [near]}}))
    wait_until(lambda: len(running(lab, "buddy")) == 3, 90, "3 buddy pods running")
    assert set(placement(lab, "buddy").values()) == {"node2"}

    # In the target's zone (a), never in zone b, though node3 is the emptiest.
    zone_near = {"labelSelector": {"matchLabels": {"app": "target"}}, "topologyKey": ZONE}
    apply(lab, deployment("zonemate", 4, affinity={"podAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [zone_near]}}))
    where = wait_until(lambda: (lambda p: len(p) == 4 and all(p.values()) and p)(placement(lab, "zonemate")), 60,
                       "4 zonemate pods bound")
    assert set(where.values()) <= {"node1", "node2"}, where
    for name in ("zonemate", "buddy"):
        delete(lab, "deploy", name, name)
    delete(lab, "po", "target", "target")


def test_spread_max_skew_one_over_zones(lab):
    """4 replicas over zones a (2 nodes) and b (1 node), maxSkew 1: 2 and 2, so node3
    alone holds 2 -- plain spreading by load would have put 3 in zone a."""
    constraint = {"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule",
                  "labelSelector": {"matchLabels": {"app": "spread"}}}
    apply(lab, deployment("spread", 4, topologySpreadConstraints=[constraint]))
    where = wait_until(lambda: (lambda p: len(p) == 4 and all(p.values()) and p)(placement(lab, "spread")), 60,
                       "4 spread pods bound")
    per_zone = collections.Counter(ZONES[n] for n in where.values())
    assert per_zone == {"a": 2, "b": 2}, where
    wait_until(lambda: len(running(lab, "spread")) == 4, 90, "4 spread pods running")

    # Two more: whichever zone the fifth goes to, the sixth must even it out (3 and 3).
    lab.out("scale", "deploy", "spread", "--replicas", "6")
    where = wait_until(lambda: (lambda p: len(p) == 6 and all(p.values()) and p)(placement(lab, "spread")), 60,
                       "6 spread pods bound")
    assert collections.Counter(ZONES[n] for n in where.values()) == {"a": 3, "b": 3}, where
    delete(lab, "deploy", "spread", "spread")


def test_spread_refuses_nodes_without_the_key_with_the_reason(lab):
    constraint = {"maxSkew": 1, "topologyKey": "skiff-test/rack", "whenUnsatisfiable": "DoNotSchedule",
                  "labelSelector": {"matchLabels": {"app": "racked"}}}
    apply(lab, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "racked", "labels": {"app": "racked"}},
                "spec": {"containers": [container()], "terminationGracePeriodSeconds": 1,
                         "topologySpreadConstraints": [constraint]}})
    want = ("0/3 nodes are available: 3 node(s) didn't match pod topology spread constraints "
            "(missing required label).")
    wait_until(lambda: want in lab.out("describe", "po", "racked"), 30, "the missing-label reason")
    lab.out("label", "node", "node1", "skiff-test/rack=r1")
    try:
        wait_until(lambda: placement(lab, "racked").get("racked") == "node1", 30, "racked bound to node1")
    finally:
        lab.out("label", "node", "node1", "skiff-test/rack-")
        delete(lab, "po", "racked", "racked")


def test_invalid_spread_is_refused_before_anything_is_stored(lab):
    bad = deployment("bad", 1, topologySpreadConstraints=[
        {"maxSkew": 0, "topologyKey": ZONE, "whenUnsatisfiable": "Sometimes"}])
    r = lab.run("apply", "-f", "-", input=yaml.safe_dump(bad), check=False)
    assert r.returncode != 0
    assert "spec.template.spec.topologySpreadConstraints[0].maxSkew" in r.stderr + r.stdout
    assert "spec.template.spec.topologySpreadConstraints[0].whenUnsatisfiable" in r.stderr + r.stdout
    assert lab.run("get", "deploy", "bad", check=False).returncode != 0
