"""Node lifecycle decisions: a pure function of what the leader saw and when.

A node proves it is alive by renewing its Lease (kube-node-lease/<node name>,
spec.renewTime, every leaseDurationSeconds / 4) and, rarely, by writing its
status (the Ready condition's lastHeartbeatTime moves on every status write:
on a change or every nodeStatusReportFrequency). Either one counts, as in
kube-controller-manager's tryUpdateNodeHealth.

The leader never compares wall clocks (the agent's and its own may disagree).
It remembers, per node, the renewTime and the lastHeartbeatTime it last saw and
the time.monotonic() instant it saw either of them CHANGE; `silent_s` is how
long ago that was. A node first seen (or seen for the first time by a new
leader) starts its clock at that moment, so a new leader gives every node a
fresh grace period instead of marking them all down.

With G = nodeMonitorGracePeriodS and E = podEvictionTimeoutS:
- silent_s > G: Ready -> Unknown (reason NodeStatusUnknown, "Kubelet stopped
  posting node status."), taint node.kubernetes.io/unreachable:NoExecute, and
  every pod on the node gets Ready=False and ContainersReady=False;
- silent_s > G + E: the node's pods are force-deleted (grace 0), so their
  controllers replace them on healthy nodes. A pod that tolerates the
  unreachable NoExecute taint stays (forever, or for its tolerationSeconds
  counted from the moment the node went silent past G);
- renewals (or heartbeats) changing again, seen after this leader started
  watching: remove the unreachable taint. The agent sets Ready=True itself.

This controller owns node.kubernetes.io/unreachable and the evictions it causes;
every other NoExecute taint (a user's) is the taint eviction controller's
(taint_eviction.py), which ignores this one: the two never evict for the same taint.
"""

from dataclasses import dataclass

from controlplane.controllers.podutil import get_condition
from controlplane.scheduler.filters import tolerates
from skiff.api import objects_pb2 as pb
from skiff.api.wellknown import POD_FINISHED_PHASES, TAINT_UNREACHABLE

UNREACHABLE_TAINT = TAINT_UNREACHABLE
UNKNOWN_REASON = "NodeStatusUnknown"
UNKNOWN_MESSAGE = "Kubelet stopped posting node status."


@dataclass(frozen=True)
class NodeHealth:
    heartbeat: str          # the Ready condition's lastHeartbeatTime last seen ("" when none)
    changed_at_s: float     # monotonic time a renewal or heartbeat was last seen to change (or first seen)
    seen_change: bool = False  # True once this leader has seen one change at least once
    renew_time: str = ""    # the node Lease's spec.renewTime last seen ("" when no Lease)


def heartbeat_of(node: pb.Node) -> str:
    cond = get_condition(node.status.conditions, "Ready")
    return cond.last_heartbeat_time if cond is not None else ""


def renew_time_of(lease: pb.Lease | None) -> str:
    return lease.spec.renew_time if lease is not None else ""


def observe(prev: NodeHealth | None, node: pb.Node, now_s: float, lease: pb.Lease | None = None,
            arrived_s: float | None = None) -> NodeHealth:
    """The node's health after looking at it (and its Lease, None when it has none) at now_s.

    Only a CHANGE of renewTime or lastHeartbeatTime restarts the clock: the values are the
    agent's wall clock and are compared with nothing else. A Lease that disappears (deleted,
    its namespace deleted) is no renewal: the clock keeps running until it comes back.

    arrived_s: the monotonic instant the watch delivered the current renewal (or heartbeat),
    when the caller noted it: a change is dated then rather than at this look, which may
    be up to a tick later (a silent node would be marked and evicted that much late). Never
    later than now_s, never before the previous change; first sight still starts at now_s."""
    beat, renew = heartbeat_of(node), renew_time_of(lease)
    if prev is None:
        return NodeHealth(beat, now_s, False, renew)
    if beat != prev.heartbeat or (renew and renew != prev.renew_time):
        at = now_s if arrived_s is None else max(prev.changed_at_s, min(now_s, arrived_s))
        return NodeHealth(beat, at, True, renew or prev.renew_time)
    return prev


