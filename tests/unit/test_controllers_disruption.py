"""The disruption controller's planner: a PodDisruptionBudget's status from its pods and
their controllers' scale, table-driven against Kubernetes' rules (disruption.go)."""

import datetime

import pytest

from controlplane.controllers.disruption_plan import DELETION_TIMEOUT_S, plan_disruption
from skiff.api import objects_pb2 as pb
from skiff.api.wellknown import rfc3339

NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)


def ago(seconds):
    return rfc3339(NOW - datetime.timedelta(seconds=seconds))


def owner(kind, name, uid=None):
    return pb.OwnerReference(kind=kind, name=name, uid=uid or f"uid-{name}", controller=True)


def pod(name, ready=True, ns="default", labels=None, ctrl=("ReplicaSet", "web-1"), deleting=False):
    p = pb.Pod(metadata=pb.ObjectMeta(name=name, namespace=ns, labels={"app": "web"} if labels is None else labels))
    if ctrl:
        p.metadata.owner_references.append(owner(*ctrl))
    p.status.phase = "Running"
    p.status.conditions.add(type="Ready", status="True" if ready else "False")
    if deleting:
        p.metadata.deletion_timestamp = ago(1)
    return p


def rs(name, replicas, deploy=None):
    r = pb.ReplicaSet(metadata=pb.ObjectMeta(name=name, namespace="default", uid=f"uid-{name}"))
    r.spec.replicas = replicas
    if deploy:
        r.metadata.owner_references.append(owner("Deployment", deploy))
    return r


def deploy(name, replicas):
    d = pb.Deployment(metadata=pb.ObjectMeta(name=name, namespace="default", uid=f"uid-{name}"))
    d.spec.replicas = replicas
    return d


def pdb(min_available=None, max_unavailable=None, selector=True, disrupted=None, generation=1, policy=None):
    b = pb.PodDisruptionBudget(metadata=pb.ObjectMeta(name="web", namespace="default", generation=generation))
    for field, value in (("min_available", min_available), ("max_unavailable", max_unavailable)):
        if value is None:
            continue
        target = getattr(b.spec, field)
        if isinstance(value, int):
            target.int_val = value
        else:
            target.str_val = value
    if selector:
        b.spec.selector.match_labels["app"] = "web"
    for name, when in (disrupted or {}).items():
        b.status.disrupted_pods[name] = when
    return b


def lookup_of(*objs):
    by_key = {(type(o).__name__, o.metadata.namespace, o.metadata.name): o for o in objs}
    return lambda kind, ns, name: by_key.get((kind, ns, name))


THREE = [pod("a"), pod("b"), pod("c")]
RS3 = lookup_of(rs("web-1", 3))

# (case, budget, pods, controllers) -> (expected, desired, healthy, allowed, condition reason)
CASES = [
    ("minAvailable 2 of 3 ready", pdb(min_available=2), THREE, RS3, (3, 2, 3, 1, "SufficientPods")),
    ("minAvailable int counts pods, not scale", pdb(min_available=2), THREE[:2], lookup_of(rs("web-1", 5)),
     (2, 2, 2, 0, "InsufficientPods")),
    ("minAvailable 3 of 3: nothing allowed", pdb(min_available=3), THREE, RS3, (3, 3, 3, 0, "InsufficientPods")),
    ("an unready pod is not healthy", pdb(min_available=2), [pod("a"), pod("b"), pod("c", ready=False)], RS3,
     (3, 2, 2, 0, "InsufficientPods")),
    ("a deleting pod is not healthy", pdb(min_available=1), [pod("a"), pod("b", deleting=True)], RS3,
     (2, 1, 1, 0, "InsufficientPods")),
    ("minAvailable 50% of scale 3 rounds up to 2", pdb(min_available="50%"), THREE, RS3,
     (3, 2, 3, 1, "SufficientPods")),
    ("minAvailable % uses the scale, not the pods seen", pdb(min_available="50%"), THREE[:1],
     lookup_of(rs("web-1", 4)), (4, 2, 1, 0, "InsufficientPods")),
    ("maxUnavailable 1 of scale 3", pdb(max_unavailable=1), THREE, RS3, (3, 2, 3, 1, "SufficientPods")),
    ("maxUnavailable 34% of 3 rounds up to 2", pdb(max_unavailable="34%"), THREE, RS3,
     (3, 1, 3, 2, "SufficientPods")),
    ("maxUnavailable above the scale: desired 0", pdb(max_unavailable=5), THREE, RS3, (3, 0, 3, 3, "SufficientPods")),
    ("maxUnavailable 0", pdb(max_unavailable=0), THREE, RS3, (3, 3, 3, 0, "InsufficientPods")),
    ("Deployment through its two ReplicaSets counts once",
     pdb(max_unavailable=1), [pod("a"), pod("b", ctrl=("ReplicaSet", "web-2"))],
     lookup_of(rs("web-1", 1, deploy="web"), rs("web-2", 1, deploy="web"), deploy("web", 2)),
     (2, 1, 2, 1, "SufficientPods")),
    ("two independent ReplicaSets add up", pdb(max_unavailable=1),
     [pod("a"), pod("b", ctrl=("ReplicaSet", "other"))], lookup_of(rs("web-1", 2), rs("other", 3)),
     (5, 4, 2, 0, "InsufficientPods")),
    ("unmanaged pods do not count towards the scale", pdb(max_unavailable=1), [pod("a"), pod("b", ctrl=None)],
     RS3, (3, 2, 2, 0, "InsufficientPods")),
    ("no pods: expected 0, nothing allowed", pdb(max_unavailable=3), [], RS3, (0, 0, 0, 0, "InsufficientPods")),
    ("expected 0 is never a budget to disrupt", pdb(min_available=0), [], RS3, (0, 0, 0, 0, "InsufficientPods")),
    ("minAvailable 0 with pods: all may go", pdb(min_available=0), THREE, RS3, (3, 0, 3, 3, "SufficientPods")),
    ("no selector selects no pod", pdb(min_available=0, selector=False), THREE, RS3,
     (0, 0, 0, 0, "InsufficientPods")),
    ("other namespaces and labels are not selected", pdb(min_available=1),
     [pod("a"), pod("x", ns="other"), pod("y", labels={"app": "db"})], RS3, (1, 1, 1, 0, "InsufficientPods")),
    ("a recorded eviction keeps its pod out of healthy", pdb(min_available=1, disrupted={"a": ago(10)}),
     THREE, RS3, (3, 1, 2, 1, "SufficientPods")),
    ("a recorded eviction older than 2 minutes expires", pdb(min_available=1, disrupted={"a": ago(121)}),
     THREE, RS3, (3, 1, 3, 2, "SufficientPods")),
]


