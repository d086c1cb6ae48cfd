"""Garbage collection decisions: dangling dependents and pods of deleted nodes."""

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
