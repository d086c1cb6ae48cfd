"""Finalizers and propagation policies in the replicated apply (skiff/api/deletion.py's rules)."""

import pytest

from controlplane.store.commands import Create, Delete, Update
from controlplane.store.state import StoreState
from skiff.api import deletion
from skiff.api import objects_pb2 as pb
from tests.unit.statehelp import NOW, env
from tests.unit.statehelp import result_obj as unwrap

LATER = "2026-01-01T00:01:00Z"


def ns(name):
    return pb.Namespace(api_version="v1", kind="Namespace", metadata=pb.ObjectMeta(name=name))


def rs(name="web", finalizers=()):
    r = pb.ReplicaSet(api_version="apps/v1", kind="ReplicaSet",
                      metadata=pb.ObjectMeta(name=name, namespace="default", finalizers=list(finalizers)))
    r.spec.replicas = 1
    return r


def cm(name="c", finalizers=()):
    return pb.ConfigMap(api_version="v1", kind="ConfigMap",
                        metadata=pb.ObjectMeta(name=name, namespace="default", finalizers=list(finalizers)))


def pod(name="p", node="", finalizers=()):
    p = pb.Pod(api_version="v1", kind="Pod",
               metadata=pb.ObjectMeta(name=name, namespace="default", finalizers=list(finalizers)))
    p.spec.node_name = node
    p.spec.containers.add(name="c", image="x")
    return p


@pytest.fixture
def st():
    s = StoreState(event_log_size=100)
    assert s.apply(Create("r-ns", env(ns("default")), NOW, "uid-ns"))[0] == "ok"
    return s


def _stored(st, kind, name):
    from skiff.api import kinds
    e = st.get((kind, "default", name))
    if e is None:
        return None
    stored = kinds.unwrap(e)[1]
    out = type(stored)()
    out.CopyFrom(stored)   # a copy: the state's own objects must never change in place
    return out


def _set_finalizers(st, kind_obj, finalizers, rid):
    obj = kind_obj
    del obj.metadata.finalizers[:]
    obj.metadata.finalizers.extend(finalizers)
    return st.apply(Update(rid, env(obj), "", ""))


@pytest.mark.parametrize("policy,want_finalizers", [
    ("Foreground", ["foregroundDeletion"]),
    ("Orphan", ["orphan"]),
])
def test_propagation_policy_marks_an_owner_with_its_finalizer(st, policy, want_finalizers):
    st.apply(Create("c", env(rs()), NOW, "uid-rs"))
    res = st.apply(Delete("d", ("ReplicaSet", "default", "web"), now=LATER, propagation=policy))
    assert res[:2] == ("ok", "deleting")
    stored = _stored(st, "ReplicaSet", "web")
    assert list(stored.metadata.finalizers) == want_finalizers
    assert stored.metadata.deletion_timestamp == LATER
    assert stored.metadata.deletion_grace_period_seconds == 0
    # A second delete changes nothing and keeps the first deletionTimestamp.
    rv = st.rv
    assert st.apply(Delete("d2", ("ReplicaSet", "default", "web"), now="2027-01-01T00:00:00Z",
                           propagation=policy))[:2] == ("ok", "deleting")
    assert st.rv == rv


@pytest.mark.parametrize("policy", ["", "Background"])
def test_background_removes_at_once(st, policy):
    st.apply(Create("c", env(rs()), NOW, "uid-rs"))
    assert st.apply(Delete("d", ("ReplicaSet", "default", "web"), now=LATER, propagation=policy))[1] == "deleted"
    assert _stored(st, "ReplicaSet", "web") is None


def test_policy_on_a_kind_that_owns_nothing_is_background(st):
    st.apply(Create("c", env(cm()), NOW, "uid-c"))
    assert st.apply(Delete("d", ("ConfigMap", "default", "c"), propagation="Foreground"))[1] == "deleted"


def test_object_with_finalizers_is_marked_then_removed_when_they_are_emptied(st):
    st.apply(Create("c", env(cm(finalizers=["example.com/hold"])), NOW, "uid-c"))
    assert st.apply(Delete("d", ("ConfigMap", "default", "c"), now=LATER))[1] == "deleting"
    marked = _stored(st, "ConfigMap", "c")
    assert marked.metadata.deletion_timestamp == LATER
    # Labels may still change; the object stays.
    marked.metadata.labels["x"] = "y"
    assert st.apply(Update("u1", env(marked), "", ""))[1] == "updated"
    assert _stored(st, "ConfigMap", "c") is not None
    res = _set_finalizers(st, _stored(st, "ConfigMap", "c"), [], "u2")
    assert res[1] == "deleted"
    assert _stored(st, "ConfigMap", "c") is None
    last = st.events[-1]
    assert last.type == "DELETED" and list(last.object.config_map.metadata.finalizers) == []


