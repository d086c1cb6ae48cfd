"""Rankers: how good is each feasible node for this pod (0..100 per ranker, higher is better).

Each ranker is a pure function (pod, [NodeInfo]) -> {node name: score}; it sees
all feasible nodes at once because some scores are relative (spreading
normalizes by the busiest node). The total is the weighted sum (SCORERS);
the caller breaks ties by node name, so equal inputs give equal decisions.
"""

from controlplane.controllers.podutil import controller_ref
from controlplane.scheduler import interpodaffinity, podtopologyspread
from controlplane.scheduler.filters import tolerated, term_matches
from controlplane.scheduler.nodeinfo import nonzero_requests
from skiff.api import objects_pb2 as pb

MAX_SCORE = 100


def least_allocated(pod: pb.Pod, infos) -> dict:
    """Prefer nodes with more free cpu and memory after placing the pod (equal weights).

    Pods without requests count as 100m cpu / 200Mi (Kubernetes' scoring defaults),
    so even request-less pods spread by load.
    """
    want = nonzero_requests(pod)
    scores = {}
    for info in infos:
        have = info.allocatable
        parts = []
        for capacity, used in ((have.cpu_m, info.nonzero_requested.cpu_m + want.cpu_m),
                               (have.memory_b, info.nonzero_requested.memory_b + want.memory_b)):
            if capacity <= 0 or used > capacity:
                parts.append(0)
            else:
                parts.append((capacity - used) * MAX_SCORE // capacity)
        scores[info.name] = sum(parts) // len(parts)
    return scores


def owner_uid(pod: pb.Pod) -> str:
    ref = controller_ref(pod.metadata)
    return ref.uid if ref is not None else ""


def same_owner_count(pod: pb.Pod, info) -> int:
    """Pods of the pod's controller already on the node (pods being deleted do not count)."""
    uid = owner_uid(pod)
    return sum(1 for p in info.pods
               if not p.metadata.deletion_timestamp and p.metadata.namespace == pod.metadata.namespace
               and owner_uid(p) == uid and p.metadata.uid != pod.metadata.uid)


def spread_by_owner(pod: pb.Pod, infos) -> dict:
    """Fewer pods of the same owner (controller uid) on a node = better; pods without an
    owner, or with topologySpreadConstraints of their own (which then replace this
    default spreading, as in Kubernetes), are not spread (every node scores the maximum)."""
    if not owner_uid(pod) or pod.spec.topology_spread_constraints:
        return {info.name: MAX_SCORE for info in infos}
    counts = {info.name: same_owner_count(pod, info) for info in infos}
    most = max(counts.values(), default=0)
    if most == 0:
        return {name: MAX_SCORE for name in counts}
    return {name: MAX_SCORE * (most - n) // most for name, n in counts.items()}


def prefer_no_schedule(pod: pb.Pod, infos) -> dict:
    """Fewer untolerated PreferNoSchedule taints = better."""
    counts = {info.name: sum(1 for t in info.node.spec.taints
                             if t.effect == "PreferNoSchedule" and not tolerated(pod, t))
              for info in infos}
    most = max(counts.values(), default=0)
    if most == 0:
        return {name: MAX_SCORE for name in counts}
    return {name: MAX_SCORE * (most - n) // most for name, n in counts.items()}


def preferred_node_affinity(pod: pb.Pod, infos) -> dict:
    """Sum of the weights of the preferred node-affinity terms a node matches, normalized."""
    terms = pod.spec.affinity.node_affinity.preferred_during_scheduling_ignored_during_execution
    sums = {info.name: sum(t.weight for t in terms if term_matches(t.preference, info.node))
            for info in infos}
    most = max(sums.values(), default=0)
    if most == 0:
        return {name: 0 for name in sums}
    return {name: MAX_SCORE * s // most for name, s in sums.items()}


# (name, weight, ranker): Kubernetes' default weights, with owner spreading at
# PodTopologySpread's weight so replicas spread before load evens out.
SCORERS = (
    ("LeastAllocated", 1, least_allocated),
    ("SpreadByOwner", 2, spread_by_owner),
    ("TaintToleration", 3, prefer_no_schedule),
    ("NodeAffinity", 2, preferred_node_affinity),
)


# Rankers that look at the whole cluster, not only the feasible nodes: (name, weight,
# fn(cycle, feasible)), cycle being the algorithm's per-pod Cycle (all node infos,
# namespace labels). Kubernetes' default weights (InterPodAffinity 2, PodTopologySpread 2).
CYCLE_SCORERS = (
    ("InterPodAffinity", 2, lambda cycle, feasible: interpodaffinity.score(cycle.affinity_scores, feasible)),
    ("PodTopologySpread", 2, lambda cycle, feasible: podtopologyspread.score(cycle.pod, cycle.infos, feasible)),
)


def score(pod: pb.Pod, infos, cycle=None) -> dict:
    """{node name: {ranker name: weighted score}} for the feasible nodes (infos); the
    cluster-wide rankers run when cycle is given."""
    out = {info.name: {} for info in infos}
    for name, weight, fn in SCORERS:
        for node, value in fn(pod, infos).items():
            out[node][name] = weight * value
    if cycle is not None:
        for name, weight, fn in CYCLE_SCORERS:
            for node, value in fn(cycle, infos).items():
                out[node][name] = weight * value
    return out
