"""The scheduler's pure parts: filters (with Kubernetes' reasons), scores, the FitError message."""

import pytest

from controlplane.scheduler import filters
from controlplane.scheduler.algorithm import fit_error_message, schedule
from controlplane.scheduler.nodeinfo import NodeInfo, build_node_infos, pod_requests
from controlplane.scheduler.scheduler import needs_scheduling
from skiff.api import objects_pb2 as pb


def node(name="n1", cpu="2", memory="4Gi", pods="110", labels=None, taints=(), ready="True",
         unschedulable=False, storage=""):
    n = pb.Node(metadata=pb.ObjectMeta(name=name, labels=labels or {}))
    n.status.allocatable.update({k: v for k, v in (("cpu", cpu), ("memory", memory), ("pods", pods),
                                                   ("ephemeral-storage", storage)) if v})
    if ready is not None:
        n.status.conditions.add(type="Ready", status=ready)
    for key, value, effect in taints:
        n.spec.taints.add(key=key, value=value, effect=effect)
    n.spec.unschedulable = unschedulable
    return n


def pod(name="p", cpu="", memory="", node_name="", owner="", selector=None, tolerations=(), phase="",
        deleting=False, namespace="default", storage="", storage_limit=""):
    p = pb.Pod(metadata=pb.ObjectMeta(name=name, namespace=namespace, uid=f"uid-{name}"))
    c = p.spec.containers.add(name="c", image="busybox")
    if cpu:
        c.resources.requests["cpu"] = cpu
    if memory:
        c.resources.requests["memory"] = memory
    if storage:
        c.resources.requests["ephemeral-storage"] = storage
    if storage_limit:
        c.resources.limits["ephemeral-storage"] = storage_limit
    p.spec.node_name = node_name
    p.spec.node_selector.update(selector or {})
    for t in tolerations:
        p.spec.tolerations.add(**t)
    if owner:
        p.metadata.owner_references.add(api_version="apps/v1", kind="ReplicaSet", name=owner, uid=owner,
                                        controller=True)
    p.status.phase = phase
    if deleting:
        p.metadata.deletion_timestamp = "2024-01-01T00:00:00Z"
    return p


def with_affinity(p, *terms, preferred=()):
    """terms: lists of (key, operator, values) ANDed inside a term; terms ORed."""
    na = p.spec.affinity.node_affinity
    if terms:
        req = na.required_during_scheduling_ignored_during_execution
        for exprs in terms:
            term = req.node_selector_terms.add()
            for key, op, values in exprs:
                if key == "metadata.name":
                    term.match_fields.add(key=key, operator=op, values=values)
                else:
                    term.match_expressions.add(key=key, operator=op, values=values)
    for weight, exprs in preferred:
        pref = na.preferred_during_scheduling_ignored_during_execution.add(weight=weight)
        for key, op, values in exprs:
            pref.preference.match_expressions.add(key=key, operator=op, values=values)
    return p


def with_ports(p, *ports):
    """ports: (hostPort, protocol, hostIP) of the pod's first container (containerPort 80+i)."""
    for i, (host_port, protocol, host_ip) in enumerate(ports):
        p.spec.containers[0].ports.add(container_port=80 + i, host_port=host_port, protocol=protocol,
                                       host_ip=host_ip)
    return p


def info(n, *pods):
    return build_node_infos([n], list(pods))[n.metadata.name]


# ---------------------------------------------------------------- filters

