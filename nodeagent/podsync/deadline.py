"""A pod's spec.activeDeadlineSeconds, as kubelet's activeDeadlineHandler judges it. Pure.

The deadline counts from status.startTime (when the agent first reported the pod, set
once). A pod past it is stopped (its containers killed as on completion) and its status
becomes phase Failed, reason DeadlineExceeded, with kubelet's message; a terminal pod
is never judged again. The syncer looks at the pod again when the deadline comes.
"""

from nodeagent.runtime import timeutil
from skiff.api.wellknown import POD_FINISHED_PHASES

REASON = "DeadlineExceeded"
MESSAGE = "Pod was active on the node longer than the specified deadline"


def remaining_s(pod, now: float):
    """Seconds until pod's active deadline (<= 0: passed); None when it has none, has
    not started, or has finished."""
    spec, status = pod.spec, pod.status
    if not spec.HasField("active_deadline_seconds") or status.phase in POD_FINISHED_PHASES:
        return None
    started = timeutil.parse(status.start_time)
    if not started:
        return None
    return started + spec.active_deadline_seconds - now


def passed(pod, now: float) -> bool:
    left = remaining_s(pod, now)
    return left is not None and left <= 0
