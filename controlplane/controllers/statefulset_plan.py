"""The StatefulSet planner: from a StatefulSet and the pods of its namespace, what to do next.

plan_statefulset() is pure. Its rules are those of Kubernetes' stateful set controller
(pkg/controller/statefulset: stateful_set_control.go updateStatefulSet, processReplica,
processCondemned; stateful_set_utils.go for identity and revisions):

Membership. A pod is the set's when its controller reference has the set's uid, its
name is NAME-<ordinal> (decimal, no leading zeros) and the selector matches it. An
orphan with such a name whose labels match and that is not being deleted is adopted;
an owned pod whose labels stopped matching is released.

Identity. Pod NAME-i has the template's labels plus statefulset.kubernetes.io/pod-name
= NAME-i, apps.kubernetes.io/pod-index = i and controller-revision-hash = its revision,
spec.hostname = NAME-i and spec.subdomain = spec.serviceName (the headless Service
that gives it the DNS name NAME-i.SERVICE.NS.svc.cluster.local), and a controller
reference to the set. An owned pod missing its identity labels gets them back.

Revisions. updateRevision is NAME-<hash of spec.template> (the template hash the
Deployment uses); currentRevision is status.currentRevision, or the updateRevision when
there is none. A new pod at an ordinal below a RollingUpdate's partition is made at the
currentRevision, every other one at the updateRevision (newVersionedStatefulSetPod).
Kubernetes keeps each revision's template in a ControllerRevision object; skiff has no
such kind yet. The planner is given `history` (revision name -> template: what the
controller has seen of this set's templates, see statefulset.py) and otherwise reads the
current revision's template back from a live pod labelled with it (its labels without the
identity ones, its annotations, its spec without nodeName/hostname/subdomain). When
neither has it, the updateRevision's template is used and becomes the current one. Once a RollingUpdate has every pod updated and Ready, currentRevision becomes the
updateRevision (completeRollingUpdate; as in Kubernetes, never under OnDelete).

Ordinals 0..replicas-1 are processed in order; with podManagementPolicy OrderedReady
("monotonic") the first one that cannot make progress stops the round:
- a pod that Failed or Succeeded is deleted (Warning RecreatingFailedPod) and made again
  at a later round, once the old one is gone (the name is taken until then);
- a missing pod is created; OrderedReady creates one per round;
- OrderedReady waits on a terminating pod, on a pod not Running and Ready, and on one
  not Ready for minReadySeconds yet.
Then the condemned pods (ordinal >= replicas) go, highest ordinal first: OrderedReady
deletes one per round, only after every lower pod is healthy (the first unhealthy pod
may go regardless), and waits for it to be gone; Parallel deletes them all at once.
Scaling comes before updates. Under OnDelete that is all: a pod gets the new template
when someone deletes it. Under RollingUpdate, from the highest ordinal down to the
partition: the first pod not at the updateRevision is deleted (it comes back at the
updateRevision), and the update waits at any pod that is not healthy (Running, Ready for
minReadySeconds, not terminating) — one pod at a time in both policies.

Status counts what the cache shows (a pod just created counts from the next round):
replicas (every member pod), readyReplicas (Running and Ready), availableReplicas (and
Ready for minReadySeconds), currentReplicas / updatedReplicas (not terminating, at the
current / update revision), currentRevision, updateRevision, observedGeneration.
"""

import datetime
import re
from dataclasses import dataclass, field

from controlplane.controllers.hashing import template_hash
from controlplane.controllers.podutil import (controller_ref, copy, is_pod_available, is_pod_ready,
                                              is_terminated, owner_reference)
from controlplane.controllers.podutil import next_available_s
from skiff.api import objects_pb2 as pb
from skiff.api import selectors
from skiff.api.kinds.statefulset import ORDERED_READY, ROLLING_UPDATE
from skiff.api.wellknown import POD_RUNNING

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
REVISION_LABEL = "controller-revision-hash"
IDENTITY_LABELS = (POD_NAME_LABEL, POD_INDEX_LABEL, REVISION_LABEL)

CREATE, DELETE, RELABEL = "create", "delete", "relabel"
_ORDINAL = re.compile(r"(0|[1-9][0-9]*)")


@dataclass(frozen=True)
class Action:
    """One write. create: pod is the new pod; delete: pod is the cached pod to delete
    (why: failed | scale-down | update); relabel: pod is the updated copy."""
    verb: str
    pod: pb.Pod
    why: str = ""


@dataclass(frozen=True)
class StatefulSetPlan:
    adopt: tuple = ()          # pod names: add our controller reference
    release: tuple = ()        # pod names: remove our controller reference
    actions: tuple = ()        # Actions, in the order to apply them
    status: pb.StatefulSetStatus = field(default_factory=pb.StatefulSetStatus)
    recheck_s: float | None = None  # look again then (a pod becomes available after minReadySeconds)


# ---------------------------------------------------------------- identity and revisions

