"""Store: the API server's handle on the replicated state.

Writes (commands of controlplane/store/commands.py) go through the Raft log and
return only once committed and applied on this replica (so a client reads its own
writes from the replica it wrote to). Outcome-unknown failures are retried with
the same request id, which the state machine applies at most once. Reads come from
this replica's applied state (StoreReader: get, list, watch, the admission view,
dry runs), or, when asked for, after a barrier through the log (linearizable).
Nothing outside controlplane/store touches the state, its lock or its change log.
Secrets are sealed here before they are proposed and opened on the way out
(controlplane/store/sealing.py, with the replica's encryption config), so the Raft log,
the journal and the dump never hold their content in clear.

Periods and costs: the batcher thread has no period (it sleeps until a proposal
arrives, or until the window of a waiting renewal ends); the one periodic loop of a
replica's store is PySyncObj's tick thread (controlplane/store/raft.py: every Raft timer
and socket event). Idle, a replica's Raft cost is set by the log entries that go through
it: each costs every replica a few Raft messages. At 20 nodes the Lease renewals are 16
writes a second; a renewal may wait (propose(wait_s=...), at most 250 ms) for others, so
the renewals that reach a replica within one window share one entry (bench/README.md,
idle_cost, for the figures).
"""

import logging
import threading
import time
import uuid

# PySyncObj only through raft.py, which repairs what its import breaks (socket.inet_ntop).
from controlplane.store.commands import Apply, Barrier, Batch, Update, payload_size
from controlplane.store.raft import FAIL_REASON, SkiffSyncObj, StoreConsumer, make_conf
from controlplane.store.reader import StoreReader
from controlplane.store.sealing import REWRITE, Sealer, sealed_key
from skiff.api import kinds
from skiff.api import objects_pb2 as pb

log = logging.getLogger("skiff.store")

# Never applied: safe to send again as they are.
_NOT_APPLIED = {FAIL_REASON.QUEUE_FULL, FAIL_REASON.MISSING_LEADER, FAIL_REASON.DISCARDED,
                FAIL_REASON.NOT_LEADER, FAIL_REASON.REQUEST_DENIED}
ROLE_NAMES = {0: "follower", 1: "candidate", 2: "leader"}


class StoreUnavailable(Exception):
    """No commit within the deadline (no leader or no quorum reachable)."""


class _Pending:
    """One proposal waiting for its batch to commit."""

    __slots__ = ("cmd", "size", "due", "done", "result", "error")

    def __init__(self, cmd, due: float = 0.0):
        self.cmd = cmd
        # What the command carries into the log (objects are bytes; keys and ids are small).
        self.size = payload_size(cmd)
        # The latest time (time.monotonic) its entry should be proposed; 0 = at once.
        self.due = due
        self.done = threading.Event()
        self.result = None
        self.error = None


def flush_wait_s(dues, now: float) -> float | None:
    """How long the batcher may still wait before proposing what is queued: None with
    nothing queued, else until the earliest due time of the queued proposals (0 if it
    has passed). A proposal without a window is due at once (0.0), so an ordinary write
    never waits, and the renewals waiting then ride along in its entry. Pure (tests/unit).
    """
    earliest = min(dues, default=None)
    if earliest is None:
        return None
    return max(0.0, earliest - now)


