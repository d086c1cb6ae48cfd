"""The scheduler loop: binds pending pods to nodes, one pod at a time, through the API.

A pod is pending when spec.schedulerName is "default-scheduler" (or empty), it
has no spec.nodeName, no deletionTimestamp and has not finished. For each one
the worker builds the node infos from the informer caches plus the pods it has
itself bound but not yet seen come back ("assumed" pods: so six replicas created
at once spread 2/2/2 over three nodes instead of all landing on the emptiest),
runs the pure algorithm, and then:

- found a node: binds in one write (Update with subresource "binding": the store
  sets spec.nodeName and PodScheduled=True together, refusing a pod that is bound
  already or being deleted), and records a Normal "Scheduled" event
  "Successfully assigned ns/pod to node" (written in the background by the
  manager's asynchronous recorder, so a binding costs one round trip);
- gated (spec.schedulingGates not empty): not tried at all; PodScheduled=False reason
  SchedulingGated. Gates can only be removed (pod update validation), and removing
  the last one is a spec change that enqueues the pod;
- no node: sets PodScheduled=False reason Unschedulable with the FitError
  message (Kubernetes' histogram, exactly), records one Warning
  "FailedScheduling" event per distinct FitError message per pod (also across
  leader changes: the condition remembers the last message) whose text is the
  histogram followed by which filter rejected which node (algorithm.node_detail,
  bounded), and retries with backoff (1 s doubling to 10 s, Kubernetes' pod
  backoff) and at once on every relevant cluster change (a node added, removed
  or changed in labels/taints/allocatable/readiness/cordon; a pod deleted or
  finished; and, for pods waiting on pod affinity or a DoNotSchedule spread
  constraint, a pod bound or relabelled, since another pod's arrival can
  satisfy those).

One worker makes every decision, so decisions never race each other.

Period and cost: event-driven (pod and node changes; a node's heartbeat times are
not a change: _node_fingerprint), plus a resync every RESYNC_S (30 s) that walks the
pod cache for pending pods; idle, that walk finds none and costs well under a
millisecond. Lease renewals do not reach the scheduler (it has no Lease informer).
"""

import logging
import threading
import time

from controlplane.controllers.podutil import copy, get_condition, key_of, set_condition
from controlplane.scheduler.algorithm import schedule
from controlplane.scheduler.nodeinfo import build_node_infos
from skiff import client as clientmod
from skiff.api.defaults import DEFAULT_SCHEDULER
from skiff.api.wellknown import POD_FINISHED_PHASES
from skiff.reconcile import BACKOFF, Loop

log = logging.getLogger("skiff.scheduler")

ASSUMED_TTL_S = 30.0       # forget an assumed binding the informer never confirmed
BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 10.0
RESYNC_S = 30.0
FLUSH_S = 2.0              # a FailedScheduling event is waited for at most this long
SCHEDULING_GATED = "SchedulingGated"
SCHEDULING_GATED_MESSAGE = "Scheduling is blocked due to non-empty scheduling gates"


def needs_scheduling(pod) -> bool:
    return (pod.spec.scheduler_name in ("", DEFAULT_SCHEDULER) and not pod.spec.node_name
            and not pod.metadata.deletion_timestamp and pod.status.phase not in POD_FINISHED_PHASES)


def _helped_by_pods(pod) -> bool:
    """Another pod's arrival can make this pod schedulable: it has required pod affinity
    or a DoNotSchedule spread constraint (anti-affinity only ever needs pods to go)."""
    return (bool(pod.spec.affinity.pod_affinity.required_during_scheduling_ignored_during_execution)
            or any(c.when_unsatisfiable == "DoNotSchedule" for c in pod.spec.topology_spread_constraints))


def _node_fingerprint(node):
    """What about a node can change a scheduling decision (not its heartbeat times)."""
    ready = get_condition(node.status.conditions, "Ready")
    return (dict(node.metadata.labels), node.spec.SerializeToString(deterministic=True),
            dict(node.status.allocatable), dict(node.status.capacity),
            ready.status if ready is not None else "")


