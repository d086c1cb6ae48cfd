"""The ReplicaSet planner (which pods to create, delete, adopt, release; the status) and Expectations."""

import datetime

import pytest

from controlplane.controllers.expectations import Expectations
from controlplane.controllers.replicaset_plan import (deletion_order, plan_replicaset, pod_from_template,
                                                      with_owner, without_owner)
from skiff.api import objects_pb2 as pb

NOW = datetime.datetime(2024, 5, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
RS_UID = "rs-uid"


def rs(replicas=3, min_ready=0, labels=None):
    r = pb.ReplicaSet(metadata=pb.ObjectMeta(name="web-abc", namespace="default", uid=RS_UID, generation=4))
    r.spec.replicas = replicas
    r.spec.min_ready_seconds = min_ready
    r.spec.selector.match_labels["app"] = "web"
    r.spec.template.metadata.labels.update(labels or {"app": "web", "tier": "fe"})
    r.spec.template.metadata.annotations["note"] = "x"
    r.spec.template.spec.containers.add(name="main", image="busybox")
    return r


def pod(name, owner=RS_UID, labels=None, node="n1", phase="Running", ready=True, deleting=False,
        created="2024-05-01T11:00:00Z", restarts=0, ready_since="2024-05-01T11:00:00Z", namespace="default"):
    p = pb.Pod(metadata=pb.ObjectMeta(name=name, namespace=namespace, uid=f"uid-{name}",
                                      labels=labels if labels is not None else {"app": "web", "tier": "fe"},
                                      creation_timestamp=created))
    if owner:
        p.metadata.owner_references.add(api_version="apps/v1", kind="ReplicaSet", name="web-abc", uid=owner,
                                        controller=True)
    p.spec.node_name = node
    p.status.phase = phase
    p.status.conditions.add(type="Ready", status="True" if ready else "False", last_transition_time=ready_since)
    p.status.container_statuses.add(name="main", restart_count=restarts)
    if deleting:
        p.metadata.deletion_timestamp = "2024-05-01T11:59:00Z"
    return p


def deleting_rs(replicas=3):
    r = rs(replicas)
    r.metadata.deletion_timestamp = "2024-05-01T11:59:30Z"
    r.metadata.finalizers.append("orphan")
    return r


def rc(replicas=3):
    """A ReplicationController planned by the same planner: an equality-only selector map."""
    r = pb.ReplicationController(metadata=pb.ObjectMeta(name="web-abc", namespace="default", uid=RS_UID,
                                                        generation=4))
    r.spec.replicas = replicas
    r.spec.selector["app"] = "web"
    r.spec.template.metadata.labels.update({"app": "web", "tier": "fe"})
    r.spec.template.spec.containers.add(name="main", image="busybox")
    return r


def names(pods):
    return [p.metadata.name for p in pods]


CASES = [
    # (id, rs, pods, kwargs, want create, want delete, want adopt, want release)
    ("nothing yet: create all", rs(3), [], {}, 3, (), (), ()),
    ("exactly right", rs(2), [pod("a"), pod("b")], {}, 0, (), (), ()),
    ("created but not in the cache yet count", rs(3), [pod("a")], {"pending_creates": 2}, 0, (), (), ()),
    ("deleting and finished pods do not count", rs(3),
     [pod("a"), pod("b", deleting=True), pod("c", phase="Succeeded"), pod("d", phase="Failed")], {}, 2, (), (), ()),
    ("pods we asked to delete do not count", rs(2), [pod("a"), pod("b"), pod("c")],
     {"pending_deletes": frozenset({"uid-c"})}, 0, (), (), ()),
    ("burst caps the creates", rs(500), [], {"burst": 100}, 100, (), (), ()),
    ("scale down deletes the worst first", rs(1),
     [pod("ready-old"), pod("unscheduled", node=""), pod("pending", phase="Pending", ready=False)], {},
     0, ("unscheduled", "pending"), (), ()),
    ("not ready before ready, then more restarts, then newest", rs(1),
     [pod("ready-old"), pod("ready-new", created="2024-05-01T11:30:00Z"), pod("crashy", restarts=5),
      pod("not-ready", ready=False)], {}, 0, ("not-ready", "crashy", "ready-new"), (), ()),
    ("other namespaces and other controllers are ignored", rs(1),
     [pod("theirs", owner="other-uid"), pod("elsewhere", owner="", namespace="other")], {}, 1, (), (), ()),
    ("a matching orphan is adopted and counts", rs(2), [pod("a"), pod("orphan", owner="")], {},
     0, (), ("orphan",), ()),
    ("a non-matching orphan is not adopted", rs(1), [pod("stranger", owner="", labels={"app": "db"})], {},
     1, (), (), ()),
    ("an orphan being deleted is not adopted", rs(1), [pod("leaving", owner="", deleting=True)], {},
     1, (), (), ()),
    ("an owned pod whose labels stopped matching is released and replaced", rs(1),
     [pod("relabelled", labels={"app": "debug"})], {}, 1, (), (), ("relabelled",)),
    ("a ReplicaSet being deleted neither creates, deletes nor adopts", deleting_rs(2),
     [pod("a", ready=False), pod("b"), pod("c"), pod("orphan", owner="")], {}, 0, (), (), ()),
    ("a ReplicaSet being deleted with too few pods does not replace them", deleting_rs(3), [pod("a")], {},
     0, (), (), ()),
    ("a ReplicaSet being deleted still releases", deleting_rs(1), [pod("relabelled", labels={"app": "x"})], {},
     0, (), (), ("relabelled",)),
    ("a ReplicationController: its selector map selects", rc(3),
     [pod("a"), pod("orphan", owner=""), pod("stranger", owner="", labels={"app": "db"})], {},
     1, (), ("orphan",), ()),
    ("a ReplicationController scales down", rc(1), [pod("a"), pod("b", ready=False)], {}, 0, ("b",), (), ()),
]


@pytest.mark.parametrize("rs_, pods, kw, create, delete, adopt, release", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_plan(rs_, pods, kw, create, delete, adopt, release):
    plan = plan_replicaset(rs_, pods, now=NOW, **kw)
    assert (plan.create, plan.delete, plan.adopt, plan.release) == (create, delete, adopt, release)


def test_scale_down_with_pending_creates_waits_for_them():
    # 3 created (unseen), scaled down to 1: nothing to delete until they show up.
    plan = plan_replicaset(rs(1), [], pending_creates=3, now=NOW)
    assert (plan.create, plan.delete) == (0, ())


def test_deletion_order_is_total_and_deterministic():
    pods = [pod("b"), pod("a"), pod("c", node="")]
    assert names(deletion_order(pods)) == ["c", "a", "b"]


def test_status_counts():
    pods = [pod("ready"), pod("not-ready", ready=False), pod("partial-labels", labels={"app": "web"}),
            pod("deleting", deleting=True), pod("fresh", ready_since="2024-05-01T11:59:50Z")]
    plan = plan_replicaset(rs(4), pods, now=NOW)
    st = plan.status
    assert (st.replicas, st.fully_labeled_replicas, st.ready_replicas, st.available_replicas,
            st.observed_generation) == (4, 3, 3, 3, 4)
    assert plan.recheck_s is None


def test_min_ready_seconds_delays_availability_and_asks_for_a_recheck():
    pods = [pod("old"), pod("fresh", ready_since="2024-05-01T11:59:50Z")]
    plan = plan_replicaset(rs(2, min_ready=30), pods, now=NOW)
    assert (plan.status.ready_replicas, plan.status.available_replicas) == (2, 1)
    assert 20 <= plan.recheck_s <= 20.1


def test_pod_from_template():
    r = rs(1)
    p = pod_from_template(r)
    assert p.metadata.generate_name == "web-abc-" and not p.metadata.name
    assert dict(p.metadata.labels) == {"app": "web", "tier": "fe"}
    assert dict(p.metadata.annotations) == {"note": "x"}
    ref = p.metadata.owner_references[0]
    assert (ref.kind, ref.name, ref.uid, ref.controller, ref.block_owner_deletion, ref.api_version) == \
        ("ReplicaSet", "web-abc", RS_UID, True, True, "apps/v1")
    assert p.spec == r.spec.template.spec


def test_pod_from_a_replication_controller_names_it_as_owner():
    ref = pod_from_template(rc(1)).metadata.owner_references[0]
    assert (ref.kind, ref.api_version, ref.uid, ref.controller, ref.block_owner_deletion) == \
        ("ReplicationController", "v1", RS_UID, True, True)
    assert with_owner(pod("o", owner=""), rc(1)).metadata.owner_references[0].kind == "ReplicationController"


def test_replication_controller_status():
    plan = plan_replicaset(rc(2), [pod("a"), pod("b", ready=False)], now=NOW)
    assert isinstance(plan.status, pb.ReplicationControllerStatus)
    assert (plan.status.replicas, plan.status.ready_replicas, plan.status.fully_labeled_replicas,
            plan.status.observed_generation) == (2, 1, 2, 4)


def test_adopt_and_release_copy_the_pod():
    orphan = pod("o", owner="")
    adopted = with_owner(orphan, rs())
    assert not orphan.metadata.owner_references
    assert adopted.metadata.owner_references[0].uid == RS_UID
    released = without_owner(adopted, RS_UID)
    assert not released.metadata.owner_references and adopted.metadata.owner_references


# ---------------------------------------------------------------- expectations

class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_expectations_count_creates_until_seen_or_expired():
    clock = Clock()
    exp = Expectations(ttl_s=30, clock=clock)
    exp.created("ns/rs", "rs-aaaaa")
    exp.created("ns/rs", "rs-bbbbb")
    assert exp.pending("ns/rs", []) == (2, frozenset())
    assert exp.pending("ns/rs", [pod("rs-aaaaa")]) == (1, frozenset())
    exp.observed_deleted("ns/rs", "rs-bbbbb")
    assert exp.pending("ns/rs", []) == (0, frozenset())
    exp.created("ns/rs", "rs-ccccc")
    clock.t += 31
    assert exp.pending("ns/rs", []) == (0, frozenset())


def test_expectations_track_deletes_until_the_cache_shows_them():
    exp = Expectations(ttl_s=30, clock=Clock())
    exp.deleting("ns/rs", "uid-a")
    exp.deleting("ns/rs", "uid-b")
    assert exp.pending("ns/rs", [pod("a"), pod("b")]) == (0, frozenset({"uid-a", "uid-b"}))
    # a: gone from the cache; b: marked for deletion (graceful): both observed.
    assert exp.pending("ns/rs", [pod("b", deleting=True)]) == (0, frozenset())
    exp.deleting("ns/rs", "uid-c")
    exp.forget("ns/rs")
    assert exp.pending("ns/rs", [pod("c")]) == (0, frozenset())
