"""Inter-pod affinity and anti-affinity: place a pod near (or away from) other pods,
where "near" means "in the same topology domain" (nodes sharing a value of the
term's topologyKey: one node for kubernetes.io/hostname, a zone for a zone label).

Modelled on kube-scheduler's InterPodAffinity plugin. Per scheduling cycle,
prefilter() walks the bound pods once and counts, per topology pair
(key, value):

- affinity:      pods matching ALL of the incoming pod's required affinity terms
                 (counted under each term's topology pair of their node);
- anti:          pods matching each of its required anti-affinity terms;
- existing_anti: existing pods whose own required anti-affinity terms match the
                 incoming pod (symmetry: they forbid it their domain).

filter() is then a few dict lookups per node, in Kubernetes' order and words:

- a required affinity term whose topologyKey the node lacks, or whose domain
  has no matching pod: "node(s) didn't match pod affinity rules" -- except for
  the first of a group: when no pod in the cluster matches the terms and the
  pod matches all its own terms, any node with the topology labels will do;
- a domain holding a pod an anti-affinity term matches:
  "node(s) didn't match pod anti-affinity rules";
- a domain an existing pod's anti-affinity forbids:
  "node(s) didn't satisfy existing pods anti-affinity rules".

score() sums, per topology pair, the weights of preferred terms (the incoming
pod's, and symmetrically the existing pods': their preferred terms and, at
weight HARD_POD_AFFINITY_WEIGHT, their required affinity terms) that existing
pods satisfy (+) or that anti-affinity forbids (-); a node scores the sum over
its labels, normalized to 0..100 between the lowest and the highest node.

Pods being deleted still count (they occupy their node until stopped), as in Kubernetes.
"""

from collections import Counter
from dataclasses import dataclass

from controlplane.scheduler.podterms import PodTerms, compile_terms
from skiff.api import objects_pb2 as pb

AFFINITY_MISMATCH = "node(s) didn't match pod affinity rules"
ANTI_AFFINITY_MISMATCH = "node(s) didn't match pod anti-affinity rules"
EXISTING_ANTI_AFFINITY_MISMATCH = "node(s) didn't satisfy existing pods anti-affinity rules"
HARD_POD_AFFINITY_WEIGHT = 1    # kube-scheduler's default hardPodAffinityWeight
MAX_SCORE = 100


@dataclass
class FilterState:
    terms: PodTerms
    affinity: Counter          # (topology key, value) -> pods matching all required affinity terms
    anti: Counter              # (topology key, value) -> pods matching a required anti-affinity term
    existing_anti: Counter     # (topology key, value) -> existing pods whose anti-affinity forbids it
    self_match: bool           # the pod matches all of its own required affinity terms


def _others(pod: pb.Pod, pods):
    uid = pod.metadata.uid
    return (p for p in pods if not uid or p.metadata.uid != uid)


def prefilter(pod: pb.Pod, infos: dict, ns_labels) -> FilterState | None:
    """The per-cycle counts (module doc); None when nothing constrains the pod."""
    terms = compile_terms(pod)
    existing_anti = Counter()
    for info in infos.values():
        labels = info.node.metadata.labels
        for other in _others(pod, info.pods_with_affinity):
            for t in compile_terms(other).required_anti_affinity:
                value = labels.get(t.topology_key)
                if value is not None and t.matches(pod, ns_labels):
                    existing_anti[(t.topology_key, value)] += 1
    affinity, anti = Counter(), Counter()
    required, forbidden = terms.required_affinity, terms.required_anti_affinity
    if required or forbidden:
        for info in infos.values():
            labels = info.node.metadata.labels
            for other in _others(pod, info.pods):
                if required and all(t.matches(other, ns_labels) for t in required):
                    for t in required:
                        value = labels.get(t.topology_key)
                        if value is not None:
                            affinity[(t.topology_key, value)] += 1
                for t in forbidden:
                    value = labels.get(t.topology_key)
                    if value is not None and t.matches(other, ns_labels):
                        anti[(t.topology_key, value)] += 1
    if not (required or forbidden or existing_anti):
        return None
    self_match = bool(required) and all(t.matches(pod, ns_labels) for t in required)
    return FilterState(terms, affinity, anti, existing_anti, self_match)


def filter_node(state: FilterState | None, info) -> list:
    """[] when the node satisfies the pod's and the existing pods' required terms."""
    if state is None:
        return []
    labels = info.node.metadata.labels
    required = state.terms.required_affinity
    if required:
        found = True
        for t in required:
            value = labels.get(t.topology_key)
            if value is None:
                return [AFFINITY_MISMATCH]    # every topology label must be on the node
            if state.affinity[(t.topology_key, value)] <= 0:
                found = False
        if not found and not (not state.affinity and state.self_match):
            return [AFFINITY_MISMATCH]
    for t in state.terms.required_anti_affinity:
        value = labels.get(t.topology_key)
        if value is not None and state.anti[(t.topology_key, value)] > 0:
            return [ANTI_AFFINITY_MISMATCH]
    if state.existing_anti:
        for pair in labels.items():
            if state.existing_anti[pair] > 0:
                return [EXISTING_ANTI_AFFINITY_MISMATCH]
    return []


# ---------------------------------------------------------------- preferred terms (score)

def _add(scores: dict, term, labels, amount: int) -> None:
    value = labels.get(term.topology_key)
    if value is not None:
        pair = (term.topology_key, value)
        scores[pair] = scores.get(pair, 0) + amount


def topology_scores(pod: pb.Pod, infos: dict, ns_labels) -> dict:
    """(topology key, value) -> summed signed weight (module doc); {} when nothing applies."""
    terms = compile_terms(pod)
    own = terms.preferred_affinity or terms.preferred_anti_affinity
    scores: dict = {}
    for info in infos.values():
        labels = info.node.metadata.labels
        pods = info.pods if own else info.pods_with_affinity
        for other in _others(pod, pods):
            for t in terms.preferred_affinity:
                if t.matches(other, ns_labels):
                    _add(scores, t, labels, t.weight)
            for t in terms.preferred_anti_affinity:
                if t.matches(other, ns_labels):
                    _add(scores, t, labels, -t.weight)
            theirs = compile_terms(other)
            if theirs.empty:
                continue
            for t in theirs.required_affinity:
                if t.matches(pod, ns_labels):
                    _add(scores, t, labels, HARD_POD_AFFINITY_WEIGHT)
            for t in theirs.preferred_affinity:
                if t.matches(pod, ns_labels):
                    _add(scores, t, labels, t.weight)
            for t in theirs.preferred_anti_affinity:
                if t.matches(pod, ns_labels):
                    _add(scores, t, labels, -t.weight)
    return scores


def score(topology: dict, feasible) -> dict:
    """Node name -> 0..100: its labels' summed topology scores, min-max normalized."""
    raw = {}
    for info in feasible:
        labels = info.node.metadata.labels
        raw[info.name] = sum(topology.get(pair, 0) for pair in labels.items()) if topology else 0
    if not raw:
        return {}
    low, high = min(raw.values()), max(raw.values())
    if high == low:
        return {name: 0 for name in raw}
    return {name: MAX_SCORE * (s - low) // (high - low) for name, s in raw.items()}
