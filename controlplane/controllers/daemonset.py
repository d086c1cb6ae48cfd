"""The DaemonSet controller: one pod of each DaemonSet on every eligible node, through the API.

sync(ns/name): read the DaemonSet, the Nodes and the namespace's pods from the
informer caches, plan with the pure plan_daemonset() (daemonset_plan.py has the
rules and their Kubernetes sources), then apply idempotently: adopt/release
(pod updates, compare-and-swap), create the pods the plan places (bound to their
node, see daemonset_plan.daemon_pod), delete the pods it removes (graceful, uid
precondition), and write the status through the status subresource when it changed.

Events on the DaemonSet, as Kubernetes' daemon controller writes them:
SuccessfulCreate "Created pod: NAME", SuccessfulDelete "Deleted pod: NAME",
FailedDaemonPod (Warning) "Found failed daemon pod NS/NAME on node NODE, will try
to kill it", FailedPlacement (Warning) "failed to place pod on NODE: REASONS"
(once per node and reason until the pod is placed), FailedCreate (Warning).

Duplicates are avoided by Expectations: while a create or delete of this sync is
not yet in the cache, the next sync only writes status (Kubernetes'
SatisfiedExpectations). A node whose Failed pod was just deleted waits a back-off
(1 s doubling to 15 min, as Kubernetes' failedPodsBackoff) before the next one is
deleted, so a pod the node rejects at once does not hot-loop.

Wake-ups: DaemonSet changes; pod changes of a DaemonSet's pods (or orphans its
selector matches); Node adds and deletes, and Node updates that change labels,
taints, unschedulable or allocatable (a heartbeat or a status condition wakes
nothing). Resync every RESYNC_S (30 s): one plan per DaemonSet over the caches,
no API call when nothing changed (idle cost: a few ms per DaemonSet per resync).
"""

import logging
import threading
import time

from controlplane.controllers.daemonset_plan import daemon_pod, plan_daemonset, with_owner
from controlplane.controllers.expectations import Expectations
from controlplane.controllers.podowners import PodOwnerHandlers
from controlplane.controllers.podutil import copy, key_of
from controlplane.controllers.replicaset_plan import without_owner
from skiff import client as clientmod
from skiff.api import selectors
from skiff.reconcile import Loop

log = logging.getLogger("skiff.controllers.daemonset")

RESYNC_S = 30.0
FAILED_BACKOFF_BASE_S = 1.0
FAILED_BACKOFF_MAX_S = 900.0


def _node_shape(node):
    """What of a Node decides where daemon pods run (heartbeats and conditions do not)."""
    return (dict(node.metadata.labels), [(t.key, t.value, t.effect) for t in node.spec.taints],
            node.spec.unschedulable, dict(node.status.allocatable))


