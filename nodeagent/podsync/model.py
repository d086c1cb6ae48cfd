"""The planner's vocabulary: what the engine has (Observed), what to do (actions), back-off.

All of it is plain immutable data so the planner and the status computation stay
pure functions that tests can drive with tables.
"""

from dataclasses import dataclass

from nodeagent.runtime import labels

SANDBOX = labels.KIND_SANDBOX
INIT = labels.KIND_INIT
APP = labels.KIND_APP

# Docker container states (State.Status).
CREATED = "created"
RUNNING = "running"
EXITED = "exited"


@dataclass(frozen=True)
class Observed:
    """One container of a pod as the engine reports it (read from its labels and inspect)."""
    id: str
    pod_uid: str
    container: str              # the pod's container name; labels.SANDBOX ("POD") for the pause
    kind: str                   # sandbox, init, app
    attempt: int = 0
    restart_count: int = 0
    spec_hash: str = ""
    state: str = RUNNING        # created, running, exited, dead, paused, restarting, removing
    exit_code: int = 0
    started_at: float = 0.0     # epoch seconds; 0 = never started
    finished_at: float = 0.0
    sandbox_id: str = ""        # for init/app: the pause container whose namespaces it joined
    name: str = ""              # Docker name
    pod_name: str = ""
    pod_namespace: str = ""
    image: str = ""
    image_id: str = ""          # sha256:...
    pid: int = 0
    oom_killed: bool = False
    error: str = ""             # Docker's State.Error (e.g. the process could not be started)
    grace_s: int = 30           # the pod's termination grace period when the container was made

    @property
    def running(self) -> bool:
        return self.state in (RUNNING, "restarting", "paused")

    @property
    def exited(self) -> bool:
        return self.state in (EXITED, "dead")


@dataclass(frozen=True)
class ProbeResults:
    """Latest results of one container's probes: True, False, or None (unknown / no probe)."""
    liveness: bool | None = None
    readiness: bool | None = None
    startup: bool | None = None


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

