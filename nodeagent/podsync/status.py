"""The pure pod status computation (kubelet's generateAPIPodStatus / getPhase).

compute_status(pod, observed, now, probe_results, waiting, host_ip) -> PodStatus

- containerStatuses / initContainerStatuses: the newest instance of each container
  gives state (running / terminated / waiting), containerID, imageID and
  restartCount (its label); the newest exited instance before it gives lastState;
  `waiting` (container name -> (reason, message)) overrides the state of a
  container that is not running: CrashLoopBackOff during a back-off, or a start
  error (ErrImageNeverPull, CreateContainerConfigError, ...);
- ready: running, started (startup probe passed, or none) and the readiness
  probe passed (or none); init containers are ready once they exited 0; sidecars
  (init containers with restartPolicy Always, sidecars.py) are judged like app
  containers: started, ready, restartCount;
- Initialized: every regular init container exited 0 and every sidecar started (or an
  app container already ran in the current sandbox); a sidecar's readiness counts for
  Ready and ContainersReady (named first in the message, as kubelet's);
- phase like kubelet's getPhase, judged by the app containers: a pod whose app
  containers finished is Succeeded/Failed whatever its sidecars do (they are stopped
  after them); a terminal phase (Succeeded/Failed) never changes;
  past spec.activeDeadlineSeconds: Failed, reason DeadlineExceeded (deadline.py);
  evicted (`evicted` is the eviction message: ephemeral.py): Failed, reason Evicted;
- conditions Initialized, Ready, ContainersReady (lastTransitionTime kept while
  the status stays the same), PodScheduled kept (added as True when missing),
  any other condition kept as is;
- hostIP, podIP, startTime (set once), qosClass.

Nothing in the result depends on `now` unless something changed, so computing
twice gives an equal message and the caller writes only real changes.
"""

from skiff.api import objects_pb2 as pb
from skiff.api import quantity
from skiff.api.wellknown import POD_FINISHED_PHASES

from nodeagent.podsync import deadline, ephemeral, sidecars
from nodeagent.runtime import timeutil
from nodeagent.probes.results import ProbeResults
from nodeagent.runtime.container import APP, CREATED, INIT, SANDBOX

TERMINAL_PHASES = POD_FINISHED_PHASES
OWN_CONDITIONS = ("Initialized", "Ready", "ContainersReady", "PodScheduled")


def compute_status(pod, observed, now: float, probe_results=None, waiting=None, host_ip: str = "",
                   pod_ip: str = "", evicted: str = "") -> pb.PodStatus:
    probe_results = probe_results or {}
    waiting = waiting or {}
    uid = pod.metadata.uid
    mine = [o for o in observed if o.pod_uid == uid]
    old = pod.status
    sandboxes = sorted((o for o in mine if o.kind == SANDBOX), key=lambda o: o.attempt)
    sandbox_id = sandboxes[-1].id if sandboxes else ""
    restart_policy = pod.spec.restart_policy or "Always"

    def group(kind, name):
        return sorted((o for o in mine if o.kind == kind and o.container == name),
                      key=lambda o: (o.attempt, o.started_at), reverse=True)

    initialized, init_failed = _initialization(pod, mine, sandbox_id, group, probe_results)
    status = pb.PodStatus()
    for spec in pod.spec.init_containers:
        kind = APP if sidecars.is_sidecar(spec) else INIT   # a sidecar's status reads like an app's
        status.init_container_statuses.append(_container_status(
            spec, kind, group(INIT, spec.name), waiting, probe_results, "PodInitializing", initialized))
    for spec in pod.spec.containers:
        default = "ContainerCreating" if initialized else "PodInitializing"
        status.container_statuses.append(_container_status(
            spec, APP, group(APP, spec.name), waiting, probe_results, default, initialized))

    if old.phase in TERMINAL_PHASES:
        phase = old.phase
    elif not initialized:
        phase = "Failed" if init_failed and restart_policy == "Never" else "Pending"
    else:
        phase = _phase(status.container_statuses, restart_policy)
    status.phase = phase
    status.reason = old.reason
    status.message = old.message
    if phase not in TERMINAL_PHASES and evicted:
        status.phase, status.reason, status.message = "Failed", ephemeral.REASON, evicted
    elif phase not in TERMINAL_PHASES and deadline.passed(pod, now):
        status.phase, status.reason, status.message = "Failed", deadline.REASON, deadline.MESSAGE
    status.host_ip = host_ip
    if pod_ip:
        status.pod_ip = pod_ip
        status.pod_ips.add(ip=pod_ip)
    status.start_time = old.start_time or timeutil.rfc3339(now)
    status.qos_class = qos_class(pod.spec)
    status.nominated_node_name = old.nominated_node_name
    _conditions(status, old, pod, initialized, now)
    if evicted and status.reason == ephemeral.REASON and \
            not any(c.type == ephemeral.DISRUPTION_CONDITION for c in status.conditions):
        # The kubelet (1.26+) marks a pod it evicts with DisruptionTarget (a Job's podFailurePolicy reads it).
        status.conditions.add(type=ephemeral.DISRUPTION_CONDITION, status="True",
                              reason=ephemeral.DISRUPTION_REASON, message=evicted,
                              last_transition_time=timeutil.rfc3339(now))
    return status


