"""NoExecute taint eviction decisions: a pure function of a node's taints, its pods and the time.

The rules are Kubernetes' taint-eviction controller's (pkg/controller/tainteviction,
processPodOnNode with GetMatchingTolerations and getMinTolerationTime):

- only NoExecute taints count; a node without one evicts nothing (and any eviction
  that was pending is cancelled: removing the taint before the deadline keeps the pod);
- for each taint the pod's FIRST toleration that tolerates it is the one used; a taint
  no toleration tolerates evicts the pod at once;
- a used toleration without tolerationSeconds tolerates forever; the pod stays until
  the earliest deadline among the used tolerations that have tolerationSeconds
  (tolerationSeconds <= 0: at once);
- pods already being deleted, and finished ones (Succeeded/Failed: they hold nothing on
  the node, and deleting them would lose a Job's record), are left alone.

Where the clock starts (Kubernetes counts from the moment its controller first saw
the pod on the tainted node, in memory; skiff counts from recorded times, so a new
leader resumes every countdown where it stood instead of restarting it): a taint's
deadline runs from the later of the taint's timeAdded (the API server stamps it on
every NoExecute taint written without one) and the pod's binding to the node (its
PodScheduled condition's lastTransitionTime, else its creationTimestamp): a pod that
arrives on a node tainted an hour ago still gets its whole tolerationSeconds, as in
Kubernetes. A start in the future (a replica's clock ahead) counts from now. A taint
without timeAdded (written before the API stamped it) counts from when this leader
first saw it (first_seen, kept by the controller).

Who owns what: node.kubernetes.io/unreachable belongs to the node lifecycle controller
(controlplane/controllers/nodelifecycle.py), which adds it to a silent node, counts its
grace and eviction periods on its own monotonic clock and force-deletes (grace 0: the
node's agent is gone and would never finish a graceful deletion). This planner ignores
that taint entirely, so the two never evict a pod for the same taint; every other
NoExecute taint (users', node.kubernetes.io/not-ready added by hand, ...) is this one's.
A pod that both controllers would evict is deleted by whichever comes first.

Times are epoch seconds (the wall clock): timeAdded and lastTransitionTime are written
by control-plane replicas, whose clocks the deployment keeps in step (NTP); API times
have whole-second resolution, so a deadline can fall up to a second early.
"""

from dataclasses import dataclass

from controlplane.controllers.podutil import get_condition
from controlplane.scheduler.filters import tolerates
from skiff.api import objects_pb2 as pb
from skiff.api.wellknown import POD_FINISHED_PHASES, TAINT_UNREACHABLE, parse_rfc3339

NO_EXECUTE = "NoExecute"
OWNED_BY_NODE_LIFECYCLE = frozenset({TAINT_UNREACHABLE})
FOREVER = None


def eviction_taints(node: pb.Node) -> list:
    """The node's NoExecute taints this controller acts on (the unreachable one excluded)."""
    return [t for t in node.spec.taints if t.effect == NO_EXECUTE and t.key not in OWNED_BY_NODE_LIFECYCLE]


def taint_id(taint: pb.Taint) -> tuple:
    return (taint.key, taint.value, taint.effect)


def _epoch(text: str) -> float | None:
    when = parse_rfc3339(text)
    return when.timestamp() if when is not None else None


def bound_at(pod: pb.Pod) -> float | None:
    """When the pod was bound to its node: PodScheduled=True's lastTransitionTime, else
    its creationTimestamp (a pod created with spec.nodeName); None when neither is known."""
    cond = get_condition(pod.status.conditions, "PodScheduled")
    if cond is not None and cond.status == "True":
        at = _epoch(cond.last_transition_time)
        if at is not None:
            return at
    return _epoch(pod.metadata.creation_timestamp)


def eviction_time(pod: pb.Pod, taints, now_s: float, first_seen=None) -> float | None:
    """The epoch second at which pod must go because of taints (<= now_s: at once), or
    FOREVER (None) when every taint is tolerated by a toleration without tolerationSeconds.

    first_seen: {taint_id: epoch} for taints without timeAdded."""
    first_seen = first_seen or {}
    bound = bound_at(pod)
    deadline = FOREVER
    for taint in taints:
        used = next((t for t in pod.spec.tolerations if tolerates(t, taint)), None)
        if used is None:
            return now_s
        if not used.HasField("toleration_seconds"):
            continue
        if used.toleration_seconds <= 0:
            return now_s
        added = _epoch(taint.time_added)
        if added is None:
            added = first_seen.get(taint_id(taint), now_s)
        start = min(now_s, max(added, bound if bound is not None else added))
        at = start + used.toleration_seconds
        deadline = at if deadline is None else min(deadline, at)
    return deadline


def _key(pod: pb.Pod) -> str:
    return f"{pod.metadata.namespace}/{pod.metadata.name}"


def evictable(pod: pb.Pod) -> bool:
    return not pod.metadata.deletion_timestamp and pod.status.phase not in POD_FINISHED_PHASES


@dataclass(frozen=True)
class Plan:
    evict: tuple = ()          # pod keys (ns/name) to delete now
    pending: tuple = ()        # pod keys whose eviction is scheduled (a later deadline)
    next_at_s: float | None = None  # the earliest scheduled deadline (epoch), None: none


def plan_node(node: pb.Node, pods_on_node, now_s: float, first_seen=None) -> Plan:
    """What to do about the pods bound to node now (pods_on_node: every pod whose
    spec.nodeName is the node, in any state)."""
    taints = eviction_taints(node)
    if not taints:
        return Plan()
    evict, pending, next_at = [], [], None
    for pod in sorted(pods_on_node, key=_key):
        if not evictable(pod):
            continue
        at = eviction_time(pod, taints, now_s, first_seen)
        if at is FOREVER:
            continue
        if at <= now_s:
            evict.append(_key(pod))
        else:
            pending.append(_key(pod))
            next_at = at if next_at is None else min(next_at, at)
    return Plan(tuple(evict), tuple(pending), next_at)


def cancelled(before, plan: Plan, pods_on_node) -> tuple:
    """Pods whose eviction was pending (before: their keys) and no longer is, nor happens
    now, while they are still on the node and not being deleted (the taint went, or was
    replaced by one they tolerate forever): Kubernetes says "Cancelling deletion" for them."""
    still = set(plan.evict) | set(plan.pending)
    here = {_key(p) for p in pods_on_node if evictable(p)}
    return tuple(sorted(k for k in before if k not in still and k in here))
