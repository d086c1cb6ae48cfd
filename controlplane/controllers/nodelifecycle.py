"""The node lifecycle controller: notices silent nodes and moves their pods away.

Every tick (period_s: a tenth of the grace period, between 0.1 and 1 s, so a
silent node is noticed within 10% of its grace period; a tick costs a walk over
the informer caches, no API call unless something is to be done — and sooner
when a grace period or an eviction time ends before the next period: the tick
returns the time to the earliest such deadline, so evictions are not a period
late) it observes
each cached Node's Lease (kube-node-lease/<node>, spec.renewTime) and Ready
lastHeartbeatTime against its monotonic clock (it records when it SAW a change,
it never trusts the remote timestamps; a change is dated when the watch delivered it,
noted by informer handlers, not at the tick that looks at it: up to a period earlier),
asks the pure decide() what to do, and
applies it through the API:
- Ready=Unknown via the status subresource (lastHeartbeatTime left as it was:
  our own write must not look like a heartbeat), event NodeNotReady on the node;
- taint node.kubernetes.io/unreachable:NoExecute (spec update), or its removal;
- pods' Ready/ContainersReady=False via their status subresource;
- force delete (grace 0, uid precondition) of the pods to evict, with a Normal
  event NodeControllerEviction "Marking for deletion Pod ns/name from Node X".
Every write is compare-and-swap; a conflict just waits for the next tick. The
ticks are a bounded-frequency runner of the reconcile toolkit (no event triggers
a tick: only time makes a node silent); a failed tick is retried after period_s.

Timing settings come from the replica config (controllers:); see
controlplane.config.ControllersConfig for the lab and Kubernetes defaults.

Period and cost: period_s as above (lab: grace 5 s -> a tick every 0.5 s;
Kubernetes' --node-monitor-period is 5 s against a 40 s grace, an eighth). An
idle tick at 20 nodes walks 20 Nodes, their Leases and the pod cache, no API call:
its thread measured 0.1 % of a core (about half a millisecond per tick).
"""

import concurrent.futures
import logging
import threading
import time

from controlplane.controllers.nodelifecycle_plan import (UNKNOWN_MESSAGE, UNKNOWN_REASON, UNREACHABLE_TAINT,
                                                         decide, heartbeat_of, next_deadline_s, next_wakeup_s,
                                                         observe, renew_time_of)
from controlplane.controllers.podutil import copy, get_condition, now_rfc3339, set_condition
from skiff import client as clientmod
from skiff.api.kinds.coordination import NODE_LEASE_NAMESPACE
from skiff.reconcile import BoundedFrequencyRunner

log = logging.getLogger("skiff.controllers.nodelifecycle")
EVICTION_WORKERS = 8   # a dead node's pods are deleted this many at a time (the Raft batcher commits them together)


