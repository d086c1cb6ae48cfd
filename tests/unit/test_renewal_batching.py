"""Lease renewals share Raft entries: which writes may wait (controlplane/apiserver/renewals.py),
when the Batcher proposes (flush_wait_s), and that waiting renewals never hold up an
ordinary write and are still applied one by one with their own preconditions."""

import threading

import pytest

from controlplane.apiserver.renewals import RENEWAL_WINDOW_S, is_renewal, renewal_wait_s
from controlplane.store.commands import Batch, Create, Update
from controlplane.store.raft import FAIL_REASON
from controlplane.store.state import StoreState
from controlplane.store.store import Batcher, flush_wait_s
from skiff.api import kinds
from skiff.api import objects_pb2 as pb


def lease(holder="node1", renew="2026-12-07T20:00:00.000000Z", duration=5, acquire=None,
          transitions=None, owner=None, rv=""):
    out = pb.Lease(api_version="coordination.k8s.io/v1", kind="Lease")
    out.metadata.name, out.metadata.namespace = "node1", "kube-node-lease"
    out.metadata.resource_version = rv
    if holder is not None:
        out.spec.holder_identity = holder
    if renew is not None:
        out.spec.renew_time = renew
    if duration is not None:
        out.spec.lease_duration_seconds = duration
    if acquire is not None:
        out.spec.acquire_time = acquire
    if transitions is not None:
        out.spec.lease_transitions = transitions
    if owner is not None:
        out.metadata.owner_references.add(api_version="v1", kind="Node", name=owner, uid="u1")
    return out


LATER = "2026-12-07T20:00:01.250000Z"


# ------------------------------------------------------------------ which writes may wait

@pytest.mark.parametrize("why, old, new, kind, sub, want", [
    ("a node's renewal, the lab's 5 s lease: the whole window",
     lease(), lease(renew=LATER), "Lease", "", RENEWAL_WINDOW_S),
    ("Kubernetes' 40 s lease: capped at the window", lease(duration=40), lease(renew=LATER, duration=40),
     "Lease", "", RENEWAL_WINDOW_S),
    ("a 1 s lease: 5 % of it", lease(duration=1), lease(renew=LATER, duration=1), "Lease", "", 0.05),
    ("the renewal that also sets the Node as owner (the kubelet's first renewal)",
     lease(), lease(renew=LATER, owner="node1"), "Lease", "", RENEWAL_WINDOW_S),
    ("renewTime unchanged: not a renewal", lease(), lease(), "Lease", "", 0.0),
    ("renewTime cleared: not a renewal", lease(), lease(renew=None), "Lease", "", 0.0),
    ("another holder takes over (leader election hand-over)", lease(), lease(holder="node2", renew=LATER),
     "Lease", "", 0.0),
    ("the holder releases it", lease(), lease(holder="", renew=LATER), "Lease", "", 0.0),
    ("no holder before (an acquisition)", lease(holder=None), lease(renew=LATER), "Lease", "", 0.0),
    ("the duration changes", lease(), lease(renew=LATER, duration=10), "Lease", "", 0.0),
    ("the transitions change", lease(), lease(renew=LATER, transitions=1), "Lease", "", 0.0),
    ("acquireTime changes", lease(), lease(renew=LATER, acquire=LATER), "Lease", "", 0.0),
    ("no duration: nothing to size the window by", lease(duration=None), lease(renew=LATER, duration=None),
     "Lease", "", 0.0),
    ("a status write is never delayed", lease(), lease(renew=LATER), "Lease", "status", 0.0),
    ("another kind is never delayed", lease(), lease(renew=LATER), "ConfigMap", "", 0.0),
    ("no stored object", None, lease(renew=LATER), "Lease", "", 0.0),
])
def test_only_a_lease_renewal_by_its_holder_may_wait(why, old, new, kind, sub, want):
    assert renewal_wait_s(kind, sub, old, new) == pytest.approx(want), why


def test_is_renewal_ignores_metadata_but_not_spec():
    assert is_renewal(lease(rv="7"), lease(renew=LATER, rv="7", owner="node1"))
    assert not is_renewal(lease(), lease(renew=LATER, duration=6))


# ------------------------------------------------------------------ when the batcher proposes

@pytest.mark.parametrize("why, dues, now, want", [
    ("nothing queued: sleep until a submit", [], 5.0, None),
    ("an ordinary write is due at once", [0.0], 5.0, 0.0),
    ("a lone renewal waits for its window", [5.25], 5.0, 0.25),
    ("renewals: the earliest window decides", [5.2, 5.1, 5.25], 5.0, 0.1),
    ("a write behind waiting renewals takes them along at once", [5.25, 5.2, 0.0], 5.0, 0.0),
    ("a window already over", [4.9], 5.0, 0.0),
])
def test_flush_wait(why, dues, now, want):
    got = flush_wait_s(dues, now)
    assert (got is None and want is None) or got == pytest.approx(want), why


