"""The disruption controller's pure planner: a PodDisruptionBudget's status from its pods.

Kubernetes' pkg/controller/disruption/disruption.go (trySync), rule by rule:
- the pods: the budget's namespace, selected by policy.selects (unset selector = none,
  empty = all);
- expectedPods and desiredHealthy (getExpectedPodCount):
  maxUnavailable (int or %): expected = the sum of the pods' controllers' scale,
      desired = max(0, expected - maxUnavailable resolved against expected, rounded up);
  minAvailable int: expected = the number of selected pods, desired = minAvailable;
  minAvailable %: expected = the controllers' scale, desired = minAvailable resolved
      against it, rounded up;
  the scale (getExpectedScale) counts each controller once: a pod's controller
  reference must resolve to a stored object with that uid whose kind has a scale
  (spec.replicas: ReplicaSet, ReplicationController, StatefulSet, ...); a ReplicaSet
  controlled by a Deployment counts as the Deployment, so both ReplicaSets of a
  rollout count once. Pods without a controller are "unmanaged" (not counted, an
  UnmanagedPods warning); a controller that cannot be found makes the sync fail
  safe (disruptionsAllowed 0, DisruptionAllowed=False/SyncFailed);
- disruptedPods (buildDisruptedPodMap): an entry the eviction wrote stays while its pod
  exists, is not yet being deleted, and the eviction is younger than DELETION_TIMEOUT_S
  (2 minutes, Kubernetes' DeletionTimeout); an older one is dropped with a NotDeleted
  warning on the pod; the sync comes back when the youngest entry expires;
- currentHealthy (countHealthyPods): Ready pods, not being deleted, not in disruptedPods;
- disruptionsAllowed = currentHealthy - desiredHealthy, but 0 when negative or when
  expectedPods is 0 (a budget whose pods are still appearing is safe);
- DisruptionAllowed: True/SufficientPods when disruptionsAllowed > 0, else
  False/InsufficientPods; observedGeneration = metadata.generation.
"""

import datetime
from dataclasses import dataclass
from typing import Callable

from controlplane.controllers.podutil import controller_ref, copy, is_pod_ready, set_condition
from skiff.api import kinds
from skiff.api import objects_pb2 as pb
from skiff.api import selectors
from skiff.api.intstr import is_percent, scaled_value
from skiff.api.kinds import policy
from skiff.api.validation import int_or_string_set
from skiff.api.wellknown import parse_rfc3339, rfc3339

DELETION_TIMEOUT_S = 120.0


class ExpectedCountError(Exception):
    """The budget's expected pod count cannot be computed (a controller is missing)."""


@dataclass(frozen=True)
class Event:
    """An event to record: on the budget (pod "") or on the named pod."""
    type: str
    reason: str
    message: str
    pod: str = ""


@dataclass(frozen=True)
class DisruptionPlan:
    status: pb.PodDisruptionBudgetStatus
    recheck_s: float | None = None   # look again then (the youngest disruptedPods entry expires)
    events: tuple = ()


def pods_for(pdb: pb.PodDisruptionBudget, pods) -> list:
    ns = pdb.metadata.namespace
    return [p for p in pods if p.metadata.namespace == ns and policy.selects(pdb, p.metadata.labels)]


def _replicas(obj) -> int:
    spec = obj.spec
    return spec.replicas if spec.HasField("replicas") else 1


def _find(lookup, ns, ref):
    """The stored object ref points at, if its uid matches (a recreated namesake is not it)."""
    obj = lookup(ref.kind, ns, ref.name)
    return obj if obj is not None and obj.metadata.uid == ref.uid else None


def _scale_owner(lookup, ns, ref):
    """(uid, replicas) of the controller whose scale counts for a pod controlled by ref, or None.

    Kubernetes' finders: a ReplicaSet, a ReplicationController, a StatefulSet, a
    Deployment through its ReplicaSet; generically here: an object whose kind has a
    scale, or the scalable controller of that object (a Deployment above its ReplicaSet).
    """
    kind = kinds.BY_NAME.get(ref.kind)
    obj = _find(lookup, ns, ref) if kind is not None and kind.scale else None
    if obj is None:
        return None
    parent_ref = controller_ref(obj.metadata)
    parent_kind = kinds.BY_NAME.get(parent_ref.kind) if parent_ref is not None else None
    if parent_kind is not None and parent_kind.scale:
        parent = _find(lookup, ns, parent_ref)
        if parent is None:
            return None
        obj = parent
    return obj.metadata.uid, _replicas(obj)


def expected_scale(pods, lookup: Callable) -> tuple:
    """(sum of the pods' controllers' scale, names of pods without a controller).
    lookup(kind name, namespace, name) -> stored object or None. Raises ExpectedCountError."""
    scale: dict = {}
    seen_refs: set = set()
    unmanaged = []
    for pod in pods:
        ref = controller_ref(pod.metadata)
        if ref is None:
            unmanaged.append(pod.metadata.name)
            continue
        if ref.uid in seen_refs:
            continue
        owner = _scale_owner(lookup, pod.metadata.namespace, ref)
        if owner is None:
            raise ExpectedCountError(f'found no controllers for pod "{pod.metadata.name}"')
        seen_refs.add(ref.uid)
        scale[owner[0]] = owner[1]
    return sum(scale.values()), unmanaged


