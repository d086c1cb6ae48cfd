"""Validation of a pod spec's inter-pod scheduling rules: podAffinity,
podAntiAffinity and topologySpreadConstraints, with Kubernetes' paths and messages.

Called from podspec_validation.validate_pod_spec; kept apart because these rules
are one concept (what the scheduler's InterPodAffinity and PodTopologySpread
read), and the pod spec's module is long enough.
"""

from skiff.api import objects_pb2 as pb
from skiff.api.errors import join
from skiff.api.selectors import validate_dns1123_label, validate_label_key
from skiff.api.validation import (
    check, duplicate, enum, forbidden, in_range, invalid, required, validate_label_selector,
)

WHEN_UNSATISFIABLE = ("DoNotSchedule", "ScheduleAnyway")
INCLUSION_POLICIES = ("Honor", "Ignore")


# ---------------------------------------------------------------- pod (anti-)affinity

def validate_pod_affinity(pa: pb.PodAffinity, path, errs) -> None:
    """podAffinity or podAntiAffinity at path."""
    for i, term in enumerate(pa.required_during_scheduling_ignored_during_execution):
        _validate_term(term, f"{path}.requiredDuringSchedulingIgnoredDuringExecution[{i}]", errs)
    for i, w in enumerate(pa.preferred_during_scheduling_ignored_during_execution):
        wpath = f"{path}.preferredDuringSchedulingIgnoredDuringExecution[{i}]"
        in_range(errs, join(wpath, "weight"), w.weight, 1, 100)
        _validate_term(w.pod_affinity_term, join(wpath, "podAffinityTerm"), errs)


def _validate_term(term: pb.PodAffinityTerm, path, errs) -> None:
    if term.HasField("label_selector"):
        validate_label_selector(term.label_selector, join(path, "labelSelector"), errs)
    if term.HasField("namespace_selector"):
        validate_label_selector(term.namespace_selector, join(path, "namespaceSelector"), errs)
    for i, ns in enumerate(term.namespaces):
        check(errs, f"{path}.namespaces[{i}]", ns, validate_dns1123_label(ns))
    selector = term.label_selector if term.HasField("label_selector") else None
    _validate_label_keys(term.match_label_keys, join(path, "matchLabelKeys"), selector, errs, overlap=True)
    _validate_label_keys(term.mismatch_label_keys, join(path, "mismatchLabelKeys"), selector, errs)
    mismatch = set(term.mismatch_label_keys)
    for i, key in enumerate(term.match_label_keys):
        if key in mismatch:
            invalid(errs, f"{path}.matchLabelKeys[{i}]", key, "exists in both matchLabelKeys and mismatchLabelKeys")
    if not term.topology_key:
        required(errs, join(path, "topologyKey"), "can not be empty")
    else:
        check(errs, join(path, "topologyKey"), term.topology_key, validate_label_key(term.topology_key))


def _selector_keys(selector: pb.LabelSelector) -> set:
    return set(selector.match_labels) | {e.key for e in selector.match_expressions}


def _validate_label_keys(keys, path, selector, errs, overlap: bool = False) -> None:
    """matchLabelKeys/mismatchLabelKeys: valid label keys, only with a labelSelector, and
    (overlap: matchLabelKeys) not a key the selector already constrains."""
    if not keys:
        return
    if selector is None:
        forbidden(errs, path, "must not be specified when labelSelector is not set")
        return
    in_selector = _selector_keys(selector) if overlap else set()
    for i, key in enumerate(keys):
        check(errs, f"{path}[{i}]", key, validate_label_key(key))
        if key in in_selector:
            invalid(errs, f"{path}[{i}]", key, "exists in both matchLabelKeys and labelSelector")


# ---------------------------------------------------------------- topology spread

def validate_topology_spread(constraints, path, errs) -> None:
    """spec.topologySpreadConstraints at path."""
    seen = set()
    for i, c in enumerate(constraints):
        cpath = f"{path}[{i}]"
        if c.max_skew <= 0:
            invalid(errs, join(cpath, "maxSkew"), c.max_skew, "must be greater than zero")
        if not c.topology_key:
            required(errs, join(cpath, "topologyKey"), "can not be empty")
        else:
            check(errs, join(cpath, "topologyKey"), c.topology_key, validate_label_key(c.topology_key))
        enum(errs, join(cpath, "whenUnsatisfiable"), c.when_unsatisfiable, WHEN_UNSATISFIABLE)
        if c.HasField("min_domains"):
            if c.min_domains <= 0:
                invalid(errs, join(cpath, "minDomains"), c.min_domains, "must be greater than 0")
            elif c.when_unsatisfiable != "DoNotSchedule":
                invalid(errs, join(cpath, "minDomains"), c.min_domains,
                        f"can only use minDomains if whenUnsatisfiable=DoNotSchedule, "
                        f"not {c.when_unsatisfiable}")
        pair = (c.topology_key, c.when_unsatisfiable)
        if c.topology_key and pair in seen:
            duplicate(errs, join(cpath, "{topologyKey, whenUnsatisfiable}"),
                      f"{{{c.topology_key}, {c.when_unsatisfiable}}}")
        seen.add(pair)
        enum(errs, join(cpath, "nodeAffinityPolicy"), c.node_affinity_policy, INCLUSION_POLICIES, allow_empty=True)
        enum(errs, join(cpath, "nodeTaintsPolicy"), c.node_taints_policy, INCLUSION_POLICIES, allow_empty=True)
        if c.HasField("label_selector"):
            validate_label_selector(c.label_selector, join(cpath, "labelSelector"), errs)
        _validate_spread_label_keys(c, join(cpath, "matchLabelKeys"), errs)


def _validate_spread_label_keys(c: pb.TopologySpreadConstraint, path, errs) -> None:
    if not c.match_label_keys:
        return
    if not c.HasField("label_selector"):
        forbidden(errs, path, "must not be specified when labelSelector is not set")
        return
    in_selector = _selector_keys(c.label_selector)
    seen = set()
    for i, key in enumerate(c.match_label_keys):
        check(errs, f"{path}[{i}]", key, validate_label_key(key))
        if key in in_selector:
            invalid(errs, f"{path}[{i}]", key, "exists in both matchLabelKeys and labelSelector")
        if key in seen:
            duplicate(errs, f"{path}[{i}]", key)
        seen.add(key)
