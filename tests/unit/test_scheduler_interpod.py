"""InterPodAffinity and PodTopologySpread: the scenarios of testdata/scheduling_interpod.yaml
(hand-made nodes and bound pods, one incoming pod, the reasons per node and the choice), plus
the FailedScheduling detail (which filter rejected which node) and its bound for big clusters."""

import os

import pytest
import yaml

from controlplane.scheduler import algorithm, podterms
from controlplane.scheduler.algorithm import node_detail, schedule
from controlplane.scheduler.nodeinfo import build_node_infos
from skiff.api import codec, kinds

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "testdata", "scheduling_interpod.yaml")) as f:
    SCENARIOS = yaml.safe_load(f)


def make_node(name, spec):
    spec = dict(spec or {})
    taints = []
    for text in spec.pop("taints", []):
        kv, effect = text.rsplit(":", 1)
        key, _, value = kv.partition("=")
        taints.append({"key": key, "value": value, "effect": effect})
    cpu = spec.pop("cpu", "2")
    doc = {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **spec}},
           "spec": {"taints": taints},
           "status": {"allocatable": {"cpu": cpu, "memory": "4Gi", "pods": "110"},
                      "conditions": [{"type": "Ready", "status": "True"}]}}
    return codec.decode(kinds.BY_NAME["Node"].message, doc)


def make_pod(p, default_name="incoming"):
    name = p.get("name", default_name)
    container = {"name": "c", "image": "busybox"}
    if p.get("cpu"):
        container["resources"] = {"requests": {"cpu": p["cpu"]}}
    spec = {"containers": [container], **(p.get("spec") or {})}
    if p.get("node"):
        spec["nodeName"] = p["node"]
    meta = {"name": name, "namespace": p.get("namespace", "default"), "uid": f"uid-{name}",
            "labels": p.get("labels") or {}}
    if p.get("deleting"):
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    doc = {"metadata": meta, "spec": spec}
    if p.get("phase"):
        doc["status"] = {"phase": p["phase"]}
    return codec.decode(kinds.BY_NAME["Pod"].message, doc)


def run(scenario):
    nodes = [make_node(n, spec) for n, spec in scenario["nodes"].items()]
    bound = [make_pod(p) for p in scenario.get("pods") or []]
    ns_labels = scenario.get("namespaces") or {"default": {}}
    return schedule(make_pod(scenario["pod"]), build_node_infos(nodes, bound), ns_labels)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s["name"] for s in SCENARIOS])
def test_scenario(scenario):
    d = run(scenario)
    assert {n: "; ".join(r) for n, r in d.filtered.items()} == (scenario["filtered"] or {}), d.explain()
    assert d.node == scenario["node"], d.explain()
    if "message" in scenario:
        assert d.message == scenario["message"]


def scenario(name):
    return next(s for s in SCENARIOS if s["name"] == name)


def test_the_detail_names_the_filter_and_the_nodes():
    d = run(scenario("resources are checked before inter-pod affinity (Kubernetes' filter order)"))
    assert d.rejected_by == {"n1": "NodeResourcesFit", "n2": "InterPodAffinity", "n3": "InterPodAffinity"}
    assert d.detail == ("Rejected by: InterPodAffinity: n2, n3 (node(s) didn't match pod anti-affinity rules); "
                        "NodeResourcesFit: n1 (Insufficient cpu).")


def test_the_detail_names_the_spread_filter():
    d = run(scenario("minDomains counts missing domains as empty"))
    assert d.detail == "Rejected by: PodTopologySpread: n1, n2 (node(s) didn't match pod topology spread constraints)."


def test_the_detail_is_bounded_for_big_clusters():
    filtered = {f"node{i:02d}": ("Insufficient cpu",) for i in range(25)}
    filtered.update({f"tainted{i:02d}": (f"node(s) had untolerated taint {{k{i}: v}}",) for i in range(100)})
    by = {n: "NodeResourcesFit" if n.startswith("node") else "TaintToleration" for n in filtered}
    text = node_detail(filtered, by)
    assert text.startswith("Rejected by: NodeResourcesFit: node00, node01, node02, node03, node04 and 20 more "
                           "(Insufficient cpu); TaintToleration: tainted00 (")
    assert len(text) <= algorithm.DETAIL_MAX_CHARS and text.endswith(" ...")
    assert node_detail({}, {}) == ""


def test_a_chosen_node_has_no_detail():
    d = run(scenario("affinity on hostname lands next to the target"))
    assert d.node == "n2" and d.detail == ""


def test_compiled_terms_are_cached_per_resource_version():
    pod = make_pod(scenario("affinity on hostname lands next to the target")["pod"])
    pod.metadata.resource_version = "7"
    first = podterms.compile_terms(pod)
    assert podterms.compile_terms(pod) is first
    pod.metadata.resource_version = "8"
    pod.spec.affinity.pod_affinity.required_during_scheduling_ignored_during_execution[0].topology_key = "zone"
    assert podterms.compile_terms(pod).required_affinity[0].topology_key == "zone"


def test_own_spread_constraints_replace_the_default_owner_spreading():
    """A ReplicaSet's pods spread by owner unless they bring constraints of their own."""
    from controlplane.scheduler import scores
    nodes = [make_node("n1", {}), make_node("n2", {})]
    mine = make_pod({"name": "old", "node": "n1"})
    mine.metadata.owner_references.add(kind="ReplicaSet", name="rs", uid="rs", controller=True)
    infos = build_node_infos(nodes, [mine])
    new = make_pod({"name": "new"})
    new.metadata.owner_references.add(kind="ReplicaSet", name="rs", uid="rs", controller=True)
    assert scores.spread_by_owner(new, list(infos.values())) == {"n1": 0, "n2": 100}
    new.spec.topology_spread_constraints.add(max_skew=1, topology_key="zone", when_unsatisfiable="ScheduleAnyway")
    assert scores.spread_by_owner(new, list(infos.values())) == {"n1": 100, "n2": 100}
