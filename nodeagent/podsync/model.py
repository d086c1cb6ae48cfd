"""The planner's vocabulary: what to do (actions) and back-off. What the engine has
(Observed, the container kinds and states) is the runtime's: nodeagent/runtime/container.py.

All of it is plain immutable data so the planner and the status computation stay
pure functions that tests can drive with tables.
"""

from dataclasses import dataclass


# ------------------------------------------------------------------ back-off


@dataclass(frozen=True)
class BackoffPolicy:
    """Crash-loop back-off: 0, then base, doubling up to cap (kubelet: 10 s .. 300 s).
    An entry older than 2*cap is forgotten (the container ran fine for a long time)."""
    base_s: float = 10.0
    cap_s: float = 300.0


@dataclass(frozen=True)
class BackoffEntry:
    delay_s: float
    last_update: float          # finishedAt (epoch) of the failure that set delay_s


def backoff_key(pod_uid: str, container: str, spec_hash: str) -> tuple:
    return (pod_uid, container, spec_hash)


def in_backoff(entry: BackoffEntry | None, finished_at: float, now: float, policy: BackoffPolicy) -> bool:
    """kubelet's Backoff.IsInBackOffSince(key, finishedAt)."""
    if entry is None or finished_at - entry.last_update > 2 * policy.cap_s:
        return False
    return now - finished_at < entry.delay_s


def next_backoff(entry: BackoffEntry | None, finished_at: float, policy: BackoffPolicy) -> BackoffEntry:
    """kubelet's Backoff.Next(key, finishedAt)."""
    if entry is None or finished_at - entry.last_update > 2 * policy.cap_s:
        return BackoffEntry(policy.base_s, finished_at)
    return BackoffEntry(min(entry.delay_s * 2, policy.cap_s), finished_at)


# ------------------------------------------------------------------ actions


@dataclass(frozen=True)
class CreateSandbox:
    attempt: int
    recreate: bool = False       # a previous sandbox died or was replaced (event SandboxChanged)


@dataclass(frozen=True)
class StartContainer:
    container: str
    kind: str                    # init or app
    attempt: int
    restart_count: int
    remove_id: str = ""          # a created-but-never-started instance to remove first
    backoff_key: tuple | None = None
    backoff_next: BackoffEntry | None = None   # record this entry once started


@dataclass(frozen=True)
class KillContainer:
    container_id: str
    container: str
    kind: str
    grace_s: float
    reason: str = ""             # machine-readable: Deleting, LivenessProbe, StartupProbe, SpecChanged, ...
    message: str = ""            # the Killing event's message ("" = no event, e.g. the pause)
    pre_stop: bool = False       # run the container's preStop hook first


@dataclass(frozen=True)
class RemoveContainer:
    container_id: str
    container: str


@dataclass(frozen=True)
class WaitBackoff:
    """A failed container must wait before it is restarted (status CrashLoopBackOff)."""
    container: str
    kind: str
    delay_s: float
    remaining_s: float
    message: str


@dataclass(frozen=True)
class FinalizePod:
    """Everything stopped: remove all containers and the pod's data dir; for a pod that is
    being deleted in the API, then delete it there (grace 0, uid precondition)."""
    delete_from_api: bool


MUTATING = (CreateSandbox, StartContainer, KillContainer, RemoveContainer, FinalizePod)

