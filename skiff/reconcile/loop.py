"""The keyed reconcile loop: a work queue, workers, per-key backoff, resync.

Invariants:
- event handlers only call enqueue(); sync(key) runs on a worker thread, one
  key never on two workers at once (WorkQueue's guarantee);
- sync(key) returning a number of seconds asks for another look after that
  delay (e.g. when a pod becomes available after minReadySeconds); returning
  BACKOFF, or raising, puts the key back with per-key exponential backoff
  (base_delay_s doubling up to max_delay_s, until a sync returns anything
  else); returning None or a delay forgets the key's failures;
- a sync raising Quiet drops the key without a log or a retry (whoever takes
  over picks it up);
- every resync_s all keys from list_keys() are enqueued, which repairs any
  missed event (level-triggered: a sync never depends on what event caused
  it); with resync_at_start also once as soon as the informers have synced;
- nothing runs before the informers it reads have synced.

Period and cost: the caller's resync_s (default 30 s; 0 = none); between resyncs
the workers sleep on the queue and cost nothing; a resync costs list_keys() plus one
sync per key.
"""

import logging
import threading

from skiff.reconcile.common import Quiet, log_failure, wait_for_informers
from skiff.workqueue import WorkQueue

log = logging.getLogger("skiff.reconcile")

BACKOFF = "backoff"  # sync's answer for "not done, try again later with growing delays"


class Loop:
    def __init__(self, name: str, sync, *, informers=(), list_keys=None, workers: int = 1,
                 resync_s: float = 30.0, base_delay_s: float = 0.05, max_delay_s: float = 30.0,
                 resync_at_start: bool = False, logger: logging.Logger | None = None):
        self.name = name
        self._sync = sync
        self._informers = tuple(informers)
        self._list_keys = list_keys
        self._workers = workers
        self._resync_s = resync_s
        self._resync_at_start = resync_at_start
        self._log = logger or log
        self.queue = WorkQueue(base_delay_s=base_delay_s, max_delay_s=max_delay_s)
        self._stop = threading.Event()
        self._threads = []

    def enqueue(self, key, delay_s: float = 0.0) -> None:
        if delay_s > 0:
            self.queue.add_after(key, delay_s)
        else:
            self.queue.add(key)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def start(self) -> "Loop":
        for i in range(self._workers):
            self._spawn(self._work, f"{self.name}-{i}")
        if self._list_keys is not None and (self._resync_s or self._resync_at_start):
            self._spawn(self._resync, f"{self.name}-resync")
        return self

    def _spawn(self, fn, name):
        t = threading.Thread(target=fn, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self) -> None:
        """Non-blocking: workers finish their current key and exit."""
        self._stop.set()
        self.queue.shutdown()

    def _work(self) -> None:
        if not wait_for_informers(self._informers, self._stop):
            return
        while not self._stop.is_set():
            key = self.queue.get()
            if key is None:
                return
            try:
                again_s = self._sync(key)
                if again_s == BACKOFF:
                    self.queue.add_rate_limited(key)
                else:
                    self.queue.forget(key)
                    if again_s is not None and again_s >= 0:
                        self.queue.add_after(key, again_s)
            except Quiet:
                pass
            except Exception as exc:  # noqa: BLE001 - a bug in one key must not stop the loop
                delay = self.queue.add_rate_limited(key)
                log_failure(self._log, exc, "sync", loop=self.name, key=key, delay_s=f"{delay:.2f}")
            finally:
                self.queue.done(key)

    def _enqueue_all(self) -> None:
        try:
            for key in self._list_keys():
                self.queue.add(key)
        except Exception:  # noqa: BLE001
            self._log.exception("event=resync_failed loop=%s", self.name)

    def _resync(self) -> None:
        if not wait_for_informers(self._informers, self._stop):
            return
        if self._resync_at_start:
            self._enqueue_all()
        if not self._resync_s:
            return
        while not self._stop.wait(self._resync_s):
            self._enqueue_all()
