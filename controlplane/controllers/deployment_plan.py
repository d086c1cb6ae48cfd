"""The Deployment planner: from a Deployment, its ReplicaSets and their pods, one step to take.

plan_deployment() is pure and, like Kubernetes' syncDeployment, takes one step per
sync; the RS controller's status writes wake the next one. Its rules:
- the Deployment's ReplicaSets are those whose controller reference has its uid;
  orphans whose labels match its selector are adopted, unless the Deployment is
  being deleted (Kubernetes' canAdopt);
- the "new" ReplicaSet is the oldest whose pod template equals the Deployment's
  ignoring the pod-template-hash label; when a rollout needs one and there is none,
  one is created, named <deployment>-<hash of the template>, with
  pod-template-hash=<hash> added to its selector, template labels and labels;
- revisions, copied annotations and history pruning: deployment_history.py;
- which step: a Deployment being deleted only gets its status; a paused one, or one
  whose spec.replicas changed under a rollout (an active RS's desired-replicas
  annotation differs: isScalingEvent), is only resized (deployment_rollout.scale,
  proportional) and, if paused, pruned; otherwise spec.strategy.type picks the
  rollout: RollingUpdate (reconcile_new, else reconcile_old) or Recreate; a
  rollout prunes history only once the Deployment's status says it is complete;
- status and conditions: deployment_progress.py.
"""

import datetime
from dataclasses import dataclass, field

from controlplane.controllers import deployment_progress as progress
from controlplane.controllers import deployment_rollout as rollout
from controlplane.controllers.deployment_history import (REVISION, copy_deployment_annotations, history_to_delete,
                                                          max_revision, set_new_rs_revision)
from controlplane.controllers.deployment_rollout import desired_replicas
from controlplane.controllers.hashing import template_hash
from controlplane.controllers.podutil import controller_ref, copy, get_condition, owner_reference
from skiff.api import objects_pb2 as pb
from skiff.api import selectors
from skiff.api.wellknown import rfc3339

POD_TEMPLATE_HASH = "pod-template-hash"


# ---------------------------------------------------------------- hashing and templates

def _without_hash(template: pb.PodTemplateSpec) -> pb.PodTemplateSpec:
    out = copy(template)
    out.metadata.labels.pop(POD_TEMPLATE_HASH, None)
    return out


def same_template(rs: pb.ReplicaSet, d: pb.Deployment) -> bool:
    return _without_hash(rs.spec.template) == _without_hash(d.spec.template)


def new_replica_set(d: pb.Deployment, replicas: int, revision: int) -> pb.ReplicaSet:
    """The RS a rollout creates: the template with its hash, the Deployment's copied
    annotations, the revision and the replicas annotations."""
    collision = d.status.collision_count if d.status.HasField("collision_count") else None
    h = template_hash(d.spec.template, collision)
    rs = pb.ReplicaSet(metadata=pb.ObjectMeta(name=f"{d.metadata.name}-{h}", namespace=d.metadata.namespace))
    rs.metadata.labels.update(d.spec.template.metadata.labels)
    rs.metadata.labels[POD_TEMPLATE_HASH] = h
    copy_deployment_annotations(d, rs)
    rs.metadata.annotations[REVISION] = str(revision)
    rs.metadata.annotations.update(rollout.replicas_annotations(d))
    rs.metadata.owner_references.append(owner_reference(d, "Deployment", "apps/v1"))
    rs.spec.replicas = replicas
    rs.spec.min_ready_seconds = d.spec.min_ready_seconds
    rs.spec.selector.CopyFrom(d.spec.selector)
    rs.spec.selector.match_labels[POD_TEMPLATE_HASH] = h
    rs.spec.template.CopyFrom(d.spec.template)
    rs.spec.template.metadata.labels[POD_TEMPLATE_HASH] = h
    return rs


# ---------------------------------------------------------------- the plan