FILTER_CASES = [
    ("ready node, small pod", pod(cpu="100m"), node(), (), []),
    ("not ready", pod(), node(ready="False"), (), ["node(s) were not ready"]),
    ("ready unknown", pod(), node(ready="Unknown"), (), ["node(s) were not ready"]),
    ("no Ready condition", pod(), node(ready=None), (), ["node(s) were not ready"]),
    ("cordoned", pod(), node(unschedulable=True), (), ["node(s) were unschedulable"]),
    ("cordoned but tolerated", pod(tolerations=[{"key": "node.kubernetes.io/unschedulable",
                                                 "operator": "Exists", "effect": "NoSchedule"}]),
     node(unschedulable=True), (), []),
    ("cordoned and tainted: first filter only", pod(),
     node(unschedulable=True, taints=[("a", "b", "NoSchedule")]), (), ["node(s) were unschedulable"]),
    ("NoSchedule taint", pod(), node(taints=[("dedicated", "gpu", "NoSchedule")]), (),
     ["node(s) had untolerated taint {dedicated: gpu}"]),
    ("NoExecute taint", pod(), node(taints=[("node.kubernetes.io/unreachable", "", "NoExecute")]), (),
     ["node(s) had untolerated taint {node.kubernetes.io/unreachable: }"]),
    ("PreferNoSchedule only scores", pod(), node(taints=[("a", "b", "PreferNoSchedule")]), (), []),
    ("Equal toleration", pod(tolerations=[{"key": "dedicated", "operator": "Equal", "value": "gpu",
                                           "effect": "NoSchedule"}]),
     node(taints=[("dedicated", "gpu", "NoSchedule")]), (), []),
    ("default operator is Equal", pod(tolerations=[{"key": "dedicated", "value": "gpu"}]),
     node(taints=[("dedicated", "gpu", "NoSchedule")]), (), []),
    ("wrong value", pod(tolerations=[{"key": "dedicated", "value": "cpu"}]),
     node(taints=[("dedicated", "gpu", "NoSchedule")]), (), ["node(s) had untolerated taint {dedicated: gpu}"]),
    ("wrong effect", pod(tolerations=[{"key": "dedicated", "value": "gpu", "effect": "NoExecute"}]),
     node(taints=[("dedicated", "gpu", "NoSchedule")]), (), ["node(s) had untolerated taint {dedicated: gpu}"]),
    ("Exists on the key", pod(tolerations=[{"key": "dedicated", "operator": "Exists"}]),
     node(taints=[("dedicated", "gpu", "NoSchedule"), ("dedicated", "x", "NoExecute")]), (), []),
    ("Exists with no key tolerates everything", pod(tolerations=[{"operator": "Exists"}]),
     node(taints=[("a", "1", "NoSchedule"), ("b", "", "NoExecute")]), (), []),
    ("second taint untolerated", pod(tolerations=[{"key": "a", "operator": "Exists"}]),
     node(taints=[("a", "1", "NoSchedule"), ("b", "2", "NoSchedule")]), (),
     ["node(s) had untolerated taint {b: 2}"]),
    ("nodeSelector matches", pod(selector={"disk": "ssd"}), node(labels={"disk": "ssd", "x": "y"}), (), []),
    ("nodeSelector value differs", pod(selector={"disk": "ssd"}), node(labels={"disk": "hdd"}), (),
     ["node(s) didn't match Pod's node affinity/selector"]),
    ("nodeSelector label missing", pod(selector={"disk": "ssd"}), node(), (),
     ["node(s) didn't match Pod's node affinity/selector"]),
    ("cpu fits exactly", pod(cpu="500m"), node(cpu="1"), (pod("o", cpu="500m", node_name="n1"),), []),
    ("cpu does not fit", pod(cpu="600m"), node(cpu="1"), (pod("o", cpu="500m", node_name="n1"),),
     ["Insufficient cpu"]),
    ("memory does not fit", pod(memory="3Gi"), node(memory="4Gi"), (pod("o", memory="2Gi", node_name="n1"),),
     ["Insufficient memory"]),
    ("cpu and memory", pod(cpu="3", memory="5Gi"), node(), (), ["Insufficient cpu", "Insufficient memory"]),
    ("ephemeral-storage fits exactly", pod(storage="6Gi"), node(storage="10Gi"),
     (pod("o", storage="4Gi", node_name="n1"),), []),
    ("ephemeral-storage does not fit", pod(storage="7Gi"), node(storage="10Gi"),
     (pod("o", storage="4Gi", node_name="n1"),), ["Insufficient ephemeral-storage"]),
    ("ephemeral-storage limit counts as the request", pod(storage_limit="11Gi"), node(storage="10Gi"), (),
     ["Insufficient ephemeral-storage"]),
    ("node reporting no ephemeral-storage", pod(storage="1Mi"), node(), (), ["Insufficient ephemeral-storage"]),
    ("all three", pod(cpu="3", memory="5Gi", storage="1Ti"), node(storage="10Gi"), (),
     ["Insufficient cpu", "Insufficient memory", "Insufficient ephemeral-storage"]),
    ("no storage request fits a node without any", pod(cpu="1"), node(), (), []),
    ("too many pods", pod(), node(pods="1"), (pod("o", node_name="n1"),), ["Too many pods"]),
    ("finished pods free their requests", pod(cpu="1"), node(cpu="1"),
     (pod("done", cpu="1", node_name="n1", phase="Succeeded"), pod("bad", cpu="1", node_name="n1", phase="Failed")),
     []),
    ("terminating pods still hold theirs", pod(cpu="1"), node(cpu="1"),
     (pod("going", cpu="1", node_name="n1", deleting=True),), ["Insufficient cpu"]),
    ("no requests always fit the resources", pod(), node(cpu="0", memory="0"), (), []),
    # NodePorts: (hostIP, protocol, hostPort) must be free; hostIP "" is 0.0.0.0 (every address).
    ("hostPort free", with_ports(pod(), (8080, "TCP", "")), node(),
     (with_ports(pod("o", node_name="n1"), (8081, "TCP", "")),), []),
    ("hostPort taken", with_ports(pod(), (8080, "", "")), node(),
     (with_ports(pod("o", node_name="n1"), (8080, "TCP", "")),), [filters.NO_FREE_PORTS]),
    ("same hostPort, other protocol", with_ports(pod(), (53, "UDP", "")), node(),
     (with_ports(pod("o", node_name="n1"), (53, "TCP", "")),), []),
    ("same hostPort, two distinct hostIPs", with_ports(pod(), (8080, "TCP", "10.0.0.1")), node(),
     (with_ports(pod("o", node_name="n1"), (8080, "TCP", "10.0.0.2")),), []),
    ("same hostPort, same hostIP", with_ports(pod(), (8080, "TCP", "10.0.0.1")), node(),
     (with_ports(pod("o", node_name="n1"), (8080, "TCP", "10.0.0.1")),), [filters.NO_FREE_PORTS]),
    ("wildcard wanted, specific used", with_ports(pod(), (8080, "TCP", "0.0.0.0")), node(),
     (with_ports(pod("o", node_name="n1"), (8080, "TCP", "10.0.0.1")),), [filters.NO_FREE_PORTS]),
    ("specific wanted, wildcard used", with_ports(pod(), (8080, "TCP", "10.0.0.1")), node(),
     (with_ports(pod("o", node_name="n1"), (8080, "TCP", "")),), [filters.NO_FREE_PORTS]),
    ("a containerPort without hostPort uses nothing", with_ports(pod(), (8080, "TCP", "")), node(),
     (with_ports(pod("o", node_name="n1"), (0, "TCP", "")),), []),
    ("finished pods free their hostPorts", with_ports(pod(), (8080, "TCP", "")), node(),
     (with_ports(pod("o", node_name="n1", phase="Succeeded"), (8080, "TCP", "")),), []),
    ("terminating pods still hold their hostPorts", with_ports(pod(), (8080, "TCP", "")), node(),
     (with_ports(pod("o", node_name="n1", deleting=True), (8080, "TCP", "")),), [filters.NO_FREE_PORTS]),
    ("ports checked before resources", with_ports(pod(cpu="3"), (8080, "TCP", "")), node(),
     (with_ports(pod("o", node_name="n1"), (8080, "TCP", "")),), [filters.NO_FREE_PORTS]),
]


