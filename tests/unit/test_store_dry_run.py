"""Server-side dry run in the state machine: StoreState.check(cmd) answers what apply(cmd)
would, running the same checks, and changes nothing (objects, rv, events, request ids)."""

import copy
import pickle

import pytest

from controlplane.store.commands import Apply, Barrier, Create, Delete, Update
from controlplane.store.state import StoreState
from skiff.api import kinds
from skiff.api import objects_pb2 as pb
from tests.unit.statehelp import NOW, env

ALLOC = {"cidr": "10.96.0.0/29", "nodePorts": (30000, 30002), "lbPool": ()}


def cm(name, data=None, rv="", namespace="default"):
    return pb.ConfigMap(metadata=pb.ObjectMeta(name=name, namespace=namespace, resource_version=rv),
                        data=data or {})


def svc(name, cluster_ip=""):
    s = pb.Service(metadata=pb.ObjectMeta(name=name, namespace="default"))
    s.spec.type, s.spec.cluster_ip = "NodePort", cluster_ip
    s.spec.ports.add(name="http", port=80, protocol="TCP")
    return s


def pod(name, node=""):
    p = pb.Pod(metadata=pb.ObjectMeta(name=name, namespace="default"))
    p.spec.node_name = node
    p.spec.termination_grace_period_seconds = 30
    return p


def ns(name):
    return pb.Namespace(metadata=pb.ObjectMeta(name=name))


@pytest.fixture
def st():
    s = StoreState(event_log_size=100)
    for i, cmd in enumerate([Create("n", env(ns("default")), NOW, "un"),
                             Create("t", env(ns("team")), NOW, "ut"),
                             Create("a", env(cm("a", {"k": "v"})), NOW, "ua"),
                             Create("b", env(cm("b", namespace="team")), NOW, "ub"),
                             Create("s", env(svc("web")), NOW, "us", ALLOC),
                             Create("p", env(pod("bound", "n1")), NOW, "up")]):
        assert s.apply(cmd)[0] == "ok", i
    return s


def snapshot(st):
    return pickle.dumps((st.rv, sorted((k, v.SerializeToString(deterministic=True)) for k, v in st.objects.items()),
                         list(st.requests.items()), [(e[0], e[1], e[2]) for e in st.events],
                         {k: {n: sorted(v) for n, v in by.items()} for k, by in st._index.items()}))


CASES = [
    ("create", Create("c1", env(cm("new")), NOW, "u-new"), ("ok", "created")),
    ("create existing", Create("c2", env(cm("a")), NOW, "u"), ("error", "already_exists")),
    ("create in a missing namespace", Create("c3", env(cm("x", namespace="nope")), NOW, "u"),
     ("error", "not_found")),
    ("service allocation", Create("c4", env(svc("api")), NOW, "u", ALLOC), ("ok", "created")),
    ("taken clusterIP", Create("c5", env(svc("api", "10.96.0.2")), NOW, "u", ALLOC), ("error", "invalid")),
    ("update", Update("u1", env(cm("a", {"k": "w"}))), ("ok", "updated")),
    ("update unchanged", Update("u2", env(cm("a", {"k": "v"}))), ("ok", "unchanged")),
    ("update stale rv", Update("u3", env(cm("a", {"k": "w"}, rv="1")), "", "1"), ("error", "conflict")),
    ("update missing", Update("u4", env(cm("zz"))), ("error", "not_found")),
    ("immutable nodeName", Update("u5", env(pod("bound", "n2"))), ("error", "invalid")),
    ("apply creates", Apply("a1", env(cm("fresh")), NOW, "u"), ("ok", "created")),
    ("apply configures", Apply("a2", env(cm("a", {"k": "x"})), NOW, "u"), ("ok", "configured")),
    ("apply unchanged", Apply("a3", env(cm("a", {"k": "v"})), NOW, "u"), ("ok", "unchanged")),
    ("delete", Delete("d1", ("ConfigMap", "default", "a")), ("ok", "deleted")),
    ("delete missing", Delete("d2", ("ConfigMap", "default", "zz")), ("error", "not_found")),
    ("delete bound pod", Delete("d3", ("Pod", "default", "bound"), now=NOW), ("ok", "deleting")),
    ("delete namespace", Delete("d4", ("Namespace", "", "team")), ("ok", "deleted")),
    ("bind a bound pod", Update("b1", env(pod("bound", "n2")), "binding", "", None, NOW), ("error", "conflict")),
]


@pytest.mark.parametrize("name,cmd,expect", CASES, ids=[c[0] for c in CASES])
def test_dry_run_answers_as_apply_would_and_changes_nothing(st, name, cmd, expect):
    before = snapshot(st)
    twin = copy.deepcopy(st)
    dry = st.check(cmd)
    assert dry[:2] == expect
    assert snapshot(st) == before, "a dry run changed the state"
    real = twin.apply(cmd)
    assert real[:2] == dry[:2]
    if dry[0] == "error":
        assert dry == real
    else:
        # The would-be object equals the stored one but for the version it would get.
        got, stored = pb.Object(), pb.Object()
        got.ParseFromString(dry[2])
        stored.ParseFromString(real[2])
        for e in (got, stored):
            kinds.unwrap(e)[1].metadata.ClearField("resource_version")
        assert got == stored


def test_dry_run_ignores_and_remembers_no_request_ids(st):
    first = st.apply(Create("same", env(cm("c")), NOW, "u"))
    assert first[:2] == ("ok", "created")
    # A real retry replays the remembered result; a dry run evaluates against the state now.
    assert st.check(Create("same", env(cm("c")), NOW, "u"))[:2] == ("error", "already_exists")
    assert st.check(Create("fresh-id", env(cm("d")), NOW, "u"))[:2] == ("ok", "created")
    assert "fresh-id" not in st.requests
    assert st.apply(Create("fresh-id", env(cm("d")), NOW, "u"))[:2] == ("ok", "created")


def test_dry_run_of_a_created_service_shows_its_allocation(st):
    result = st.check(Create("c", env(svc("api")), NOW, "u", ALLOC))
    e = pb.Object()
    e.ParseFromString(result[2])
    made = kinds.unwrap(e)[1]
    assert made.spec.cluster_ip == "10.96.0.3" and made.spec.ports[0].node_port == 30001
    assert made.metadata.uid == "u" and made.metadata.resource_version == ""


def test_only_writes_can_be_dry_run(st):
    assert st.check(Barrier("b"))[:2] == ("error", "invalid")
