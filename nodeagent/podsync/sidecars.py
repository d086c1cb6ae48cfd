"""Native sidecars (KEP-753): init containers with `restartPolicy: Always`. Pure helpers
the planner, the status computation and the probes share.

A sidecar is an init container that is started in its turn and then kept running beside
the app containers: the next init container starts once it has *started* (its startup
probe succeeded, or it runs and has none); it is restarted whenever it exits (whatever the
pod's restartPolicy, with the crash-loop back-off); it may have probes and a lifecycle;
its readiness counts for the pod's Ready condition.

Stopping order (stop_order): the app containers and any running regular init container
first, all together; then the sidecars one at a time, the last declared first. The
pod's sandbox goes with the last of them. Each group is stopped only once the previous
one has exited, so a group is given what is left of the grace period when its turn comes.
"""

from nodeagent.probes.results import ProbeResults
from nodeagent.runtime.container import INIT, SANDBOX
from skiff.api.wellknown import is_sidecar


def sidecar_names(pod) -> list:
    """The pod's sidecars, in declaration order."""
    return [c.name for c in pod.spec.init_containers if is_sidecar(c)]


def observed_is_sidecar(pod, o) -> bool:
    """Whether engine container o is one of pod's sidecars (False for an orphan: pod None)."""
    return pod is not None and o.kind == INIT and o.container in sidecar_names(pod)


def started(spec, o, probe_results) -> bool:
    """kubelet's `started` of a running container: its startup probe succeeded, or it has none."""
    if o is None or not o.running:
        return False
    if not spec.HasField("startup_probe"):
        return True
    return (probe_results.get(o.id) or ProbeResults()).startup is True


def ready(spec, o, probe_results) -> bool:
    """Started, and its readiness probe succeeded (or it has none)."""
    if not started(spec, o, probe_results):
        return False
    if not spec.HasField("readiness_probe"):
        return True
    return (probe_results.get(o.id) or ProbeResults()).readiness is True


def stop_order(pod, running) -> tuple:
    """(the group of running containers to stop now, whether the sandbox goes with it).

    running: the pod's running engine containers (sandboxes included). The group is
    every running non-sidecar container; when none runs, the running instances of the
    last declared sidecar that still runs. The sandbox goes with the last group (or
    alone when nothing else runs)."""
    others = [o for o in running if o.kind != SANDBOX]
    names = sidecar_names(pod) if pod is not None else []
    first = [o for o in others if not (o.kind == INIT and o.container in names)]
    side = [o for o in others if o.kind == INIT and o.container in names]
    if first:
        return first, not side
    if not side:
        return [], True
    last = max(side, key=lambda o: names.index(o.container))
    group = [o for o in side if o.container == last.container]
    return group, len(group) == len(side)