def expected_count(pdb: pb.PodDisruptionBudget, pods, lookup: Callable) -> tuple:
    """(expectedPods, desiredHealthy, unmanaged pod names): Kubernetes' getExpectedPodCount."""
    spec = pdb.spec
    if int_or_string_set(spec.max_unavailable):
        expected, unmanaged = expected_scale(pods, lookup)
        unavailable = scaled_value(spec.max_unavailable, expected, round_up=True)
        return expected, max(0, expected - unavailable), unmanaged
    if int_or_string_set(spec.min_available):
        if not is_percent(spec.min_available):
            return len(pods), spec.min_available.int_val, []
        expected, unmanaged = expected_scale(pods, lookup)
        return expected, scaled_value(spec.min_available, expected, round_up=True), unmanaged
    return 0, 0, []


def disrupted_pod_map(pdb, pods, now: datetime.datetime) -> tuple:
    """(entries to keep, seconds until the youngest kept one expires or None, expired pod names)."""
    kept, expired = {}, []
    recheck_s = None
    recorded = pdb.status.disrupted_pods
    for pod in pods:
        name = pod.metadata.name
        if pod.metadata.deletion_timestamp or name not in recorded:
            continue
        when = parse_rfc3339(recorded[name])
        left_s = DELETION_TIMEOUT_S - (now - when).total_seconds() if when is not None else -1.0
        if left_s < 0:
            expired.append(name)
            continue
        kept[name] = recorded[name]
        recheck_s = left_s if recheck_s is None else min(recheck_s, left_s)
    return kept, recheck_s, expired


def count_healthy(pods, disrupted: dict) -> int:
    return sum(1 for p in pods
               if not p.metadata.deletion_timestamp and p.metadata.name not in disrupted and is_pod_ready(p))


def set_allowed_condition(status: pb.PodDisruptionBudgetStatus, now: str) -> None:
    """Kubernetes' UpdateDisruptionAllowedCondition (in place)."""
    if status.disruptions_allowed > 0:
        set_condition(status.conditions, policy.DISRUPTION_ALLOWED, "True", policy.SUFFICIENT_PODS, now=now)
    else:
        set_condition(status.conditions, policy.DISRUPTION_ALLOWED, "False", policy.INSUFFICIENT_PODS, now=now)


def plan_disruption(pdb: pb.PodDisruptionBudget, pods, lookup: Callable, now: datetime.datetime) -> DisruptionPlan:
    """The budget's status now (all pods of any namespace may be passed; only its own count)."""
    now_s = rfc3339(now)
    mine = pods_for(pdb, pods)
    try:
        expected, desired, unmanaged = expected_count(pdb, mine, lookup)
    except ExpectedCountError as exc:
        return _fail_safe(pdb, str(exc), now_s)
    events = []
    if not mine:
        events.append(Event("Normal", "NoPods", "No matching pods found"))
    if unmanaged:
        events.append(Event("Warning", "UnmanagedPods", _unmanaged_message(pdb)))
    disrupted, recheck_s, expired = disrupted_pod_map(pdb, mine, now)
    for name in expired:
        events.append(Event("Warning", "NotDeleted", f"Pod was expected by PDB {pdb.metadata.namespace}/"
                            f"{pdb.metadata.name} to be deleted but it wasn't", pod=name))
    healthy = count_healthy(mine, disrupted)
    allowed = healthy - desired
    if expected <= 0 or allowed <= 0:
        allowed = 0
    status = pb.PodDisruptionBudgetStatus(
        observed_generation=pdb.metadata.generation, disruptions_allowed=allowed, current_healthy=healthy,
        desired_healthy=desired, expected_pods=expected)
    status.disrupted_pods.update(disrupted)
    status.conditions.extend(pdb.status.conditions)
    set_allowed_condition(status, now_s)
    return DisruptionPlan(status, recheck_s, tuple(events))


def _fail_safe(pdb, message: str, now_s: str) -> DisruptionPlan:
    """Kubernetes' failSafe: nothing may be evicted until the next successful sync."""
    status = copy(pdb.status)
    status.disruptions_allowed = 0
    set_condition(status.conditions, policy.DISRUPTION_ALLOWED, "False", policy.SYNC_FAILED, message, now=now_s)
    return DisruptionPlan(status, None, (Event("Warning", "CalculateExpectedPodCountFailed",
                                               f"Failed to calculate the number of expected pods: {message}"),))


def _unmanaged_message(pdb) -> str:
    return (f"Pods selected by this PodDisruptionBudget (selector: {_selector_text(pdb)}) were found to be "
            "unmanaged. As a result, the status of the PDB cannot be calculated correctly, which may result "
            'in undefined behavior. To account for these pods please set ".spec.minAvailable" field of the '
            "PDB to an integer value.")


def _selector_text(pdb) -> str:
    try:
        return str(selectors.from_label_selector(pdb.spec.selector))
    except ValueError:
        return "<invalid>"