def ordinal_of(set_name: str, pod_name: str):
    """i when pod_name is set_name-i, else None."""
    prefix = f"{set_name}-"
    if not pod_name.startswith(prefix):
        return None
    rest = pod_name[len(prefix):]
    return int(rest) if _ORDINAL.fullmatch(rest) else None


def pod_name(sts: pb.StatefulSet, ordinal: int) -> str:
    return f"{sts.metadata.name}-{ordinal}"


def revision_name(sts: pb.StatefulSet, template: pb.PodTemplateSpec) -> str:
    """NAME-<template hash>: the controller-revision-hash label and status revisions."""
    return f"{sts.metadata.name}-{template_hash(template)}"


def revision_of(pod: pb.Pod) -> str:
    return pod.metadata.labels.get(REVISION_LABEL, "")


def identity_matches(sts: pb.StatefulSet, pod: pb.Pod, ordinal: int) -> bool:
    labels = pod.metadata.labels
    return labels.get(POD_NAME_LABEL) == pod.metadata.name and labels.get(POD_INDEX_LABEL) == str(ordinal)


def with_identity(pod: pb.Pod, ordinal: int) -> pb.Pod:
    """A copy of pod with its identity labels restored (updateIdentity)."""
    out = copy(pod)
    out.metadata.labels[POD_NAME_LABEL] = pod.metadata.name
    out.metadata.labels[POD_INDEX_LABEL] = str(ordinal)
    return out


def new_pod(sts: pb.StatefulSet, ordinal: int, template: pb.PodTemplateSpec, revision: str) -> pb.Pod:
    """Pod NAME-ordinal from template at revision (newStatefulSetPod + initIdentity)."""
    name = pod_name(sts, ordinal)
    pod = pb.Pod(metadata=pb.ObjectMeta(name=name, namespace=sts.metadata.namespace,
                                        labels=dict(template.metadata.labels),
                                        annotations=dict(template.metadata.annotations)))
    pod.metadata.labels[POD_NAME_LABEL] = name
    pod.metadata.labels[POD_INDEX_LABEL] = str(ordinal)
    pod.metadata.labels[REVISION_LABEL] = revision
    pod.metadata.owner_references.append(owner_reference(sts, "StatefulSet", "apps/v1"))
    pod.spec.CopyFrom(template.spec)
    pod.spec.hostname = name
    pod.spec.subdomain = sts.spec.service_name
    return pod


def template_from_pod(pod: pb.Pod) -> pb.PodTemplateSpec:
    """The template a pod of this controller was made from (what a ControllerRevision would keep)."""
    t = pb.PodTemplateSpec()
    t.metadata.labels.update({k: v for k, v in pod.metadata.labels.items() if k not in IDENTITY_LABELS})
    t.metadata.annotations.update(pod.metadata.annotations)
    t.spec.CopyFrom(pod.spec)
    t.spec.node_name = t.spec.hostname = t.spec.subdomain = ""
    return t


def _current_template(pods, current: str):
    """The current revision's template, read back from a live pod at that revision, or None."""
    at = [p for p in pods if revision_of(p) == current]
    at.sort(key=lambda p: (bool(p.metadata.deletion_timestamp), p.metadata.name))
    return template_from_pod(at[0]) if at else None


# ---------------------------------------------------------------- pod states

def _running_and_ready(pod: pb.Pod) -> bool:
    return pod.status.phase == POD_RUNNING and is_pod_ready(pod)


def _running_and_available(pod: pb.Pod, min_ready: int, now) -> bool:
    return pod.status.phase == POD_RUNNING and is_pod_available(pod, min_ready, now)


def _healthy(pod: pb.Pod, min_ready: int, now) -> bool:
    return _running_and_available(pod, min_ready, now) and not pod.metadata.deletion_timestamp


# ---------------------------------------------------------------- the plan

def _claim(sts, pods):
    """(owned members by ordinal, adopt names, release names)."""
    selector = selectors.from_label_selector(sts.spec.selector)
    uid, name = sts.metadata.uid, sts.metadata.name
    members, adopt, release = {}, [], []
    for pod in pods:
        if pod.metadata.namespace != sts.metadata.namespace:
            continue
        ordinal = ordinal_of(name, pod.metadata.name)
        ref = controller_ref(pod.metadata)
        matches = selector.matches(pod.metadata.labels)
        if ref is not None and ref.uid == uid:
            if not matches or ordinal is None:
                release.append(pod.metadata.name)
            else:
                members[ordinal] = pod
        elif ref is None and matches and ordinal is not None and not pod.metadata.deletion_timestamp:
            adopt.append(pod.metadata.name)
            members[ordinal] = pod
    return members, tuple(adopt), tuple(release)


