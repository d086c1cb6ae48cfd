"""The DaemonSet planner: which nodes run a pod, rolling updates with maxUnavailable / maxSurge,
OnDelete, failed pods, placement, status; and the pod it creates."""

import datetime

import pytest

from controlplane.controllers.daemonset_plan import (CONTROLLER_REVISION_HASH, DAEMON_TOLERATIONS, NodeVerdict,
                                                     daemon_pod, max_counts, node_verdict, plan_daemonset,
                                                     revision_hash, template_pod)
from controlplane.scheduler import filters
from controlplane.scheduler.nodeinfo import NodeInfo
from skiff.api import objects_pb2 as pb

NOW = datetime.datetime(2024, 5, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
DS_UID = "ds-uid"


def ds(unavailable=1, surge=0, strategy="RollingUpdate", node_selector=None, tolerations=(), image="agent:1",
       min_ready=0, cpu=None, host_network=False):
    d = pb.DaemonSet(metadata=pb.ObjectMeta(name="agent", namespace="kube-system", uid=DS_UID, generation=3))
    d.spec.selector.match_labels["app"] = "agent"
    d.spec.template.metadata.labels["app"] = "agent"
    c = d.spec.template.spec.containers.add(name="main", image=image)
    if cpu:
        c.resources.requests["cpu"] = cpu
    d.spec.template.spec.node_selector.update(node_selector or {})
    d.spec.template.spec.host_network = host_network
    for key, effect in tolerations:
        d.spec.template.spec.tolerations.add(key=key, operator="Exists", effect=effect)
    d.spec.min_ready_seconds = min_ready
    d.spec.update_strategy.type = strategy
    if strategy == "RollingUpdate":
        ru = d.spec.update_strategy.rolling_update
        for field, v in (("max_unavailable", unavailable), ("max_surge", surge)):
            if isinstance(v, str):
                getattr(ru, field).str_val = v
            else:
                getattr(ru, field).int_val = v
    return d


NEW = revision_hash(ds())
OLD = revision_hash(ds(image="agent:0"))


def node(name, labels=None, taints=(), unschedulable=False, ready=True, cpu="4"):
    n = pb.Node(metadata=pb.ObjectMeta(name=name, labels=labels or {}))
    for key, effect in taints:
        n.spec.taints.add(key=key, effect=effect)
    n.spec.unschedulable = unschedulable
    n.status.conditions.add(type="Ready", status="True" if ready else "Unknown")
    n.status.allocatable.update({"cpu": cpu, "memory": "8Gi", "pods": "110"})
    return n


def pod(name, on, rev=NEW, owner=DS_UID, phase="Running", ready=True, deleting=False,
        created="2024-05-01T11:00:00Z", ready_since="2024-05-01T11:00:00Z", cpu=None, namespace="kube-system"):
    labels = {"app": "agent", CONTROLLER_REVISION_HASH: rev} if owner is not None else {"app": "other"}
    p = pb.Pod(metadata=pb.ObjectMeta(name=name, namespace=namespace, uid=f"uid-{name}", labels=labels,
                                      creation_timestamp=created))
    if owner:
        p.metadata.owner_references.add(api_version="apps/v1", kind="DaemonSet", name="agent", uid=owner,
                                        controller=True)
    p.spec.node_name = on
    c = p.spec.containers.add(name="main", image="x")
    if cpu:
        c.resources.requests["cpu"] = cpu
    p.status.phase = phase
    p.status.conditions.add(type="Ready", status="True" if ready else "False", last_transition_time=ready_since)
    if deleting:
        p.metadata.deletion_timestamp = "2024-05-01T11:59:00Z"
    return p


N3 = [node("n1"), node("n2"), node("n3")]
N4 = N3 + [node("n4")]
CORDONED = node("n9", unschedulable=True, taints=[("node.kubernetes.io/unschedulable", "NoSchedule")])
UNREACHABLE = node("n8", ready=False, taints=[("node.kubernetes.io/unreachable", "NoExecute")])
GPU = node("g1", labels={"gpu": "yes"}, taints=[("dedicated", "NoSchedule")])
EXEC = node("x1", taints=[("evict", "NoExecute")])


# ---------------------------------------------------------------- which nodes, what to create and delete

MANAGE = [
    # (id, ds, nodes, pods, kwargs, want create, want delete)
    ("a pod on every node", ds(), N3, [], {}, ("n1", "n2", "n3"), ()),
    ("a node that joins gets its pod", ds(), N4, [pod("a", "n1"), pod("b", "n2"), pod("c", "n3")], {},
     ("n4",), ()),
    ("nothing to do when every node has one", ds(), N3, [pod("a", "n1"), pod("b", "n2"), pod("c", "n3")], {},
     (), ()),
    ("nodeSelector limits the nodes", ds(node_selector={"gpu": "yes"}, tolerations=[("dedicated", "NoSchedule")]),
     N3 + [GPU], [], {}, ("g1",), ()),
    ("a NoSchedule taint blocks a new pod", ds(), [GPU], [], {}, (), ()),
    ("cordoned and unreachable nodes still get one (automatic tolerations)", ds(), [CORDONED, UNREACHABLE],
     [], {}, ("n8", "n9"), ()),
    ("a NoSchedule taint keeps an existing pod", ds(), [GPU], [pod("a", "g1")], {}, (), ()),
    ("an untolerated NoExecute taint removes the pod", ds(), [EXEC], [pod("a", "x1")], {}, (), ("a",)),
    ("a node whose labels stop matching loses its pod", ds(node_selector={"gpu": "yes"}), N3,
     [pod("a", "n1")], {}, (), ("a",)),
    ("a terminating pod holds the node until it is gone", ds(), N3,
     [pod("a", "n1", deleting=True), pod("b", "n2"), pod("c", "n3")], {}, (), ()),
    ("a finished pod being deleted does not", ds(), N3,
     [pod("a", "n1", deleting=True, phase="Succeeded"), pod("b", "n2"), pod("c", "n3")], {}, ("n1",), ()),
    ("two pods on a node: the newer goes", ds(), N3,
     [pod("a", "n1"), pod("a2", "n1", created="2024-05-01T11:30:00Z"), pod("b", "n2"), pod("c", "n3")], {},
     (), ("a2",)),
    ("a failed pod is deleted", ds(), N3, [pod("a", "n1", phase="Failed"), pod("b", "n2"), pod("c", "n3")], {},
     (), ("a",)),
    ("a failed pod in back-off stays", ds(), N3, [pod("a", "n1", phase="Failed"), pod("b", "n2"), pod("c", "n3")],
     {"failed_backoff": frozenset({"n1"})}, (), ()),
    ("a succeeded pod is deleted", ds(), N3,
     [pod("a", "n1", phase="Succeeded"), pod("b", "n2"), pod("c", "n3")], {}, (), ("a",)),
    ("a pod of a node that is gone is left to the pod GC", ds(), N3,
     [pod("a", "n1"), pod("b", "n2"), pod("c", "n3"), pod("z", "gone")], {}, (), ()),
    ("unsatisfied expectations: status only", ds(), N3, [], {"pending": True}, (), ()),
    ("no room for the pod: not placed", ds(cpu="2"), [node("n1", cpu="2")],
     [pod("big", "n1", owner=None, cpu="1500m", namespace="other")], {}, (), ()),
    ("room once the DaemonSet's own pods are left out", ds(cpu="2", surge=1, unavailable=0), [node("n1", cpu="2")],
     [pod("a", "n1", rev=OLD, cpu="2")], {}, ("n1",), ()),
]


@pytest.mark.parametrize("case", MANAGE, ids=[c[0] for c in MANAGE])
def test_manage(case):
    _id, d, nodes, pods, kwargs, want_create, want_delete = case
    plan = plan_daemonset(d, nodes, pods, now=NOW, **kwargs)
    assert plan.create == want_create
    assert sorted(plan.delete) == sorted(want_delete)


def test_failed_pods_are_reported_and_placement_failures_named():
    plan = plan_daemonset(ds(), N3, [pod("a", "n1", phase="Failed"), pod("b", "n2"), pod("c", "n3")], now=NOW)
    assert plan.failed == (("a", "n1"),)
    plan = plan_daemonset(ds(cpu="2"), [node("n1", cpu="1")], [], now=NOW)
    assert plan.unplaceable == (("n1", ("Insufficient cpu",)),)
    assert plan.status.desired_number_scheduled == 1 and plan.status.current_number_scheduled == 0


def test_resources_count_every_namespace_given_node_pods():
    other = pod("big", "n1", owner=None, cpu="1500m", namespace="other")
    plan = plan_daemonset(ds(cpu="1"), [node("n1", cpu="2")], [], node_pods=[other], now=NOW)
    assert plan.unplaceable == (("n1", ("Insufficient cpu",)),) and plan.create == ()


def test_adopts_orphans_and_releases_strays():
    orphan = pod("o", "n1", owner="")
    stray = pod("s", "n2")
    stray.metadata.labels["app"] = "elsewhere"
    plan = plan_daemonset(ds(), N3, [orphan, stray, pod("c", "n3")], now=NOW)
    assert plan.adopt == ("o",) and plan.release == ("s",)
    assert plan.create == ("n2",)


def test_a_daemonset_being_deleted_neither_creates_deletes_nor_adopts():
    """Foreground/Orphan deletion keeps the DaemonSet with deletionTimestamp: the garbage
    collector decides about its pods, the controller only reports status."""
    d = ds()
    d.metadata.deletion_timestamp = "2024-05-01T12:00:00Z"
    stale = pod("old", "n1", rev=OLD)
    plan = plan_daemonset(d, N3, [stale, pod("o", "n2", owner="")], now=NOW)
    assert plan.create == () and plan.delete == () and plan.adopt == ()
    assert plan.status.desired_number_scheduled == 3


# ---------------------------------------------------------------- rolling updates

def olds(nodes, **kw):
    return [pod(f"old-{n.metadata.name}", n.metadata.name, rev=OLD, **kw) for n in nodes]


ROLL = [
    # (id, ds, nodes, pods, want create, want delete)
    ("maxUnavailable 1: one old pod at a time", ds(), N4, olds(N4), (), ("old-n1",)),
    ("maxUnavailable 2", ds(unavailable=2), N4, olds(N4), (), ("old-n1", "old-n2")),
    ("maxUnavailable 50% of 3 rounds up to 2", ds(unavailable="50%"), N3, olds(N3), (), ("old-n1", "old-n2")),
    ("a node without a pod counts as unavailable (manage creates it first)", ds(), N4, olds(N4)[1:],
     ("n1",), ()),
    ("a new pod that is not ready yet holds the budget", ds(), N3,
     [pod("new-n1", "n1", ready=False)] + olds(N3)[1:], (), ()),
    ("next node once the new pod is available", ds(), N3, [pod("new-n1", "n1")] + olds(N3)[1:], (), ("old-n2",)),
    ("an unavailable old pod is replaced at once, beyond the budget", ds(), N3,
     [pod("new-n1", "n1", ready=False), pod("old-n2", "n2", rev=OLD, ready=False), olds(N3)[2]],
     (), ("old-n2",)),
    ("minReadySeconds: ready but not available yet holds the budget", ds(min_ready=60), N3,
     [pod("new-n1", "n1", ready_since="2024-05-01T11:59:30Z")] + olds(N3)[1:], (), ()),
    ("done: nothing", ds(), N3, [pod(f"new-{n.metadata.name}", n.metadata.name) for n in N3], (), ()),
    ("OnDelete never replaces", ds(strategy="OnDelete"), N3, olds(N3), (), ()),
    ("OnDelete: a deleted old pod comes back new", ds(strategy="OnDelete"), N3, olds(N3)[1:], ("n1",), ()),
    ("maxSurge 1: one new pod beside an old one", ds(unavailable=0, surge=1), N3, olds(N3), ("n1",), ()),
    ("maxSurge 2", ds(unavailable=0, surge=2), N3, olds(N3), ("n1", "n2"), ()),
    ("surge: new pod not ready yet, nothing else", ds(unavailable=0, surge=1), N3,
     olds(N3) + [pod("new-n1", "n1", ready=False, created="2024-05-01T11:30:00Z")], (), ()),
    ("surge: new pod available, old one goes", ds(unavailable=0, surge=1), N3,
     olds(N3) + [pod("new-n1", "n1", created="2024-05-01T11:30:00Z")], (), ("old-n1",)),
    ("surge: an unavailable old pod gets its replacement beyond maxSurge", ds(unavailable=0, surge=1), N3,
     [pod("old-n1", "n1", rev=OLD, ready=False)] + olds(N3)[1:], ("n1", "n2"), ()),
]


@pytest.mark.parametrize("case", ROLL, ids=[c[0] for c in ROLL])
def test_rolling_update(case):
    _id, d, nodes, pods, want_create, want_delete = case
    plan = plan_daemonset(d, nodes, pods, now=NOW)
    assert plan.create == want_create
    assert plan.delete == want_delete


def test_rollout_replaces_node_by_node_never_more_than_max_unavailable():
    """Drive the planner to the end: each step, act on the plan as the cluster would (deleted pods
    vanish, created pods become ready); no more than maxUnavailable nodes ever lack a ready pod."""
    d = ds(unavailable=2)
    nodes = [node(f"n{i}") for i in range(1, 8)]
    pods = olds(nodes)
    for step in range(20):
        plan = plan_daemonset(d, nodes, pods, now=NOW)
        pods = [p for p in pods if p.metadata.name not in plan.delete]
        pods += [pod(f"new-{n}-{step}", n) for n in plan.create]
        ready_nodes = {p.spec.node_name for p in pods}
        assert len(nodes) - len(ready_nodes) <= 2
        if not plan.create and not plan.delete:
            break
    assert all(p.metadata.labels[CONTROLLER_REVISION_HASH] == NEW for p in pods) and len(pods) == 7
    assert step < 10


def test_surge_rollout_never_leaves_a_node_without_an_available_pod():
    d = ds(unavailable=0, surge=1)
    nodes = [node(f"n{i}") for i in range(1, 5)]
    pods = olds(nodes)
    for step in range(30):
        plan = plan_daemonset(d, nodes, pods, now=NOW)
        pods = [p for p in pods if p.metadata.name not in plan.delete]
        assert {p.spec.node_name for p in pods} == {n.metadata.name for n in nodes}
        assert len(pods) <= len(nodes) + 1
        pods += [pod(f"new-{n}-{step}", n, created=f"2024-05-01T11:{30 + step}:00Z") for n in plan.create]
        if not plan.create and not plan.delete:
            break
    assert sorted(p.spec.node_name for p in pods) == ["n1", "n2", "n3", "n4"]
    assert all(p.metadata.labels[CONTROLLER_REVISION_HASH] == NEW for p in pods)


@pytest.mark.parametrize("unavailable,surge,desired,want", [
    (1, 0, 5, (0, 1)), ("20%", 0, 7, (0, 2)), ("100%", 0, 3, (0, 3)), (0, "10%", 7, (1, 0)),
    (0, 0, 3, (0, 1)), (0, 0, 0, (0, 0)),
])
def test_max_counts_round_up(unavailable, surge, desired, want):
    assert max_counts(ds(unavailable=unavailable, surge=surge), desired) == want


# ---------------------------------------------------------------- status

def test_status_counts_nodes():
    pods = [pod("a", "n1"), pod("b", "n2", rev=OLD), pod("c", "n3", ready=False), pod("x", "x1")]
    gpu_only = ds()
    st = plan_daemonset(gpu_only, N4 + [EXEC], pods, now=NOW).status
    assert (st.desired_number_scheduled, st.current_number_scheduled, st.number_ready, st.number_available,
            st.updated_number_scheduled, st.number_misscheduled, st.number_unavailable,
            st.observed_generation) == (4, 3, 2, 2, 2, 1, 2, 3)


def test_status_available_after_min_ready_seconds_and_recheck():
    plan = plan_daemonset(ds(min_ready=60), [node("n1")], [pod("a", "n1", ready_since="2024-05-01T11:59:30Z")],
                          now=NOW)
    assert plan.status.number_ready == 1 and plan.status.number_available == 0
    assert plan.recheck_s == pytest.approx(30.05)


# ---------------------------------------------------------------- the pod

def test_daemon_pod_is_bound_pinned_and_tolerates_what_kubernetes_adds():
    d = ds(host_network=True)
    d.spec.template.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution \
        .node_selector_terms.add().match_expressions.add(key="zone", operator="In", values=["a"])
    p = daemon_pod(d, "n2", "abc")
    assert p.spec.node_name == "n2"
    assert p.metadata.generate_name == "agent-" and p.metadata.namespace == "kube-system"
    assert p.metadata.labels == {"app": "agent", CONTROLLER_REVISION_HASH: "abc"}
    ref = p.metadata.owner_references[0]
    assert (ref.kind, ref.name, ref.uid, ref.controller) == ("DaemonSet", "agent", DS_UID, True)
    terms = p.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution.node_selector_terms
    assert len(terms) == 1 and not terms[0].match_expressions
    assert [(f.key, f.operator, list(f.values)) for f in terms[0].match_fields] == [("metadata.name", "In", ["n2"])]
    have = {(t.key, t.effect) for t in p.spec.tolerations if t.operator == "Exists"}
    assert set(DAEMON_TOLERATIONS) | {("node.kubernetes.io/network-unavailable", "NoSchedule")} == have
    # the scheduler's own filters agree the pod belongs on n2 and nowhere else
    assert filters.node_affinity(p, NodeInfo(node("n2"))) == []
    assert filters.node_affinity(p, NodeInfo(node("n1"))) == [filters.AFFINITY_MISMATCH]
    # the unreachable toleration has no tolerationSeconds: the node lifecycle never evicts it
    from controlplane.controllers.nodelifecycle_plan import eviction_delay_s
    assert eviction_delay_s(p, 5.0) is None


def test_template_tolerations_are_not_duplicated():
    d = ds(tolerations=[("node.kubernetes.io/unschedulable", "NoSchedule")])
    keys = [t.key for t in template_pod(d).spec.tolerations]
    assert keys.count("node.kubernetes.io/unschedulable") == 1


def test_node_verdicts():
    p = template_pod(ds())
    assert node_verdict(p, GPU).should_run is False and node_verdict(p, GPU).should_continue is True
    assert node_verdict(p, EXEC).should_continue is False
    assert node_verdict(p, CORDONED).should_run is True
    mismatch = node_verdict(template_pod(ds(node_selector={"gpu": "yes"})), node("n1"))
    assert mismatch == NodeVerdict(False, False, (filters.AFFINITY_MISMATCH,))


def test_revision_hash_follows_the_template_and_collision_count():
    d = ds()
    assert revision_hash(d) == NEW != OLD
    d.status.collision_count = 1
    assert revision_hash(d) != NEW
