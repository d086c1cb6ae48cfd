"""The DaemonSet planner: from a DaemonSet, the nodes and the pods of its namespace, what to do.

plan_daemonset() is pure. Its rules are Kubernetes' daemon controller
(pkg/controller/daemon: daemon_controller.go manage/podsShouldBeOnNode,
update.go rollingUpdate, util/daemonset_util.go):

Which nodes (node_verdict, through the scheduler's own filters on the pod the
DaemonSet would create there, i.e. the template plus the automatic tolerations):
- should run: NodeAffinity (nodeSelector and required node affinity) passes,
  TaintToleration passes (NoSchedule and NoExecute taints tolerated),
  NodeUnschedulable passes (the automatic unschedulable toleration makes a
  cordoned node eligible, as in Kubernetes);
- should continue running (a pod already there stays): affinity passes and every
  NoExecute taint is tolerated;
- node readiness is not a condition: Kubernetes' daemon pods tolerate
  node.kubernetes.io/not-ready and unreachable (NoExecute, forever), so a DaemonSet
  keeps its pod on a NotReady node and the node lifecycle controller never evicts it;
- resources (NodeResourcesFit, counting the node's other pods) decide only whether
  a NEW pod is placed now: a node that should run one but lacks room gets none and
  a FailedPlacement event (Kubernetes before 1.12 did exactly this; since then the
  pod is created Pending and the scheduler decides — skiff places pods itself, see
  daemon_pod()).

Per node (manage):
- should run and no pod (not even a terminating one): create one;
- should continue: Failed pods are deleted (FailedDaemonPod, unless the node is in
  back-off after the last one), Succeeded pods deleted; without surge, more than one
  running pod -> keep the oldest; with surge, keep the oldest new-revision pod and
  the oldest old one only while the new one is not ready and the old one is;
- should not continue: every pod there is deleted.
Pods whose node no longer exists are left to the pod garbage collector (as in Kubernetes).

Rolling update (update.go, only when the strategy is RollingUpdate and nothing else
is to be created or deleted for the node): maxUnavailable and maxSurge are resolved
against the number of nodes that should run the pod, both rounding UP
(util.UnavailableCount / SurgeCount); both zero counts as maxUnavailable 1.
- maxSurge 0: nodes with an unavailable new pod, no pod, or two pods count as
  unavailable; an old pod that is itself unavailable is replaced at once; available
  old pods are deleted while fewer than maxUnavailable nodes are unavailable; the
  manage pass of a later sync creates the new pod once the old one is gone;
- maxSurge > 0: a node whose old pod is unavailable gets a new pod at once; at most
  maxSurge nodes at a time get a new pod beside an available old one; the old pod
  goes as soon as the new one is available.
Candidates are taken in node-name order (deterministic; Kubernetes walks a map).

Revisions: the template's hash (hashing.template_hash, with status.collisionCount)
is the pods' controller-revision-hash label. Kubernetes stores the template in
ControllerRevision objects; skiff keeps the hash label only (no rollback history).

Status (updateDaemonSetStatus): per node that should run, the oldest pod counts
for current / ready / available / updated; nodes with pods that should not run
are misscheduled; numberUnavailable = desired - available.
"""

import datetime
from dataclasses import dataclass, field

from controlplane.controllers.hashing import template_hash
from controlplane.controllers.podutil import (claim_pods, copy, is_pod_available, is_pod_ready, next_available_s,
                                              owner_reference)
from controlplane.scheduler import filters
from controlplane.scheduler.nodeinfo import NodeInfo
from skiff.api import objects_pb2 as pb
from skiff.api import selectors
from skiff.api.intstr import scaled_value
from skiff.api.wellknown import TAINT_NOT_READY, TAINT_UNREACHABLE, TAINT_UNSCHEDULABLE