def plan_statefulset(sts: pb.StatefulSet, pods, *, history=None,
                     now: datetime.datetime | None = None) -> StatefulSetPlan:
    """pods: the pods of sts's namespace, from the cache; history: revision name -> template
    of revisions the caller remembers (a stand-in for ControllerRevisions)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    members, adopt, release = _claim(sts, pods)
    spec = sts.spec
    want = spec.replicas if spec.HasField("replicas") else 1
    min_ready = spec.min_ready_seconds
    monotonic = spec.pod_management_policy in ("", ORDERED_READY)
    rolling = spec.update_strategy.type in ("", ROLLING_UPDATE)
    partition = spec.update_strategy.rolling_update.partition if rolling else 0

    update_rev = revision_name(sts, spec.template)
    current_rev = sts.status.current_revision or update_rev
    current_template = None
    if current_rev != update_rev:
        current_template = (history or {}).get(current_rev) or _current_template(members.values(), current_rev)
        if current_template is None:
            current_rev = update_rev   # nothing left at the old revision to read it back from

    def versioned(ordinal):
        if rolling and ordinal < partition and current_template is not None:
            return new_pod(sts, ordinal, current_template, current_rev)
        return new_pod(sts, ordinal, spec.template, update_rev)

    actions = []
    replicas = [members.get(i) for i in range(want)]
    condemned = sorted((p for i, p in members.items() if i >= want),
                       key=lambda p: -ordinal_of(sts.metadata.name, p.metadata.name))
    exited = bool(sts.metadata.deletion_timestamp) or _process_replicas(
        sts, replicas, versioned, monotonic, min_ready, now, actions)
    if not exited:
        exited = _process_condemned(replicas, condemned, monotonic, min_ready, now, actions)
    if not exited and rolling:
        _rolling_update(replicas, update_rev, partition, min_ready, now, actions)

    status = _status(sts, list(members.values()), current_rev, update_rev, now)
    recheck = next_available_s(list(members.values()), min_ready, now) if min_ready > 0 else None
    return StatefulSetPlan(adopt=adopt, release=release, actions=tuple(actions), status=status,
                           recheck_s=recheck)


def _process_replicas(sts, replicas, versioned, monotonic, min_ready, now, actions) -> bool:
    """processReplica for ordinals 0..replicas-1; True when an OrderedReady round must stop."""
    for i, pod in enumerate(replicas):
        if pod is None:
            actions.append(Action(CREATE, versioned(i)))
            if monotonic:
                return True
            continue
        if is_terminated(pod):
            if not pod.metadata.deletion_timestamp:
                actions.append(Action(DELETE, pod, "failed"))
            if monotonic:
                return True
            continue
        if monotonic and (pod.metadata.deletion_timestamp or not _running_and_ready(pod)
                          or not _running_and_available(pod, min_ready, now)):
            return True
        if not pod.metadata.deletion_timestamp and not identity_matches(sts, pod, i):
            actions.append(Action(RELABEL, with_identity(pod, i)))
    return False


def _process_condemned(replicas, condemned, monotonic, min_ready, now, actions) -> bool:
    """processCondemned, highest ordinal first; True when an OrderedReady round must stop."""
    first_unhealthy = next((p for p in replicas if p is None or not _healthy(p, min_ready, now)), None)
    if first_unhealthy is None:
        first_unhealthy = next((p for p in reversed(condemned) if not _healthy(p, min_ready, now)), None)
    for pod in condemned:
        if pod.metadata.deletion_timestamp:
            if monotonic:
                return True
            continue
        if monotonic and pod is not first_unhealthy and not _running_and_available(pod, min_ready, now):
            return True
        actions.append(Action(DELETE, pod, "scale-down"))
        if monotonic:
            return True
    return False


def _rolling_update(replicas, update_rev, partition, min_ready, now, actions) -> None:
    """From the highest ordinal down to the partition: replace the first outdated pod, or
    wait at the first unhealthy one."""
    for target in range(len(replicas) - 1, partition - 1, -1):
        pod = replicas[target]
        if pod is None:
            return
        if revision_of(pod) != update_rev and not pod.metadata.deletion_timestamp:
            actions.append(Action(DELETE, pod, "update"))
            return
        if not _healthy(pod, min_ready, now):
            return


def _status(sts, pods, current_rev, update_rev, now) -> pb.StatefulSetStatus:
    status = copy(sts.status)
    min_ready = sts.spec.min_ready_seconds
    live = [p for p in pods if not p.metadata.deletion_timestamp]
    status.observed_generation = sts.metadata.generation
    status.replicas = len(pods)
    status.ready_replicas = sum(1 for p in pods if _running_and_ready(p))
    status.available_replicas = sum(1 for p in pods if _running_and_available(p, min_ready, now))
    status.current_replicas = sum(1 for p in live if revision_of(p) == current_rev)
    status.updated_replicas = sum(1 for p in live if revision_of(p) == update_rev)
    status.current_revision, status.update_revision = current_rev, update_rev
    rolling = sts.spec.update_strategy.type in ("", ROLLING_UPDATE)
    if rolling and status.updated_replicas == status.replicas and status.ready_replicas == status.replicas:
        status.current_revision = update_rev
        status.current_replicas = status.updated_replicas
    return status

