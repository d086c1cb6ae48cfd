"""The Endpoints controller: one Endpoints object per Service with a selector (leader-only).

sync(ns/name): read the Service and its namespace's pods from the informer caches,
compute the desired Endpoints with the pure plan_endpoints(), then create it, update
it (compare-and-swap on the cached resourceVersion; a conflict retries with backoff)
or leave it when nothing changed. A Service that is gone (or lost its selector) has its
Endpoints deleted, as Kubernetes does; list_keys() covers Services and Endpoints, so
the periodic resync also removes Endpoints left behind while no leader ran.
Handlers only enqueue: a Service change enqueues it, a pod change enqueues every
Service of its namespace that selects the pod before or after the change, an
Endpoints change enqueues its Service (repairs edits by others).

Period and cost: event-driven, plus a resync of every Service and Endpoints every
resync_s (30 s); an idle sync compares the cached Endpoints with the plan and writes
nothing.
"""

import logging

from controlplane.controllers.endpoints_plan import needs_write, plan_endpoints, selects, wants_endpoints
from controlplane.controllers.podutil import copy, key_of
from skiff import client as clientmod
from skiff.reconcile import BACKOFF, Loop

log = logging.getLogger("skiff.controllers.endpoints")


class EndpointsController:
    def __init__(self, client, services, endpoints, pods, workers: int = 2, resync_s: float = 30.0):
        self.client = client
        self.services = services
        self.endpoints = endpoints
        self.pods = pods
        self.loop = Loop("endpoints", self.sync, informers=(services, endpoints, pods), workers=workers,
                         list_keys=self._all_keys, resync_s=resync_s)
        services.add_handler(self._enqueue, lambda old, new: self._enqueue(new), self._enqueue)
        endpoints.add_handler(None, lambda old, new: self._enqueue(new), self._enqueue)
        pods.add_handler(self._pod_changed, self._pod_updated, self._pod_changed)

    def start(self):
        self.loop.start()

    def stop(self):
        self.loop.stop()

    def _all_keys(self):
        return sorted(set(self.services.keys()) | set(self.endpoints.keys()))

    # ------------------------------------------------------------ handlers (enqueue only)

    def _enqueue(self, obj):
        self.loop.enqueue(key_of(obj))

    def _pod_changed(self, pod):
        for svc in self.services.list(pod.metadata.namespace):
            if selects(svc, pod):
                self.loop.enqueue(key_of(svc))

    def _pod_updated(self, old, new):
        for svc in self.services.list(new.metadata.namespace):
            if selects(svc, old) or selects(svc, new):
                self.loop.enqueue(key_of(svc))

    # ------------------------------------------------------------ sync

    def sync(self, key):
        ns, _, name = key.partition("/")
        svc = self.services.get(key)
        current = self.endpoints.get(key)
        if svc is None or not wants_endpoints(svc):
            if current is not None and svc is None:
                try:
                    self.client.delete("endpoints", name, ns, uid=current.metadata.uid)
                    log.info("event=endpoints_deleted key=%s", key)
                except (clientmod.NotFound, clientmod.Conflict):
                    pass
            return None
        desired = plan_endpoints(svc, self.pods.list(ns))
        if not needs_write(current, desired):
            return None
        if current is None:
            try:
                self.client.create(desired)
            except clientmod.AlreadyExists:
                return BACKOFF   # the cache is behind: look again once it caught up
            log.info("event=endpoints_created key=%s ready=%d", key, _count(desired))
            return None
        updated = copy(current)
        del updated.subsets[:]
        updated.subsets.extend(desired.subsets)
        updated.metadata.labels.clear()
        updated.metadata.labels.update(desired.metadata.labels)
        self.client.update(updated)
        log.info("event=endpoints_updated key=%s ready=%d", key, _count(desired))
        return None


def _count(ep) -> int:
    return sum(len(s.addresses) for s in ep.subsets)