@dataclass(frozen=True)
class DeploymentPlan:
    adopt: tuple = ()               # RS names: add our controller reference
    create: pb.ReplicaSet | None = None
    update: tuple = ()              # RSs to write (cached copies with new size, annotations, minReadySeconds)
    scale: tuple = ()               # (RS name, replicas) for the updates that resize an RS
    delete: tuple = ()              # old RS names beyond revisionHistoryLimit
    new_rs: str = ""                # the name of the new RS (existing or to create), "" if none
    annotations: dict | None = None  # the Deployment's annotations to write (its revision); None: as they are
    status: pb.DeploymentStatus = field(default_factory=pb.DeploymentStatus)
    recheck_s: float | None = None  # look again then (the progress deadline would pass)


def _sorted_by_age(rss):
    return sorted(rss, key=lambda r: (r.metadata.creation_timestamp, r.metadata.name))


def _classify(d: pb.Deployment, replica_sets):
    """(owned sorted by age, orphans to adopt)."""
    selector = selectors.from_label_selector(d.spec.selector)
    owned, adopt = [], []
    for rs in replica_sets:
        if rs.metadata.namespace != d.metadata.namespace:
            continue
        ref = controller_ref(rs.metadata)
        if ref is not None and ref.uid == d.metadata.uid:
            owned.append(rs)
        elif ref is None and selector.matches(rs.metadata.labels) and not rs.metadata.deletion_timestamp \
                and not d.metadata.deletion_timestamp:     # a Deployment being deleted adopts nothing
            adopt.append(rs)
            owned.append(rs)
    return _sorted_by_age(owned), adopt


class _Step:
    """The mutable state of one sync: working status, the Deployment's annotations, RS edits."""

    def __init__(self, d, now):
        self.d, self.now, self.now_s = d, now, rfc3339(now)
        self.status = copy(d.status)
        self.annotations = dict(d.metadata.annotations)
        self.edits = {}             # RS name -> working copy with annotation/minReadySeconds changes
        self.create = None
        self.delete = ()

    def sync_new_rs(self, new_rs, old):
        """getNewReplicaSet for an existing new RS: revision, copied annotations,
        minReadySeconds; the Deployment's revision; FoundNewReplicaSet."""
        d = self.d
        w = copy(new_rs)
        changed = copy_deployment_annotations(d, w)
        changed |= set_new_rs_revision(w, max_revision(old) + 1)
        if w.spec.min_ready_seconds != d.spec.min_ready_seconds:
            w.spec.min_ready_seconds = d.spec.min_ready_seconds
            changed = True
        if changed:
            self.edits[w.metadata.name] = w
        self.annotations[REVISION] = w.metadata.annotations[REVISION]
        if progress.has_progress_deadline(d) and get_condition(self.status.conditions, progress.PROGRESSING) is None:
            progress.set_condition(self.status, progress.PROGRESSING, "True", progress.FOUND_NEW_RS,
                                   f'Found new replica set "{w.metadata.name}"', self.now_s)

    def create_new_rs(self, sizes: rollout.Sizes):
        """getNewReplicaSet creating: the RS at NewRSNewReplicas, the Deployment's revision,
        NewReplicaSetCreated. Puts the RS into sizes as the new one."""
        d = self.d
        revision = max_revision(sizes.old) + 1
        probe = rollout.Sizes(None, sizes.old, dict(sizes.want))
        rs = new_replica_set(d, rollout.new_rs_new_replicas(d, probe, 0), revision)
        self.create = rs
        sizes.new = rs
        sizes.want[rs.metadata.name] = rs.spec.replicas
        self.annotations[REVISION] = str(revision)
        if progress.has_progress_deadline(d):
            progress.set_condition(self.status, progress.PROGRESSING, "True", progress.NEW_RS_CREATED,
                                   f'Created new replica set "{rs.metadata.name}"', self.now_s)

    def updates(self, sizes: rollout.Sizes):
        """The RSs to write: resized ones (with the replicas annotations) and edited ones."""
        out, scale = [], []
        annotations = rollout.replicas_annotations(self.d)
        for rs in sizes.all():
            name = rs.metadata.name
            if self.create is not None and name == self.create.metadata.name:
                continue
            w = self.edits.get(name) or copy(rs)
            want = sizes.want[name]
            if want != rs.spec.replicas:
                scale.append((name, want))
            w.spec.replicas = want
            if name in sizes.touched:
                w.metadata.annotations.update(annotations)
            if w != rs:
                out.append(w)
        return tuple(out), tuple(scale)