@pytest.mark.parametrize("pod_, node_, existing, want", [c[1:] for c in FILTER_CASES],
                         ids=[c[0] for c in FILTER_CASES])
def test_filters(pod_, node_, existing, want):
    assert filters.check(pod_, info(node_, *existing)) == want


AFFINITY_CASES = [
    ("In", [[("zone", "In", ["a", "b"])]], {"zone": "b"}, True),
    ("In, value absent", [[("zone", "In", ["a"])]], {"zone": "c"}, False),
    ("In, label absent", [[("zone", "In", ["a"])]], {}, False),
    ("NotIn", [[("zone", "NotIn", ["a"])]], {"zone": "b"}, True),
    ("NotIn, label absent matches", [[("zone", "NotIn", ["a"])]], {}, True),
    ("NotIn, listed", [[("zone", "NotIn", ["a"])]], {"zone": "a"}, False),
    ("Exists", [[("gpu", "Exists", [])]], {"gpu": ""}, True),
    ("Exists, absent", [[("gpu", "Exists", [])]], {}, False),
    ("DoesNotExist", [[("gpu", "DoesNotExist", [])]], {}, True),
    ("DoesNotExist, present", [[("gpu", "DoesNotExist", [])]], {"gpu": "1"}, False),
    ("Gt", [[("cores", "Gt", ["4"])]], {"cores": "8"}, True),
    ("Gt, equal", [[("cores", "Gt", ["4"])]], {"cores": "4"}, False),
    ("Gt, not a number", [[("cores", "Gt", ["4"])]], {"cores": "many"}, False),
    ("Lt", [[("cores", "Lt", ["4"])]], {"cores": "2"}, True),
    ("Lt, absent", [[("cores", "Lt", ["4"])]], {}, False),
    ("expressions ANDed", [[("zone", "In", ["a"]), ("gpu", "Exists", [])]], {"zone": "a"}, False),
    ("terms ORed", [[("zone", "In", ["a"])], [("gpu", "Exists", [])]], {"gpu": "1"}, True),
    ("matchFields metadata.name", [[("metadata.name", "In", ["n1"])]], {}, True),
    ("matchFields other node", [[("metadata.name", "In", ["n2"])]], {}, False),
    ("empty term matches nothing", [[]], {"zone": "a"}, False),
]


