"""The Deployment planner: from a Deployment and the ReplicaSets of its namespace, what to do.

plan_deployment() is pure. Its rules (Kubernetes' deployment controller, minus rolling updates):
- the Deployment's ReplicaSets are those whose controller reference has its uid;
  orphans whose labels match its selector are adopted;
- the "new" ReplicaSet is the one whose pod template equals the Deployment's
  ignoring the pod-template-hash label; when there is none (and the Deployment
  is not paused) one is created, named <deployment>-<hash of the template>, with
  pod-template-hash=<hash> added to its selector, template labels and labels;
- a strategy (STRATEGIES, by spec.strategy.type) maps (deployment, new RS, old
  RSs) to the replicas each should have. Today both types use replace(): the new
  RS gets spec.replicas and old ones 0. A rolling update slots in here as
  another function of the same shape (it reads the RSs' status to pace itself);
- old ReplicaSets scaled to zero beyond spec.revisionHistoryLimit are deleted,
  oldest revision first;
- status: replicas/readyReplicas/availableReplicas summed over the RSs'
  status, updatedReplicas = the new RS's status.replicas, unavailableReplicas =
  sum of RS spec.replicas - available (not below 0), observedGeneration, and
  the Available and Progressing conditions with Kubernetes' reasons/messages.
"""

import datetime
from dataclasses import dataclass, field

from controlplane.controllers.hashing import template_hash
from controlplane.controllers.podutil import controller_ref, copy, get_condition, owner_reference, parse_rfc3339
from skiff.api import objects_pb2 as pb
from skiff.api import selectors
from skiff.api.intstr import scaled_value
from skiff.api.wellknown import rfc3339

POD_TEMPLATE_HASH = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"


# ---------------------------------------------------------------- templates

def _without_hash(template: pb.PodTemplateSpec) -> pb.PodTemplateSpec:
    out = copy(template)
    out.metadata.labels.pop(POD_TEMPLATE_HASH, None)
    return out


def same_template(rs: pb.ReplicaSet, d: pb.Deployment) -> bool:
    return _without_hash(rs.spec.template) == _without_hash(d.spec.template)


def revision_of(rs: pb.ReplicaSet) -> int:
    try:
        return int(rs.metadata.annotations.get(REVISION, "0"))
    except ValueError:
        return 0


def new_replica_set(d: pb.Deployment, replicas: int, revision: int) -> pb.ReplicaSet:
    collision = d.status.collision_count if d.status.HasField("collision_count") else None
    h = template_hash(d.spec.template, collision)
    rs = pb.ReplicaSet(metadata=pb.ObjectMeta(name=f"{d.metadata.name}-{h}", namespace=d.metadata.namespace))
    rs.metadata.labels.update(d.spec.template.metadata.labels)
    rs.metadata.labels[POD_TEMPLATE_HASH] = h
    rs.metadata.annotations[REVISION] = str(revision)
    rs.metadata.owner_references.append(owner_reference(d, "Deployment", "apps/v1"))
    rs.spec.replicas = replicas
    rs.spec.min_ready_seconds = d.spec.min_ready_seconds
    rs.spec.selector.CopyFrom(d.spec.selector)
    rs.spec.selector.match_labels[POD_TEMPLATE_HASH] = h
    rs.spec.template.CopyFrom(d.spec.template)
    rs.spec.template.metadata.labels[POD_TEMPLATE_HASH] = h
    return rs


# ---------------------------------------------------------------- strategies

def desired_replicas(d: pb.Deployment) -> int:
    return d.spec.replicas if d.spec.HasField("replicas") else 1


def replace(d: pb.Deployment, new_rs, old_rss) -> dict:
    """New RS at spec.replicas, every old RS at 0 (the pods are replaced all at once)."""
    want = {rs.metadata.name: 0 for rs in old_rss}
    if new_rs is not None:
        want[new_rs.metadata.name] = desired_replicas(d)
    return want


STRATEGIES = {"RollingUpdate": replace, "Recreate": replace}


def max_unavailable(d: pb.Deployment) -> int:
    """spec.strategy.rollingUpdate.maxUnavailable resolved against replicas (rounded down;
    at least 1 when maxSurge is 0 too, as Kubernetes does); 0 for Recreate."""
    replicas = desired_replicas(d)
    if d.spec.strategy.type != "RollingUpdate":
        return 0
    ru = d.spec.strategy.rolling_update

    unavailable = scaled_value(ru.max_unavailable, replicas, round_up=False, default="25%")
    surge = scaled_value(ru.max_surge, replicas, round_up=True, default="25%")
    if unavailable == 0 and surge == 0:
        unavailable = 1
    return min(unavailable, replicas)


# ---------------------------------------------------------------- the plan

@dataclass(frozen=True)
class DeploymentPlan:
    adopt: tuple = ()               # RS names: add our controller reference
    create: pb.ReplicaSet | None = None
    scale: tuple = ()               # (RS name, replicas) for RSs whose spec.replicas must change
    delete: tuple = ()              # old RS names beyond revisionHistoryLimit
    new_rs: str = ""                # the name of the new RS (existing or to create)
    status: pb.DeploymentStatus = field(default_factory=pb.DeploymentStatus)


def _sorted_by_age(rss):
    return sorted(rss, key=lambda r: (r.metadata.creation_timestamp, r.metadata.name))


