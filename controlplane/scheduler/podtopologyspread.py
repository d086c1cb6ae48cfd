"""Topology spread constraints: keep the pods a selector matches evenly spread over
the domains of a topology key (kube-scheduler's PodTopologySpread plugin).

A constraint counts, per domain (a value of topologyKey), the pods in the
incoming pod's namespace that its labelSelector (plus matchLabelKeys: `key In
(this pod's value)`) matches, on the eligible nodes, pods being deleted
excepted. A node is eligible for a constraint when it carries the topology keys
of all the pod's constraints (of the same whenUnsatisfiable) and passes the
inclusion policies: nodeAffinityPolicy Honor (the default) -- the pod's
nodeSelector and required node affinity match it; nodeTaintsPolicy Honor (the
default is Ignore) -- the pod tolerates its NoSchedule/NoExecute taints.

- whenUnsatisfiable DoNotSchedule (filter_node): placing the pod in the node's
  domain must keep `count(domain) + self - min(count over eligible domains)`
  at most maxSkew, where self is 1 when the pod matches its own selector and
  the minimum is 0 while fewer than minDomains domains exist. A node without
  the topology key is not eligible at all: "node(s) didn't match pod topology
  spread constraints (missing required label)"; a too-large skew: "node(s)
  didn't match pod topology spread constraints".
- whenUnsatisfiable ScheduleAnyway (score): fewer matching pods in the node's
  domain scores higher; each constraint's count is weighted by log(domains + 2)
  so a key with many domains (hostname) weighs more than one with few (zone),
  as kube-scheduler does; nodes lacking a key score 0.

prefilter()/prescore() count once per cycle (O(pods x constraints)); the
per-node checks are dict lookups.
"""

import math
from collections import Counter
from dataclasses import dataclass

from controlplane.scheduler.filters import first_untolerated, node_affinity_matches
from skiff.api import objects_pb2 as pb
from skiff.api import selectors
from skiff.api.wellknown import LABEL_HOSTNAME

SPREAD_MISMATCH = "node(s) didn't match pod topology spread constraints"
MISSING_LABEL = "node(s) didn't match pod topology spread constraints (missing required label)"
DO_NOT_SCHEDULE = "DoNotSchedule"
SCHEDULE_ANYWAY = "ScheduleAnyway"
TAINT_EFFECTS = ("NoSchedule", "NoExecute")
MAX_SCORE = 100


@dataclass(frozen=True)
class Constraint:
    max_skew: int
    topology_key: str
    selector: object          # a Selector, or None: labelSelector absent, matches no pod
    min_domains: int
    honor_affinity: bool
    honor_taints: bool

    def matches(self, pod: pb.Pod) -> bool:
        return self.selector is not None and self.selector.matches(pod.metadata.labels)


def _selector(c: pb.TopologySpreadConstraint, labels):
    if not c.HasField("label_selector"):
        return None
    try:
        base = selectors.from_label_selector(c.label_selector)
        extra = tuple(selectors.requirement(k, selectors.IN, (labels[k],)) for k in c.match_label_keys
                      if k in labels)
    except ValueError:
        return None
    return selectors.Selector.of(base.requirements + extra) if extra else base


def constraints(pod: pb.Pod, when: str) -> list:
    """The pod's constraints with whenUnsatisfiable == when, compiled."""
    return [Constraint(c.max_skew, c.topology_key, _selector(c, pod.metadata.labels),
                       c.min_domains if c.HasField("min_domains") else 1,
                       c.node_affinity_policy != "Ignore", c.node_taints_policy == "Honor")
            for c in pod.spec.topology_spread_constraints if c.when_unsatisfiable == when]


def _included(c: Constraint, pod: pb.Pod, node: pb.Node) -> bool:
    if c.honor_affinity and not node_affinity_matches(pod, node):
        return False
    return not (c.honor_taints and first_untolerated(pod, node.spec.taints, TAINT_EFFECTS) is not None)


def _matching(c: Constraint, pod: pb.Pod, info) -> int:
    ns, uid = pod.metadata.namespace, pod.metadata.uid
    return sum(1 for p in info.pods
               if p.metadata.namespace == ns and not p.metadata.deletion_timestamp
               and (not uid or p.metadata.uid != uid) and c.matches(p))


def _counts(pod: pb.Pod, cons: list, infos, domains=None) -> list:
    """Per constraint: Counter(domain value -> matching pods) over the eligible nodes;
    with domains (per constraint, a set of values), only those values are counted."""
    counts = [Counter() for _ in cons]
    keys = [c.topology_key for c in cons]
    for info in infos:
        labels = info.node.metadata.labels
        if not all(k in labels for k in keys):
            continue
        for i, c in enumerate(cons):
            value = labels[c.topology_key]
            if domains is not None and value not in domains[i]:
                continue
            if _included(c, pod, info.node):
                counts[i][value] += _matching(c, pod, info)
    return counts


# ---------------------------------------------------------------- DoNotSchedule (filter)

@dataclass
class FilterState:
    constraints: list
    counts: list       # per constraint: Counter(domain -> matching pods), eligible domains only
    minimum: list      # per constraint: the least count (0 below minDomains domains)
    self_match: list   # per constraint: 1 when the incoming pod matches its selector


def prefilter(pod: pb.Pod, infos: dict) -> FilterState | None:
    cons = constraints(pod, DO_NOT_SCHEDULE)
    if not cons:
        return None
    counts = _counts(pod, cons, infos.values())
    minimum = [0 if len(cnt) < c.min_domains or not cnt else min(cnt.values())
               for c, cnt in zip(cons, counts)]
    return FilterState(cons, counts, minimum, [1 if c.matches(pod) else 0 for c in cons])


def filter_node(state: FilterState | None, info) -> list:
    if state is None:
        return []
    labels = info.node.metadata.labels
    for c in state.constraints:
        if c.topology_key not in labels:
            return [MISSING_LABEL]
    for i, c in enumerate(state.constraints):
        skew = state.counts[i][labels[c.topology_key]] + state.self_match[i] - state.minimum[i]
        if skew > c.max_skew:
            return [SPREAD_MISMATCH]
    return []


# ---------------------------------------------------------------- ScheduleAnyway (score)

def score(pod: pb.Pod, infos: dict, feasible) -> dict:
    """Node name -> 0..100 for the feasible nodes ({} when the pod has no such constraint)."""
    cons = constraints(pod, SCHEDULE_ANYWAY)
    if not cons:
        return {}
    keys = [c.topology_key for c in cons]
    scored = [info for info in feasible if all(k in info.node.metadata.labels for k in keys)]
    domains = [{info.node.metadata.labels[c.topology_key] for info in scored} for c in cons]
    weights = [math.log(len(d) + 2) for d in domains]
    counts = _counts(pod, cons, infos.values(), domains)
    raw = {}
    for info in scored:
        labels = info.node.metadata.labels
        total = 0.0
        for i, c in enumerate(cons):
            if c.topology_key == LABEL_HOSTNAME:
                cnt = _matching(c, pod, info) if _included(c, pod, info.node) else 0
            else:
                cnt = counts[i][labels[c.topology_key]]
            total += cnt * weights[i] + c.max_skew - 1
        raw[info.name] = total
    out = {info.name: 0 for info in feasible}
    if raw:
        low, high = min(raw.values()), max(raw.values())
        for name, s in raw.items():
            out[name] = MAX_SCORE if high == 0 else int(MAX_SCORE * (high + low - s) / high)
    return out
