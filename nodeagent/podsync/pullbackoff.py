"""Image pull back-off (the kubelet's ImagePullBackOff): after a failed pull of an image for a
pod, that pod does not ask the registry again for that image before the back-off expires.

Per (pod uid, image): 10 s after the first failure, doubling per failure up to 300 s (the
kubelet's backOffPeriod and MaxContainerBackOff); a successful pull clears it, so does the
pod's end (forget). While it runs, the container waits with reason ImagePullBackOff and the
message keeps the last pull error (Kubernetes 1.29+: `Back-off pulling image "X": ErrImagePull:
...`), so the registry's refusal stays visible. Times are monotonic; thread-safe.
"""

import threading

BASE_S = 10.0
MAX_S = 300.0


class PullBackoff:
    def __init__(self, base_s: float = BASE_S, max_s: float = MAX_S):
        self.base_s = base_s
        self.max_s = max_s
        self._entries: dict = {}     # (uid, image) -> (retry at, delay, last error message)
        self._lock = threading.Lock()

    def waiting(self, uid: str, image: str, now: float):
        """The message to wait with when a pull must not be tried yet, else None."""
        with self._lock:
            entry = self._entries.get((uid, image))
        if entry is None or now >= entry[0]:
            return None
        return f'Back-off pulling image "{image}": ErrImagePull: {entry[2]}'

    def failed(self, uid: str, image: str, message: str, now: float) -> float:
        """Record a failed pull; returns the back-off before the next try."""
        with self._lock:
            previous = self._entries.get((uid, image))
            delay = self.base_s if previous is None else min(self.max_s, previous[1] * 2)
            self._entries[(uid, image)] = (now + delay, delay, message)
        return delay

    def succeeded(self, uid: str, image: str) -> None:
        with self._lock:
            self._entries.pop((uid, image), None)

    def forget(self, uid: str) -> None:
        with self._lock:
            for key in [k for k in self._entries if k[0] == uid]:
                del self._entries[key]
