"""The store's read side: the kind/namespace index, StoreReader (get, list, watch cursor,
dry run) and the read-only ClusterView admission plugins get."""

import pickle
import threading
import time

import pytest

from controlplane.store.commands import Create, Delete, Update
from controlplane.store.raft import StoreConsumer
from controlplane.store.reader import ClusterView, Expired, StoreReader
from controlplane.store.state import StoreState
from skiff.api import kinds
from skiff.api import objects_pb2 as pb
from tests.unit.statehelp import NOW, env


def ns(name):
    return pb.Namespace(metadata=pb.ObjectMeta(name=name))


def cm(name, namespace="default", data=None):
    return pb.ConfigMap(metadata=pb.ObjectMeta(name=name, namespace=namespace), data=data or {})


def secret(name, namespace="default"):
    return pb.Secret(metadata=pb.ObjectMeta(name=name, namespace=namespace))


def names(envs):
    return [(kinds.unwrap(e)[1].metadata.namespace, kinds.unwrap(e)[1].metadata.name) for e in envs]


@pytest.fixture
def consumer():
    c = StoreConsumer(8)
    n = 0
    for msg in (ns("default"), ns("b-team"), cm("z"), cm("a"), cm("m", "b-team"), secret("s"),
                secret("t", "b-team")):
        n += 1
        assert c.apply(Create(f"r{n}", env(msg), NOW, f"u{n}"), _doApply=True)[0] == "ok"
    return c


@pytest.fixture
def reader(consumer):
    return StoreReader(consumer)


def test_list_one_kind_from_the_index(reader):
    items, rv = reader.list("ConfigMap")
    assert names(items) == [("b-team", "m"), ("default", "a"), ("default", "z")] and rv == 7
    assert names(reader.list("ConfigMap", "default")[0]) == [("default", "a"), ("default", "z")]
    assert names(reader.list("Namespace")[0]) == [("", "b-team"), ("", "default")]
    assert reader.list("ConfigMap", "nowhere")[0] == [] and reader.list("Pod")[0] == []


def test_index_follows_deletes_and_namespace_cascade(consumer, reader):
    consumer.apply(Delete("d1", ("ConfigMap", "default", "z")), _doApply=True)
    assert names(reader.list("ConfigMap")[0]) == [("b-team", "m"), ("default", "a")]
    rv = reader.resource_version()
    consumer.apply(Delete("d2", ("Namespace", "", "b-team")), _doApply=True)
    changes = consumer.state.events_after(rv)
    assert [(e.type, e.key) for e in changes] == [
        ("DELETED", ("ConfigMap", "b-team", "m")), ("DELETED", ("Secret", "b-team", "t")),
        ("DELETED", ("Namespace", "", "b-team"))]
    assert names(reader.list("Secret")[0]) == [("default", "s")]
    assert consumer.state._index == _index_from_scratch(consumer.state.objects)


def test_index_is_not_pickled_and_is_rebuilt_on_load(consumer):
    state = consumer.state
    data = pickle.dumps(state)
    assert b"_index" not in data
    loaded = pickle.loads(data)
    assert loaded._index == state._index == _index_from_scratch(state.objects)
    assert names(loaded.list("ConfigMap")) == names(state.list("ConfigMap"))


def test_loading_a_dump_without_index_from_an_older_skiff():
    old = StoreState()
    old.apply(Create("n", env(ns("default")), NOW, "u"))
    old.apply(Create("c", env(cm("c")), NOW, "u2"))
    legacy = old.__getstate__()
    fresh = StoreState.__new__(StoreState)
    fresh.__setstate__(legacy)
    assert names(fresh.list("ConfigMap")) == [("default", "c")]


def test_get_returns_a_copy(reader):
    got = reader.get(("ConfigMap", "default", "a"))
    kinds.unwrap(got)[1].data["k"] = "changed"
    assert not kinds.unwrap(reader.get(("ConfigMap", "default", "a")))[1].data
    assert reader.get(("ConfigMap", "default", "nope")) is None


