"""A pod's containers as the engine reports them: the runtime's records, which the pod
sync planner (nodeagent/podsync/) and the probes read.

Plain immutable data, so the planner and the status computation stay pure functions
that tests drive with tables.
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