# ------------------------------------------------------------------ the batcher, for real

class RecordingConsumer:
    """The Raft consumer stand-in: records each entry (a Batch) and applies it to a real
    StoreState, as every replica would."""

    def __init__(self, state=None):
        self.batches = []
        self.state = state
        self.lock = threading.Lock()

    def apply(self, cmd, callback):
        assert isinstance(cmd, Batch)
        with self.lock:
            self.batches.append(cmd.commands)
            results = (self.state.apply(cmd) if self.state is not None
                       else [("ok", c.request_id) for c in cmd.commands])
        callback(results, FAIL_REASON.SUCCESS)


def test_an_ordinary_write_takes_waiting_renewals_along_without_waiting():
    consumer = RecordingConsumer()
    b = Batcher(consumer)
    try:
        renewals = [b.submit(Update(f"renew{i}", b"x"), wait_s=60.0) for i in range(5)]
        assert not any(p.done.wait(0.05) for p in renewals[:1])    # they wait for their window
        write = b.submit(Update("write", b"y"))
        assert write.done.wait(10), "an ordinary write waited for the renewals' window"
        assert all(p.done.wait(10) for p in renewals)
        assert [[c.request_id for c in batch] for batch in consumer.batches] == \
            [["renew0", "renew1", "renew2", "renew3", "renew4", "write"]]
        assert (b.entries, b.proposals) == (1, 6)
    finally:
        b.close()


def test_renewals_within_one_window_share_one_entry():
    consumer = RecordingConsumer()
    b = Batcher(consumer)
    try:
        waiting = [b.submit(Update(f"renew{i}", b"x"), wait_s=0.3) for i in range(20)]
        assert all(p.done.wait(10) and p.error is None for p in waiting)
        assert [len(batch) for batch in consumer.batches] == [20]
        assert [p.result[1] for p in waiting] == [f"renew{i}" for i in range(20)]
        assert (b.entries, b.proposals) == (1, 20)
    finally:
        b.close()


def test_a_write_without_a_window_still_goes_out_alone():
    consumer = RecordingConsumer()
    b = Batcher(consumer)
    try:
        for i in range(3):
            p = b.submit(Update(f"w{i}", b"x"))
            assert p.done.wait(10)
        assert [len(batch) for batch in consumer.batches] == [1, 1, 1]
    finally:
        b.close()


def _stored_lease(state, name):
    """A copy of the stored Lease (the state's own object must never be changed in place)."""
    out = pb.Lease()
    out.CopyFrom(kinds.unwrap(state.get(("Lease", "kube-node-lease", name)))[1])
    return out


def test_coalesced_renewals_keep_their_own_resource_version_preconditions():
    """A batch applies each renewal as an unbatched update: each gets its own new
    resourceVersion, and a renewal against a stale one conflicts without touching the others."""
    state = StoreState()
    ns = pb.Namespace(metadata=pb.ObjectMeta(name="kube-node-lease"))
    assert state.apply(Create("ns", kinds.encode(kinds.wrap(ns)), "2026-12-07T20:00:00Z", "uid-ns"))[0] == "ok"
    for n in ("node1", "node2", "node3"):
        obj = lease(holder=n)
        obj.metadata.name = n
        assert state.apply(Create(f"c-{n}", kinds.encode(kinds.wrap(obj)), "2026-12-07T20:00:00Z",
                                  f"uid-{n}"))[0] == "ok"
    consumer = RecordingConsumer(state)
    b = Batcher(consumer)
    try:
        def renewal(n, rv):
            obj = _stored_lease(state, n)
            obj.spec.renew_time = LATER
            obj.metadata.resource_version = rv
            return Update(f"renew-{n}", kinds.encode(kinds.wrap(obj)), "", rv)

        rv1 = _stored_lease(state, "node1").metadata.resource_version
        rv3 = _stored_lease(state, "node3").metadata.resource_version
        waiting = [b.submit(renewal("node1", rv1), wait_s=0.3),
                   b.submit(renewal("node2", "1"), wait_s=0.3),     # stale
                   b.submit(renewal("node3", rv3), wait_s=0.3)]
        assert all(p.done.wait(10) and p.error is None for p in waiting)
        assert len(consumer.batches) == 1
        ok1, conflict, ok3 = (p.result for p in waiting)
        assert ok1[0] == "ok" and ok3[0] == "ok"
        assert conflict[:2] == ("error", "conflict")
        assert int(ok1[3]) + 1 == int(ok3[3])           # one resourceVersion per change, in order
        assert _stored_lease(state, "node1").spec.renew_time == LATER
        assert _stored_lease(state, "node2").spec.renew_time != LATER
        assert _stored_lease(state, "node3").metadata.resource_version == str(ok3[3])
    finally:
        b.close()
