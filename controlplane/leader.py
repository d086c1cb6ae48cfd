"""Runs the leader-only loops exactly while this replica is the Raft leader.

LeaderSupervisor polls store.is_leader() (and is_ready(): caught up with the
log) every period_s. On gaining leadership it builds a fresh set of loops with
`factory()` (a ControllerManager: new informers, new clocks) and starts it; on
losing it, it stops them. Between polls the loops' own writes re-check
leadership (controllers.guard), so a deposed leader stops writing at once even
before the supervisor notices. A flapping replica gets a new manager per term;
nothing carries over from one term to the next, by design (a new leader gives
every node a fresh grace period).
"""

import logging
import threading

log = logging.getLogger("skiff.leader")


class LeaderSupervisor:
    def __init__(self, store, factory, period_s: float = 0.1):
        self.store = store
        self.factory = factory
        self.period_s = period_s
        self.terms = 0           # how many times this replica started the loops
        self._current = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leader-supervisor", daemon=True)

    @property
    def leading(self) -> bool:
        return self._current is not None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)
        self._stop_current("shutdown")

    def _leads(self) -> bool:
        try:
            return self.store.is_leader() and self.store.is_ready()
        except Exception:  # noqa: BLE001 - a store being closed is not a leader
            return False

    def _run(self) -> None:
        while not self._stop.is_set():
            leads = self._leads()
            if leads and self._current is None:
                self.terms += 1
                log.info("event=leader_loops_start term_count=%d", self.terms)
                try:
                    self._current = self.factory()
                    self._current.start()
                except Exception:  # noqa: BLE001 - try again next poll
                    log.exception("event=leader_loops_start_failed")
                    self._current = None
            elif not leads and self._current is not None:
                self._stop_current("lost_leadership")
            self._stop.wait(self.period_s)

    def _stop_current(self, reason: str) -> None:
        current, self._current = self._current, None
        if current is not None:
            log.info("event=leader_loops_stop reason=%s", reason)
            current.stop()
