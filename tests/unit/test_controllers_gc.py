"""Garbage collection decisions: dangling dependents, the propagation policies, pods of deleted nodes."""

import pytest

from controlplane.controllers.gc_plan import dangling, orphaned_pods
from skiff.api import objects_pb2 as pb


def obj(name, uid, owners=(), deleting=False, node=""):
    p = pb.Pod(metadata=pb.ObjectMeta(name=name, namespace="ns", uid=uid))
    for owner_uid in owners:
        p.metadata.owner_references.add(api_version="apps/v1", kind="ReplicaSet", name="o", uid=owner_uid)
    if deleting:
        p.metadata.deletion_timestamp = "2024-01-01T00:00:00Z"
    p.spec.node_name = node
    return p


DANGLING_CASES = [
    ("no owners: never collected", [obj("a", "1")], {"1"}, []),
    ("owner exists", [obj("a", "1", owners=["o1"])], {"1", "o1"}, []),
    ("owner gone", [obj("a", "1", owners=["o1"])], {"1"}, ["a"]),
    ("one of two owners left: kept", [obj("a", "1", owners=["o1", "o2"])], {"1", "o2"}, []),
    ("both owners gone", [obj("a", "1", owners=["o1", "o2"])], {"1"}, ["a"]),
    ("already being deleted", [obj("a", "1", owners=["o1"], deleting=True)], {"1"}, []),
    ("a cascade goes one level per pass",
     [obj("rs", "r", owners=["deploy"]), obj("pod", "p", owners=["r"])], {"r", "p"}, ["rs"]),
]


@pytest.mark.parametrize("objects, known, want", [c[1:] for c in DANGLING_CASES], ids=[c[0] for c in DANGLING_CASES])
def test_dangling(objects, known, want):
    assert [o.metadata.name for o in dangling(objects, known)] == want


def test_orphaned_pods_wait_out_the_quarantine():
    pods = [obj("stranded", "1", node="gone"), obj("fine", "2", node="n1"), obj("pending", "3")]
    delete, seen = orphaned_pods(pods, {"n1"}, {}, 100.0, 5.0)
    assert delete == [] and seen == {"ns/stranded": 100.0}
    delete, seen = orphaned_pods(pods, {"n1"}, seen, 105.0, 5.0)
    assert delete == []
    delete, seen = orphaned_pods(pods, {"n1"}, seen, 105.1, 5.0)
    assert delete == ["ns/stranded"]
    # The node shows up after all: forgotten.
    delete, seen = orphaned_pods(pods, {"n1", "gone"}, seen, 200.0, 5.0)
    assert delete == [] and seen == {}


# ---------------------------------------------------------------- propagation policies (plan)

from controlplane.controllers.gc_plan import DELETE, FINALIZE, UNREF, plan  # noqa: E402


def owner(name, uid, finalizers=(), owners=()):
    r = pb.ReplicaSet(metadata=pb.ObjectMeta(name=name, namespace="ns", uid=uid))
    for owner_uid in owners:
        r.metadata.owner_references.add(kind="Deployment", name="d", uid=owner_uid, controller=True,
                                        block_owner_deletion=True)
    if finalizers:
        r.metadata.deletion_timestamp = "2024-01-01T00:00:00Z"
        r.metadata.finalizers.extend(finalizers)
    return r


def dep(name, uid, owners=(), block=True, deleting=False):
    p = obj(name, uid, deleting=deleting)
    for owner_uid in owners:
        p.metadata.owner_references.add(kind="ReplicaSet", name="o", uid=owner_uid, controller=True,
                                        block_owner_deletion=block)
    return p


def _shown(actions):
    out = []
    for a in actions:
        extra = a.policy or ",".join(a.owner_uids) or a.finalizer
        out.append(f"{a.verb} {a.obj.metadata.name} {extra}")
    return out


FG, ORPH = "foregroundDeletion", "orphan"
PLAN_CASES = [
    ("background: owner gone, dependents deleted in the background",
     [owner("rs", "r", owners=["gone"]), dep("p1", "1", owners=["r"])], {"r", "1"},
     ["delete rs Background"]),
    ("nothing to do while owners are solid",
     [owner("rs", "r"), dep("p1", "1", owners=["r"])], {"r", "1"}, []),
    ("orphan: each dependent loses the reference, then the owner its finalizer",
     [owner("rs", "r", finalizers=[ORPH]), dep("p1", "1", owners=["r"]), dep("p2", "2", owners=["r"])],
     {"r", "1", "2"},
     ["unref p1 r", "unref p2 r", "finalize rs orphan"]),
    ("orphan without dependents: finalizer at once",
     [owner("rs", "r", finalizers=[ORPH])], {"r"}, ["finalize rs orphan"]),
    ("orphan: dependents of an orphaning owner are never deleted",
     [owner("rs", "r", finalizers=[ORPH]), dep("p1", "1", owners=["r"], deleting=False)], {"r", "1"},
     ["unref p1 r", "finalize rs orphan"]),
    ("foreground: dependents deleted, owner keeps its finalizer while they exist",
     [owner("rs", "r", finalizers=[FG]), dep("p1", "1", owners=["r"])], {"r", "1"},
     ["delete p1 Background"]),
    ("foreground: a dependent being deleted still blocks",
     [owner("rs", "r", finalizers=[FG]), dep("p1", "1", owners=["r"], deleting=True)], {"r", "1"}, []),
    ("foreground: non-blocking dependents are deleted but do not block",
     [owner("rs", "r", finalizers=[FG]), dep("p1", "1", owners=["r"], block=False)], {"r", "1"},
     ["delete p1 Background", "finalize rs foregroundDeletion"]),
    ("foreground: no dependents left, finalizer goes",
     [owner("rs", "r", finalizers=[FG])], {"r"}, ["finalize rs foregroundDeletion"]),
    ("foreground chain: a dependent with dependents of its own goes in the foreground",
     [owner("deploy", "d", finalizers=[FG]), owner("rs", "r", owners=["d"]), dep("p1", "1", owners=["r"])],
     {"d", "r", "1"}, ["delete rs Foreground"]),
    ("foreground: a dependent with another solid owner only loses the waiting reference",
     [owner("rs", "r", finalizers=[FG]), owner("rs2", "r2"), dep("p1", "1", owners=["r", "r2"])],
     {"r", "r2", "1"}, ["unref p1 r"]),
    ("an owner known outside the caches (a Node) is solid",
     [dep("lease", "1", owners=["node-uid"])], {"node-uid", "1"}, []),
]


@pytest.mark.parametrize("objects, known, want", [c[1:] for c in PLAN_CASES], ids=[c[0] for c in PLAN_CASES])
def test_plan(objects, known, want):
    kinds_of = [("ReplicaSet" if isinstance(o, pb.ReplicaSet) else "Pod", o) for o in objects]
    assert _shown(plan(kinds_of, known)) == want


def test_plan_never_modifies_the_cached_objects():
    objects = [owner("rs", "r", finalizers=[ORPH]), dep("p1", "1", owners=["r"])]
    before = [o.SerializeToString(deterministic=True) for o in objects]
    actions = plan([("ReplicaSet", objects[0]), ("Pod", objects[1])], {"r", "1"})
    assert [a.verb for a in actions] == [UNREF, FINALIZE]
    assert [o.SerializeToString(deterministic=True) for o in objects] == before
    assert DELETE not in [a.verb for a in actions]
