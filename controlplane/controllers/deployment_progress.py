"""A Deployment's status and conditions (pure; Kubernetes' deployment sync.go and progress.go).

- Counts (calculateStatus): replicas / readyReplicas / availableReplicas summed over the
  RSs' status, updatedReplicas = the new RS's status.replicas, unavailableReplicas =
  sum of the RSs' spec.replicas minus available (not below 0), observedGeneration.
- Available: True/MinimumReplicasAvailable when availableReplicas >= replicas -
  maxUnavailable, else False/MinimumReplicasUnavailable.
- Progressing (only with progressDeadlineSeconds, which defaults to 600):
  NewReplicaSetCreated / FoundNewReplicaSet when the planner creates or first notices
  the new RS; during a rollout (syncRolloutStatus) True/NewReplicaSetAvailable once
  complete, True/ReplicaSetUpdated whenever a count moved the right way (its
  lastUpdateTime is the time of the last progress), False/ProgressDeadlineExceeded when
  lastUpdateTime is older than progressDeadlineSeconds; a completed rollout is not
  re-checked. Pausing sets Unknown/DeploymentPaused and resuming Unknown/DeploymentResumed,
  so the deadline clock restarts on resume (checkPausedConditions); a timed-out
  condition is left as it is.
- A condition's lastTransitionTime moves only when its status changes; setting the
  same status and reason again changes nothing (SetDeploymentCondition).
"""

import datetime

from controlplane.controllers.deployment_rollout import desired_replicas, max_unavailable
from controlplane.controllers.podutil import copy, get_condition, parse_rfc3339
from skiff.api import objects_pb2 as pb
from skiff.api.wellknown import rfc3339

AVAILABLE, PROGRESSING = "Available", "Progressing"
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"


def has_progress_deadline(d: pb.Deployment) -> bool:
    return d.spec.HasField("progress_deadline_seconds") and d.spec.progress_deadline_seconds < 2**31 - 1


def set_condition(status: pb.DeploymentStatus, ctype, cstatus, reason, message, now_s: str) -> None:
    """SetDeploymentCondition: no change for the same status and reason; lastTransitionTime
    kept while the status stays."""
    cond = get_condition(status.conditions, ctype)
    if cond is None:
        status.conditions.add(type=ctype, status=cstatus, reason=reason, message=message,
                              last_update_time=now_s, last_transition_time=now_s)
        return
    if (cond.status, cond.reason) == (cstatus, reason):
        return
    if cond.status != cstatus:
        cond.last_transition_time = now_s
    cond.status, cond.reason, cond.message, cond.last_update_time = cstatus, reason, message, now_s


def check_paused(d: pb.Deployment, status: pb.DeploymentStatus, now_s: str) -> None:
    """checkPausedConditions, on a working status (in place)."""
    if not has_progress_deadline(d):
        return
    cond = get_condition(status.conditions, PROGRESSING)
    if cond is not None and cond.reason == TIMED_OUT:
        return
    paused_cond = cond is not None and cond.reason == PAUSED
    if d.spec.paused and not paused_cond:
        set_condition(status, PROGRESSING, "Unknown", PAUSED, "Deployment is paused", now_s)
    elif not d.spec.paused and paused_cond:
        set_condition(status, PROGRESSING, "Unknown", RESUMED, "Deployment is resumed", now_s)


def calculate_status(d: pb.Deployment, working: pb.DeploymentStatus, new_rs, all_rss, sizes: dict,
                     now_s: str) -> pb.DeploymentStatus:
    """calculateStatus: counts from the RSs, conditions carried over from `working`, Available set.
    sizes: RS name -> spec.replicas as planned in this sync."""
    status = copy(working)
    status.observed_generation = d.metadata.generation
    status.replicas = sum(rs.status.replicas for rs in all_rss)
    status.updated_replicas = new_rs.status.replicas if new_rs is not None else 0
    status.ready_replicas = sum(rs.status.ready_replicas for rs in all_rss)
    status.available_replicas = sum(rs.status.available_replicas for rs in all_rss)
    total = sum(sizes.get(rs.metadata.name, rs.spec.replicas) for rs in all_rss)
    status.unavailable_replicas = max(0, total - status.available_replicas)
    if status.available_replicas >= desired_replicas(d) - max_unavailable(d):
        set_condition(status, AVAILABLE, "True", "MinimumReplicasAvailable",
                      "Deployment has minimum availability.", now_s)
    else:
        set_condition(status, AVAILABLE, "False", "MinimumReplicasUnavailable",
                      "Deployment does not have minimum availability.", now_s)
    return status


