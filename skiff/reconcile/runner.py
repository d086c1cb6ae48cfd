"""The bounded-frequency runner: one whole-state sync, paced as kube-proxy paces syncProxyRules.

A loop whose sync recomputes everything at once (the proxier's rule set, a GC
pass, a node-lifecycle tick, the pod network's routes) has a single key, so a
work queue buys nothing; what it needs is pacing:

- run() asks for a sync soon: requests that arrive while one is pending or
  running are folded into the next sync (churn is batched);
- no two syncs start less than min_interval_s apart (minSyncPeriod);
- after a successful sync the next one is due max_interval_s later (syncPeriod:
  repairs drift and missed events), or after the number of seconds the sync
  returned, if it returned one (None from a sync means "the usual period";
  max_interval_s None means "only on request");
- after a failed sync (it raised) the next one is due after retry_base_s,
  doubling per consecutive failure up to retry_max_s; a request still runs
  sooner (subject to min_interval_s), as kube-proxy's retry does;
- a sync raising Quiet counts as done (no log, no retry);
- nothing runs before the informers it reads have synced; with
  run_at_start the first sync runs then, else max_interval_s later.

Pacing is the pure part (every method takes `now`), tested with a fake clock;
BoundedFrequencyRunner is the thread around it. Periods are measured on the
monotonic clock from the end of a sync, min_interval_s from the start of one.

Period and cost: the caller's max_interval_s (None: only on request); between syncs
the thread sleeps on a condition until the next one is due and costs nothing.
"""

import logging
import math
import threading
import time

from skiff.reconcile.common import Quiet, log_failure, wait_for_informers

log = logging.getLogger("skiff.reconcile")


class Pacing:
    """When the next sync is due (absolute monotonic seconds); no threads, no clock of its own."""

    def __init__(self, min_interval_s: float = 0.0, max_interval_s: float | None = None,
                 retry_base_s: float = 1.0, retry_max_s: float = 30.0, run_at_start: bool = True):
        self.min_interval_s = min_interval_s
        self.max_interval_s = max_interval_s
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.run_at_start = run_at_start
        self.last_start = -math.inf
        self.next_at = math.inf       # the scheduled (periodic or retry) sync
        self.requested = False
        self.failures = 0

    def _after(self, now: float, delay_s: float | None) -> float:
        return math.inf if delay_s is None else now + max(0.0, delay_s)

    def started(self, now: float) -> None:
        """The loop begins (informers synced)."""
        self.next_at = now if self.run_at_start else self._after(now, self.max_interval_s)

    def request(self) -> None:
        self.requested = True

    def due_at(self) -> float:
        want = min(self.next_at, -math.inf if self.requested else math.inf)
        return max(want, self.last_start + self.min_interval_s)

    def began(self, now: float) -> None:
        """A sync starts: requests so far are served by it; later ones ask for another."""
        self.last_start = now
        self.requested = False
        self.next_at = math.inf

    def finished(self, now: float, ok: bool, again_s: float | None = None) -> float:
        """A sync ended; returns the delay until the next scheduled one (inf: none)."""
        if ok:
            self.failures = 0
            delay = again_s if again_s is not None else self.max_interval_s
        else:
            self.failures += 1
            delay = min(self.retry_max_s, self.retry_base_s * 2 ** (self.failures - 1))
        self.next_at = self._after(now, delay)
        return self.next_at - now


class BoundedFrequencyRunner:
    def __init__(self, name: str, sync, *, min_interval_s: float = 0.0, max_interval_s: float | None = None,
                 retry_base_s: float = 1.0, retry_max_s: float = 30.0, run_at_start: bool = True,
                 informers=(), logger: logging.Logger | None = None, clock=time.monotonic):
        """sync() -> None or seconds until the next periodic sync."""
        self.name = name
        self._sync = sync
        self._informers = tuple(informers)
        self._log = logger or log
        self._clock = clock
        self.pacing = Pacing(min_interval_s, max_interval_s, retry_base_s, retry_max_s, run_at_start)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.runs = 0           # syncs started (tests, logs)
        self._in_sync = False

    @property
    def idle(self) -> bool:
        """True when no sync is running and none is asked for (tests wait on this
        before changing what the sync watches, so a change does not land mid-sync)."""
        with self._cond:
            return not self._in_sync and not self.pacing.requested

    def run(self) -> None:
        """Ask for a sync soon (safe from any thread, e.g. an informer handler)."""
        with self._cond:
            self.pacing.request()
            self._cond.notify()

    def start(self) -> "BoundedFrequencyRunner":
        self._thread.start()
        return self

    def stop(self, join_s: float = 0.0) -> None:
        """Stop; waits up to join_s for a running sync to end (0: do not wait)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if join_s > 0 and self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(join_s)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def _wait_due(self) -> bool:
        with self._cond:
            while not self._stop.is_set():
                wait_s = self.pacing.due_at() - self._clock()
                if wait_s <= 0:
                    self.pacing.began(self._clock())
                    self.runs += 1
                    self._in_sync = True
                    return True
                self._cond.wait(None if math.isinf(wait_s) else wait_s)
        return False

    def _run(self) -> None:
        if not wait_for_informers(self._informers, self._stop):
            return
        with self._cond:
            self.pacing.started(self._clock())
        while self._wait_due():
            ok, again_s, error = True, None, None
            try:
                again_s = self._sync()
            except Quiet:
                pass
            except Exception as exc:  # noqa: BLE001 - retried; the loop must live on
                ok, error = False, exc
            with self._cond:
                self._in_sync = False
                retry_s = self.pacing.finished(self._clock(), ok, again_s)
                failures = self.pacing.failures
            if error is not None:
                log_failure(self._log, error, "sync", loop=self.name, failures=failures, retry_s=f"{retry_s:.2f}")