@pytest.mark.parametrize("terms, labels, fits", [c[1:] for c in AFFINITY_CASES],
                         ids=[c[0] for c in AFFINITY_CASES])
def test_required_node_affinity(terms, labels, fits):
    p = with_affinity(pod(), *terms)
    reasons = filters.check(p, info(node(labels=labels)))
    assert reasons == ([] if fits else ["node(s) didn't match Pod's node affinity/selector"])


def test_node_selector_and_affinity_must_both_match():
    p = with_affinity(pod(selector={"disk": "ssd"}), [("zone", "In", ["a"])])
    assert filters.check(p, info(node(labels={"disk": "ssd", "zone": "a"}))) == []
    assert filters.check(p, info(node(labels={"disk": "ssd", "zone": "b"}))) != []
    assert filters.check(p, info(node(labels={"zone": "a"}))) != []


def test_pod_requests_use_limits_when_absent_and_the_largest_init_container():
    p = pod()
    p.spec.containers[0].resources.limits["cpu"] = "300m"
    p.spec.containers.add(name="b", image="x").resources.requests["memory"] = "64Mi"
    init = p.spec.init_containers.add(name="init", image="x")
    init.resources.requests["cpu"] = "1"
    r = pod_requests(p)
    assert (r.cpu_m, r.memory_b) == (1000, 64 * 1024 * 1024)


