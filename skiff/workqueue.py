"""A rate-limited work queue of keys, as in client-go's workqueue.

Invariants:
- a key is in the queue at most once, however often it is added;
- a key being processed is never handed to a second worker; if it is added
  meanwhile it is processed again after done(key);
- add_after(key, s) delays one add; add_rate_limited(key) backs off per key
  (base * 2^failures, capped) until forget(key).
Time is monotonic.
"""

import heapq
import threading
import time


class WorkQueue:
    def __init__(self, base_delay_s: float = 0.05, max_delay_s: float = 30.0):
        self._cond = threading.Condition()
        self._queue: list = []
        self._dirty: set = set()
        self._processing: set = set()
        self._delayed: list = []  # heap of (due, seq, key)
        self._seq = 0
        self._failures: dict = {}
        self._base = base_delay_s
        self._max = max_delay_s
        self._shutdown = False

    def add(self, key) -> None:
        with self._cond:
            if self._shutdown or key in self._dirty:
                return
            self._dirty.add(key)
            if key not in self._processing:
                self._queue.append(key)
                self._cond.notify()

    def add_after(self, key, delay_s: float) -> None:
        if delay_s <= 0:
            self.add(key)
            return
        with self._cond:
            self._seq += 1
            heapq.heappush(self._delayed, (time.monotonic() + delay_s, self._seq, key))
            self._cond.notify()

    def add_rate_limited(self, key) -> float:
        with self._cond:
            n = self._failures.get(key, 0)
            self._failures[key] = n + 1
        delay = min(self._max, self._base * (2 ** n))
        self.add_after(key, delay)
        return delay

    def forget(self, key) -> None:
        with self._cond:
            self._failures.pop(key, None)

    def failures(self, key) -> int:
        with self._cond:
            return self._failures.get(key, 0)

    def get(self, timeout_s: float | None = None):
        """Next key, or None on shutdown/timeout. Call done(key) when finished."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while True:
                self._promote_due()
                if self._queue:
                    key = self._queue.pop(0)
                    self._processing.add(key)
                    self._dirty.discard(key)
                    return key
                if self._shutdown:
                    return None
                wait = None
                if self._delayed:
                    wait = max(0.0, self._delayed[0][0] - time.monotonic())
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return None
                    wait = left if wait is None else min(wait, left)
                self._cond.wait(wait)

    def _promote_due(self) -> None:
        now = time.monotonic()
        while self._delayed and self._delayed[0][0] <= now:
            _, _, key = heapq.heappop(self._delayed)
            if key not in self._dirty:
                self._dirty.add(key)
                if key not in self._processing:
                    self._queue.append(key)

    def done(self, key) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._queue.append(key)
                self._cond.notify()

    def shutdown(self) -> None:
        with self._cond:
            self._shutdown = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue)