class Batcher:
    """Coalesces proposals into one Raft entry (at most MAX_BATCH proposals and
    MAX_BATCH_BYTES of objects, but always at least one), and pipelines entries.

    Why: every Raft entry costs a pickle, an encryption, a send per follower, a
    journal write and a round of ticks (about ten PySyncObj messages on the leader);
    under concurrency one entry per write was the bottleneck, and idle, the Lease
    renewals are nearly all the entries there are.

    When: a proposal carries a due time (submit's wait_s). The batcher proposes the
    moment the earliest queued proposal is due (flush_wait_s), taking everything queued
    (within the caps). An ordinary write is due at once: it waits for no timer, a lone
    write goes out alone, immediately, as before. A Lease renewal may wait a short window
    (the API server decides, controlplane/apiserver/renewals.py): the renewals reaching
    this replica within it share one entry, or ride along with the next ordinary write.
    Each command in a batch is still applied on its own, in order, with its own
    resourceVersion precondition and result (StoreState.apply of a Batch).
    Callbacks run on PySyncObj's tick thread and only set events.
    """

    MAX_BATCH = 256
    # A batch is one Raft entry, held whole in memory by every replica and sent whole
    # to every follower; 256 objects of up to 1 MiB each would be one 256 MiB entry.
    MAX_BATCH_BYTES = 4 * 1024 * 1024

    def __init__(self, consumer, clock=time.monotonic):
        self.consumer = consumer
        self._clock = clock
        self._queue: list = []
        self._cond = threading.Condition()
        self._closed = False
        # Counters (read without the lock: ints, for tests and logs): Raft entries this
        # replica proposed, and the proposals they carried.
        self.entries = 0
        self.proposals = 0
        self._thread = threading.Thread(target=self._run, name="raft-batcher", daemon=True)
        self._thread.start()

    def submit(self, cmd, wait_s: float = 0.0) -> _Pending:
        """Queue cmd; its entry is proposed within wait_s (0: at once)."""
        p = _Pending(cmd, self._clock() + wait_s if wait_s > 0 else 0.0)
        with self._cond:
            self._queue.append(p)
            self._cond.notify()
        return p

    def close(self):
        with self._cond:
            self._closed = True
            self._cond.notify()

    def _run(self):
        while True:
            with self._cond:
                while not self._closed:
                    wait_s = flush_wait_s((p.due for p in self._queue), self._clock())
                    if wait_s == 0.0:
                        break
                    self._cond.wait(wait_s)   # None: until a submit (or close)
                if self._closed:
                    return
                batch = self._take()
            self.entries += 1
            self.proposals += len(batch)
            self._propose(batch)

    def _take(self) -> list:
        """The longest head of the queue within both caps (always at least one proposal).
        The caller holds self._cond."""
        n, size = 0, 0
        for p in self._queue[:self.MAX_BATCH]:
            if n and size + p.size > self.MAX_BATCH_BYTES:
                break
            n, size = n + 1, size + p.size
        batch = self._queue[:n]
        del self._queue[:n]
        return batch

    def _propose(self, batch):
        def on_result(result, error, batch=batch):
            if error == FAIL_REASON.SUCCESS:
                for p, r in zip(batch, result):
                    p.result = r
                    p.done.set()
            else:
                for p in batch:
                    p.error = error
                    p.done.set()

        try:
            self.consumer.apply(Batch(tuple(p.cmd for p in batch)), callback=on_result)
        except Exception as exc:  # noqa: BLE001 - hand the failure to every waiter
            for p in batch:
                p.error = getattr(exc, "errorCode", FAIL_REASON.REQUEST_DENIED)
                p.done.set()


# How often the rewrite of a stale sealed Secret retries after losing a race with
# another write of it (each attempt re-reads the stored version).
RESEAL_ATTEMPTS = 5


