"""The Raft-replicated store: StoreState inside a PySyncObj consumer.

What this module adds to PySyncObj, and why (see docs/store.md):
- journal and full dump are always configured together (a journal alone loses
  everything after a compaction and a restart);
- a password is required (the Raft port speaks pickle; unauthenticated bytes
  would be code execution);
- the compaction child dies with its parent (PR_SET_PDEATHSIG): an orphaned
  child renaming a stale dump under a restarted replica made it discard its log;
- socket.inet_ntop is restored after PySyncObj's import replaced it (see below);
- loading keeps journal entries newer than the dump: if the process died after
  the dump was renamed into place but before the journal was trimmed, PySyncObj
  would throw the whole journal away (acknowledged writes lost). We trim the
  journal to the dump's position first, so only entries the dump covers go;
- the tick thread sleeps until its next Raft timer instead of waking on a fixed
  short period (see tick_wait_s and TICK_MAX_WAIT_S).

The Raft tick (PySyncObj's autoTick thread) is the one periodic loop here. It runs
on every socket event (a message, a proposal: PySyncObj's pipe notifier wakes it)
and otherwise when its next timer is due: the leader's heartbeat (heartbeatS,
100 ms: controlplane/config.py RaftTuning says why), a follower's election deadline
(0.45-0.9 s), at most TICK_MAX_WAIT_S apart (connection retries, the leader's
step-down check). Idle, that is about 10 ticks a second on the leader plus one per
message (each follower's reply), and on a follower one per received message; a tick
with nothing to do costs some 50-100 us of Python, a message about 250 us (pickle,
Fernet, dispatch). The heartbeat was 50 ms: its messages alone cost an idle leader
about 2 % of a core and each follower 1 %, half that now. Before, PySyncObj polled every 10 ms
(autoTickPeriod 0.01): 100 empty ticks a second per replica, about 3 % of a core
each at 20 idle nodes (bench/README.md, idle_cost).
"""

import _socket
import ctypes
import logging
import os
import signal
import socket
import threading

from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, SyncObjConsumer, replicated  # noqa: F401 - FAIL_REASON re-exported
# PySyncObj's own clock (CLOCK_MONOTONIC_RAW): its timers are on it, so tick waits must be too.
from pysyncobj.monotonic import monotonic as raft_clock

# pysyncobj/win_inet_pton.py (imported by its TCP transport) sets socket.inet_ntop,
# for the whole process and on every platform, to a Windows-only shim that raises
# TypeError on Linux. pyroute2 decodes addresses with it: in a process that had
# imported PySyncObj, every interface address read back as missing (the test run
# then re-added a pod's address: EEXIST). Put the C function back. pyroute2 copies the
# function when it is imported, so import PySyncObj only through this module.
socket.inet_ntop = _socket.inet_ntop

from controlplane.store.state import StoreState

log = logging.getLogger("skiff.store")

_PR_SET_PDEATHSIG = 1
_LEADER = 2                 # PySyncObj's _RAFT_STATE.LEADER
# The longest the tick thread sleeps with no socket event and no timer due: bounds how
# late a connection retry (connectionRetryTime 0.2 s) or the leader's step-down check
# (leaderFallbackTimeout) can run. It is PySyncObj's autoTickPeriod.
TICK_MAX_WAIT_S = 0.1
# The shortest: a timer already due (a follower that cannot start an election because
# it reaches no peer keeps a past deadline) must not turn the tick into a busy loop.
TICK_MIN_WAIT_S = 0.01


def tick_wait_s(leader: bool, now: float, append_at: float, election_at: float,
                max_wait_s: float = TICK_MAX_WAIT_S, min_wait_s: float = TICK_MIN_WAIT_S) -> float:
    """How long the Raft tick thread may wait for a socket event before its next timer.

    The leader's next timer is its next heartbeat (append_at, PySyncObj's
    newAppendEntriesTime); a follower's or candidate's is its election deadline
    (election_at). Clamped to [min_wait_s, max_wait_s]. Pure (tests/unit).
    """
    due = append_at if leader else election_at
    return max(min_wait_s, min(max_wait_s, due - now))