def is_complete(d: pb.Deployment, status: pb.DeploymentStatus) -> bool:
    """DeploymentComplete: every replica updated and available, no old pod left."""
    replicas = desired_replicas(d)
    return (status.updated_replicas == replicas and status.replicas == replicas
            and status.available_replicas == replicas
            and status.observed_generation >= d.metadata.generation)


def _progressed(old: pb.DeploymentStatus, new: pb.DeploymentStatus) -> bool:
    """DeploymentProgressing: more updated/ready/available pods, or fewer old ones."""
    return (new.updated_replicas > old.updated_replicas
            or (new.replicas - new.updated_replicas) < (old.replicas - old.updated_replicas)
            or new.ready_replicas > old.ready_replicas
            or new.available_replicas > old.available_replicas)


def _timed_out(d: pb.Deployment, status: pb.DeploymentStatus, now: datetime.datetime) -> bool:
    cond = get_condition(status.conditions, PROGRESSING)
    if cond is None or cond.reason == NEW_RS_AVAILABLE:
        return False
    if cond.reason == TIMED_OUT:
        return True
    since = parse_rfc3339(cond.last_update_time)
    return since is not None and (now - since).total_seconds() > d.spec.progress_deadline_seconds


def rollout_status(d: pb.Deployment, before: pb.DeploymentStatus, status: pb.DeploymentStatus, new_name: str,
                   now: datetime.datetime) -> pb.DeploymentStatus:
    """syncRolloutStatus on top of calculate_status's answer (`status`, changed in place and
    returned). `before` is the Deployment's status as this sync started (with the conditions
    this sync set before the counts)."""
    now_s = rfc3339(now)
    if not has_progress_deadline(d):
        _remove(status, PROGRESSING)
        return status
    current = get_condition(before.conditions, PROGRESSING)
    complete_before = (status.replicas == status.updated_replicas and current is not None
                       and current.reason == NEW_RS_AVAILABLE)
    if complete_before:
        return status
    what = f'ReplicaSet "{new_name}"' if new_name else f'Deployment "{d.metadata.name}"'
    if is_complete(d, status):
        set_condition(status, PROGRESSING, "True", NEW_RS_AVAILABLE, f"{what} has successfully progressed.", now_s)
    elif _progressed(before, status):
        cond = get_condition(status.conditions, PROGRESSING)
        transition = cond.last_transition_time if cond is not None and cond.status == "True" else now_s
        _remove(status, PROGRESSING)
        status.conditions.add(type=PROGRESSING, status="True", reason=RS_UPDATED, message=f"{what} is progressing.",
                              last_update_time=now_s, last_transition_time=transition)
    elif _timed_out(d, status, now):
        set_condition(status, PROGRESSING, "False", TIMED_OUT, f"{what} has timed out progressing.", now_s)
    return status


def recheck_s(d: pb.Deployment, status: pb.DeploymentStatus, now: datetime.datetime):
    """requeueStuckDeployment: seconds until a progressing rollout would pass its deadline."""
    if not has_progress_deadline(d) or is_complete(d, status):
        return None
    cond = get_condition(status.conditions, PROGRESSING)
    if cond is None or cond.status != "True" or cond.reason == NEW_RS_AVAILABLE:
        return None
    since = parse_rfc3339(cond.last_update_time)
    if since is None:
        return None
    left = d.spec.progress_deadline_seconds - (now - since).total_seconds()
    return max(0.0, left) + 0.5


def _remove(status: pb.DeploymentStatus, ctype: str) -> None:
    keep = [c for c in status.conditions if c.type != ctype]
    del status.conditions[:]
    status.conditions.extend(keep)
