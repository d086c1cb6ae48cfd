"""Recording Events about objects (Scheduled, Pulled, Started, BackOff, ...).

An Event is an ordinary namespaced API object. Repeats of the same
(object, type, reason, message) within a process are folded into one Event
whose count and lastTimestamp grow, as Kubernetes does. Recording never raises:
events are a courtesy, losing one must not break a controller or the agent.
"""

import logging
import os
import threading

from skiff import client as clientmod
from skiff.api import kinds
from skiff.api import objects_pb2 as pb
from skiff.api.wellknown import now_rfc3339

log = logging.getLogger("skiff.events")


class EventRecorder:
    def __init__(self, client: clientmod.Client, component: str, host: str = ""):
        self.client = client
        self.component = component
        self.host = host
        self._seen: dict = {}  # (uid, type, reason, message) -> (event name, namespace, count)
        self._lock = threading.Lock()

    def event(self, obj, event_type: str, reason: str, message: str) -> None:
        try:
            self._record(obj, event_type, reason, message)
        except clientmod.ApiError as exc:
            log.info("event=event_not_recorded reason=%s error=%s", reason, str(exc)[:120].replace(" ", "_"))
        except Exception:  # noqa: BLE001
            log.exception("event=event_failed reason=%s", reason)

    def _record(self, obj, event_type, reason, message):
        kind = kinds.of_message(obj)
        meta = obj.metadata
        namespace = meta.namespace or "default"
        key = (meta.uid, event_type, reason, message)
        now = now_rfc3339()
        with self._lock:
            seen = self._seen.get(key)
        if seen is not None:
            name, ns, count = seen
            try:
                ev = self.client.get("events", name, ns)
                ev.count = count + 1
                ev.last_timestamp = now
                self.client.update(ev)
                with self._lock:
                    self._seen[key] = (name, ns, count + 1)
                return
            except clientmod.ApiError:
                pass  # deleted or raced: record a fresh one
        ev = pb.Event(
            metadata=pb.ObjectMeta(name=f"{meta.name}.{os.urandom(8).hex()}", namespace=namespace),
            involved_object=pb.ObjectReference(kind=kind.name, namespace=meta.namespace, name=meta.name,
                                               uid=meta.uid, api_version=kind.api_version,
                                               resource_version=meta.resource_version),
            reason=reason, message=message, type=event_type, count=1,
            first_timestamp=now, last_timestamp=now,
            source=pb.EventSource(component=self.component, host=self.host),
            reporting_component=self.component, reporting_instance=self.host)
        self.client.create(ev)
        with self._lock:
            if len(self._seen) > 5000:
                self._seen.clear()
            self._seen[key] = (ev.metadata.name, namespace, 1)
