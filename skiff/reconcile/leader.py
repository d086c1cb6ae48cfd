"""Runs a set of loops exactly while this process leads.

LeaderSupervisor polls leads() every period_s. On gaining leadership it builds a
fresh set of loops with factory() (anything with start() and stop(): e.g. a Group
of a controller manager and a bootstrapper) and starts it; on losing it, it stops
them. Nothing carries over from one term to the next, by design: a new leader
starts from fresh caches and clocks. leads() raising counts as not leading (a
store being closed leads nothing). Between polls the loops should re-check
leadership on every write themselves (the control plane's guarded client), so a
deposed leader stops acting at once.

Period and cost: the caller's period_s; a poll is one leads() call, nothing else,
and starts or stops the loops only on a change. wake() (safe from any thread, never
blocks: e.g. from a Raft state-change callback) makes it poll at once, so a process
told about leadership changes can poll rarely (the control plane: every 1 s) and
still react at once.
"""

import logging
import threading

log = logging.getLogger("skiff.leader")


class Group:
    """Several loops started and stopped as one (in order; stopped in reverse)."""

    def __init__(self, *members):
        self.members = [m for m in members if m is not None]

    def start(self) -> "Group":
        for m in self.members:
            m.start()
        return self

    def stop(self) -> None:
        for m in reversed(self.members):
            try:
                m.stop()
            except Exception:  # noqa: BLE001 - stop the others anyway
                log.exception("event=stop_failed member=%s", type(m).__name__)


class LeaderSupervisor:
    def __init__(self, leads, factory, period_s: float = 0.1, name: str = "leader-supervisor"):
        self.leads = leads
        self.factory = factory
        self.period_s = period_s
        self.terms = 0           # how many times this process started the loops
        self._current = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def wake(self) -> None:
        """Poll leads() now rather than at the end of the period."""
        self._wake.set()

    @property
    def leading(self) -> bool:
        return self._current is not None

    def start(self) -> "LeaderSupervisor":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(5.0)
        self._stop_current("shutdown")

    def _leads(self) -> bool:
        try:
            return bool(self.leads())
        except Exception:  # noqa: BLE001 - e.g. a store being closed is not a leader
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
            self._wake.wait(self.period_s)
            self._wake.clear()

    def _stop_current(self, reason: str) -> None:
        current, self._current = self._current, None
        if current is not None:
            log.info("event=leader_loops_stop reason=%s", reason)
            current.stop()