def plan_deployment(d: pb.Deployment, replica_sets, now: datetime.datetime | None = None) -> DeploymentPlan:
    now = now or datetime.datetime.now(datetime.timezone.utc)
    selector = selectors.from_label_selector(d.spec.selector)
    uid = d.metadata.uid
    owned, adopt = [], []
    for rs in replica_sets:
        if rs.metadata.namespace != d.metadata.namespace:
            continue
        ref = controller_ref(rs.metadata)
        if ref is not None and ref.uid == uid:
            owned.append(rs)
        elif ref is None and selector.matches(rs.metadata.labels):
            adopt.append(rs)
            owned.append(rs)
    owned = _sorted_by_age(owned)
    new_rs = next((rs for rs in owned if same_template(rs, d)), None)
    old_rss = [rs for rs in owned if rs is not new_rs]
    strategy = STRATEGIES.get(d.spec.strategy.type, replace)
    create = None
    if new_rs is None and not d.spec.paused:
        revision = max((revision_of(rs) for rs in owned), default=0) + 1
        planned = new_replica_set(d, 0, revision)
        create = new_replica_set(d, strategy(d, planned, old_rss).get(planned.metadata.name, 0), revision)
    if d.spec.paused:
        want = {}  # a paused Deployment is left as it is (kubectl rollout resume continues it)
    else:
        want = strategy(d, new_rs if new_rs is not None else create, old_rss)
    scale = tuple((rs.metadata.name, want[rs.metadata.name]) for rs in owned
                  if rs.metadata.name in want and rs.spec.replicas != want[rs.metadata.name])
    delete = _beyond_history(d, old_rss, dict(scale))
    new_name = (new_rs or create).metadata.name if (new_rs or create) is not None else ""
    status = deployment_status(d, new_rs, owned, now, created=create)
    return DeploymentPlan(adopt=tuple(rs.metadata.name for rs in adopt), create=create, scale=scale,
                          delete=delete, new_rs=new_name, status=status)


def _beyond_history(d, old_rss, scaling: dict) -> tuple:
    limit = d.spec.revision_history_limit if d.spec.HasField("revision_history_limit") else 10
    idle = [rs for rs in old_rss if scaling.get(rs.metadata.name, rs.spec.replicas) == 0
            and rs.spec.replicas == 0 and rs.status.replicas == 0]
    excess = len(idle) - limit
    if excess <= 0:
        return ()
    idle.sort(key=lambda rs: (revision_of(rs), rs.metadata.creation_timestamp, rs.metadata.name))
    return tuple(rs.metadata.name for rs in idle[:excess])


# ---------------------------------------------------------------- status

def _set(conds, ctype, status, reason, message, now_s: str, touch: bool = False) -> None:
    """Set a Deployment condition: lastTransitionTime moves when the status changes,
    lastUpdateTime when anything changes (or touch: progress was made)."""
    cond = get_condition(conds, ctype)
    if cond is None:
        conds.add(type=ctype, status=status, reason=reason, message=message,
                  last_update_time=now_s, last_transition_time=now_s)
        return
    changed = (cond.status, cond.reason, cond.message) != (status, reason, message)
    if cond.status != status:
        cond.last_transition_time = now_s
    if changed or touch:
        cond.last_update_time = now_s
    cond.status, cond.reason, cond.message = status, reason, message


def deployment_status(d: pb.Deployment, new_rs, owned, now: datetime.datetime, created=None) -> pb.DeploymentStatus:
    now_s = rfc3339(now)
    old = d.status
    status = copy(old)
    status.observed_generation = d.metadata.generation
    status.replicas = sum(rs.status.replicas for rs in owned)
    status.updated_replicas = new_rs.status.replicas if new_rs is not None else 0
    status.ready_replicas = sum(rs.status.ready_replicas for rs in owned)
    status.available_replicas = sum(rs.status.available_replicas for rs in owned)
    total = sum(rs.spec.replicas for rs in owned)
    status.unavailable_replicas = max(0, total - status.available_replicas)

    replicas = desired_replicas(d)
    if status.available_replicas >= replicas - max_unavailable(d):
        _set(status.conditions, "Available", "True", "MinimumReplicasAvailable",
             "Deployment has minimum availability.", now_s)
    else:
        _set(status.conditions, "Available", "False", "MinimumReplicasUnavailable",
             "Deployment does not have minimum availability.", now_s)

    name = (created or new_rs).metadata.name if (created or new_rs) is not None else ""
    counts = ("replicas", "updated_replicas", "ready_replicas", "available_replicas", "unavailable_replicas")
    progressed = any(getattr(status, c) != getattr(old, c) for c in counts)
    complete = (new_rs is not None and status.updated_replicas == replicas
                and status.available_replicas == replicas and status.replicas == replicas)
    progressing = get_condition(status.conditions, "Progressing")
    if created is not None:
        _set(status.conditions, "Progressing", "True", "NewReplicaSetCreated",
             f'Created new replica set "{name}"', now_s)
    elif complete:
        _set(status.conditions, "Progressing", "True", "NewReplicaSetAvailable",
             f'ReplicaSet "{name}" has successfully progressed.', now_s)
    elif name and (progressed or progressing is None):
        _set(status.conditions, "Progressing", "True", "ReplicaSetUpdated",
             f'ReplicaSet "{name}" is progressing.', now_s, touch=True)
    elif name and progressing is not None and progressing.status == "True" \
            and progressing.reason != "NewReplicaSetAvailable" and not d.spec.paused \
            and d.spec.HasField("progress_deadline_seconds"):
        since = parse_rfc3339(progressing.last_update_time)
        if since is not None and (now - since).total_seconds() > d.spec.progress_deadline_seconds:
            _set(status.conditions, "Progressing", "False", "ProgressDeadlineExceeded",
                 f'ReplicaSet "{name}" has timed out progressing.', now_s)
    return status
