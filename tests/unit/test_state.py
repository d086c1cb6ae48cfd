"""The pure replicated apply: semantics every client relies on, without Raft."""

import pickle
import subprocess
import sys

import pytest

from controlplane.store.commands import Create, Delete, Update
from controlplane.store.commands import Apply as ApplyCmd
from controlplane.store.state import StoreState
from skiff.api import kinds
from skiff.api import objects_pb2 as pb
from tests.unit.statehelp import NOW, env
from tests.unit.statehelp import result_obj as unwrap


def ns(name):
    return pb.Namespace(api_version="v1", kind="Namespace", metadata=pb.ObjectMeta(name=name))


def cm(name, data=None, rv="", labels=None, namespace="default"):
    return pb.ConfigMap(api_version="v1", kind="ConfigMap",
                        metadata=pb.ObjectMeta(name=name, namespace=namespace, resource_version=rv,
                                               labels=labels or {}),
                        data=data or {})


def deploy(name, replicas=1, rv="", labels=None):
    d = pb.Deployment(api_version="apps/v1", kind="Deployment",
                      metadata=pb.ObjectMeta(name=name, namespace="default", resource_version=rv,
                                             labels=labels or {}))
    d.spec.replicas = replicas
    return d


@pytest.fixture
def st():
    s = StoreState(event_log_size=100)
    assert s.apply(Create("r-ns", env(ns("default")), NOW, "uid-ns"))[0] == "ok"
    return s


def test_create_sets_identity_once_and_bumps_rv(st):
    before = st.rv
    obj = unwrap(st.apply(Create("r1", env(deploy("web")), NOW, "uid-1")))
    assert obj.metadata.uid == "uid-1"
    assert obj.metadata.creation_timestamp == NOW
    assert obj.metadata.generation == 1
    assert int(obj.metadata.resource_version) == before + 1 == st.rv
    # An update cannot change uid or creationTimestamp.
    upd = deploy("web", replicas=2)
    upd.metadata.creation_timestamp = "1999-01-01T00:00:00Z"
    obj2 = unwrap(st.apply(Update("r2", env(upd), "", "")))
    assert obj2.metadata.creation_timestamp == NOW and obj2.metadata.uid == "uid-1"


@pytest.mark.parametrize("op,expect", [
    (("create", "EXISTING"), ("error", "already_exists")),
    (("update", "MISSING"), ("error", "not_found")),
    (("delete", "MISSING"), ("error", "not_found")),
    (("update", "STALE"), ("error", "conflict")),
    (("delete", "STALE"), ("error", "conflict")),
])
def test_errors(st, op, expect):
    st.apply(Create("seed", env(cm("a", {"k": "v"})), NOW, "u-a"))
    st.apply(Update("seed2", env(cm("a", {"k": "v2"})), "", ""))  # rv moves past "stale"
    stale_rv = "2"
    before = (st.rv, dict(st.objects))
    what = op[1]
    if op[0] == "create":
        cmd = Create("r", env(cm("a")), NOW, "u-b")
    elif op[0] == "update":
        cmd = Update("r", env(cm("missing" if what == "MISSING" else "a",
                                 rv=stale_rv if what == "STALE" else "")), "", "")
        if what == "STALE":
            cmd = Update("r", env(cm("a", rv=stale_rv)), "", stale_rv)
    else:
        key = ("ConfigMap", "default", "missing" if what == "MISSING" else "a")
        cmd = Delete("r", key, stale_rv if what == "STALE" else "", "")
    result = st.apply(cmd)
    assert result[:2] == expect
    assert (st.rv, dict(st.objects)) == before, "a refused command changed state"


def test_generation_tracks_spec_only(st):
    unwrap(st.apply(Create("c", env(deploy("web")), NOW, "u")))
    relabeled = unwrap(st.apply(Update("l", env(deploy("web", labels={"a": "b"})), "", "")))
    assert relabeled.metadata.generation == 1
    status = deploy("web")
    status.status.ready_replicas = 1
    after_status = unwrap(st.apply(Update("s", env(status), "status", "")))
    assert after_status.metadata.generation == 1 and after_status.status.ready_replicas == 1
    scaled = unwrap(st.apply(Update("x", env(deploy("web", replicas=5, labels={"a": "b"})), "", "")))
    assert scaled.metadata.generation == 2
    assert scaled.status.ready_replicas == 1, "a spec update must keep status"


def test_unchanged_update_does_not_bump_rv(st):
    st.apply(Create("c", env(cm("a", {"k": "v"})), NOW, "u"))
    rv = st.rv
    result = st.apply(ApplyCmd("again", env(cm("a", {"k": "v"})), NOW, "u2"))
    assert result[:2] == ("ok", "unchanged") and st.rv == rv


