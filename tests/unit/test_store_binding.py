"""The binding subresource: spec.nodeName and PodScheduled=True in one write (one rv, one
event), only for a pod that is unbound and not being deleted; time from the command."""

import pytest

from controlplane.store import binding
from controlplane.store.commands import Create, Delete, Update
from controlplane.store.state import StoreState
from skiff.api import kinds
from skiff.api import objects_pb2 as pb
from tests.unit.statehelp import NOW, env
from tests.unit.statehelp import result_obj as obj

LATER = "2026-01-01T00:01:00Z"


def pod(name="p", node="", uid=""):
    p = pb.Pod(metadata=pb.ObjectMeta(name=name, namespace="default", uid=uid))
    p.spec.node_name = node
    return p


@pytest.fixture
def st():
    s = StoreState(event_log_size=100)
    s.apply(Create("n", env(pb.Namespace(metadata=pb.ObjectMeta(name="default"))), NOW, "un"))
    s.apply(Create("p", env(pod()), NOW, "uid-p"))
    return s


def bind(node, name="p", uid="", rid="b", rv=""):
    return Update(rid, env(pod(name, node, uid)), "binding", rv, None, LATER)


def test_binding_sets_node_and_condition_in_one_write(st):
    rv = st.rv
    bound = obj(st.apply(bind("n1")))
    assert bound.spec.node_name == "n1"
    [cond] = [c for c in bound.status.conditions if c.type == "PodScheduled"]
    assert (cond.status, cond.reason, cond.message, cond.last_transition_time) == ("True", "", "", LATER)
    assert st.rv == rv + 1 and [e[1] for e in st.events_after(rv)] == ["MODIFIED"]
    assert bound.metadata.generation == 2          # spec.nodeName changed


def test_binding_replaces_an_unschedulable_condition(st):
    unsched = pod()
    unsched.status.conditions.add(type="PodScheduled", status="False", reason="Unschedulable",
                                  message="0/1 nodes are available", last_transition_time=NOW)
    st.apply(Update("s", env(unsched), "status"))
    bound = obj(st.apply(bind("n1")))
    [cond] = bound.status.conditions
    assert (cond.status, cond.reason, cond.message, cond.last_transition_time) == ("True", "", "", LATER)


@pytest.mark.parametrize("setup,cmd,code,text", [
    ("bound", bind("n2", rid="again"), "conflict", 'already assigned to node "n1"'),
    ("deleting", bind("n1"), "conflict", "being deleted"),
    ("", bind(""), "invalid", "spec.nodeName: Required value"),
    ("", bind("n1", name="missing"), "not_found", 'pods "missing" not found'),
    ("", bind("n1", uid="other-uid"), "conflict", "uid"),
    ("", bind("n1", rv="1"), "conflict", "modified"),
])
def test_binding_refusals_change_nothing(st, setup, cmd, code, text):
    if setup == "bound":
        st.apply(bind("n1", rid="first"))
    if setup == "deleting":
        st.apply(bind("n1", rid="first"))
        st.apply(Delete("d", ("Pod", "default", "p"), grace_s=30, now=NOW))
    rv, objects = st.rv, dict(st.objects)
    result = st.apply(cmd)
    assert result[:2] == ("error", code) and text in result[2]
    assert st.rv == rv and st.objects == objects


def test_only_bindable_kinds_have_the_subresource(st):
    cm = pb.ConfigMap(metadata=pb.ObjectMeta(name="c", namespace="default"))
    st.apply(Create("c", env(cm), NOW, "u"))
    result = st.apply(Update("x", env(cm), "binding", "", None, NOW))
    assert result[:2] == ("error", "invalid") and "binding" in result[2]
    assert binding.supports(kinds.BY_NAME["Pod"])
    assert not any(binding.supports(k) for k in kinds.KINDS if k.name != "Pod")