def test_watch_cursor_hands_out_its_kind_and_moves_past_others(consumer, reader):
    w = reader.watch("ConfigMap", reader.resource_version())
    consumer.apply(Create("s2", env(secret("s2")), NOW, "u"), _doApply=True)
    assert w.next(0.01) == [] and w.rv == 8          # moved past the Secret change
    consumer.apply(Update("up", env(cm("a", data={"k": "v"}))), _doApply=True)
    [change] = w.next(0.01)
    assert (change.rv, change.type, change.key) == (9, "MODIFIED", ("ConfigMap", "default", "a"))
    assert change.previous is not None and not kinds.unwrap(change.previous)[1].data
    assert w.next(0.01) == [] and w.rv == 9


def test_watch_cursor_wakes_on_its_kind(consumer, reader):
    w = reader.watch("ConfigMap", reader.resource_version())
    got = []
    t = threading.Thread(target=lambda: got.extend(w.next(5.0)))
    t.start()
    cond = consumer.changed_for("ConfigMap")
    deadline = time.monotonic() + 5
    while not cond._waiters and time.monotonic() < deadline:
        time.sleep(0.005)
    consumer.apply(Create("c9", env(cm("c9")), NOW, "u"), _doApply=True)
    t.join(5)
    assert [e.key for e in got] == [("ConfigMap", "default", "c9")]


def test_wake_watchers_ends_every_waiting_cursors_wait_without_a_change(consumer, reader):
    """A Raft state change wakes every watch (Store._state_changed): each re-checks its
    leader at once instead of at its next idle poll (WATCH_POLL_S, 5 s)."""
    cursors = [reader.watch(kind, reader.resource_version()) for kind in ("ConfigMap", "Secret", "Pod")]
    returned = []
    threads = [threading.Thread(target=lambda w=w: (w.next(30.0), returned.append(time.monotonic())))
               for w in cursors]
    for t in threads:
        t.start()
    conds = [consumer.changed_for(k) for k in ("ConfigMap", "Secret", "Pod")]
    deadline = time.monotonic() + 5
    while not all(c._waiters for c in conds) and time.monotonic() < deadline:
        time.sleep(0.005)
    woken_at = time.monotonic()
    consumer.wake_watchers()
    for t in threads:
        t.join(5)
    assert len(returned) == 3 and max(returned) - woken_at < 2.0


def test_watch_cursor_expires_when_history_moved_on(consumer, reader):
    w = reader.watch("ConfigMap", 1)
    for i in range(8):                     # history of 8: version 1 falls out
        consumer.apply(Create(f"x{i}", env(secret(f"x{i}")), NOW, "u"), _doApply=True)
    with pytest.raises(Expired, match="expired, re-list"):
        w.next(0.01)


def test_cluster_view_gets_and_lists_typed_copies(reader):
    view = reader.view()
    assert isinstance(view, ClusterView)
    a = view.get("ConfigMap", "default", "a")
    assert isinstance(a, pb.ConfigMap) and a.metadata.uid == "u4"
    assert view.get("ConfigMap", "", "a").metadata.uid == "u4"          # "" = default
    assert view.get("Namespace", "ignored", "b-team").metadata.name == "b-team"
    assert view.get("ConfigMap", "default", "nope") is None
    assert [m.metadata.name for m in view.list("Secret")] == ["t", "s"]
    assert [m.metadata.name for m in view.list("Secret", "default")] == ["s"]
    assert [m.metadata.name for m in view.list("Namespace")] == ["b-team", "default"]
    for m in view.list("ConfigMap"):
        m.data["poked"] = "x"              # a plugin scribbling on what it got
    a.data["poked"] = "x"
    assert all(not m.data for m in view.list("ConfigMap"))
    with pytest.raises(KeyError):
        view.list("Frobnicator")


def test_reader_dry_run_changes_nothing(consumer, reader):
    rv = reader.resource_version()
    assert reader.dry_run(Create("d", env(cm("new")), NOW, "u"))[:2] == ("ok", "created")
    assert reader.dry_run(Delete("d", ("Namespace", "", "b-team")))[:2] == ("ok", "deleted")
    assert reader.resource_version() == rv and reader.get(("ConfigMap", "default", "new")) is None
    assert names(reader.list("ConfigMap", "b-team")[0]) == [("b-team", "m")]


def _index_from_scratch(objects):
    out = {}
    for (kind, namespace, name), e in objects.items():
        out.setdefault(kind, {}).setdefault(namespace, {})[name] = e
    return out
