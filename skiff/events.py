"""Recording Events about objects (Scheduled, Pulled, Started, BackOff, ...).

An Event is an ordinary namespaced API object. Repeats of the same
(object, type, reason, message) within a process are folded into one Event
whose count and lastTimestamp grow, as Kubernetes does. Recording never raises:
events are a courtesy, losing one must not break a controller or the agent.

Recording is asynchronous, like Kubernetes' EventBroadcaster: event() builds the
Event (its timestamps are the moment of the call) and puts it on a bounded queue;
one writer thread per recorder creates (or folds) them in order. The caller never
waits for the API: an agent starting a pod used to make three Event writes per
container (Pulled, Created, Started) in the middle of the start, a scheduler one per
binding. A full queue (QUEUE_SIZE, Kubernetes' broadcaster queue is 1,000 too) drops
the new event with a log line. flush() waits until what was queued is written (tests,
shutdown); synchronous=True writes in the caller's thread, as before.
"""

import logging
import os
import queue
import threading

from skiff import client as clientmod
from skiff.api import kinds
from skiff.api import objects_pb2 as pb
from skiff.api.wellknown import now_rfc3339

log = logging.getLogger("skiff.events")

QUEUE_SIZE = 1000
SEEN_MAX = 5000


class EventRecorder:
    def __init__(self, client: clientmod.Client, component: str, host: str = "", synchronous: bool = False):
        self.client = client
        self.component = component
        self.host = host
        self.synchronous = synchronous
        self._seen: dict = {}  # (uid, type, reason, message) -> (event name, namespace, count)
        self._lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue(maxsize=QUEUE_SIZE)
        self._writer = None
        self.dropped = 0

    def event(self, obj, event_type: str, reason: str, message: str) -> None:
        try:
            item = self._build(obj, event_type, reason, message)
        except Exception:  # noqa: BLE001 - a courtesy: never raise into the caller
            log.exception("event=event_failed reason=%s", reason)
            return
        if self.synchronous:
            self._write(item)
            return
        self._ensure_writer()
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            log.info("event=event_dropped reason=%s queue=%d dropped=%d", reason, QUEUE_SIZE, self.dropped)

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait (at most timeout_s) until every event queued so far has been written or given up."""
        if self._writer is None:
            return True
        done = threading.Event()
        try:
            self._queue.put(done, timeout=timeout_s)
        except queue.Full:
            return False
        return done.wait(timeout_s)

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

    def _ensure_writer(self):
        if self._writer is not None:
            return
        with self._lock:
            if self._writer is None:
                self._writer = threading.Thread(target=self._drain, name=f"events-{self.component}", daemon=True)
                self._writer.start()

    def _drain(self):
        """The writer: an event source's consumer (no period; it sleeps on the queue)."""
        while True:
            item = self._queue.get()
            if isinstance(item, threading.Event):
                item.set()
                continue
            self._write(item)

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