CONTROLLER_REVISION_HASH = "controller-revision-hash"
# Kubernetes' AddOrUpdateDaemonPodTolerations: (key, effect), operator Exists, no tolerationSeconds.
DAEMON_TOLERATIONS = (
    (TAINT_NOT_READY, "NoExecute"),
    (TAINT_UNREACHABLE, "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    (TAINT_UNSCHEDULABLE, "NoSchedule"),
)
HOST_NETWORK_TOLERATION = ("node.kubernetes.io/network-unavailable", "NoSchedule")
FAILED_PLACEMENT = "FailedPlacement"


# ---------------------------------------------------------------- pods of a DaemonSet

def revision_hash(ds: pb.DaemonSet) -> str:
    collision = ds.status.collision_count if ds.status.HasField("collision_count") else None
    return template_hash(ds.spec.template, collision)


def _add_tolerations(spec: pb.PodSpec) -> None:
    wanted = list(DAEMON_TOLERATIONS) + ([HOST_NETWORK_TOLERATION] if spec.host_network else [])
    for key, effect in wanted:
        if not any(t.key == key and t.effect == effect and t.operator == "Exists" and
                   not t.HasField("toleration_seconds") for t in spec.tolerations):
            spec.tolerations.add(key=key, operator="Exists", effect=effect)


def template_pod(ds: pb.DaemonSet) -> pb.Pod:
    """The pod eligibility is judged on: the template with the automatic tolerations (no node yet)."""
    tmpl = ds.spec.template
    pod = pb.Pod(metadata=pb.ObjectMeta(namespace=ds.metadata.namespace, labels=dict(tmpl.metadata.labels),
                                        annotations=dict(tmpl.metadata.annotations)))
    pod.spec.CopyFrom(tmpl.spec)
    _add_tolerations(pod.spec)
    return pod


def daemon_pod(ds: pb.DaemonSet, node_name: str, revision: str) -> pb.Pod:
    """A new pod of ds for node_name: <ds>-<random> (generateName), the template's labels plus
    controller-revision-hash, a controller reference, the automatic tolerations, and Kubernetes'
    ReplaceDaemonSetPodNodeNameNodeAffinity (required node affinity replaced by one term
    matchFields metadata.name In [node]: the template's own affinity was checked already).

    Placement: the pod is created bound (spec.nodeName = node_name). Kubernetes (since 1.12)
    creates it unbound and lets the scheduler bind it through that matchFields term; skiff's
    scheduler honours matchFields too, but binding it here saves a write and a scheduling
    round per pod, and the eligibility was decided with the scheduler's own filters anyway.
    The matchFields term stays, so the pod reads as it would in Kubernetes."""
    pod = template_pod(ds)
    pod.metadata.generate_name = f"{ds.metadata.name}-"
    pod.metadata.labels[CONTROLLER_REVISION_HASH] = revision
    pod.metadata.owner_references.append(owner_reference(ds, "DaemonSet", "apps/v1"))
    required = pod.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
    del required.node_selector_terms[:]
    required.node_selector_terms.add().match_fields.add(key="metadata.name", operator="In", values=[node_name])
    pod.spec.node_name = node_name
    return pod


def with_owner(pod: pb.Pod, ds: pb.DaemonSet) -> pb.Pod:
    """A copy of pod adopted by ds."""
    out = copy(pod)
    out.metadata.owner_references.append(owner_reference(ds, "DaemonSet", "apps/v1"))
    return out


def is_updated(pod: pb.Pod, revision: str) -> bool:
    return pod.metadata.labels.get(CONTROLLER_REVISION_HASH) == revision


# ---------------------------------------------------------------- which nodes

@dataclass(frozen=True)
class NodeVerdict:
    should_run: bool
    should_continue: bool
    reasons: tuple = ()     # why not, in the scheduler's words (for logs)


def node_verdict(pod: pb.Pod, node: pb.Node) -> NodeVerdict:
    """Kubernetes' NodeShouldRunDaemonPod for the eligibility pod (template_pod)."""
    info = NodeInfo(node)
    mismatch = filters.node_affinity(pod, info)
    if pod.spec.node_name and pod.spec.node_name != node.metadata.name:
        mismatch = mismatch or [filters.AFFINITY_MISMATCH]
    if mismatch:
        return NodeVerdict(False, False, tuple(mismatch))
    blocked = filters.taint_toleration(pod, info) or filters.node_unschedulable(pod, info)
    if blocked:
        keeps = filters.first_untolerated(pod, node.spec.taints, ("NoExecute",)) is None
        return NodeVerdict(False, keeps, tuple(blocked))
    return NodeVerdict(True, True)


def placement_reasons(pod: pb.Pod, node: pb.Node, others) -> list:
    """NodeResourcesFit for a new daemon pod, against the node's pods that are not the DaemonSet's."""
    info = NodeInfo(node)
    for p in others:
        info.add_pod(p)
    return filters.resources_fit(pod, info)


# ---------------------------------------------------------------- the plan

@dataclass(frozen=True)
class DaemonSetPlan:
    revision: str = ""
    adopt: tuple = ()             # pod names: add our controller reference
    release: tuple = ()           # pod names: remove our controller reference
    create: tuple = ()            # node names that get a new pod
    delete: tuple = ()            # pod names to delete
    failed: tuple = ()            # (pod name, node name): Failed pods among delete (FailedDaemonPod)
    failed_waiting: tuple = ()    # node names whose Failed pod waits out its back-off
    unplaceable: tuple = ()       # (node name, reasons): should run, no room (FailedPlacement)
    status: pb.DaemonSetStatus = field(default_factory=pb.DaemonSetStatus)
    recheck_s: float | None = None


def _age_key(p: pb.Pod):
    """podByCreationTimestampAndPhase: bound first, then oldest, then name."""
    return (0 if p.spec.node_name else 1, p.metadata.creation_timestamp, p.metadata.name)


def max_counts(ds: pb.DaemonSet, desired: int) -> tuple:
    """(maxSurge, maxUnavailable) against the nodes that should run a pod, both rounded up;
    an impossible 0/0 acts as maxUnavailable 1 (updatedDesiredNodeCounts)."""
    ru = ds.spec.update_strategy.rolling_update
    surge = scaled_value(ru.max_surge, desired, round_up=True, default="0")
    unavailable = scaled_value(ru.max_unavailable, desired, round_up=True, default="1")
    if desired > 0 and surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def _manage_node(pods_here, verdict: NodeVerdict, revision: str, surge: bool, backoff: bool):
    """podsShouldBeOnNode: (create here?, pods to delete, Failed pods deleted, failed one waiting)."""
    live = [p for p in pods_here if not p.metadata.deletion_timestamp]
    if verdict.should_run and not pods_here:
        return True, [], [], False
    if not verdict.should_continue:
        return False, live, [], False
    delete, failed, running, waiting = [], [], [], False
    for p in live:
        if p.status.phase == "Failed":
            if backoff:
                waiting = True
                continue
            failed.append(p)
            delete.append(p)
        elif p.status.phase == "Succeeded":
            delete.append(p)
        else:
            running.append(p)
    running.sort(key=_age_key)
    create = False
    if not surge:
        delete += running[1:]
    elif len(running) <= 1:
        create = not running and verdict.should_run and not waiting
    else:
        oldest_new = next((p for p in running if is_updated(p, revision)), None)
        oldest_old = next((p for p in running if not is_updated(p, revision)), None)
        delete += [p for p in running if p is not oldest_new and p is not oldest_old]
        if oldest_new is not None and oldest_old is not None:
            if not is_pod_ready(oldest_old) or is_pod_ready(oldest_new):
                delete.append(oldest_old)
    return create, delete, failed, waiting


def _updated_pods_on_node(pods_here, revision: str):
    """findUpdatedPodsOnNode: (new, old, ok); ok is False with two pods of one kind."""
    new = old = None
    for p in pods_here:
        if p.metadata.deletion_timestamp:
            continue
        if is_updated(p, revision):
            if new is not None:
                return None, None, False
            new = p
        else:
            if old is not None:
                return None, None, False
            old = p
    return new, old, True


def _rolling_update(ds, by_node: dict, verdicts: dict, revision: str, desired: int, now):
    """update.go rollingUpdate: (pod names to delete, node names to create on)."""
    surge_max, unavailable_max = max_counts(ds, desired)
    min_ready = ds.spec.min_ready_seconds

    def available(p):
        return is_pod_available(p, min_ready, now)
    # nodes that should run a pod take part even without one (updatedDesiredNodeCounts)
    nodes = sorted(set(by_node) | {n for n, v in verdicts.items() if v.should_run})
    if surge_max == 0:
        unavailable, replace, candidates = 0, [], []
        for node in nodes:
            new, old, ok = _updated_pods_on_node(by_node.get(node, []), revision)
            if not ok or (new is None) == (old is None):
                unavailable += 1
            elif new is not None:
                unavailable += 0 if available(new) else 1
            elif not available(old):
                replace.append(old.metadata.name)
            elif unavailable < unavailable_max:
                candidates.append(old.metadata.name)
        room = max(0, min(unavailable_max - unavailable, len(candidates)))
        return replace + candidates[:room], []
    delete, should_not_run, allowed_new, candidate_new = [], [], [], []
    surging = available_n = 0
    for node in nodes:
        new, old, ok = _updated_pods_on_node(by_node.get(node, []), revision)
        if not ok:
            surging += 1
            continue
        if old is not None:
            available_n += 1 if available(old) else 0
        elif new is not None:
            available_n += 1 if available(new) else 0
        verdict = verdicts.get(node)
        should_run = verdict is not None and verdict.should_run
        if old is None:
            continue
        if new is None:
            if not available(old):
                if should_run:
                    allowed_new.append(node)        # replace an unavailable old pod at once
                else:
                    delete.append(old.metadata.name)
            elif not should_run:
                should_not_run.append(old.metadata.name)
            elif surging < surge_max:
                candidate_new.append(node)
        elif not available(new):
            surging += 1
        else:
            delete.append(old.metadata.name)
    deletable = min(max(0, available_n - desired), len(should_not_run))
    delete += should_not_run[:deletable]
    room = max(0, min(surge_max - surging, len(candidate_new)))
    return delete, allowed_new + candidate_new[:room]


def plan_daemonset(ds: pb.DaemonSet, nodes, pods, *, node_pods=None, pending: bool = False,
                   failed_backoff=frozenset(), now: datetime.datetime | None = None) -> DaemonSetPlan:
    """nodes: every Node; pods: the pods of ds's namespace (from the caches); node_pods: every
    pod of every namespace (what a new pod's resources are weighed against; default: pods).
    pending: creates or deletes asked for but not yet seen in the cache (Kubernetes'
    unsatisfied expectations): then only the status is computed. failed_backoff: node
    names where a Failed pod of ds was deleted too recently to delete the next one."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    revision = revision_hash(ds)
    selector = selectors.from_label_selector(ds.spec.selector)
    owned, adopt, release = claim_pods(ds, selector, pods)
    by_node: dict = {}
    for p in owned:
        # a finished pod that is being deleted is gone for our purposes (getNodesToDaemonPods)
        if p.metadata.deletion_timestamp and p.status.phase in ("Succeeded", "Failed"):
            continue
        by_node.setdefault(p.spec.node_name, []).append(p)
    eligibility_pod = template_pod(ds)
    verdicts = {n.metadata.name: node_verdict(eligibility_pod, n) for n in nodes}
    status = _status(ds, by_node, verdicts, revision, now)
    recheck = next_available_s(owned, ds.spec.min_ready_seconds, now) if ds.spec.min_ready_seconds > 0 else None
    base = DaemonSetPlan(revision=revision, adopt=tuple(p.metadata.name for p in adopt),
                         release=tuple(p.metadata.name for p in release), status=status, recheck_s=recheck)
    if pending or ds.metadata.deletion_timestamp:
        # Being deleted (Foreground/Orphan): no pod is created or deleted, the garbage
        # collector decides; status still reported (Kubernetes' syncDaemonSet).
        return base
    surge = (ds.spec.update_strategy.type == "RollingUpdate"
             and max_counts(ds, status.desired_number_scheduled)[0] > 0)
    create, delete, failed, waiting = [], [], [], []
    for name, verdict in sorted(verdicts.items()):
        c, d, f, w = _manage_node(by_node.get(name, []), verdict, revision, surge, name in failed_backoff)
        if c:
            create.append(name)
        delete += [p.metadata.name for p in d]
        failed += [(p.metadata.name, name) for p in f]
        if w:
            waiting.append(name)
    if ds.spec.update_strategy.type == "RollingUpdate" and not create and not delete:
        roll_delete, roll_create = _rolling_update(ds, by_node, verdicts, revision,
                                                   status.desired_number_scheduled, now)
        delete += roll_delete
        create += roll_create
    node_of = {n.metadata.name: n for n in nodes}
    mine = {p.metadata.uid for p in owned}
    placed, unplaceable = [], []
    for name in create:
        others = [p for p in (pods if node_pods is None else node_pods)
                  if p.spec.node_name == name and p.metadata.uid not in mine]
        reasons = placement_reasons(eligibility_pod, node_of[name], others)
        if reasons:
            unplaceable.append((name, tuple(reasons)))
        else:
            placed.append(name)
    return DaemonSetPlan(revision=revision, adopt=base.adopt, release=base.release, create=tuple(placed),
                         delete=tuple(dict.fromkeys(delete)), failed=tuple(failed), failed_waiting=tuple(waiting),
                         unplaceable=tuple(unplaceable), status=status, recheck_s=recheck)


def _status(ds, by_node: dict, verdicts: dict, revision: str, now) -> pb.DaemonSetStatus:
    status = copy(ds.status)
    desired = current = ready = available = updated = misscheduled = 0
    for name, verdict in verdicts.items():
        here = sorted(by_node.get(name, []), key=_age_key)
        if not verdict.should_run:
            misscheduled += 1 if here else 0
            continue
        desired += 1
        if not here:
            continue
        current += 1
        oldest = here[0]
        if is_pod_ready(oldest):
            ready += 1
            available += 1 if is_pod_available(oldest, ds.spec.min_ready_seconds, now) else 0
        updated += 1 if is_updated(oldest, revision) else 0
    status.desired_number_scheduled = desired
    status.current_number_scheduled = current
    status.number_ready = ready
    status.number_available = available
    status.updated_number_scheduled = updated
    status.number_misscheduled = misscheduled
    status.number_unavailable = desired - available
    status.observed_generation = ds.metadata.generation
    return status