@pytest.mark.parametrize("case,budget,pods,lookup,want", CASES, ids=[c[0] for c in CASES])
def test_status(case, budget, pods, lookup, want):
    st = plan_disruption(budget, pods, lookup, NOW).status
    [cond] = st.conditions
    assert (st.expected_pods, st.desired_healthy, st.current_healthy, st.disruptions_allowed, cond.reason) == want
    assert cond.type == "DisruptionAllowed" and cond.status == ("True" if want[3] > 0 else "False")
    assert st.observed_generation == budget.metadata.generation


def test_disrupted_pods_are_kept_until_deleted_or_expired_and_rechecked_at_expiry():
    budget = pdb(min_available=1, disrupted={"a": ago(30), "b": ago(200), "c": ago(5), "gone": ago(1)})
    pods = [pod("a"), pod("b"), pod("c", deleting=True)]
    plan = plan_disruption(budget, pods, RS3, NOW)
    # a: still expected to go; b: expired (NotDeleted on the pod); c: deleting; gone: no such pod.
    assert dict(plan.status.disrupted_pods) == {"a": ago(30)}
    assert plan.recheck_s == pytest.approx(DELETION_TIMEOUT_S - 30)
    assert [(e.reason, e.pod, e.type) for e in plan.events] == [("NotDeleted", "b", "Warning")]
    assert plan.status.current_healthy == 1            # b is ready again; a is disrupted, c deleting


def test_missing_controller_fails_safe():
    budget = pdb(min_available="50%")
    budget.status.disruptions_allowed = 2
    plan = plan_disruption(budget, THREE, lookup_of(), NOW)
    [cond] = plan.status.conditions
    assert plan.status.disruptions_allowed == 0
    assert (cond.status, cond.reason) == ("False", "SyncFailed") and 'pod "a"' in cond.message
    assert [e.reason for e in plan.events] == ["CalculateExpectedPodCountFailed"]


def test_controller_recreated_under_the_same_name_is_not_the_pods_controller():
    stale = rs("web-1", 3)
    stale.metadata.uid = "uid-new"
    plan = plan_disruption(pdb(max_unavailable=1), THREE, lookup_of(stale), NOW)
    assert plan.status.conditions[0].reason == "SyncFailed"


def test_events_name_what_kubernetes_names():
    assert [e.reason for e in plan_disruption(pdb(min_available=1), [], RS3, NOW).events] == ["NoPods"]
    unmanaged = plan_disruption(pdb(min_available="50%"), [pod("a", ctrl=None)], RS3, NOW).events
    assert [(e.type, e.reason) for e in unmanaged] == [("Warning", "UnmanagedPods")]
    assert "app=web" in unmanaged[0].message


def test_steady_state_plans_the_same_status_twice():
    budget = pdb(min_available=2)
    first = plan_disruption(budget, THREE, RS3, NOW).status
    budget.status.CopyFrom(first)
    later = NOW + datetime.timedelta(seconds=60)
    assert plan_disruption(budget, THREE, RS3, later).status == first   # no write, no new transition time
