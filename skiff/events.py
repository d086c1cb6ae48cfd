"""Recording Events about objects (Scheduled, Pulled, Started, BackOff, ...).

An Event is an ordinary namespaced API object. Repeats of the same
(object, type, reason, message) within a process are folded into one Event
whose count and lastTimestamp grow, as Kubernetes does. Recording never raises:
events are a courtesy, losing one must not break a controller or the agent.

By default an event is written in the caller's thread. asynchronous=True (the node
agent) works like Kubernetes' EventBroadcaster: event() builds the Event (its
timestamps are the moment of the call) and puts it on a bounded queue; WRITERS
threads create (or fold) them, the events of one object always on the same thread,
so in the order recorded. The caller does not wait for the API in the middle of its
work: an agent starting a pod made three Event writes per container (Pulled, Created,
Started) between the engine calls. flush(uid) waits until the events of one object
recorded so far are written: the agent calls it before it writes the pod's status or
deletes the pod, so whoever sees the status sees the events that led to it, as with
synchronous writes. A full queue (QUEUE_SIZE; Kubernetes' broadcaster queue is 1,000
too) drops the new event with a log line.
"""

import logging
import os
import queue
import threading
import zlib

from skiff import client as clientmod
from skiff.api import kinds
from skiff.api import objects_pb2 as pb
from skiff.api.wellknown import now_rfc3339

log = logging.getLogger("skiff.events")

QUEUE_SIZE = 1000
SEEN_MAX = 5000
WRITERS = 4   # concurrent writes from one process are committed together by the store's batcher


class EventRecorder:
    def __init__(self, client: clientmod.Client, component: str, host: str = "", asynchronous: bool = False,
                 writers: int = WRITERS):
        self.client = client
        self.component = component
        self.host = host
        self.asynchronous = asynchronous
        self._seen: dict = {}  # (uid, type, reason, message) -> (event name, namespace, count)
        self._lock = threading.Lock()
        self._queues = [queue.Queue(maxsize=max(1, QUEUE_SIZE // writers)) for _ in range(writers)]
        self._writers: list = []
        self._pending: dict = {}            # involved object's uid -> events queued, not yet written
        self._written = threading.Condition(self._lock)
        self.dropped = 0

    def event(self, obj, event_type: str, reason: str, message: str) -> None:
        try:
            item = self._build(obj, event_type, reason, message)
        except Exception:  # noqa: BLE001 - a courtesy: never raise into the caller
            log.exception("event=event_failed reason=%s", reason)
            return
        if not self.asynchronous:
            self._write(item)
            return
        self._ensure_writers()
        uid = item[0][0]
        with self._lock:
            self._pending[uid] = self._pending.get(uid, 0) + 1
        try:
            self._queues[self._shard(uid)].put_nowait(item)
        except queue.Full:
            self._done(uid)
            self.dropped += 1
            log.info("event=event_dropped reason=%s queue=%d dropped=%d", reason, QUEUE_SIZE, self.dropped)

    def flush(self, uid: str | None = None, timeout_s: float = 5.0) -> bool:
        """Wait (at most timeout_s) until the events recorded so far about the object with this
        uid (None: about every object) are written or given up; False on the timeout."""
        with self._written:
            return self._written.wait_for(
                lambda: not (self._pending.get(uid) if uid is not None else any(self._pending.values())),
                timeout_s)

    # ------------------------------------------------------------ inside

    def _build(self, obj, event_type, reason, message):
        kind = kinds.of_message(obj)
        meta = obj.metadata
        namespace = meta.namespace or "default"
        now = now_rfc3339()
        ev = pb.Event(
            metadata=pb.ObjectMeta(name=f"{meta.name}.{os.urandom(8).hex()}", namespace=namespace),
            involved_object=pb.ObjectReference(kind=kind.name, namespace=meta.namespace, name=meta.name,
                                               uid=meta.uid, api_version=kind.api_version,
                                               resource_version=meta.resource_version),
            reason=reason, message=message, type=event_type, count=1,
            first_timestamp=now, last_timestamp=now,
            source=pb.EventSource(component=self.component, host=self.host),
            reporting_component=self.component, reporting_instance=self.host)
        return (meta.uid, event_type, reason, message), ev

    def _shard(self, uid: str) -> int:
        return zlib.crc32(uid.encode()) % len(self._queues)

    def _ensure_writers(self):
        if self._writers:
            return
        with self._lock:
            if not self._writers:
                for i, q in enumerate(self._queues):
                    t = threading.Thread(target=self._drain, args=(q,), name=f"events-{self.component}-{i}",
                                         daemon=True)
                    t.start()
                    self._writers.append(t)

    def _drain(self, q):
        """A writer: the consumer of one queue (no period; it sleeps on the queue)."""
        while True:
            item = q.get()
            try:
                self._write(item)
            finally:
                self._done(item[0][0])

    def _done(self, uid):
        with self._written:
            left = self._pending.get(uid, 0) - 1
            if left > 0:
                self._pending[uid] = left
            else:
                self._pending.pop(uid, None)
            self._written.notify_all()

    def _write(self, item):
        try:
            self._record(*item)
        except clientmod.ApiError as exc:
            log.info("event=event_not_recorded reason=%s error=%s", item[1].reason,
                     str(exc)[:120].replace(" ", "_"))
        except Exception:  # noqa: BLE001
            log.exception("event=event_failed reason=%s", item[1].reason)

    def _record(self, key, ev):
        with self._lock:
            seen = self._seen.get(key)
        if seen is not None:
            name, ns, count = seen
            try:
                old = self.client.get("events", name, ns)
                old.count = count + 1
                old.last_timestamp = ev.last_timestamp
                self.client.update(old)
                with self._lock:
                    self._seen[key] = (name, ns, count + 1)
                return
            except clientmod.ApiError:
                pass  # deleted or raced: record a fresh one
        self.client.create(ev)
        with self._lock:
            if len(self._seen) > SEEN_MAX:
                self._seen.clear()
            self._seen[key] = (ev.metadata.name, ev.metadata.namespace, 1)