def test_ephemeral_storage_requests_sum_containers_and_take_the_largest_init_container():
    p = pod(storage="1Gi")
    p.spec.containers.add(name="b", image="x").resources.limits["ephemeral-storage"] = "2Gi"
    p.spec.init_containers.add(name="init", image="x").resources.requests["ephemeral-storage"] = "5Gi"
    assert pod_requests(p).ephemeral_b == 5 * 1024 ** 3
    p.spec.init_containers[0].resources.requests["ephemeral-storage"] = "2Gi"
    assert pod_requests(p).ephemeral_b == 3 * 1024 ** 3


@pytest.mark.parametrize("inits,app_cpu,expected_m", [
    # (init containers as (cpu, sidecar?)), the app's cpu request, Kubernetes' PodRequests
    ((("200m", True),), "300m", 500),                       # a sidecar runs beside the app: summed
    ((("200m", True), ("1", False)), "300m", 1200),         # an init after it runs beside it: 200m + 1
    ((("1", False), ("200m", True)), "300m", 1000),         # an init before it runs alone: 1
    ((("100m", True), ("100m", True), ("150m", False)), "100m", 350),   # 2 sidecars + init beats 2 + app
])
def test_pod_requests_count_sidecars_beside_the_app_and_the_later_init_containers(inits, app_cpu, expected_m):
    p = pod()
    p.spec.containers[0].resources.requests["cpu"] = app_cpu
    for i, (cpu, sidecar) in enumerate(inits):
        c = p.spec.init_containers.add(name=f"i{i}", image="x")
        c.resources.requests["cpu"] = cpu
        if sidecar:
            c.restart_policy = "Always"
    assert pod_requests(p).cpu_m == expected_m


def test_missing_allocatable_falls_back_to_capacity():
    n = node(cpu="", memory="", pods="")
    n.status.capacity.update({"cpu": "1", "memory": "1Gi", "ephemeral-storage": "2Gi"})
    i = NodeInfo(n)
    assert (i.allocatable.cpu_m, i.allocatable.memory_b, i.allocatable.pods) == (1000, 1024 ** 3, 110)
    assert i.allocatable.ephemeral_b == 2 * 1024 ** 3


# ---------------------------------------------------------------- the FitError message

MESSAGE_CASES = [
    ("all short of cpu", 3, {"a": ("Insufficient cpu",), "b": ("Insufficient cpu",), "c": ("Insufficient cpu",)},
     "0/3 nodes are available: 3 Insufficient cpu."),
    ("sorted as Kubernetes sorts: by the whole '<count> <reason>' text", 3,
     {"a": ("Insufficient cpu",), "b": ("Insufficient cpu",), "c": ("node(s) had untolerated taint {key: value}",)},
     "0/3 nodes are available: 1 node(s) had untolerated taint {key: value}, 2 Insufficient cpu."),
    ("one node, two reasons", 1, {"a": ("Insufficient cpu", "Insufficient memory")},
     "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory."),
    ("string sort puts 10 before 2", 12,
     {**{f"n{i}": ("Insufficient cpu",) for i in range(10)}, "x": ("node(s) were not ready",),
      "y": ("node(s) were not ready",)},
     "0/12 nodes are available: 10 Insufficient cpu, 2 node(s) were not ready."),
    ("no nodes at all", 0, {}, "no nodes available to schedule pods"),
]


@pytest.mark.parametrize("total, filtered, want", [c[1:] for c in MESSAGE_CASES], ids=[c[0] for c in MESSAGE_CASES])
def test_fit_error_message(total, filtered, want):
    assert fit_error_message(total, filtered) == want


def test_schedule_reports_each_nodes_reason_and_the_message():
    nodes = [node("n1", cpu="1"), node("n2", cpu="1"), node("n3", taints=[("dedicated", "gpu", "NoSchedule")])]
    d = schedule(pod(cpu="2"), build_node_infos(nodes, []))
    assert d.node is None
    assert d.filtered == {"n1": ("Insufficient cpu",), "n2": ("Insufficient cpu",),
                          "n3": ("node(s) had untolerated taint {dedicated: gpu}",)}
    assert d.message == "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient cpu."
    assert "n3:filtered(node(s) had untolerated taint {dedicated: gpu})" in d.explain()


