"""The taint eviction controller: pods leave nodes whose NoExecute taints they do not tolerate.

Kubernetes' taint-eviction controller (the "taint manager", pkg/controller/tainteviction)
on skiff's reconcile toolkit: a keyed Loop whose key is a node name (leader-only).

sync(node): read the Node and the pods bound to it from the informer caches, ask the
pure plan_node() (taint_eviction_plan.py: which taints, which tolerations, when)
what to do, then
- delete each pod to evict now (graceful: the pod's own terminationGracePeriodSeconds,
  as Kubernetes' taint manager does; uid precondition, so a pod recreated under the same
  name is not hit), with a Normal event TaintManagerEviction "Marking for deletion Pod
  ns/name" on the pod;
- remember the pods whose eviction is scheduled for later, and ask the loop to look at
  the node again just after the earliest deadline (the sync's return value);
- for a pod whose scheduled eviction no longer applies (the taint was removed before
  its deadline), a Normal event TaintManagerEviction "Cancelling deletion of Pod ns/name".
Deadlines are computed from recorded times (the taint's timeAdded, the pod's binding),
not from timers in this process, so a new leader picks up every countdown where it
stood; only the "scheduled" memory behind the cancel events and first_seen (for taints
written without timeAdded) are per term.

node.kubernetes.io/unreachable is not this controller's: the node lifecycle controller
adds it and evicts for it on its own clock (see taint_eviction_plan.py, "Who owns what").

Handlers only enqueue: a Node added, or updated with a different taint list, or deleted;
a pod added, bound or updated on a node that has NoExecute taints (so a pod scheduled
onto a tainted node is judged at once). Nodes without NoExecute taints cost nothing
beyond that check.

Period and cost: event-driven plus a resync of every node every resync_s (30 s) and a
wake-up at each scheduled deadline; a sync of a node without NoExecute taints returns at
once, one with them walks the pod cache (no API call unless a pod is to go).
"""

import logging
import threading
import time

from controlplane.controllers.podutil import key_of
from controlplane.controllers.taint_eviction_plan import Plan, cancelled, eviction_taints, plan_node, taint_id
from skiff import client as clientmod
from skiff.reconcile import Loop

log = logging.getLogger("skiff.controllers.tainteviction")

REASON = "TaintManagerEviction"
WAKE_MARGIN_S = 0.05   # look just after a deadline, not just before it


class TaintEvictionController:
    def __init__(self, client, nodes, pods, recorder, workers: int = 2, resync_s: float = 30.0,
                 clock=time.time):
        self.client = client
        self.nodes = nodes
        self.pods = pods
        self.recorder = recorder
        self._clock = clock
        self._lock = threading.Lock()
        self._scheduled: dict = {}    # node name -> pod keys whose eviction is pending
        self._first_seen: dict = {}   # node name -> {taint_id: epoch} for taints without timeAdded
        self.loop = Loop("tainteviction", self.sync, informers=(nodes, pods), workers=workers,
                         list_keys=lambda: sorted(self.nodes.keys()), resync_s=resync_s, logger=log)
        nodes.add_handler(self._node_added, self._node_updated, self._node_added)
        pods.add_handler(self._pod_changed, lambda _old, new: self._pod_changed(new), None)

    def start(self):
        self.loop.start()

    def stop(self):
        self.loop.stop()

    # ------------------------------------------------------------ handlers (enqueue only)

    def _node_added(self, node):
        self.loop.enqueue(node.metadata.name)

    def _node_updated(self, old, new):
        # Heartbeats rewrite the Node every few seconds: only a taint change matters here.
        if [taint_id(t) + (t.time_added,) for t in old.spec.taints] != \
                [taint_id(t) + (t.time_added,) for t in new.spec.taints]:
            self.loop.enqueue(new.metadata.name)

    def _pod_changed(self, pod):
        name = pod.spec.node_name
        if not name:
            return
        node = self.nodes.get(name)
        if node is not None and eviction_taints(node):
            self.loop.enqueue(name)

    # ------------------------------------------------------------ sync

    def sync(self, name):
        node = self.nodes.get(name)
        if node is None or not eviction_taints(node):
            with self._lock:
                before = self._scheduled.pop(name, set())
                self._first_seen.pop(name, None)
            if node is not None and before:
                self._cancel(name, before, [p for p in self.pods.list() if p.spec.node_name == name])
            return None
        now_s = self._clock()
        first_seen = self._note_untimed(name, node, now_s)
        on_node = [p for p in self.pods.list() if p.spec.node_name == name]
        plan = plan_node(node, on_node, now_s, first_seen)
        with self._lock:
            before = self._scheduled.get(name, set())
            self._scheduled[name] = set(plan.pending)
        for key in plan.evict:
            self._evict(key, name)
        self._cancel_keys(name, cancelled(before, plan, on_node))
        if plan.next_at_s is None:
            return None
        log.debug("event=eviction_scheduled node=%s pods=%d in_s=%.1f", name, len(plan.pending),
                  plan.next_at_s - now_s)
        return max(0.0, plan.next_at_s - self._clock()) + WAKE_MARGIN_S

    def _note_untimed(self, name, node, now_s) -> dict:
        """first_seen for the node's NoExecute taints without timeAdded (kept per term)."""
        with self._lock:
            seen = self._first_seen.setdefault(name, {})
            current = {taint_id(t) for t in eviction_taints(node) if not t.time_added}
            for tid in list(seen):
                if tid not in current:
                    del seen[tid]
            for tid in current:
                seen.setdefault(tid, now_s)
            return dict(seen)

    def _cancel(self, name, before, on_node):
        self._cancel_keys(name, cancelled(before, Plan(), on_node))

    def _cancel_keys(self, name, keys):
        for key in keys:
            pod = self.pods.get(key)
            if pod is None:
                continue
            log.info("event=eviction_cancelled pod=%s node=%s", key, name)
            self.recorder.event(pod, "Normal", REASON, f"Cancelling deletion of Pod {key}")

    def _evict(self, key, node_name):
        pod = self.pods.get(key)
        if pod is None or pod.metadata.deletion_timestamp:
            return
        ns, name = pod.metadata.namespace, pod.metadata.name
        try:
            self.client.delete("pods", name, ns, uid=pod.metadata.uid)
        except (clientmod.NotFound, clientmod.Conflict):
            return   # gone already, or replaced by a pod of the same name: nothing to do
        log.info("event=pod_evicted pod=%s node=%s reason=taint", key, node_name)
        self.recorder.event(pod, "Normal", REASON, f"Marking for deletion Pod {key_of(pod)}")
