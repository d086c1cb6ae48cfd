"""The reconcile loop every controller shares: a work queue, workers, backoff, resync.

Invariants:
- event handlers only call enqueue(); sync(key) runs on a worker thread, one
  key never on two workers at once (WorkQueue's guarantee);
- sync(key) returning a number of seconds asks for another look after that
  delay (e.g. when a pod becomes available after minReadySeconds); returning
  BACKOFF, or raising, puts the key back with per-key exponential backoff
  (the delay doubles until a sync returns anything else); returning None or a
  delay forgets the key's failures;
- every resync_s all keys from list_keys() are enqueued, which repairs any
  missed event (level-triggered: a sync never depends on what event caused it);
- nothing runs before the informers it reads have synced.
"""

import logging
import threading

from controlplane.controllers.guard import NotLeader
from skiff import client as clientmod
from skiff.workqueue import WorkQueue

log = logging.getLogger("skiff.controllers")

BACKOFF = "backoff"  # sync's answer for "not done, try again later with growing delays"


class Loop:
    def __init__(self, name: str, sync, *, informers=(), list_keys=None, workers: int = 1,
                 resync_s: float = 30.0, base_delay_s: float = 0.05, max_delay_s: float = 30.0):
        self.name = name
        self._sync = sync
        self._informers = tuple(informers)
        self._list_keys = list_keys
        self._workers = workers
        self._resync_s = resync_s
        self.queue = WorkQueue(base_delay_s=base_delay_s, max_delay_s=max_delay_s)
        self._stop = threading.Event()
        self._threads = []

    def enqueue(self, key, delay_s: float = 0.0) -> None:
        if delay_s > 0:
            self.queue.add_after(key, delay_s)
        else:
            self.queue.add(key)

    def start(self) -> None:
        for i in range(self._workers):
            t = threading.Thread(target=self._work, name=f"{self.name}-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        if self._list_keys is not None and self._resync_s:
            t = threading.Thread(target=self._resync, name=f"{self.name}-resync", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        self.queue.shutdown()

    def _wait_synced(self) -> bool:
        for inf in self._informers:
            while not inf.wait_synced(0.2):
                if self._stop.is_set():
                    return False
        return not self._stop.is_set()

    def _work(self) -> None:
        if not self._wait_synced():
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
            except NotLeader:
                pass  # the supervisor stops this loop; a new leader picks the key up
            except clientmod.ApiError as exc:
                delay = self.queue.add_rate_limited(key)
                log.info("event=sync_retry loop=%s key=%s delay_s=%.2f error=%s", self.name, key, delay,
                         str(exc)[:160].replace(" ", "_"))
            except Exception:  # noqa: BLE001 - a bug in one key must not stop the loop
                delay = self.queue.add_rate_limited(key)
                log.exception("event=sync_failed loop=%s key=%s delay_s=%.2f", self.name, key, delay)
            finally:
                self.queue.done(key)

    def _resync(self) -> None:
        if not self._wait_synced():
            return
        while not self._stop.wait(self._resync_s):
            try:
                for key in self._list_keys():
                    self.queue.add(key)
            except Exception:  # noqa: BLE001
                log.exception("event=resync_failed loop=%s", self.name)