def has_unreachable_taint(node: pb.Node) -> bool:
    return any(t.key == UNREACHABLE_TAINT and t.effect == "NoExecute" for t in node.spec.taints)


def eviction_delay_s(pod: pb.Pod, default_s: float) -> float | None:
    """After the grace period, how long pod may stay on an unreachable node: the
    tolerationSeconds of a toleration of the unreachable NoExecute taint (None =
    forever when it has none), else default_s."""
    taint = pb.Taint(key=UNREACHABLE_TAINT, effect="NoExecute")
    best = default_s
    for t in pod.spec.tolerations:
        if tolerates(t, taint):
            if not t.HasField("toleration_seconds"):
                return None
            best = max(0.0, float(t.toleration_seconds))
    return best


@dataclass(frozen=True)
class Actions:
    mark_unknown: bool = False
    add_taint: bool = False
    remove_taint: bool = False
    pods_not_ready: tuple = ()   # pod keys (ns/name) to mark Ready=False
    evict: tuple = ()            # pod keys (ns/name) to force-delete

    @property
    def empty(self) -> bool:
        return not (self.mark_unknown or self.add_taint or self.remove_taint
                    or self.pods_not_ready or self.evict)


def _key(pod):
    return f"{pod.metadata.namespace}/{pod.metadata.name}"


def _pod_marked_not_ready(pod: pb.Pod) -> bool:
    for ctype in ("Ready", "ContainersReady"):
        cond = get_condition(pod.status.conditions, ctype)
        if cond is None or cond.status != "False":
            return False
    return True


def decide(node: pb.Node, health: NodeHealth, pods_on_node, now_s: float,
           grace_s: float, eviction_s: float) -> Actions:
    """What to do about node now. pods_on_node: the pods bound to it (any state)."""
    silent_s = now_s - health.changed_at_s
    tainted = has_unreachable_taint(node)
    if silent_s <= grace_s:
        return Actions(remove_taint=tainted and health.seen_change)
    ready = get_condition(node.status.conditions, "Ready")
    evict = []
    for pod in pods_on_node:
        delay = eviction_delay_s(pod, eviction_s)
        if delay is not None and silent_s > grace_s + delay:
            evict.append(_key(pod))
    not_ready = tuple(_key(p) for p in pods_on_node
                      if not p.metadata.deletion_timestamp and p.status.phase not in POD_FINISHED_PHASES
                      and not _pod_marked_not_ready(p) and _key(p) not in evict)
    return Actions(mark_unknown=ready is None or ready.status != "Unknown", add_taint=not tainted,
                   pods_not_ready=not_ready, evict=tuple(evict))


def next_deadline_s(health: NodeHealth, pods_on_node, now_s: float, grace_s: float,
                    eviction_s: float) -> float | None:
    """The first monotonic instant after now_s at which decide() answers differently if the
    node stays silent: the end of its grace period, then each pod's eviction time (None:
    nothing will change by itself). The controller wakes up just after it instead of at
    its next period, so an eviction is not up to a period late."""
    grace_end = health.changed_at_s + grace_s
    times = [grace_end]
    for pod in pods_on_node:
        delay = eviction_delay_s(pod, eviction_s)
        if delay is not None:
            times.append(grace_end + delay)
    ahead = [t for t in times if t >= now_s]
    return min(ahead) if ahead else None


def next_wakeup_s(deadlines, now_s: float, period_s: float, margin_s: float = 0.01) -> float:
    """Seconds until the next tick: the earliest deadline still ahead (plus margin_s, since
    decide() compares with >), never later than period_s."""
    ahead = [d - now_s + margin_s for d in deadlines if d is not None and d >= now_s]
    return min([period_s] + ahead)
