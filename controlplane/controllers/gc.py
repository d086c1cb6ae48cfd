"""The garbage collector: deletes dependents whose owners are gone, carries out the
Foreground and Orphan propagation policies, and deletes pods of deleted nodes.

A pass runs every PERIOD_S (1 s: how long a dependent may outlive its owner), and
after any delete event of a cached kind or any update of an object being deleted
(an owner marked by a Foreground/Orphan delete, a finalizer removed), at most one
pass per SETTLE_S (a burst, e.g. a cascade, is folded into one pass): a
bounded-frequency runner of the reconcile toolkit, retried after PERIOD_S when a
pass fails. A pass costs a walk over the informer caches (no API call unless an
action shows up); Lease renewals never trigger one (they are neither deletes nor
updates of deleting objects). The pure planner (gc_plan.plan) decides from the
caches; each action is confirmed with a live read before its write: an owner the
caches have not shown yet (just created) must not cost its dependents their lives.
- dependents of vanished owners, or of owners deleted in the foreground: deleted
  (pods gracefully: their node stops them first) with a uid precondition, in the
  foreground when they have dependents of their own and their owner waits;
- Orphan: the dependents lose their ownerReference to the owner (update with the
  resourceVersion read, retried on conflict), then the owner its `orphan` finalizer;
- Foreground: the owner loses `foregroundDeletion` once no blocking dependent is left;
- pods bound to a node that no longer exists, for ORPHAN_POD_QUARANTINE_S:
  force-deleted (grace 0) since no agent will ever finish them.
Which kinds it watches: every kind whose controller owns others, and the kinds they
own (gc_kinds(); the manager gives it those informers), plus node Leases.
"""

import logging
import time

from controlplane.controllers.gc_plan import DELETE, FINALIZE, UNREF, orphaned_pods, plan
from controlplane.controllers.podutil import key_of
from skiff import client as clientmod
from skiff.api import deletion, kinds
from skiff.reconcile import BoundedFrequencyRunner
from skiff.retry import update_on_conflict

log = logging.getLogger("skiff.controllers.gc")

PERIOD_S = 1.0
SETTLE_S = 0.05
ORPHAN_POD_QUARANTINE_S = 5.0  # Kubernetes' pod GC quarantine is 40 s


def gc_kinds() -> list:
    """The kinds whose objects may own or be owned (Kind.owns, both sides), registry order."""
    owned = {name for k in kinds.KINDS for name in k.owns}
    return [k for k in kinds.KINDS if k.owns or k.name in owned]


class GarbageCollector:
    def __init__(self, client, pods, replicasets, deployments, nodes, clock=time.monotonic, dependents=()):
        """dependents: informers of further kinds whose objects may have owners or own
        objects of the kinds GC watches (Leases, Jobs, CronJobs, StatefulSets, DaemonSets): every
        object of every watched kind counts as a live owner."""
        self.client = client
        self.pods = pods
        # (informer, kind name): the informer's word resolved through the registry
        unique = {id(inf): inf for inf in (pods, replicasets, deployments, *dependents)}
        self.owned_informers = tuple((inf, kinds.lookup(inf.kind).name) for inf in unique.values())
        self.nodes = nodes
        self._clock = clock
        self._first_missing: dict = {}
        self.runner = BoundedFrequencyRunner(
            "gc", self.collect, min_interval_s=SETTLE_S, max_interval_s=PERIOD_S,
            retry_base_s=PERIOD_S, retry_max_s=PERIOD_S, logger=log,
            informers=[i for i, _ in self.owned_informers] + [nodes])
        for inf, _ in self.owned_informers:
            inf.add_handler(None, self._updated, lambda obj: self.runner.run())
        nodes.add_handler(None, None, lambda obj: self.runner.run())

    def _updated(self, old, new):
        if new.metadata.deletion_timestamp:
            self.runner.run()

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
        for action in plan(objects, known):
            if self.runner.stopped:
                return
            if action.verb == DELETE:
                self._delete(action)
            elif action.verb == UNREF:
                self._unref(action)
            elif action.verb == FINALIZE:
                self._finalize(action)

    def _delete(self, action):
        obj = action.obj
        if self._a_solid_owner_exists(obj):
            return
        ns, name = obj.metadata.namespace, obj.metadata.name
        try:
            self.client.delete(action.kind, name, ns, uid=obj.metadata.uid, propagation_policy=action.policy)
        except (clientmod.NotFound, clientmod.Conflict):
            return
        owners = ",".join(f"{r.kind}/{r.name}" for r in obj.metadata.owner_references)
        log.info("event=gc_deleted kind=%s object=%s/%s owners=%s policy=%s",
                 action.kind, ns, name, owners, action.policy)

    def _unref(self, action):
        """Drop the references to action.owner_uids (an owner orphaning it, or waiting on it)."""
        obj, gone = action.obj, set(action.owner_uids)

        def drop(live):
            keep = [r for r in live.metadata.owner_references if r.uid not in gone]
            if len(keep) == len(live.metadata.owner_references):
                return False
            del live.metadata.owner_references[:]
            live.metadata.owner_references.extend(keep)
            return True

        if self._update(action.kind, obj, drop):
            log.info("event=gc_unref kind=%s object=%s owners=%s", action.kind, key_of(obj),
                     ",".join(sorted(gone)))

    def _finalize(self, action):
        """Remove the GC's finalizer from an owner; the store removes the owner once none is left."""
        owner, finalizer = action.obj, action.finalizer

        def drop(live):
            if not live.metadata.deletion_timestamp or finalizer not in live.metadata.finalizers:
                return False
            keep = [f for f in live.metadata.finalizers if f != finalizer]
            del live.metadata.finalizers[:]
            live.metadata.finalizers.extend(keep)
            return True

        if self._update(action.kind, owner, drop):
            log.info("event=gc_finalized kind=%s object=%s finalizer=%s", action.kind, key_of(owner), finalizer)

    def _update(self, kind_name, obj, mutate) -> bool:
        """Compare-and-swap the live object through mutate; False when it is gone or unchanged."""
        changed = []

        def tracked(live):
            changed.append(mutate(live))
            return changed[-1]
        try:
            update_on_conflict(self.client, kind_name, obj.metadata.name, obj.metadata.namespace, tracked,
                               uid=obj.metadata.uid)
        except clientmod.NotFound:
            return False
        return bool(changed) and changed[-1] is not False

    def _a_solid_owner_exists(self, obj) -> bool:
        """Live check: an owner that exists with the referenced uid and is not waiting for
        its dependents (foreground). An owner of a kind skiff does not know counts as
        existing (never guess). Any registered kind may own any other, as in Kubernetes:
        Kind.owns names what a kind's controller creates, not a limit on the references
        GC honours."""
        for ref in obj.metadata.owner_references:
            kind = kinds.BY_NAME.get(ref.kind)
            if kind is None:
                return True
            try:
                owner = self.client.get(kind, ref.name, obj.metadata.namespace if kind.namespaced else "")
            except clientmod.NotFound:
                continue
            if owner.metadata.uid == ref.uid and not deletion.waiting_for_dependents(owner.metadata):
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
