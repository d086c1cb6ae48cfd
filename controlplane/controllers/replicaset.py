"""The ReplicaSet controller: keeps spec.replicas pods of each ReplicaSet, through the API.

sync(ns/name): read the RS and its namespace's pods from the informer caches,
plan with the pure plan_replicaset(), then apply idempotently: adopt/release
(pod updates, compare-and-swap), create pods from the template (generateName),
delete surplus pods (graceful delete with a uid precondition), and write the
status through the status subresource when it changed. Events:
SuccessfulCreate / SuccessfulDelete on the ReplicaSet.
Duplicates are avoided by Expectations (pods created but not yet in the cache count).
The same class runs the ReplicationController controller (replicationcontroller.py):
the kind comes from the informer it is given, as in Kubernetes where one
controller serves both.

Period and cost: event-driven (ReplicaSet and pod changes), plus the keyed Loop's
resync of every ReplicaSet every 30 s (the toolkit's default resync_s); an idle sync
reads the caches and finds nothing to do (no API call).
"""

import logging

from controlplane.controllers.expectations import Expectations
from controlplane.controllers.podowners import PodOwnerHandlers
from controlplane.controllers.podutil import copy, key_of
from controlplane.controllers.replicaset_plan import (plan_replicaset, pod_from_template, selector_of,
                                                      with_owner, without_owner)
from skiff import client as clientmod
from skiff.api import kinds
from skiff.reconcile import Loop

log = logging.getLogger("skiff.controllers.replicaset")


class ReplicaSetController:
    def __init__(self, client, replicasets, pods, recorder, workers: int = 2, name: str = "replicaset"):
        self.client = client
        self.replicasets = replicasets
        self.kind = kinds.lookup(replicasets.kind)   # ReplicaSet, or ReplicationController
        self.pods = pods
        self.recorder = recorder
        self.expectations = Expectations()
        self.loop = Loop(name, self.sync, informers=(replicasets, pods), workers=workers,
                         list_keys=replicasets.keys)
        replicasets.add_handler(self._rs_changed, lambda old, new: self._rs_changed(new), self._rs_deleted)
        self.pod_handlers = PodOwnerHandlers(self.kind.name, replicasets, selector_of, self.loop, self.expectations)
        self.pod_handlers.attach(pods)

    def start(self):
        self.loop.start()

    def stop(self):
        self.loop.stop()

    # ------------------------------------------------------------ handlers (enqueue only)

    def _rs_changed(self, rs):
        self.loop.enqueue(key_of(rs))

    def _rs_deleted(self, rs):
        self.expectations.forget(key_of(rs))

    # ------------------------------------------------------------ sync

    def sync(self, key):
        rs = self.replicasets.get(key)
        if rs is None:
            self.expectations.forget(key)
            return None
        ns = rs.metadata.namespace
        pods = self.pods.list(ns)
        pending_creates, pending_deletes = self.expectations.pending(key, pods)
        plan = plan_replicaset(rs, pods, pending_creates=pending_creates, pending_deletes=pending_deletes)
        by_name = {p.metadata.name: p for p in pods}
        if plan.adopt or plan.release:
            self._claim(rs, plan, by_name)
        for _ in range(plan.create):
            created = self.client.create(pod_from_template(rs))
            self.expectations.created(key, created.metadata.name)
            log.info("event=pod_created rs=%s pod=%s", key, created.metadata.name)
            self.recorder.event(rs, "Normal", "SuccessfulCreate", f"Created pod: {created.metadata.name}")
        for name in plan.delete:
            pod = by_name[name]
            self.expectations.deleting(key, pod.metadata.uid)
            try:
                self.client.delete("pods", name, ns, uid=pod.metadata.uid)
            except clientmod.NotFound:
                continue
            except clientmod.Conflict:
                continue  # replaced by a pod of the same name: not ours to delete
            log.info("event=pod_deleted rs=%s pod=%s", key, name)
            self.recorder.event(rs, "Normal", "SuccessfulDelete", f"Deleted pod: {name}")
        if plan.status != rs.status:
            updated = copy(rs)
            updated.status.CopyFrom(plan.status)
            try:
                self.client.update_status(updated)
            except clientmod.NotFound:
                return None
        return plan.recheck_s

    def _claim(self, rs, plan, by_name):
        """Adopt orphans and release strays. Adoption re-reads the RS first (Kubernetes'
        canAdopt check): a cache may still show a ReplicaSet that is already gone."""
        ns = rs.metadata.namespace
        if plan.adopt:
            fresh = self.client.get(self.kind, rs.metadata.name, ns)
            if fresh.metadata.uid != rs.metadata.uid:
                return
            for name in plan.adopt:
                self.client.update(with_owner(by_name[name], rs))
                log.info("event=pod_adopted rs=%s/%s pod=%s", ns, rs.metadata.name, name)
        for name in plan.release:
            try:
                self.client.update(without_owner(by_name[name], rs.metadata.uid))
            except clientmod.NotFound:
                continue
            log.info("event=pod_released rs=%s/%s pod=%s", ns, rs.metadata.name, name)