class _TimerPoller:
    """PySyncObj's poller, whose poll() waits no longer than until the next Raft timer.

    PySyncObj calls poll(autoTickPeriod) at the end of every tick, after the tick
    acted on its timers, so the wait computed here sees the timers the tick just set.
    Everything else (subscribe, unsubscribe) goes to the real poller.
    """

    def __init__(self, inner, next_wait_s):
        self._inner = inner
        self._next_wait_s = next_wait_s

    def poll(self, timeout):
        if timeout > 0:
            timeout = min(timeout, self._next_wait_s())
        return self._inner.poll(timeout)

    def __getattr__(self, name):
        return getattr(self._inner, name)


def die_with_parent_on_fork() -> None:
    """Make every os.fork() child of this process die when the forking thread dies.

    Installed once at start-up; affects PySyncObj's compaction child. A child whose
    parent is already gone by the time prctl runs exits at once.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def _after_fork_in_child():
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    os.register_at_fork(after_in_child=_after_fork_in_child)


class StoreConsumer(SyncObjConsumer):
    """Holds the StoreState; fields set after super().__init__() are snapshotted."""

    def __init__(self, event_log_size: int):
        # Not snapshotted (set before the base class records its own fields).
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)     # any change
        self._kind_changed: dict = {}                     # kind -> Condition on self.lock
        super().__init__()
        self.state = StoreState(event_log_size=event_log_size)

    def changed_for(self, kind: str) -> threading.Condition:
        """A condition (on self.lock) notified when objects of `kind` change, so a watcher
        of Pods is not woken by every ConfigMap write (each wake costs the GIL)."""
        with self.lock:
            cond = self._kind_changed.get(kind)
            if cond is None:
                cond = self._kind_changed[kind] = threading.Condition(self.lock)
            return cond

    @replicated
    def apply(self, cmd):
        with self.changed:
            before = self.state.rv
            result = self.state.apply(cmd)
            if self.state.rv != before:
                self.changed.notify_all()
                # Every quarter of the watch history, wake every watcher: one that sleeps
                # through other kinds' writes must still move its cursor before the
                # events it stands on expire (it would get "too old" and re-list).
                quarter = max(1, (self.state.events.maxlen or 4) // 4)
                if before // quarter != self.state.rv // quarter:
                    kinds_now = self._kind_changed.keys()
                else:
                    kinds_now = self.state.kinds_changed_after(before)
                for kind in kinds_now:
                    cond = self._kind_changed.get(kind)
                    if cond is not None:
                        cond.notify_all()
        return result

    def wake_watchers(self):
        """Wake every watcher (of every kind) to re-check what is not a change of state:
        the store calls it on a Raft state change, so a watch of a replica that lost its
        leader ends within WATCH_NO_LEADER_S instead of at its next idle poll."""
        with self.changed:
            self.changed.notify_all()
            for cond in self._kind_changed.values():
                cond.notify_all()

    def _deserialize(self, data):
        with self.changed:
            super()._deserialize(data)
            self.changed.notify_all()
            for cond in self._kind_changed.values():
                cond.notify_all()


class SkiffSyncObj(SyncObj):
    """SyncObj with two fixes of its own behaviour (pinned to pysyncobj 0.3.17), and a
    tick that sleeps until its next timer (_TimerPoller, tick_wait_s):

    - a load path that never discards journal entries newer than the dump;
    - a leader that does not move a follower's nextIndex backwards on a success
      reply. With unbatched appends the leader pipelines entries and advances
      nextIndex as it sends; PySyncObj then reset nextIndex to the first reply's
      index, re-sent entries already in flight, and followers truncated and
      re-appended them ("truncating already-applied log entries", logged as
      CRITICAL), costing CPU and stalls under load. Failure replies (reset) still
      move nextIndex back, so a lost append is repaired as before.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The tick thread started inside the constructor; it reads self._poller on every
        # tick, so from its next poll on it waits through the wrapper.
        self._poller = _TimerPoller(self._poller, self._tick_wait_s)

    def _tick_wait_s(self) -> float:
        return tick_wait_s(self._SyncObj__raftState == _LEADER, raft_clock(),
                           self._SyncObj__newAppendEntriesTime, self._SyncObj__raftElectionDeadline)

    def _SyncObj__onMessageReceived(self, node, message):  # noqa: N802 - overrides a mangled name
        if (isinstance(message, dict) and message.get("type") == "next_node_idx"
                and message.get("success") and not message.get("reset")):
            sent_up_to = self._SyncObj__raftNextIndex.get(node)
            SyncObj._SyncObj__onMessageReceived(self, node, message)
            now = self._SyncObj__raftNextIndex.get(node)
            if sent_up_to is not None and now is not None and now < sent_up_to:
                self._SyncObj__raftNextIndex[node] = sent_up_to
            return
        SyncObj._SyncObj__onMessageReceived(self, node, message)

    def _SyncObj__loadDumpFile(self, clearJournal):  # noqa: N802 - overrides a mangled name
        if not clearJournal:
            try:
                self._align_journal_to_dump()
            except Exception:  # noqa: BLE001 - fall back to PySyncObj's own behaviour
                log.exception("event=journal_align_failed")
        return SyncObj._SyncObj__loadDumpFile(self, clearJournal)

    def _align_journal_to_dump(self):
        data = self._SyncObj__serializer.deserialize()
        prev_entry, last_entry = data[2], data[1]
        journal = self._SyncObj__raftLog
        if len(journal) < 2:
            return
        first_idx = journal[0][1]
        offset = prev_entry[1] - first_idx
        if offset <= 0 or offset + 1 >= len(journal):
            return
        if journal[offset][1:] == prev_entry[1:] and journal[offset + 1][1:] == last_entry[1:]:
            log.warning("event=journal_realigned dump_index=%d dropped_entries=%d kept_newer=%d",
                        last_entry[1], offset, len(journal) - offset - 2)
            journal.deleteEntriesTo(offset)