def plan_deployment(d: pb.Deployment, replica_sets, now: datetime.datetime | None = None,
                    pods=()) -> DeploymentPlan:
    """replica_sets: the RSs of d's namespace; pods: the pods of its RSs (Recreate waits for
    them to be gone). Both from the caches, never modified."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    owned, adopt = _classify(d, replica_sets)
    new_rs = next((rs for rs in owned if same_template(rs, d)), None)
    old = [rs for rs in owned if rs is not new_rs]
    step = _Step(d, now)
    if not d.metadata.deletion_timestamp:
        progress.check_paused(d, step.status, step.now_s)
    if new_rs is not None:
        step.sync_new_rs(new_rs, old)
    sizes = rollout.Sizes(new_rs, old)
    rolling_out = False
    if d.metadata.deletion_timestamp:
        pass                                   # syncStatusOnly
    elif d.spec.paused or rollout.is_scaling_event(d, sizes):
        rollout.scale(d, sizes)
        if d.spec.paused:
            step.delete = history_to_delete(d, old)
    elif d.spec.strategy.type == "Recreate":
        rolling_out = True
        _recreate(d, step, sizes, pods)
    else:
        rolling_out = True
        _rolling(d, step, sizes)
    update, scale = step.updates(sizes)
    all_rss = sizes.all()
    new_now = sizes.new
    before = copy(step.status)
    status = progress.calculate_status(d, step.status, new_now, all_rss, sizes.want, step.now_s)
    recheck = None
    if rolling_out:
        status = progress.rollout_status(d, before, status, new_now.metadata.name if new_now else "", now)
        recheck = progress.recheck_s(d, status, now)
    annotations = step.annotations if step.annotations != dict(d.metadata.annotations) else None
    return DeploymentPlan(adopt=tuple(rs.metadata.name for rs in adopt), create=step.create, update=update,
                          scale=scale, delete=step.delete, new_rs=new_now.metadata.name if new_now else "",
                          annotations=annotations, status=status, recheck_s=recheck)


def _rolling(d, step: _Step, sizes: rollout.Sizes) -> None:
    """rolloutRolling: scale the new RS up, else the old ones down, else prune when complete."""
    if sizes.new is None:
        step.create_new_rs(sizes)
    if rollout.reconcile_new(d, sizes):
        return
    if rollout.reconcile_old(d, sizes):
        return
    if progress.is_complete(d, d.status):
        step.delete = history_to_delete(d, sizes.old)


def _recreate(d, step: _Step, sizes: rollout.Sizes, pods) -> None:
    """rolloutRecreate: old RSs to 0; once their pods are gone, the new RS at full size."""
    if rollout.scale_down_old_for_recreate(sizes):
        return
    if rollout.old_pods_running(sizes, pods):
        return
    if sizes.new is None:
        step.create_new_rs(sizes)
    if sizes.size(sizes.new) != desired_replicas(d):
        sizes.set(sizes.new, desired_replicas(d))
    if progress.is_complete(d, d.status):
        step.delete = history_to_delete(d, sizes.old)


def deployment_status(d: pb.Deployment, new_rs, owned, now: datetime.datetime) -> pb.DeploymentStatus:
    """The status a rollout step would write with the RSs as they are (no resizing)."""
    now_s = rfc3339(now)
    sizes = {rs.metadata.name: rs.spec.replicas for rs in owned}
    status = progress.calculate_status(d, d.status, new_rs, owned, sizes, now_s)
    return progress.rollout_status(d, d.status, status, new_rs.metadata.name if new_rs else "", now)