def test_apply_creates_then_configures(st):
    assert st.apply(ApplyCmd("1", env(cm("a", {"k": "1"})), NOW, "u"))[1] == "created"
    assert st.apply(ApplyCmd("2", env(cm("a", {"k": "2"})), NOW, "u2"))[1] == "configured"
    assert unwrap(("ok", "", env(kinds.unwrap(st.objects[("ConfigMap", "default", "a")])[1]), 0)).data["k"] == "2"


def test_request_id_applied_once(st):
    first = st.apply(Create("same-id", env(cm("a")), NOW, "u1"))
    rv = st.rv
    again = st.apply(Create("same-id", env(cm("a")), NOW, "u2"))
    assert again == first and st.rv == rv


def test_namespace_must_exist_and_delete_cascades(st):
    assert st.apply(Create("1", env(cm("a", namespace="team")), NOW, "u"))[1] == "not_found"
    st.apply(Create("2", env(ns("team")), NOW, "u-team"))
    st.apply(Create("3", env(cm("a", namespace="team")), NOW, "u"))
    st.apply(Create("4", env(cm("b", namespace="team")), NOW, "u"))
    rv = st.rv
    st.apply(Delete("5", ("Namespace", "", "team"), "", ""))
    assert not [k for k in st.objects if k[1] == "team"]
    types = [(e[1], e[2]) for e in st.events_after(rv)]
    assert types == [("DELETED", ("ConfigMap", "team", "a")), ("DELETED", ("ConfigMap", "team", "b")),
                     ("DELETED", ("Namespace", "", "team"))]
    assert st.rv == rv + 3


def test_events_contiguous_and_expire():
    s = StoreState(event_log_size=5)
    s.apply(Create("n", env(ns("default")), NOW, "u"))
    for i in range(10):
        s.apply(Create(f"c{i}", env(cm(f"c{i}")), NOW, f"u{i}"))
    assert s.rv == 11
    assert [e[0] for e in s.events_after(8)] == [9, 10, 11]
    assert s.events_after(11) == []
    assert s.events_after(6) is not None and s.events_after(5) is None  # 7..11 kept
    assert [e[0] for e in s.events_after(6)] == [7, 8, 9, 10, 11]     # the whole window
    assert s.kinds_changed_after(10) == {"ConfigMap"} and s.kinds_changed_after(11) == set()


def test_deterministic_and_snapshot_roundtrip():
    cmds = [Create("n", env(ns("default")), NOW, "u")]
    cmds += [Create(f"c{i}", env(cm(f"c{i}", {"i": str(i)})), NOW, f"u{i}") for i in range(5)]
    cmds += [Update("up", env(cm("c1", {"i": "x"})), "", ""), Delete("d", ("ConfigMap", "default", "c2"), "", "")]
    a, b = StoreState(), StoreState()
    for c in cmds:
        assert a.apply(c) == b.apply(c)
    assert a.objects == b.objects and a.rv == b.rv
    c = pickle.loads(pickle.dumps(a))
    assert c.objects == a.objects and list(c.events) == list(a.events)


_APPLY_IN_A_FRESH_PROCESS = """
import pickle, sys
from controlplane.store.commands import Barrier, Create, Delete, Update
from controlplane.store.commands import Apply as ApplyCmd
from controlplane.store.state import StoreState
st = StoreState()
results = [st.apply(c) for c in pickle.loads(sys.stdin.buffer.read())]
sys.stdout.buffer.write(pickle.dumps(results))
"""


def test_results_are_byte_identical_across_processes():
    """Map entries are encoded in key order: protobuf's default order follows a
    hash seeded per process, so replicas disagreed on an object's bytes (CI caught
    it comparing replicas holding the two-label default/kubernetes Service)."""
    labels = {f"k{i}": "v" for i in range(12)}
    cmds = [Create("n", env(ns("default")), NOW, "u"),
            Create("c", env(cm("c", {f"d{i}": "x" for i in range(12)}, labels=labels)), NOW, "u1"),
            Update("up", env(cm("c", {"d": "y"}, labels=labels)), "", ""),
            Delete("d", ("ConfigMap", "default", "c"), "", "")]
    runs = [subprocess.run([sys.executable, "-c", _APPLY_IN_A_FRESH_PROCESS], input=pickle.dumps(cmds),
                           capture_output=True, check=True).stdout for _ in range(3)]
    assert runs[0] == runs[1] == runs[2]


def test_unknown_command_never_raises(st):
    assert st.apply(("frobnicate", "r"))[0] == "error"
    assert st.apply(Create("r2", b"\xff\xff garbage", NOW, "u"))[0] == "error"


