"""What a controller has asked for but not yet seen in its informer cache.

Like client-go's ControllerExpectations, but by name/uid instead of counters:
- created(key, name): a pod we created; it counts as an active replica until the
  cache shows it (or it is seen deleted, or TTL_S passes), so a burst of syncs
  before the watch catches up does not create duplicates;
- deleting(key, uid): a pod we asked to delete; it no longer counts as active
  even while the cache still shows it without a deletionTimestamp.
Entries expire after TTL_S so a lost event can only delay, never wedge, a controller.
Thread-safe: handlers and workers call it concurrently.
"""

import threading
import time

TTL_S = 30.0


class Expectations:
    def __init__(self, ttl_s: float = TTL_S, clock=time.monotonic):
        self._ttl = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._creates: dict = {}   # key -> {pod name: deadline}
        self._deletes: dict = {}   # key -> {pod uid: deadline}

    def created(self, key, name: str) -> None:
        with self._lock:
            self._creates.setdefault(key, {})[name] = self._clock() + self._ttl

    def deleting(self, key, uid: str) -> None:
        with self._lock:
            self._deletes.setdefault(key, {})[uid] = self._clock() + self._ttl

    def observed_deleted(self, key, name: str) -> None:
        """The cache saw a pod of key go away (it may never show up as added)."""
        with self._lock:
            self._creates.get(key, {}).pop(name, None)

    def forget(self, key) -> None:
        with self._lock:
            self._creates.pop(key, None)
            self._deletes.pop(key, None)

    def pending(self, key, cached_pods) -> tuple:
        """(creates not yet in the cache, frozenset of uids still being deleted)."""
        now = self._clock()
        by_name = {p.metadata.name: p for p in cached_pods}
        with self._lock:
            creates = self._creates.get(key, {})
            for name, deadline in list(creates.items()):
                if name in by_name or deadline < now:
                    del creates[name]
            deletes = self._deletes.get(key, {})
            live = {p.metadata.uid: p for p in cached_pods}
            for uid, deadline in list(deletes.items()):
                pod = live.get(uid)
                if pod is None or pod.metadata.deletion_timestamp or deadline < now:
                    del deletes[uid]
            return len(creates), frozenset(deletes)