# ------------------------------------------------------------------ containers


def _initialization(pod, mine, sandbox_id, group, probe_results):
    """(initialized, an init container failed) judged in the current sandbox."""
    if not pod.spec.init_containers:
        return True, False
    if not sandbox_id:
        return False, False
    if any(o.kind == APP and o.sandbox_id == sandbox_id for o in mine):
        return True, False
    for spec in pod.spec.init_containers:
        current = [o for o in group(INIT, spec.name) if o.sandbox_id == sandbox_id]
        latest = current[0] if current else None
        if sidecars.is_sidecar(spec):
            if not sidecars.started(spec, latest, probe_results):
                return False, False
            continue
        if latest is None or not latest.exited:
            return False, False
        if latest.exit_code != 0:
            return False, True
    return True, False


def _container_status(spec, kind, instances, waiting, probe_results, default_reason, initialized):
    cs = pb.ContainerStatus(name=spec.name, image=spec.image, restart_count=0)
    latest = instances[0] if instances else None
    previous = next((o for o in instances[1:] if o.exited), None)
    if latest is None:
        if kind == INIT and initialized:
            # Removed since (e.g. by hand); initialization is known to have completed.
            cs.state.terminated.exit_code = 0
            cs.state.terminated.reason = "Completed"
        else:
            reason, message = waiting.get(spec.name, (default_reason, ""))
            cs.state.waiting.reason = reason
            cs.state.waiting.message = message
        if kind == APP:
            cs.started = False
        cs.ready = kind == INIT and initialized
        return cs
    cs.container_id = f"docker://{latest.id}"
    if latest.image_id:
        cs.image_id = f"docker://{latest.image_id}"
    cs.restart_count = latest.restart_count
    if latest.running:
        cs.state.running.started_at = timeutil.rfc3339(latest.started_at)
        if previous is not None:
            _terminated(cs.last_state.terminated, previous)
    elif spec.name in waiting:
        reason, message = waiting[spec.name]
        cs.state.waiting.reason = reason
        cs.state.waiting.message = message
        last = latest if latest.exited else previous
        if last is not None:
            _terminated(cs.last_state.terminated, last)
    elif latest.exited:
        _terminated(cs.state.terminated, latest)
        if previous is not None:
            _terminated(cs.last_state.terminated, previous)
    else:  # created, not started yet
        cs.state.waiting.reason = "ContainerCreating" if latest.state == CREATED else latest.state
        if previous is not None:
            _terminated(cs.last_state.terminated, previous)
    if kind == INIT:
        cs.ready = latest.exited and latest.exit_code == 0
        cs.started = latest.running
        return cs
    results = probe_results.get(latest.id) or ProbeResults()
    started = latest.running and (results.startup is True if spec.HasField("startup_probe") else True)
    ready = started and (results.readiness is True if spec.HasField("readiness_probe") else True)
    cs.started = started
    cs.ready = ready
    return cs


