"""The garbage collector: deletes dependents whose owners are gone, and pods of deleted nodes.

A pass runs every PERIOD_S (1 s: how long a dependent may outlive its owner), and
after any delete event of a cached kind, at most one pass per SETTLE_S (a burst of
deletes, e.g. a cascade, is folded into one pass): a bounded-frequency runner of
the reconcile toolkit, retried after PERIOD_S when a pass fails. A pass costs a
walk over the informer caches (no API call unless a candidate shows up); Lease
renewals never trigger one (only deletes do). It asks the pure
planners (gc_plan) for candidates from the informer caches, then confirms each one
with a live read before deleting: an owner the caches have not shown yet (just
created) must not cost its dependents their lives.
- dependents (ReplicaSets, Pods, Deployments with owners, and the objects of the
  `dependents` informers: node Leases, owned by their Node; Jobs, owned by CronJobs;
  CronJobs, StatefulSets and DaemonSets, listed so that their uids count as live owners): deleted normally
  (pods gracefully: their node stops them first), with a uid precondition;
- pods bound to a node that no longer exists, for ORPHAN_POD_QUARANTINE_S:
  force-deleted (grace 0) since no agent will ever finish them.
"""

import logging
import time

from controlplane.controllers.gc_plan import dangling, orphaned_pods
from skiff import client as clientmod
from skiff.api import kinds
from skiff.reconcile import BoundedFrequencyRunner

log = logging.getLogger("skiff.controllers.gc")

PERIOD_S = 1.0
SETTLE_S = 0.05
ORPHAN_POD_QUARANTINE_S = 5.0  # Kubernetes' pod GC quarantine is 40 s


class GarbageCollector:
    def __init__(self, client, pods, replicasets, deployments, nodes, clock=time.monotonic, dependents=()):
        """dependents: informers of further kinds whose objects may have owners or own
        objects of the kinds GC watches (Leases, Jobs, CronJobs, StatefulSets, DaemonSets): every
        object of every watched kind counts as a live owner."""
        self.client = client
        self.pods = pods
        # (informer, kind name): the informer's word resolved through the registry
        self.owned_informers = tuple((inf, kinds.lookup(inf.kind).name)
                                     for inf in (pods, replicasets, deployments, *dependents))
        self.nodes = nodes
        self._clock = clock
        self._first_missing: dict = {}
        self.runner = BoundedFrequencyRunner(
            "gc", self.collect, min_interval_s=SETTLE_S, max_interval_s=PERIOD_S,
            retry_base_s=PERIOD_S, retry_max_s=PERIOD_S, logger=log,
            informers=[i for i, _ in self.owned_informers] + [nodes])
        for inf, _ in self.owned_informers:
            inf.add_handler(None, None, lambda obj: self.runner.run())
        nodes.add_handler(None, None, lambda obj: self.runner.run())

    def start(self):
        self.runner.start()

    def stop(self):
        self.runner.stop()

    def collect(self):
        """One pass: dependents of vanished owners, then pods of vanished nodes."""
        self.collect_dependents()
        self.collect_orphaned_pods()

    # ------------------------------------------------------------ owners

    def collect_dependents(self):
        objects = []
        known = {n.metadata.uid for n in self.nodes.list()}   # Nodes own Leases
        for inf, kind_name in self.owned_informers:
            for obj in inf.list():
                objects.append((kind_name, obj))
                known.add(obj.metadata.uid)
        by_id = {id(obj): kind_name for kind_name, obj in objects}
        for obj in dangling([o for _, o in objects], known):
            if self.runner.stopped:
                return
            if self._an_owner_exists(obj):
                continue
            kind_name = by_id[id(obj)]
            ns, name = obj.metadata.namespace, obj.metadata.name
            try:
                self.client.delete(kind_name, name, ns, uid=obj.metadata.uid)
            except (clientmod.NotFound, clientmod.Conflict):
                continue
            owners = ",".join(f"{r.kind}/{r.name}" for r in obj.metadata.owner_references)
            log.info("event=gc_deleted kind=%s object=%s/%s owners=%s", kind_name, ns, name, owners)

    def _an_owner_exists(self, obj) -> bool:
        """Live check; an owner of a kind skiff does not know counts as existing (never guess).
        Any registered kind may own any other, as in Kubernetes: Kind.owns names what a kind's
        controller creates, not a limit on the references GC honours."""
        for ref in obj.metadata.owner_references:
            kind = kinds.BY_NAME.get(ref.kind)
            if kind is None:
                return True
            try:
                owner = self.client.get(kind, ref.name, obj.metadata.namespace if kind.namespaced else "")
            except clientmod.NotFound:
                continue
            if owner.metadata.uid == ref.uid:
                return True
        return False

    # ------------------------------------------------------------ pods of deleted nodes

    def collect_orphaned_pods(self):
        node_names = set(self.nodes.keys())
        delete, self._first_missing = orphaned_pods(self.pods.list(), node_names, self._first_missing,
                                                    self._clock(), ORPHAN_POD_QUARANTINE_S)
        for key in delete:
            pod = self.pods.get(key)
            if pod is None:
                continue
            try:
                self.client.get("nodes", pod.spec.node_name)
                continue  # the node exists after all (the cache lags)
            except clientmod.NotFound:
                pass
            try:
                self.client.delete("pods", pod.metadata.name, pod.metadata.namespace, uid=pod.metadata.uid,
                                   grace_period_seconds=0)
            except (clientmod.NotFound, clientmod.Conflict):
                continue
            log.info("event=orphan_pod_deleted pod=%s node=%s", key, pod.spec.node_name)
