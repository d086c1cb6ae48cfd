"""Pod affinity terms, compiled once: which pods a term is about, and in which topology.

A PodAffinityTerm as written names pods by label selector and namespaces; the
scheduler needs a predicate "does this pod match the term" and the term's
topology key. compile_terms() turns a pod's four term lists (required/preferred
x affinity/anti-affinity) into Terms, with Kubernetes' rules:

- labelSelector absent matches no pod; an empty one matches every pod;
- matchLabelKeys / mismatchLabelKeys add `key In (owner's value)` / `key NotIn
  (owner's value)` for each key the owning pod has as a label (keys it lacks
  add nothing), as the API server merges them into the selector in Kubernetes;
- namespaces: the listed ones, plus those whose labels namespaceSelector
  matches (an empty selector matches every namespace); with neither, the
  owning pod's own namespace.

Compiled terms are cached per (pod uid, resourceVersion): a pod's spec and
labels cannot change without a new resourceVersion, so an entry never goes
stale, and the scheduler re-reads the same few hundred pods every cycle.
"""

from dataclasses import dataclass

from skiff.api import objects_pb2 as pb
from skiff.api import selectors

NOTHING = None          # a selector that matches no pod (labelSelector absent)
_CACHE_MAX = 20000      # entries; cleared wholesale when full (bounded memory, rare rebuild)


@dataclass(frozen=True)
class Term:
    """One compiled PodAffinityTerm. selector None matches nothing; namespaces is
    the explicit set; ns_selector (None: none given) adds namespaces by label."""
    topology_key: str
    selector: object
    namespaces: frozenset
    ns_selector: object = None
    weight: int = 0

    def matches(self, pod: pb.Pod, ns_labels) -> bool:
        """pod is in one of the term's namespaces and its labels match the selector.
        ns_labels: namespace name -> labels (for namespaceSelector)."""
        if self.selector is NOTHING:
            return False
        ns = pod.metadata.namespace
        if ns not in self.namespaces and not (
                self.ns_selector is not None and self.ns_selector.matches(ns_labels.get(ns, {}))):
            return False
        return self.selector.matches(pod.metadata.labels)


@dataclass(frozen=True)
class PodTerms:
    """A pod's compiled terms; preferred ones carry their weight."""
    required_affinity: tuple = ()
    required_anti_affinity: tuple = ()
    preferred_affinity: tuple = ()
    preferred_anti_affinity: tuple = ()

    @property
    def empty(self) -> bool:
        return not (self.required_affinity or self.required_anti_affinity
                    or self.preferred_affinity or self.preferred_anti_affinity)


EMPTY = PodTerms()


def _selector(term: pb.PodAffinityTerm, owner_labels):
    if not term.HasField("label_selector"):
        return NOTHING
    try:
        base = selectors.from_label_selector(term.label_selector)
        extra = [selectors.requirement(k, selectors.IN, (owner_labels[k],))
                 for k in term.match_label_keys if k in owner_labels]
        extra += [selectors.requirement(k, selectors.NOT_IN, (owner_labels[k],))
                  for k in term.mismatch_label_keys if k in owner_labels]
    except ValueError:
        return NOTHING   # admission validated it; a bad selector never matches rather than crash
    return selectors.Selector.of(base.requirements + tuple(extra)) if extra else base


def compile_term(term: pb.PodAffinityTerm, owner: pb.Pod, weight: int = 0) -> Term:
    ns_selector = None
    if term.HasField("namespace_selector"):
        try:
            ns_selector = selectors.from_label_selector(term.namespace_selector)
        except ValueError:
            ns_selector = None
    namespaces = frozenset(term.namespaces)
    if not namespaces and ns_selector is None:
        namespaces = frozenset((owner.metadata.namespace,))
    return Term(term.topology_key, _selector(term, owner.metadata.labels), namespaces, ns_selector, weight)


def has_pod_affinity(pod: pb.Pod) -> bool:
    a = pod.spec.affinity
    return a.HasField("pod_affinity") or a.HasField("pod_anti_affinity")


def has_required_anti_affinity(pod: pb.Pod) -> bool:
    return bool(pod.spec.affinity.pod_anti_affinity.required_during_scheduling_ignored_during_execution)


_cache: dict = {}


def compile_terms(pod: pb.Pod) -> PodTerms:
    """The pod's compiled affinity and anti-affinity terms (cached, see the module doc)."""
    if not has_pod_affinity(pod):
        return EMPTY
    key = (pod.metadata.uid, pod.metadata.resource_version)
    cacheable = bool(key[0] and key[1])
    if cacheable:
        hit = _cache.get(key)
        if hit is not None:
            return hit
    aff, anti = pod.spec.affinity.pod_affinity, pod.spec.affinity.pod_anti_affinity
    out = PodTerms(
        tuple(compile_term(t, pod) for t in aff.required_during_scheduling_ignored_during_execution),
        tuple(compile_term(t, pod) for t in anti.required_during_scheduling_ignored_during_execution),
        tuple(compile_term(w.pod_affinity_term, pod, w.weight)
              for w in aff.preferred_during_scheduling_ignored_during_execution),
        tuple(compile_term(w.pod_affinity_term, pod, w.weight)
              for w in anti.preferred_during_scheduling_ignored_during_execution))
    if cacheable:
        if len(_cache) >= _CACHE_MAX:
            _cache.clear()
        _cache[key] = out
    return out