def test_no_new_finalizer_on_an_object_being_deleted(st):
    st.apply(Create("c", env(cm(finalizers=["a"])), NOW, "uid-c"))
    st.apply(Delete("d", ("ConfigMap", "default", "c"), now=LATER))
    res = _set_finalizers(st, _stored(st, "ConfigMap", "c"), ["a", "b"], "u")
    assert res[:2] == ("error", "invalid") and "no new finalizers" in res[2] and '"b"' in res[2]


def test_later_delete_may_switch_the_policy(st):
    st.apply(Create("c", env(rs(finalizers=["keep"])), NOW, "uid-rs"))
    st.apply(Delete("d", ("ReplicaSet", "default", "web"), now=LATER, propagation="Orphan"))
    assert list(_stored(st, "ReplicaSet", "web").metadata.finalizers) == ["keep", "orphan"]
    st.apply(Delete("d2", ("ReplicaSet", "default", "web"), now=LATER, propagation="Foreground"))
    assert list(_stored(st, "ReplicaSet", "web").metadata.finalizers) == ["keep", "foregroundDeletion"]
    st.apply(Delete("d3", ("ReplicaSet", "default", "web"), now=LATER, propagation="Background"))
    assert list(_stored(st, "ReplicaSet", "web").metadata.finalizers) == ["keep"]


def test_bound_pod_with_finalizer_waits_for_both_its_node_and_its_finalizers(st):
    st.apply(Create("c", env(pod(node="n1", finalizers=["hold"])), NOW, "uid-p"))
    assert st.apply(Delete("d", ("Pod", "default", "p"), now=LATER))[1] == "deleting"
    assert _stored(st, "Pod", "p").metadata.deletion_grace_period_seconds == 30
    # Emptying the finalizers while the node still has its grace period: the pod stays.
    assert _set_finalizers(st, _stored(st, "Pod", "p"), [], "u")[1] == "updated"
    assert _stored(st, "Pod", "p") is not None
    # The node's delete with grace 0 removes it.
    assert st.apply(Delete("d0", ("Pod", "default", "p"), grace_s=0))[1] == "deleted"


def test_node_done_first_then_finalizer(st):
    st.apply(Create("c", env(pod(node="n1", finalizers=["hold"])), NOW, "uid-p"))
    st.apply(Delete("d", ("Pod", "default", "p"), now=LATER))
    assert st.apply(Delete("d0", ("Pod", "default", "p"), grace_s=0))[1] == "deleting"
    assert _stored(st, "Pod", "p").metadata.deletion_grace_period_seconds == 0
    assert _set_finalizers(st, _stored(st, "Pod", "p"), [], "u")[1] == "deleted"


def test_dry_run_delete_with_policy_changes_nothing(st):
    st.apply(Create("c", env(rs()), NOW, "uid-rs"))
    rv = st.rv
    res = st.check(Delete("d", ("ReplicaSet", "default", "web"), now=LATER, propagation="Foreground"))
    assert res[:2] == ("ok", "deleting") and st.rv == rv
    assert not _stored(st, "ReplicaSet", "web").metadata.deletion_timestamp


@pytest.mark.parametrize("existing,policy,want", [
    ([], "", []),
    (["a"], "", ["a"]),
    ([], "Foreground", ["foregroundDeletion"]),
    (["orphan"], "Foreground", ["foregroundDeletion"]),
    (["a", "foregroundDeletion"], "Orphan", ["a", "orphan"]),
    (["orphan", "a"], "Background", ["a"]),
])
def test_finalizers_for(existing, policy, want):
    assert deletion.finalizers_for(existing, policy) == want


def test_check_policy():
    assert deletion.check_policy("") is None and deletion.check_policy("Orphan") is None
    assert deletion.check_policy("orphan") == ('propagationPolicy: Unsupported value: "orphan": supported values: '
                                               '"Foreground", "Background", "Orphan"')
