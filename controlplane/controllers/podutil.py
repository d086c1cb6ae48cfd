"""Small pure helpers about pods, owners and conditions, shared by the leader-only loops.

Nothing here talks to the API; everything takes and returns typed objects.
Functions that modify an object say so and never touch their other arguments.
"""

import datetime

from skiff.api import objects_pb2 as pb
from skiff.api.wellknown import POD_FINISHED_PHASES, now_rfc3339, parse_rfc3339  # noqa: F401 - re-exported

TERMINATED_PHASES = POD_FINISHED_PHASES


def copy(msg):
    """A deep copy: cached objects are shared and must never be modified in place."""
    out = type(msg)()
    out.CopyFrom(msg)
    return out


def key_of(obj) -> str:
    """namespace/name, or name for cluster-scoped objects (the informer's key)."""
    ns = obj.metadata.namespace
    return f"{ns}/{obj.metadata.name}" if ns else obj.metadata.name


# ---------------------------------------------------------------- pods

def is_terminated(pod: pb.Pod) -> bool:
    return pod.status.phase in TERMINATED_PHASES


def is_active(pod: pb.Pod) -> bool:
    """Counts towards a controller's replicas: not being deleted and not finished."""
    return not pod.metadata.deletion_timestamp and not is_terminated(pod)


def get_condition(conditions, ctype: str):
    for cond in conditions:
        if cond.type == ctype:
            return cond
    return None


def is_pod_ready(pod: pb.Pod) -> bool:
    cond = get_condition(pod.status.conditions, "Ready")
    return cond is not None and cond.status == "True"


def is_pod_available(pod: pb.Pod, min_ready_seconds: int, now: datetime.datetime) -> bool:
    """Ready, and Ready for at least min_ready_seconds (by the condition's lastTransitionTime)."""
    cond = get_condition(pod.status.conditions, "Ready")
    if cond is None or cond.status != "True":
        return False
    if min_ready_seconds <= 0:
        return True
    since = parse_rfc3339(cond.last_transition_time)
    return since is not None and (now - since).total_seconds() >= min_ready_seconds


def next_available_s(pods, min_ready_seconds: int, now: datetime.datetime):
    """Seconds until the first ready-but-not-yet-available pod becomes available."""
    waits = []
    for p in pods:
        cond = get_condition(p.status.conditions, "Ready")
        since = parse_rfc3339(cond.last_transition_time) if cond is not None and cond.status == "True" else None
        if since is not None:
            left = min_ready_seconds - (now - since).total_seconds()
            if left > 0:
                waits.append(left)
    return min(waits) + 0.05 if waits else None


def set_condition(conditions, ctype: str, status: str, reason: str = "", message: str = "",
                  now: str = "", heartbeat: bool = False) -> bool:
    """Set a condition in a repeated Condition field, in place; True when something changed.

    lastTransitionTime moves only when the status changes (as in Kubernetes), so
    writing the same condition twice changes nothing and causes no write.
    """
    now = now or now_rfc3339()
    cond = get_condition(conditions, ctype)
    if cond is None:
        cond = conditions.add(type=ctype, status=status, reason=reason, message=message,
                              last_transition_time=now)
        if heartbeat:
            cond.last_heartbeat_time = now
        return True
    if (cond.status, cond.reason, cond.message) == (status, reason, message):
        return False
    if cond.status != status:
        cond.last_transition_time = now
    cond.status, cond.reason, cond.message = status, reason, message
    return True


# ---------------------------------------------------------------- owners

def controller_ref(meta: pb.ObjectMeta):
    """The ownerReference with controller=true, or None."""
    for ref in meta.owner_references:
        if ref.controller:
            return ref
    return None


def owner_reference(owner, kind_name: str, api_version: str) -> pb.OwnerReference:
    """A controller reference to owner (blockOwnerDeletion as Kubernetes' controllers set it)."""
    return pb.OwnerReference(api_version=api_version, kind=kind_name, name=owner.metadata.name,
                             uid=owner.metadata.uid, controller=True, block_owner_deletion=True)


def claim_pods(owner, selector, pods) -> tuple:
    """(owned, adopt, release) among pods for a controller owner (Kubernetes' PodControllerRefManager):
    a pod is owner's when its controller reference has owner's uid; an orphan (no controller
    reference) in owner's namespace whose labels match selector and that is not being deleted
    is adopted (and counts as owned) unless the owner itself is being deleted (Kubernetes'
    canAdopt); an owned pod whose labels stopped matching is released (and does not count)."""
    uid = owner.metadata.uid
    can_adopt = not owner.metadata.deletion_timestamp
    owned, adopt, release = [], [], []
    for pod in pods:
        if pod.metadata.namespace != owner.metadata.namespace:
            continue
        ref = controller_ref(pod.metadata)
        matches = selector.matches(pod.metadata.labels)
        if ref is not None and ref.uid == uid:
            (owned if matches else release).append(pod)
        elif ref is None and matches and not pod.metadata.deletion_timestamp and can_adopt:
            adopt.append(pod)
            owned.append(pod)
    return owned, adopt, release