class Store(StoreReader):
    def __init__(self, cfg, on_state_changed=None):
        self.cfg = cfg
        super().__init__(StoreConsumer(cfg.watch_history), Sealer(getattr(cfg, "encryption", None)))
        self._listeners = [on_state_changed] if on_state_changed else []
        conf = make_conf(
            cfg.data_dir, cfg.raft_password,
            min_timeout_s=cfg.raft.min_timeout_s, max_timeout_s=cfg.raft.max_timeout_s,
            heartbeat_s=cfg.raft.heartbeat_s,
            compaction_min_entries=cfg.raft.compaction_min_entries,
            compaction_min_time_s=cfg.raft.compaction_min_time_s,
            on_state_changed=self._state_changed)
        self.sync = SkiffSyncObj(cfg.raft_address, [p.raft_address for p in cfg.peers],
                                 conf=conf, consumers=[self.consumer])
        self.leader_changes = 0
        self._closed = threading.Event()
        self.batcher = Batcher(self.consumer)

    # ------------------------------------------------------------ lifecycle

    def _state_changed(self, old, new):
        # Runs on the Raft tick thread: must not block.
        self.leader_changes += 1
        log.info("event=raft_state old=%s new=%s", ROLE_NAMES.get(old, old), ROLE_NAMES.get(new, new))
        self.consumer.wake_watchers()    # open watches re-check has_leader() now
        for listener in self._listeners:
            try:
                listener(old, new)
            except Exception:  # noqa: BLE001
                log.exception("event=state_listener_failed")

    def add_state_listener(self, listener) -> None:
        """listener(old, new) on every Raft state change (follower/candidate/leader, as
        PySyncObj's numbers); it runs on the Raft tick thread and must not block."""
        self._listeners.append(listener)

    def close(self):
        self._closed.set()
        self.batcher.close()
        # Watch streams the API server has cancelled end at their next wake: now, not at
        # their idle poll (WATCH_POLL_S), so the replica's exit does not wait for them.
        self.consumer.wake_watchers()
        self.sync.destroy()

    # ------------------------------------------------------------ writes

    def propose(self, cmd, timeout_s: float, wait_s: float = 0.0):
        """Replicate cmd; return its result once applied here, or raise StoreUnavailable.

        cmd.request_id makes re-proposing after an unknown outcome safe. wait_s: how long
        its first proposal may wait for others to share its Raft entry (the Batcher; 0 =
        none, for every write but a Lease renewal); a retry goes out at once. A Secret is
        sealed before it goes into the log and opened in the result; a write that leaves it
        sealed with a stale key is followed by its rewrite (sealing.py, module doc).
        """
        deadline = time.monotonic() + timeout_s
        key = sealed_key(cmd)
        result = self._replicate(self.sealer.seal_command(cmd, self.stored), timeout_s, wait_s)
        if key is not None and result[0] == "ok" and result[2] is not None:
            result = self._reseal_if_stale(key, cmd, result, max(0.1, deadline - time.monotonic()))
        return self.sealer.open_result(result)

    def _reseal_if_stale(self, key, cmd, result, timeout_s: float):
        """After a write of the Secret at key: rewrite it with the write key if it is stored
        with another one (compare-and-swap on the version read; re-read on a conflict)."""
        outcome = result[1]
        for _ in range(RESEAL_ATTEMPTS):
            env = self.stored(key)
            if env is None or not self.sealer.is_stale(env.secret):
                return result
            rewrite = pb.Object(secret=self.sealer.resealed(env.secret))
            rv = env.secret.metadata.resource_version
            again = self._replicate(Update(f"reseal-{uuid.uuid4().hex}", kinds.encode(rewrite), REWRITE, rv),
                                    timeout_s)
            if again[0] == "ok":
                log.info("event=secret_resealed namespace=%s name=%s key=%s", key[1], key[2],
                         self.sealer.encryption.describe_write().replace(" ", "_"))
                if outcome == "unchanged":     # stored anew: the client sees the write it caused
                    outcome = "configured" if isinstance(cmd, Apply) else "updated"
                return ("ok", outcome, *again[2:])
            if again[1] != "conflict":
                break
        log.warning("event=secret_reseal_failed namespace=%s name=%s", key[1], key[2])
        return result

    def _replicate(self, cmd, timeout_s: float, wait_s: float = 0.0):
        deadline = time.monotonic() + timeout_s
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._closed.is_set():
                raise StoreUnavailable(
                    f"no commit within {timeout_s:.1f}s (no Raft leader reachable from "
                    f"{self.cfg.name}?); the request may retry with the same id")
            pending = self.batcher.submit(cmd, wait_s if attempt == 0 else 0.0)
            if pending.done.wait(min(remaining, 3.0)) and pending.error is None:
                return pending.result
            attempt += 1
            reason = pending.error if pending.done.is_set() else "Timeout"
            if attempt == 1 or attempt % 20 == 0:
                log.info("event=propose_retry reason=%s attempt=%d", reason, attempt)
            if reason in _NOT_APPLIED:
                time.sleep(min(0.02 * attempt, 0.1))
            # LEADER_CHANGED, UNKNOWN_OUTCOME, Timeout: maybe applied; the
            # request id makes the retry return the first outcome.

    def barrier(self, request_id: str, timeout_s: float):
        """Return once this replica has applied everything committed before the call."""
        return self.propose(Barrier(request_id), timeout_s)

    # ------------------------------------------------------------ Raft

    def raft_status(self) -> dict:
        return self.sync.getStatus()

    def is_leader(self) -> bool:
        return self.sync._isLeader()  # noqa: SLF001 - cheap, no public equivalent

    def has_leader(self) -> bool:
        return self.sync._getLeader() is not None  # noqa: SLF001 - cheap, no public equivalent

    def is_ready(self) -> bool:
        return self.sync.isReady()
