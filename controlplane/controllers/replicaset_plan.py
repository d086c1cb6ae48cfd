"""The ReplicaSet planner: from a ReplicaSet and the pods of its namespace, what to do.

It plans for ReplicationControllers too (the same controller in Kubernetes: an RC is a
ReplicaSet with an equality-only selector map; selector_of() reads either, the owner
reference names the object's own kind).

plan_replicaset() is pure. Its rules (Kubernetes' ReplicaSet controller):
- a pod is the RS's when its controller ownerReference has the RS's uid; an
  orphan (no controller reference) whose labels match the selector and that is
  not being deleted is adopted; an owned pod whose labels stopped matching is
  released (its controller reference removed), and no longer counts;
- active pods (no deletionTimestamp, phase not Succeeded/Failed, not already
  being deleted by us) plus pods we created that the cache has not shown yet
  are compared with spec.replicas: too few -> create the difference (at most
  `burst` per sync), too many -> delete the surplus, worst first: unscheduled,
  then Pending/Unknown before Running, not ready before ready, more restarts,
  newest; pod name breaks ties;
- a ReplicaSet being deleted (deletionTimestamp: a Foreground or Orphan delete keeps it
  until the garbage collector is done) neither adopts, creates nor deletes pods (the
  garbage collector decides what becomes of them); it still releases and reports status;
- status counts what the cache shows now: replicas (active), fullyLabeledReplicas
  (active with every template label), readyReplicas (Ready=True),
  availableReplicas (Ready for minReadySeconds), observedGeneration.
"""

import datetime
from dataclasses import dataclass, field

from controlplane.controllers.podutil import (claim_pods, copy, is_active, is_pod_available, is_pod_ready,
                                              next_available_s, owner_reference, parse_rfc3339)
from skiff.api import kinds, selectors
from skiff.api import objects_pb2 as pb

BURST = 100  # Kubernetes' burstReplicas is 500; the lab's Raft log prefers smaller bites
_PHASE_RANK = {"": 0, "Pending": 0, "Unknown": 1, "Running": 2}


@dataclass(frozen=True)
class ReplicaSetPlan:
    adopt: tuple = ()          # pod names: add our controller reference
    release: tuple = ()        # pod names: remove our controller reference
    create: int = 0            # pods to create from the template
    delete: tuple = ()         # pod names, in the order to delete them
    status: pb.ReplicaSetStatus = field(default_factory=pb.ReplicaSetStatus)
    recheck_s: float | None = None  # look again then (a pod becomes available after minReadySeconds)


def selector_of(rs) -> selectors.Selector:
    """A ReplicaSet's LabelSelector, or a ReplicationController's equality-only map."""
    sel = rs.spec.selector
    if isinstance(sel, pb.LabelSelector):
        return selectors.from_label_selector(sel)
    return selectors.from_map(sel)


def _owner_ref(rs) -> pb.OwnerReference:
    kind = kinds.of_message(rs)
    return owner_reference(rs, kind.name, kind.api_version)


def _restarts(pod: pb.Pod) -> int:
    return sum(c.restart_count for c in pod.status.container_statuses)


def _created_s(pod: pb.Pod) -> float:
    t = parse_rfc3339(pod.metadata.creation_timestamp)
    return t.timestamp() if t is not None else 0.0


def deletion_order(pods) -> list:
    """Pods sorted so the ones to delete first come first (Kubernetes' ActivePods order)."""
    return sorted(pods, key=lambda p: (
        1 if p.spec.node_name else 0,
        _PHASE_RANK.get(p.status.phase, 0),
        1 if is_pod_ready(p) else 0,
        -_restarts(p),
        -_created_s(p),
        p.metadata.name))


def plan_replicaset(rs, pods, *, pending_creates: int = 0,
                    pending_deletes=frozenset(), now: datetime.datetime | None = None,
                    burst: int = BURST) -> ReplicaSetPlan:
    """pods: the pods of rs's namespace (from the cache); pending_creates: pods created
    but not in the cache yet; pending_deletes: uids we asked to delete."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    selector = selector_of(rs)
    owned, adopt, release = claim_pods(rs, selector, pods)
    active = [p for p in owned if is_active(p) and p.metadata.uid not in pending_deletes]
    want = rs.spec.replicas if rs.spec.HasField("replicas") else 1
    diff = 0 if rs.metadata.deletion_timestamp else len(active) + pending_creates - want
    create = min(-diff, burst) if diff < 0 else 0
    delete = ()
    if diff > 0:
        delete = tuple(p.metadata.name for p in deletion_order(active)[:min(diff, burst)])

    template_labels = dict(rs.spec.template.metadata.labels)
    min_ready = rs.spec.min_ready_seconds
    status = copy(rs.status)
    status.replicas = len(active)
    status.fully_labeled_replicas = sum(
        1 for p in active if all(p.metadata.labels.get(k) == v for k, v in template_labels.items()))
    status.ready_replicas = sum(1 for p in active if is_pod_ready(p))
    status.available_replicas = sum(1 for p in active if is_pod_available(p, min_ready, now))
    status.observed_generation = rs.metadata.generation
    recheck = next_available_s(active, min_ready, now) if min_ready > 0 else None
    return ReplicaSetPlan(adopt=tuple(p.metadata.name for p in adopt),
                          release=tuple(p.metadata.name for p in release),
                          create=create, delete=delete, status=status, recheck_s=recheck)


def pod_from_template(rs) -> pb.Pod:
    """A new pod of rs: <rs-name>-<5 random chars> (generateName), the template's labels,
    annotations and spec, and a controller reference to rs."""
    tmpl = rs.spec.template
    pod = pb.Pod(metadata=pb.ObjectMeta(generate_name=f"{rs.metadata.name}-",
                                        namespace=rs.metadata.namespace,
                                        labels=dict(tmpl.metadata.labels),
                                        annotations=dict(tmpl.metadata.annotations)))
    pod.metadata.owner_references.append(_owner_ref(rs))
    pod.spec.CopyFrom(tmpl.spec)
    return pod


def with_owner(pod: pb.Pod, rs) -> pb.Pod:
    """A copy of pod adopted by rs."""
    out = copy(pod)
    out.metadata.owner_references.append(_owner_ref(rs))
    return out


def without_owner(obj, uid: str):
    """A copy of obj with the owner reference to uid removed (released)."""
    out = copy(obj)
    keep = [r for r in out.metadata.owner_references if r.uid != uid]
    del out.metadata.owner_references[:]
    out.metadata.owner_references.extend(keep)
    return out