class NodeLifecycleController:
    def __init__(self, client, nodes, pods, recorder, grace_s: float, eviction_s: float,
                 clock=time.monotonic, leases=None):
        """leases: an informer of Leases (kube-node-lease); None = heartbeats in Node status only."""
        self.client = client
        self.nodes = nodes
        self.leases = leases
        self.pods = pods
        self.recorder = recorder
        self.grace_s = grace_s
        self.eviction_s = eviction_s
        self.period_s = max(0.1, min(1.0, grace_s / 10))
        self._clock = clock
        self._health: dict = {}
        self._arrived: dict = {}   # node name -> {("lease", renewTime) | ("beat", heartbeat): monotonic arrival}
        self._arrived_lock = threading.Lock()
        # The clocks start at the first tick: a new leader gives every node a fresh grace period.
        self.runner = BoundedFrequencyRunner(
            "nodelifecycle", self.tick, max_interval_s=self.period_s, retry_base_s=self.period_s,
            retry_max_s=self.period_s, informers=tuple(i for i in (nodes, pods, leases) if i is not None),
            logger=log)

    def start(self):
        if self.leases is not None:
            self.leases.add_handler(on_add=self._lease_arrived, on_update=lambda _old, new: self._lease_arrived(new))
        self.nodes.add_handler(on_add=self._node_arrived, on_update=lambda _old, new: self._node_arrived(new))
        self.runner.start()

    def _lease_arrived(self, lease):
        if lease.metadata.namespace == NODE_LEASE_NAMESPACE:
            self._note_arrival(lease.metadata.name, ("lease", renew_time_of(lease)))

    def _node_arrived(self, node):
        self._note_arrival(node.metadata.name, ("beat", heartbeat_of(node)))

    def _note_arrival(self, name, value):
        with self._arrived_lock:
            self._arrived.setdefault(name, {}).setdefault(value, self._clock())
            if len(self._arrived[name]) > 4:   # only the latest values matter
                for old in list(self._arrived[name])[:-4]:
                    del self._arrived[name][old]

    def _arrival_of(self, name, node, lease, prev):
        """When the watch delivered what changed since prev (the node's heartbeat, its Lease's
        renewal; the later of the two if both), or None: nothing changed, or a change whose
        arrival was not noted (the cache can be ahead of its handlers): then observe() dates it now."""
        if prev is None:
            return None
        changed = []
        if heartbeat_of(node) != prev.heartbeat:
            changed.append(("beat", heartbeat_of(node)))
        renew = renew_time_of(lease)
        if renew and renew != prev.renew_time:
            changed.append(("lease", renew))
        with self._arrived_lock:
            seen = self._arrived.get(name, {})
            times = [seen.get(value) for value in changed]
        if not times or any(t is None for t in times):
            return None
        return max(times)

    def stop(self):
        self.runner.stop()

    def tick(self):
        now_s = self._clock()
        nodes = {n.metadata.name: n for n in self.nodes.list()}
        for name in list(self._health):
            if name not in nodes:
                del self._health[name]
        by_node: dict = {}
        for pod in self.pods.list():
            if pod.spec.node_name:
                by_node.setdefault(pod.spec.node_name, []).append(pod)
        deadlines = []
        for name, node in sorted(nodes.items()):
            lease, prev = self._lease_of(name), self._health.get(name)
            health = observe(prev, node, now_s, lease, self._arrival_of(name, node, lease, prev))
            self._health[name] = health
            actions = decide(node, health, by_node.get(name, []), now_s, self.grace_s, self.eviction_s)
            deadlines.append(next_deadline_s(health, by_node.get(name, []), now_s, self.grace_s, self.eviction_s))
            if actions.empty:
                continue
            silent_s = now_s - health.changed_at_s
            try:
                self._apply(node, actions, silent_s)
            except clientmod.Conflict:
                continue  # someone (the agent?) wrote first: look again next tick
            except clientmod.NotFound:
                continue
        return next_wakeup_s(deadlines, self._clock(), self.period_s)

    def _lease_of(self, node_name):
        if self.leases is None:
            return None
        return self.leases.get(f"{NODE_LEASE_NAMESPACE}/{node_name}")

    def _apply(self, node, actions, silent_s):
        name = node.metadata.name
        if actions.mark_unknown:
            updated = copy(node)
            cond = get_condition(updated.status.conditions, "Ready")
            if cond is None:
                cond = updated.status.conditions.add(type="Ready")
            if cond.status != "Unknown":
                cond.last_transition_time = now_rfc3339()
            cond.status, cond.reason, cond.message = "Unknown", UNKNOWN_REASON, UNKNOWN_MESSAGE
            node = self.client.update_status(updated)
            log.info("event=node_unknown node=%s silent_s=%.1f", name, silent_s)
            self.recorder.event(node, "Normal", "NodeNotReady", f"Node {name} status is now: NodeNotReady")
        if actions.add_taint:
            updated = copy(node)
            updated.spec.taints.add(key=UNREACHABLE_TAINT, effect="NoExecute", time_added=now_rfc3339())
            node = self.client.update(updated)
            log.info("event=node_tainted node=%s taint=%s:NoExecute", name, UNREACHABLE_TAINT)
        if actions.remove_taint:
            updated = copy(node)
            keep = [t for t in updated.spec.taints
                    if not (t.key == UNREACHABLE_TAINT and t.effect == "NoExecute")]
            del updated.spec.taints[:]
            updated.spec.taints.extend(keep)
            self.client.update(updated)
            log.info("event=node_untainted node=%s taint=%s:NoExecute", name, UNREACHABLE_TAINT)
        for key in actions.pods_not_ready:
            self._mark_pod_not_ready(key)
        if actions.evict:
            with concurrent.futures.ThreadPoolExecutor(max_workers=EVICTION_WORKERS) as pool:
                for f in [pool.submit(self._evict, key, name) for key in actions.evict]:
                    f.result()

    def _mark_pod_not_ready(self, key):
        pod = self.pods.get(key)
        if pod is None:
            return
        updated = copy(pod)
        now = now_rfc3339()
        changed = False
        for ctype in ("Ready", "ContainersReady"):
            changed |= set_condition(updated.status.conditions, ctype, "False", "NodeStatusUnknown",
                                     UNKNOWN_MESSAGE, now)
        if not changed:
            return
        try:
            self.client.update_status(updated)
        except (clientmod.Conflict, clientmod.NotFound):
            return  # next tick
        log.info("event=pod_not_ready pod=%s node=%s", key, pod.spec.node_name)

    def _evict(self, key, node_name):
        pod = self.pods.get(key)
        if pod is None:
            return
        ns, name = pod.metadata.namespace, pod.metadata.name
        try:
            self.client.delete("pods", name, ns, uid=pod.metadata.uid, grace_period_seconds=0)
        except (clientmod.NotFound, clientmod.Conflict):
            return
        log.info("event=pod_evicted pod=%s node=%s", key, node_name)
        self.recorder.event(pod, "Normal", "NodeControllerEviction",
                            f"Marking for deletion Pod {ns}/{name} from Node {node_name}")
