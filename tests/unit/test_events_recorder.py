"""skiff/events.py: the recorder writes asynchronously, in order, folds repeats, never raises."""

import threading

from skiff import client as clientmod
from skiff import events
from skiff.api import objects_pb2 as pb


class FakeClient:
    def __init__(self, gate=None, fail=None):
        self.gate = gate            # a threading.Event create() waits on (the API is slow)
        self.fail = fail
        self.created = []
        self.updated = []
        self.store = {}

    def create(self, ev):
        if self.gate is not None:
            assert self.gate.wait(10)
        if self.fail:
            raise self.fail
        self.created.append((ev.reason, ev.message, ev.first_timestamp))
        self.store[(ev.metadata.namespace, ev.metadata.name)] = ev
        return ev

    def get(self, kind, name, namespace):
        assert kind == "events"
        got = pb.Event()
        got.CopyFrom(self.store[(namespace, name)])
        return got

    def update(self, ev):
        self.updated.append((ev.reason, ev.count))
        self.store[(ev.metadata.namespace, ev.metadata.name)] = ev
        return ev


def pod(name="p", uid="u1"):
    return pb.Pod(metadata=pb.ObjectMeta(name=name, namespace="ns", uid=uid, resource_version="7"))


def test_event_returns_before_the_api_answers_and_is_written_afterwards():
    gate = threading.Event()
    c = FakeClient(gate=gate)
    r = events.EventRecorder(c, "skiff-agent", "node1", asynchronous=True)
    r.event(pod(), "Normal", "Pulled", "already present")     # the API is blocked: must not block us
    r.event(pod(), "Normal", "Created", "Created container app")
    assert c.created == []
    gate.set()
    assert r.flush(timeout_s=5)
    assert [x[0] for x in c.created] == ["Pulled", "Created"]    # in the order recorded
    ev = next(iter(c.store.values()))
    assert ev.involved_object.name == "p" and ev.involved_object.uid == "u1"
    assert ev.involved_object.resource_version == "7" and ev.source.host == "node1"


def test_the_timestamp_is_the_moment_of_the_call_not_of_the_write(monkeypatch):
    gate = threading.Event()
    c = FakeClient(gate=gate)
    r = events.EventRecorder(c, "x", asynchronous=True)
    monkeypatch.setattr(events, "now_rfc3339", lambda: "2026-01-01T00:00:00Z")
    r.event(pod(), "Normal", "Started", "Started container app")
    monkeypatch.setattr(events, "now_rfc3339", lambda: "2026-01-01T00:09:00Z")
    gate.set()
    assert r.flush(timeout_s=5)
    assert c.created[0][2] == "2026-01-01T00:00:00Z"


def test_repeats_fold_into_one_event_with_a_count():
    c = FakeClient()
    r = events.EventRecorder(c, "x", asynchronous=True)
    for _ in range(3):
        r.event(pod(), "Warning", "BackOff", "Back-off restarting failed container")
    assert r.flush(timeout_s=5)
    assert len(c.created) == 1
    assert c.updated == [("BackOff", 2), ("BackOff", 3)]


def test_a_failing_api_never_raises_and_the_writer_goes_on():
    c = FakeClient(fail=clientmod.Unavailable("down"))
    r = events.EventRecorder(c, "x", asynchronous=True)
    r.event(pod(), "Normal", "A", "a")
    assert r.flush(timeout_s=5)
    c.fail = None
    r.event(pod(), "Normal", "B", "b")
    assert r.flush(timeout_s=5)
    assert [x[0] for x in c.created] == ["B"]


def test_a_full_queue_drops_new_events_instead_of_blocking(monkeypatch):
    monkeypatch.setattr(events, "QUEUE_SIZE", 2)
    gate = threading.Event()
    c = FakeClient(gate=gate)
    r = events.EventRecorder(c, "x", asynchronous=True, writers=1)
    for i in range(6):          # one is taken by the writer (blocked in create), two queue, the rest drop
        r.event(pod(), "Normal", f"R{i}", "m")
    assert r.dropped >= 3
    gate.set()
    assert r.flush(timeout_s=5)
    assert 1 <= len(c.created) <= 3 and c.created[0][0] == "R0"


def test_synchronous_by_default_writes_in_the_callers_thread():
    c = FakeClient()
    r = events.EventRecorder(c, "x")
    r.event(pod(), "Normal", "Scheduled", "m")
    assert [x[0] for x in c.created] == ["Scheduled"]


def test_flush_of_one_object_waits_for_its_events_only():
    gate = threading.Event()

    class Slow(FakeClient):
        def create(self, ev):
            if ev.involved_object.uid == "slow":
                assert gate.wait(10)
            return super().create(ev)

    c = Slow()
    r = events.EventRecorder(c, "x", asynchronous=True, writers=4)
    uids = [f"u{i}" for i in range(40)]
    slow_shard = r._shard("slow")
    fast = next(u for u in uids if r._shard(u) != slow_shard)   # another writer than the blocked one
    r.event(pod("s", "slow"), "Normal", "Pulled", "m")
    r.event(pod("f", fast), "Normal", "Started", "m")
    assert r.flush(fast, timeout_s=5)                  # its writer is free
    assert ("Started", "m") in [(x[0], x[1]) for x in c.created]
    assert not r.flush("slow", timeout_s=0.2)          # still blocked in the API
    gate.set()
    assert r.flush("slow", timeout_s=5) and r.flush(timeout_s=5)
    assert sorted(x[0] for x in c.created) == ["Pulled", "Started"]


def test_one_objects_events_are_written_in_order_across_writers():
    c = FakeClient()
    r = events.EventRecorder(c, "x", asynchronous=True, writers=4)
    for i in range(20):
        r.event(pod("p", "one"), "Normal", f"R{i:02d}", "m")
    assert r.flush(timeout_s=5)
    assert [x[0] for x in c.created] == [f"R{i:02d}" for i in range(20)]