def _terminated(t: pb.ContainerStateTerminated, o) -> None:
    t.exit_code = o.exit_code
    if o.oom_killed:
        t.reason = "OOMKilled"
    elif o.error and not o.started_at:
        t.reason = "ContainerCannotRun"
    else:
        t.reason = "Completed" if o.exit_code == 0 else "Error"
    if o.error:
        t.message = o.error
    t.started_at = timeutil.rfc3339(o.started_at)
    t.finished_at = timeutil.rfc3339(o.finished_at)
    t.container_id = f"docker://{o.id}"


def _phase(statuses, restart_policy) -> str:
    """kubelet's getPhase for an initialized pod."""
    running = waiting = stopped = succeeded = 0
    for cs in statuses:
        if cs.state.HasField("running"):
            running += 1
        elif cs.state.HasField("terminated"):
            stopped += 1
            if cs.state.terminated.exit_code == 0:
                succeeded += 1
        elif cs.last_state.HasField("terminated"):
            stopped += 1  # waiting to be restarted
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped:
        if restart_policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if restart_policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


# ------------------------------------------------------------------ conditions


def _conditions(status, old, pod, initialized, now):
    old_by_type = {c.type: c for c in old.conditions}
    terminal = status.phase in TERMINAL_PHASES
    conds = []

    def cond(ctype, ok, reason="", message=""):
        c = pb.Condition(type=ctype, status="True" if ok else "False", reason=reason, message=message)
        prev = old_by_type.get(ctype)
        c.last_transition_time = prev.last_transition_time \
            if prev is not None and prev.status == c.status and prev.last_transition_time \
            else timeutil.rfc3339(now)
        conds.append(c)

    side = set(sidecars.sidecar_names(pod))
    if initialized:
        cond("Initialized", True, "PodCompleted" if terminal and pod.spec.init_containers else "")
    else:
        pending = [cs.name for cs in status.init_container_statuses
                   if not (cs.started if cs.name in side
                           else cs.state.HasField("terminated") and cs.state.terminated.exit_code == 0)]
        cond("Initialized", False, "ContainersNotInitialized",
             f"containers with incomplete status: [{' '.join(pending)}]")
    unready = [cs.name for cs in status.init_container_statuses if cs.name in side and not cs.ready]
    unready += [cs.name for cs in status.container_statuses if not cs.ready]
    if terminal:
        ready_args = (False, "PodCompleted", "")
    elif unready:
        ready_args = (False, "ContainersNotReady", f"containers with unready status: [{' '.join(unready)}]")
    else:
        ready_args = (True, "", "")
    cond("Ready", *ready_args)
    cond("ContainersReady", *ready_args)
    scheduled = old_by_type.get("PodScheduled")
    if scheduled is not None:
        conds.append(scheduled)
    else:
        cond("PodScheduled", True)
    conds += [c for c in old.conditions if c.type not in OWN_CONDITIONS]
    status.conditions.extend(conds)


def qos_class(spec) -> str:
    """Guaranteed (every container: cpu and memory limits, requests equal), BestEffort
    (no requests or limits at all), else Burstable."""
    containers = list(spec.init_containers) + list(spec.containers)
    any_set = False
    guaranteed = True
    for c in containers:
        limits, requests = dict(c.resources.limits), dict(c.resources.requests)
        if limits or requests:
            any_set = True
        for res in ("cpu", "memory"):
            limit = limits.get(res)
            request = requests.get(res, limit)
            if limit is None or request is None or not _equal_quantities(limit, request):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _equal_quantities(a: str, b: str) -> bool:
    try:
        return quantity.parse_quantity(a) == quantity.parse_quantity(b)
    except ValueError:
        return a == b