def test_a_taken_host_port_sends_the_pod_to_the_other_node_or_leaves_it_pending():
    used = [with_ports(pod("first", node_name="n1"), (8080, "TCP", ""))]
    assert schedule(with_ports(pod("second"), (8080, "TCP", "")),
                    build_node_infos([node("n1"), node("n2")], used)).node == "n2"
    d = schedule(with_ports(pod("second"), (8080, "TCP", "")), build_node_infos([node("n1")], used))
    assert d.node is None
    assert d.message == "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports."


# ---------------------------------------------------------------- scores and the choice

def test_least_allocated_prefers_the_emptier_node():
    nodes = [node("n1"), node("n2")]
    busy = [pod("x", cpu="1500m", memory="3Gi", node_name="n1")]
    assert schedule(pod(cpu="100m"), build_node_infos(nodes, busy)).node == "n2"


def test_ties_break_by_node_name():
    nodes = [node("n3"), node("n1"), node("n2")]
    assert schedule(pod(), build_node_infos(nodes, [])).node == "n1"


def test_same_owner_pods_spread_even_against_load():
    nodes = [node("n1"), node("n2")]
    existing = [pod("a", owner="rs1", node_name="n1"),
                pod("other1", cpu="500m", node_name="n2"), pod("other2", cpu="500m", node_name="n2")]
    d = schedule(pod("new", owner="rs1"), build_node_infos(nodes, existing))
    assert d.node == "n2", d.explain()


def test_pods_being_deleted_do_not_count_for_spreading():
    nodes = [node("n1"), node("n2")]
    existing = [pod("a", owner="rs1", node_name="n1", deleting=True), pod("b", owner="rs1", node_name="n2")]
    assert schedule(pod("new", owner="rs1"), build_node_infos(nodes, existing)).node == "n1"


def test_prefer_no_schedule_lowers_the_score():
    nodes = [node("n1", taints=[("soft", "x", "PreferNoSchedule")]), node("n2")]
    assert schedule(pod(), build_node_infos(nodes, [])).node == "n2"
    tolerant = pod(tolerations=[{"key": "soft", "operator": "Exists"}])
    assert schedule(tolerant, build_node_infos(nodes, [])).node == "n1"


def test_preferred_node_affinity_scores():
    nodes = [node("n1"), node("n2", labels={"zone": "b"})]
    p = with_affinity(pod(), preferred=[(50, [("zone", "In", ["b"])])])
    assert schedule(p, build_node_infos(nodes, [])).node == "n2"


def test_six_replicas_at_once_spread_two_per_node():
    """What the scheduler loop does with assumed pods: each decision sees the previous ones."""
    nodes = [node("n1"), node("n2"), node("n3")]
    bound = []
    for i in range(6):
        p = pod(f"web-{i}", cpu="100m", owner="rs-web")
        choice = schedule(p, build_node_infos(nodes, bound)).node
        p.spec.node_name = choice
        bound.append(p)
    counts = {n: sum(1 for p in bound if p.spec.node_name == n) for n in ("n1", "n2", "n3")}
    assert counts == {"n1": 2, "n2": 2, "n3": 2}


def test_needs_scheduling():
    assert needs_scheduling(pod())
    other = pod()
    other.spec.scheduler_name = "my-scheduler"
    assert not needs_scheduling(other)
    named = pod()
    named.spec.scheduler_name = "default-scheduler"
    assert needs_scheduling(named)
    assert not needs_scheduling(pod(node_name="n1"))
    assert not needs_scheduling(pod(deleting=True))
    assert not needs_scheduling(pod(phase="Succeeded"))