def pod(name, node=""):
    p = pb.Pod(api_version="v1", kind="Pod", metadata=pb.ObjectMeta(name=name, namespace="default"))
    p.spec.node_name = node
    p.spec.termination_grace_period_seconds = 30
    return p


@pytest.mark.parametrize("node,grace,outcome,still_there", [
    ("", None, "deleted", False),        # never bound: nothing to stop
    ("n1", None, "deleting", True),      # bound: the node stops it first
    ("n1", 5, "deleting", True),
    ("n1", 0, "deleted", False),         # force
])
def test_pod_graceful_deletion(st, node, grace, outcome, still_there):
    st.apply(Create("c", env(pod("p", node)), NOW, "u"))
    result = st.apply(Delete("d", ("Pod", "default", "p"), "", "", grace, "2026-01-01T00:00:05Z"))
    assert result[:2] == ("ok", outcome)
    assert (("Pod", "default", "p") in st.objects) == still_there
    if still_there:
        marked = unwrap(result)
        assert marked.metadata.deletion_timestamp == "2026-01-01T00:00:05Z"
        assert marked.metadata.deletion_grace_period_seconds == (grace or 30)
        # Deleting again with a shorter grace shortens it; grace 0 removes it.
        short = unwrap(st.apply(Delete("d2", ("Pod", "default", "p"), "", "", 1, "later")))
        assert short.metadata.deletion_grace_period_seconds == 1
        assert short.metadata.deletion_timestamp == "2026-01-01T00:00:05Z"
        assert st.apply(Delete("d3", ("Pod", "default", "p"), "", "", 0, "later"))[1] == "deleted"
        assert ("Pod", "default", "p") not in st.objects


def test_reapply_keeps_what_the_cluster_assigned_even_from_a_stale_proposer(st):
    """The proposer's copy may predate the binding; the apply checks the stored object."""
    st.apply(Create("c", env(pod("p")), NOW, "u"))
    bound = pod("p", node="n1")
    assert st.apply(Update("bind", env(bound), "", ""))[0] == "ok"
    manifest = pod("p")  # as the user wrote it: no nodeName
    result = st.apply(ApplyCmd("again", env(manifest), NOW, "u2"))
    assert result[:2] == ("ok", "unchanged")
    assert unwrap(("ok", "", st.objects[("Pod", "default", "p")].SerializeToString(), 0)).spec.node_name == "n1"


def test_immutable_fields_are_checked_against_the_stored_object(st):
    st.apply(Create("c", env(pod("p", node="n1")), NOW, "u"))
    moved = pod("p", node="n2")
    result = st.apply(Update("move", env(moved), "", ""))
    assert result[:2] == ("error", "invalid") and "spec" in result[2]


def test_watchers_are_woken_only_by_their_kind():
    """StoreConsumer notifies the condition of each kind a command changed (a Pod watcher
    sleeps through ConfigMap writes), and the any-change condition on every change."""
    import threading

    from controlplane.store.raft import StoreConsumer
    c = StoreConsumer(100)
    pods, cms = c.changed_for("Pod"), c.changed_for("ConfigMap")
    assert c.changed_for("Pod") is pods
    woken = []

    def waiter(name, cond):
        with cond:
            woken.append((name, cond.wait(5.0)))
    threads = [threading.Thread(target=waiter, args=(n, cond)) for n, cond in
               (("pods", pods), ("cms", cms), ("any", c.changed))]
    for t in threads:
        t.start()
    import time
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and sum(len(cond._waiters) for cond in (pods, cms, c.changed)) < 3:
        time.sleep(0.01)
    c.apply(Create("n", env(ns("default")), NOW, "u"), _doApply=True)
    c.apply(Create("c", env(cm("c")), NOW, "u1"), _doApply=True)
    for t in threads[1:]:
        t.join(5)
    assert sorted(woken) == [("any", True), ("cms", True)]
    with pods:
        pods.notify_all()       # release the pod waiter (it was not woken by the writes)
    threads[0].join(5)
    assert ("pods", True) in woken and len(woken) == 3


def test_quiet_watchers_are_woken_every_quarter_of_the_history():
    """A Pod watcher sleeping through ConfigMap writes is still woken at least once per
    quarter of the event history, so its cursor never falls out of the window."""
    from controlplane.store.raft import StoreConsumer
    c = StoreConsumer(8)                        # history 8: a wake every 2 versions
    pods = c.changed_for("Pod")
    wakes = []
    pods.notify_all = lambda: wakes.append(c.state.rv)
    c.apply(Create("n", env(ns("default")), NOW, "u"), _doApply=True)     # rv 1
    for i in range(8):
        c.apply(Create(f"c{i}", env(cm(f"c{i}")), NOW, f"u{i}"), _doApply=True)
    assert wakes == [2, 4, 6, 8]
