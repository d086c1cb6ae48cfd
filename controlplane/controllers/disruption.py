"""The disruption controller: every PodDisruptionBudget's status, through the API.

sync(ns/name): read the budget, its namespace's pods and the scale of their
controllers from the informer caches, plan with the pure plan_disruption()
(disruption_plan.py: Kubernetes' rules), and write status through the status
subresource only when it changed. The write is a compare-and-swap on the budget's
resourceVersion: an eviction that charged the budget after the cache was read makes
it conflict, and the next sync starts from the charged budget (its disruptedPods keep
the evicted pod out of currentHealthy until the pod is seen deleting or 2 minutes pass).

Events (recorded only with a status change, so a steady budget writes nothing):
NoPods, UnmanagedPods, CalculateExpectedPodCountFailed on the budget, NotDeleted on
a pod an eviction was expected to delete.

Handlers only enqueue: a budget's own changes, and a pod's (the budgets of its
namespace that select it, before and after the change). The scale of the pods'
controllers (every kind with a scale: ReplicaSet, Deployment, ...) is read from
their informers and wakes nothing: a scale change shows as pod changes. Resync every
RESYNC_S; its idle cost is one cache read per budget per 30 s and no write.
"""

import datetime
import logging

from controlplane.controllers.disruption_plan import plan_disruption
from controlplane.controllers.podutil import copy, key_of
from skiff import client as clientmod
from skiff.api.kinds import policy
from skiff.reconcile import BACKOFF, Loop

log = logging.getLogger("skiff.controllers.disruption")

RESYNC_S = 30.0


class DisruptionController:
    def __init__(self, client, pdbs, pods, scales: dict, recorder, workers: int = 1):
        """scales: kind name -> informer of every kind with a scale subresource."""
        self.client = client
        self.pdbs = pdbs
        self.pods = pods
        self.scales = dict(scales)
        self.recorder = recorder
        self.loop = Loop("disruption", self.sync, informers=(pdbs, pods, *self.scales.values()),
                         workers=workers, list_keys=pdbs.keys, resync_s=RESYNC_S, logger=log)
        pdbs.add_handler(self._enqueue_pdb, lambda old, new: self._enqueue_pdb(new), None)
        pods.add_handler(self._pod_changed, lambda old, new: self._pod_changed(old, new), self._pod_changed)

    def start(self):
        self.loop.start()

    def stop(self):
        self.loop.stop()

    # ------------------------------------------------------------ handlers (enqueue only)

    def _enqueue_pdb(self, pdb):
        self.loop.enqueue(key_of(pdb))

    def _pod_changed(self, *versions):
        keys = set()
        for pod in versions:
            for pdb in self.pdbs.list(pod.metadata.namespace):
                if policy.selects(pdb, pod.metadata.labels):
                    keys.add(key_of(pdb))
        for key in keys:
            self.loop.enqueue(key)

    # ------------------------------------------------------------ sync

    def _lookup(self, kind_name, namespace, name):
        informer = self.scales.get(kind_name)
        return informer.get(f"{namespace}/{name}") if informer is not None else None

    def sync(self, key):
        pdb = self.pdbs.get(key)
        if pdb is None:
            return None
        pods = self.pods.list(pdb.metadata.namespace)
        plan = plan_disruption(pdb, pods, self._lookup, datetime.datetime.now(datetime.timezone.utc))
        if plan.status == pdb.status:
            return plan.recheck_s
        updated = copy(pdb)
        updated.status.CopyFrom(plan.status)
        try:
            self.client.update_status(updated)
        except clientmod.NotFound:
            return None
        except clientmod.Conflict:
            # An eviction (or a spec change) moved the budget since the cache read it.
            return BACKOFF
        st = plan.status
        log.info("event=pdb_status pdb=%s allowed=%d healthy=%d desired=%d expected=%d disrupted=%d",
                 key, st.disruptions_allowed, st.current_healthy, st.desired_healthy, st.expected_pods,
                 len(st.disrupted_pods))
        by_name = {p.metadata.name: p for p in pods}
        for ev in plan.events:
            target = by_name.get(ev.pod) if ev.pod else pdb
            if target is not None:
                self.recorder.event(target, ev.type, ev.reason, ev.message)
        return plan.recheck_s