class DaemonSetController:
    def __init__(self, client, daemonsets, pods, nodes, recorder, workers: int = 2, clock=time.monotonic):
        self.client = client
        self.daemonsets = daemonsets
        self.pods = pods
        self.nodes = nodes
        self.recorder = recorder
        self.expectations = Expectations()
        self._clock = clock
        self._lock = threading.Lock()
        self._failed_backoff: dict = {}   # (ds key, node) -> (retry at, last delay_s)
        self._placement_reported: dict = {}  # ds key -> {node: reasons} already told in an event
        self.loop = Loop("daemonset", self.sync, informers=(daemonsets, pods, nodes), workers=workers,
                         list_keys=daemonsets.keys, resync_s=RESYNC_S, logger=log)
        daemonsets.add_handler(self._ds_changed, lambda old, new: self._ds_changed(new), self._ds_deleted)
        self.pod_handlers = PodOwnerHandlers("DaemonSet", daemonsets, lambda ds: selectors.from_label_selector(ds.spec.selector), self.loop, self.expectations)
        self.pod_handlers.attach(pods)
        nodes.add_handler(self._all, self._node_updated, self._all)

    def start(self):
        self.loop.start()

    def stop(self):
        self.loop.stop()

    # ------------------------------------------------------------ handlers (enqueue only)

    def _ds_changed(self, ds):
        self.loop.enqueue(key_of(ds))

    def _ds_deleted(self, ds):
        key = key_of(ds)
        self.expectations.forget(key)
        with self._lock:
            self._placement_reported.pop(key, None)
            for k in [k for k in self._failed_backoff if k[0] == key]:
                del self._failed_backoff[k]

    def _all(self, _node=None):
        for key in self.daemonsets.keys():
            self.loop.enqueue(key)

    def _node_updated(self, old, new):
        if _node_shape(old) != _node_shape(new):
            self._all()

    # ------------------------------------------------------------ sync

    def sync(self, key):
        ds = self.daemonsets.get(key)
        if ds is None:
            self.expectations.forget(key)
            return None
        ns = ds.metadata.namespace
        pods = self.pods.list(ns)
        pending_creates, pending_deletes = self.expectations.pending(key, pods)
        plan = plan_daemonset(ds, self.nodes.list(), pods, node_pods=self.pods.list(),
                              pending=bool(pending_creates or pending_deletes),
                              failed_backoff=self._nodes_in_backoff(key))
        by_name = {p.metadata.name: p for p in pods}
        if plan.adopt or plan.release:
            self._claim(ds, plan, by_name)
        self._report_placement(ds, key, plan)
        failed = dict(plan.failed)
        for name in plan.delete:
            pod = by_name[name]
            if name in failed:
                self._note_failed(key, failed[name])
                self.recorder.event(ds, "Warning", "FailedDaemonPod",
                                    f"Found failed daemon pod {ns}/{name} on node {failed[name]}, will try to kill it")
            self.expectations.deleting(key, pod.metadata.uid)
            try:
                self.client.delete("pods", name, ns, uid=pod.metadata.uid)
            except (clientmod.NotFound, clientmod.Conflict):
                continue
            log.info("event=pod_deleted ds=%s pod=%s node=%s", key, name, pod.spec.node_name)
            self.recorder.event(ds, "Normal", "SuccessfulDelete", f"Deleted pod: {name}")
        for node in plan.create:
            try:
                created = self.client.create(daemon_pod(ds, node, plan.revision))
            except clientmod.ApiError as exc:
                self.recorder.event(ds, "Warning", "FailedCreate", f"Error creating: {exc}")
                raise
            self.expectations.created(key, created.metadata.name)
            log.info("event=pod_created ds=%s pod=%s node=%s", key, created.metadata.name, node)
            self.recorder.event(ds, "Normal", "SuccessfulCreate", f"Created pod: {created.metadata.name}")
        if plan.status != ds.status:
            updated = copy(ds)
            updated.status.CopyFrom(plan.status)
            try:
                self.client.update_status(updated)
            except clientmod.NotFound:
                return None
        return self._next_look_s(key, plan)

    def _next_look_s(self, key, plan):
        """The earliest of: a pod becoming available (minReadySeconds), a back-off ending."""
        waits = [plan.recheck_s] if plan.recheck_s is not None else []
        now = self._clock()
        with self._lock:
            waits += [max(0.05, at - now) for (k, node), (at, _d) in self._failed_backoff.items()
                      if k == key and node in plan.failed_waiting]
        return min(waits) if waits else None

    # ------------------------------------------------------------ failed pods' back-off

    def _nodes_in_backoff(self, key) -> frozenset:
        now = self._clock()
        with self._lock:
            return frozenset(node for (k, node), (at, _d) in self._failed_backoff.items() if k == key and at > now)

    def _note_failed(self, key, node):
        with self._lock:
            _at, last = self._failed_backoff.get((key, node), (0.0, 0.0))
            delay = min(FAILED_BACKOFF_MAX_S, last * 2 if last else FAILED_BACKOFF_BASE_S)
            self._failed_backoff[(key, node)] = (self._clock() + delay, delay)

    # ------------------------------------------------------------ placement events

    def _report_placement(self, ds, key, plan):
        now_failing = {node: reasons for node, reasons in plan.unplaceable}
        with self._lock:
            told = self._placement_reported.setdefault(key, {})
            new = {n: r for n, r in now_failing.items() if told.get(n) != r}
            for node in [n for n in told if n not in now_failing and n in plan.create]:
                del told[node]
            told.update(new)
        for node, reasons in sorted(new.items()):
            log.info("event=failed_placement ds=%s node=%s reasons=%s", key, node, ",".join(reasons).replace(" ", "_"))
            self.recorder.event(ds, "Warning", "FailedPlacement",
                                f"failed to place pod on \"{node}\": {', '.join(reasons)}")

    # ------------------------------------------------------------ adoption

    def _claim(self, ds, plan, by_name):
        """Adopt orphans (after re-reading the DaemonSet: the cache may show one already gone)
        and release pods whose labels stopped matching."""
        ns = ds.metadata.namespace
        if plan.adopt:
            fresh = self.client.get("daemonsets", ds.metadata.name, ns)
            if fresh.metadata.uid != ds.metadata.uid:
                return
            for name in plan.adopt:
                self.client.update(with_owner(by_name[name], ds))
                log.info("event=pod_adopted ds=%s/%s pod=%s", ns, ds.metadata.name, name)
        for name in plan.release:
            try:
                self.client.update(without_owner(by_name[name], ds.metadata.uid))
            except clientmod.NotFound:
                continue
            log.info("event=pod_released ds=%s/%s pod=%s", ns, ds.metadata.name, name)