class Scheduler:
    def __init__(self, client, pods, nodes, recorder, namespaces=None):
        """client: a leader-guarded client; pods, nodes, namespaces: shared informers
        (namespaces: their labels, for affinity terms' namespaceSelector)."""
        self.client = client
        self.pods = pods
        self.nodes = nodes
        self.namespaces = namespaces
        self.recorder = recorder
        self._lock = threading.Lock()
        self._assumed: dict = {}          # pod uid -> (bound pod copy, monotonic deadline)
        self._unschedulable: set = set()  # keys waiting for a cluster change (or backoff)
        self._wait_for_pods: set = set()  # of those, the ones another pod's arrival can help
        self._last_failure: dict = {}     # pod uid -> last FailedScheduling message recorded
        self.loop = Loop("scheduler", self.sync, informers=(pods, nodes), list_keys=self._pending_keys,
                         resync_s=RESYNC_S, base_delay_s=BACKOFF_BASE_S, max_delay_s=BACKOFF_MAX_S)
        pods.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)
        nodes.add_handler(lambda n: self._cluster_changed(), self._node_updated,
                          lambda n: self._cluster_changed())

    def start(self):
        self.loop.start()

    def stop(self):
        self.loop.stop()

    # ------------------------------------------------------------ event handlers (enqueue only)

    def _pending_keys(self):
        return [key_of(p) for p in self.pods.list() if needs_scheduling(p)]

    def _pod_added(self, pod):
        if needs_scheduling(pod):
            self.loop.enqueue(key_of(pod))
        elif pod.spec.node_name:
            self._pods_changed()    # created bound (a DaemonSet's pod, a nodeName set by hand)

    def _pod_updated(self, old, new):
        if new.spec.node_name:
            with self._lock:
                self._assumed.pop(new.metadata.uid, None)
            if not old.spec.node_name or old.metadata.labels != new.metadata.labels:
                self._pods_changed()
        if needs_scheduling(new) and (not needs_scheduling(old) or old.spec != new.spec):
            self.loop.enqueue(key_of(new))
        if new.status.phase in POD_FINISHED_PHASES and old.status.phase != new.status.phase:
            self._cluster_changed()  # a finished pod frees its requests

    def _pod_deleted(self, pod):
        with self._lock:
            self._assumed.pop(pod.metadata.uid, None)
            self._last_failure.pop(pod.metadata.uid, None)
            self._unschedulable.discard(key_of(pod))
            self._wait_for_pods.discard(key_of(pod))
        if pod.spec.node_name:
            self._cluster_changed()

    def _node_updated(self, old, new):
        if _node_fingerprint(old) != _node_fingerprint(new):
            self._cluster_changed()

    def _cluster_changed(self):
        with self._lock:
            waiting = list(self._unschedulable)
        for key in waiting:
            self.loop.enqueue(key)

    def _pods_changed(self):
        """A pod was bound or relabelled: retry the pods only another pod can help."""
        with self._lock:
            waiting = list(self._wait_for_pods)
        for key in waiting:
            self.loop.enqueue(key)

    def _namespace_labels(self) -> dict:
        if self.namespaces is None:
            return {}
        return {ns.metadata.name: dict(ns.metadata.labels) for ns in self.namespaces.list()}

    # ------------------------------------------------------------ sync

    def _bound_pods(self):
        """Pods bound to nodes per the cache, plus our assumed bindings it has not shown yet."""
        now = time.monotonic()
        cached = self.pods.list()
        seen_bound = {p.metadata.uid for p in cached if p.spec.node_name}
        with self._lock:
            for uid, (_, deadline) in list(self._assumed.items()):
                if uid in seen_bound or deadline < now:
                    del self._assumed[uid]
            assumed = [p for p, _ in self._assumed.values()]
        return [p for p in cached if p.spec.node_name] + assumed

    def sync(self, key):
        pod = self.pods.get(key)
        if pod is None or not needs_scheduling(pod):
            with self._lock:
                self._unschedulable.discard(key)
                self._wait_for_pods.discard(key)
            return None
        with self._lock:
            if pod.metadata.uid in self._assumed:
                return None  # bound already; the informer has not caught up
        if pod.spec.scheduling_gates:
            # Gated: not tried, not an Unschedulable pod; removing the last gate is a spec
            # change, and _pod_updated enqueues it then.
            with self._lock:
                self._unschedulable.discard(key)
            log.info("event=gated pod=%s gates=%s", key, ",".join(g.name for g in pod.spec.scheduling_gates))
            self._set_scheduled_condition(pod, "False", SCHEDULING_GATED, SCHEDULING_GATED_MESSAGE)
            return None
        infos = build_node_infos(self.nodes.list(), self._bound_pods())
        decision = schedule(pod, infos, self._namespace_labels())
        log.debug("event=decision pod=%s node=%s %s", key, decision.node, decision.explain())
        if decision.node is None:
            if _helped_by_pods(pod):
                with self._lock:
                    self._wait_for_pods.add(key)
            self._unschedulable_pod(key, pod, decision.message, decision.detail)
            return BACKOFF  # cluster changes requeue it sooner (_cluster_changed)
        with self._lock:
            self._unschedulable.discard(key)
            self._wait_for_pods.discard(key)
        self._bind(key, pod, decision.node)
        return None

    def _unschedulable_pod(self, key, pod, message, detail=""):
        uid = pod.metadata.uid
        with self._lock:
            self._unschedulable.add(key)
            if uid not in self._last_failure:
                # What an earlier leader already reported (the condition carries its message),
                # so a failover does not repeat the event.
                cond = get_condition(pod.status.conditions, "PodScheduled")
                if cond is not None and cond.status == "False" and cond.reason == "Unschedulable":
                    self._last_failure[uid] = cond.message
            first_time = self._last_failure.get(uid) != message
        log.info("event=unschedulable pod=%s message=%r", key, message)
        self._set_scheduled_condition(pod, "False", "Unschedulable", message)
        if first_time:
            self.recorder.event(pod, "Warning", "FailedScheduling", f"{message} {detail}".rstrip())
            flush = getattr(self.recorder, "flush", None)
            if flush is not None:   # rare and not on the binding path: written before we go on
                flush(uid, FLUSH_S)
            with self._lock:
                self._last_failure[uid] = message

    def _bind(self, key, pod, node_name):
        """One write, as Kubernetes' Binding: the store sets spec.nodeName and PodScheduled=True
        together, and refuses (Conflict) a pod that is already bound or being deleted."""
        target = copy(pod)                      # its identity (uid: a replaced pod is refused)...
        target.ClearField("spec")
        target.ClearField("status")
        target.spec.node_name = node_name       # ...and the node: all a binding carries
        target.metadata.resource_version = ""   # no CAS needed: the store checks the pod itself
        try:
            bound = self.client.update(target, subresource="binding")
        except (clientmod.Conflict, clientmod.NotFound):
            return  # bound by someone else, being deleted, replaced (uid) or gone: nothing to do
        with self._lock:
            self._assumed[bound.metadata.uid] = (bound, time.monotonic() + ASSUMED_TTL_S)
            self._last_failure.pop(bound.metadata.uid, None)
        ns, name = pod.metadata.namespace, pod.metadata.name
        log.info("event=bound pod=%s/%s node=%s", ns, name, node_name)
        self.recorder.event(bound, "Normal", "Scheduled", f"Successfully assigned {ns}/{name} to {node_name}")

    def _set_scheduled_condition(self, pod, status, reason, message, attempts: int = 3):
        """PodScheduled via the status subresource, compare-and-swap, re-reading on Conflict."""
        current = pod
        for _ in range(attempts):
            updated = copy(current)
            if not set_condition(updated.status.conditions, "PodScheduled", status, reason, message):
                return
            try:
                self.client.update_status(updated)
                return
            except clientmod.Conflict:
                current = self.client.get("pods", pod.metadata.name, pod.metadata.namespace)
                if current.metadata.uid != pod.metadata.uid:
                    return
            except clientmod.NotFound:
                return
        log.info("event=condition_not_written pod=%s/%s type=PodScheduled",
                 pod.metadata.namespace, pod.metadata.name)