def make_conf(data_dir: str, password: str, *, min_timeout_s: float, max_timeout_s: float,
              heartbeat_s: float, compaction_min_entries: int, compaction_min_time_s: float,
              on_state_changed=None) -> SyncObjConf:
    """PySyncObj settings for a LAN cluster, with both persistence files always set."""
    if not password:
        raise ValueError("a Raft password is required (the Raft port deserializes pickle)")
    os.makedirs(data_dir, exist_ok=True)
    return SyncObjConf(
        password=password,
        journalFile=os.path.join(data_dir, "raft.journal"),
        fullDumpFile=os.path.join(data_dir, "raft.dump"),
        # Unbatched appends: ~1 ms commits instead of one append period (100 ms default).
        appendEntriesUseBatch=False,
        appendEntriesPeriod=heartbeat_s,
        # The longest tick wait; SkiffSyncObj waits less when a Raft timer is due sooner.
        autoTickPeriod=TICK_MAX_WAIT_S,
        raftMinTimeout=min_timeout_s,
        raftMaxTimeout=max_timeout_s,
        connectionTimeout=max(max_timeout_s, 1.0),
        connectionRetryTime=0.2,
        # A leader cut off from the majority steps down after this long.
        leaderFallbackTimeout=max(2 * max_timeout_s, 1.0),
        logCompactionMinEntries=compaction_min_entries,
        logCompactionMinTime=compaction_min_time_s,
        # Refuse (MISSING_LEADER) rather than queue while there is no leader: a queued
        # write would be applied whenever the partition heals, long after its client
        # gave up and maybe wrote something newer. Store.propose retries until its deadline.
        commandsWaitLeader=False,
        dynamicMembershipChange=False,
        onStateChanged=on_state_changed,
    )
