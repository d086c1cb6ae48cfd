"""The pure pod planner: (pod, what the engine runs, time, probe results, back-off) -> actions.

It follows kubelet's computePodActions:

- no running sandbox (or it changed) -> kill what still runs of the pod, create a
  new sandbox (attempt + 1) and start the first init container, or every app
  container that should run; a pod with restartPolicy Never that already ran
  containers gets no new sandbox (it cannot be restarted);
- init containers run one at a time, in order, in the current sandbox; each must
  exit 0 before the next starts; a failed one is restarted (with back-off) unless
  restartPolicy is Never, which fails the pod (its sandbox is stopped);
- a sidecar (an init container with restartPolicy Always, sidecars.py) is started in
  its turn and the next init container starts once it has *started* (startup probe
  passed, or running without one); it is kept running beside the app containers:
  restarted with back-off whenever it exits (whatever the pod's restartPolicy), killed
  and restarted when its spec hash changed or its liveness/startup probe failed;
- app containers start together once initialization is done; a running one is
  killed and restarted when its spec hash changed (whatever the restart policy),
  when its liveness or startup probe failed (if the restart policy allows); an
  exited one is restarted per restartPolicy (Always; OnFailure if exit code != 0)
  after a crash-loop back-off (0, base, 2*base, ... cap);
- no app container to keep running and nothing to start -> the pod is done: stop its
  sidecars (last declared first, sidecars.stop_order), then its sandbox (containers are
  kept for their logs until the pod is deleted); sidecars never keep a pod alive;
- spec.activeDeadlineSeconds passed since status.startTime -> stop every container,
  as for a finished pod (deadline.py; the status says Failed, DeadlineExceeded);
- evicted (over an ephemeral-storage limit: ephemeral.py) -> kill every container at
  once (grace 0, the kubelet's local storage eviction); the status says Failed, Evicted;
- deletionTimestamp set -> stop every container (preStop hook, SIGTERM, the rest of
  the grace period, SIGKILL) in sidecars.stop_order: the app containers together, then
  each sidecar, last declared first, each given what is left of the grace period when
  its turn comes (one group per plan: the next plan sees the previous group exited);
  then the sandbox, then FinalizePod(delete_from_api);
- old exited instances beyond the latest two of a container are removed.

Invariants: plan() never mutates its inputs; the same inputs give the same
actions; a pod whose containers all run with the right hash gets no action
(adoption after an agent restart); the applier runs non-sandbox KillContainer
actions that follow each other in parallel and always before a sandbox's kill.
"""

from nodeagent.podsync import deadline, ephemeral, sidecars, spechash
from nodeagent.podsync.model import (
    BackoffPolicy, CreateSandbox, FinalizePod, KillContainer, RemoveContainer, StartContainer, WaitBackoff,
    backoff_key, in_backoff, next_backoff)
from nodeagent.probes.results import ProbeResults
from nodeagent.runtime import timeutil
from nodeagent.runtime.container import APP, CREATED, INIT, SANDBOX
from skiff.api.wellknown import POD_FINISHED_PHASES

TERMINAL_PHASES = POD_FINISHED_PHASES
DEFAULT_GRACE_S = 30
MIN_GRACE_S = 2          # kubelet's minimumGracePeriodInSeconds for a graceful stop
SANDBOX_STOP_S = 2       # the pause exits on SIGTERM at once
KEEP_INSTANCES = 2       # per container: the latest and the one before (its lastState / logs --previous)


def plan(pod, observed, now: float, probe_results=None, backoff_state=None,
         policy: BackoffPolicy = BackoffPolicy(), evicted: bool = False) -> list:
    """Actions that move the engine towards the pod's spec; see the module docstring."""
    probe_results = probe_results or {}
    backoff_state = backoff_state or {}
    uid = pod.metadata.uid
    mine = [o for o in observed if o.pod_uid == uid]
    if pod.metadata.deletion_timestamp:
        return plan_termination(pod, mine, now)

    ctx = _Ctx(pod, mine, now, probe_results, backoff_state, policy)
    sandboxes = sorted((o for o in mine if o.kind == SANDBOX), key=lambda o: o.attempt)
    latest_sb = sandboxes[-1] if sandboxes else None
    if pod.status.phase in TERMINAL_PHASES:
        # A terminal pod never runs again; stop whatever still runs of it.
        return _stop_next(pod, mine, ctx.grace_s, "PodCompleted") + _gc(mine)
    if evicted:
        return _kill_all_now(mine, ephemeral.REASON) + _gc(mine)
    if deadline.passed(pod, now):
        # spec.activeDeadlineSeconds: stopped like a finished pod; status makes it Failed.
        return _stop_next(pod, mine, ctx.grace_s, deadline.REASON) + _gc(mine)
    actions = [_kill_sandbox(sb) for sb in sandboxes[:-1] if sb.running]

    sandbox_ok = (latest_sb is not None and latest_sb.running
                  and not spechash.changed(latest_sb.spec_hash, spechash.sandbox_hash(pod)))
    if not sandbox_ok:
        return actions + _plan_new_sandbox(ctx, latest_sb) + _gc(mine)

    sb = latest_sb
    # Containers still running in another sandbox (an old one) do not belong any more.
    for o in mine:
        if o.kind != SANDBOX and o.running and o.sandbox_id != sb.id:
            actions.append(_kill(o, ctx.grace_s, "SandboxChanged",
                                 f"Container {o.container} is in a replaced pod sandbox, will be restarted"))

    init_actions, initialized, init_failed = _plan_init(ctx, sb)
    if init_failed:
        # restartPolicy Never and an init container failed: the pod has failed.
        return actions + _stop_sandbox_pod(ctx, sb, "PodFailed") + _gc(mine)
    if not initialized:
        return actions + init_actions + _gc(mine)

    kept, app_actions, starts = _plan_apps(ctx, sb)
    if kept == 0 and not starts:
        # The app containers are done: the pod is, whatever its sidecars do.
        stopping = {k.container_id for k in app_actions}
        return actions + app_actions + _stop_sandbox_pod(ctx, sb, "PodCompleted", stopping) + _gc(mine)
    return actions + init_actions + app_actions + starts + _gc(mine)


def plan_termination(pod, mine, now: float) -> list:
    """Pod deleted: stop containers (preStop first) in sidecars.stop_order, then the
    sandbox, then finalize."""
    grace = termination_grace_s(pod, now)
    running = [o for o in mine if o.running]
    if not running:
        return [FinalizePod(delete_from_api=True)]
    group, with_sandbox = sidecars.stop_order(pod, running)
    actions = [_kill(o, grace, "Deleting", f"Stopping container {o.container}", pre_stop=_has_hooks(pod, o))
               for o in group]
    if with_sandbox:
        actions += [_kill_sandbox(o, min(grace, SANDBOX_STOP_S)) for o in running if o.kind == SANDBOX]
    return actions


def plan_orphan(mine, now: float) -> list:
    """Containers of a pod that is gone from the API (or bound elsewhere): stop, then clean up.
    Without the pod's spec there is no preStop hook; the grace period comes from the label."""
    running = [o for o in mine if o.running]
    if not running:
        return [FinalizePod(delete_from_api=False)]
    actions = [_kill(o, max(0, o.grace_s), "Orphaned") for o in running if o.kind != SANDBOX]
    actions += [_kill_sandbox(o) for o in running if o.kind == SANDBOX]
    return actions


def termination_grace_s(pod, now: float) -> float:
    """What is left of the deletion grace period (at least MIN_GRACE_S unless it is 0)."""
    meta = pod.metadata
    if meta.HasField("deletion_grace_period_seconds"):
        grace = meta.deletion_grace_period_seconds
    else:
        grace = pod_grace_s(pod)
    if grace <= 0:
        return 0
    started = timeutil.parse(meta.deletion_timestamp)
    remaining = grace if not started else started + grace - now
    return float(max(MIN_GRACE_S, min(grace, remaining)))


def pod_grace_s(pod) -> int:
    spec = pod.spec
    return spec.termination_grace_period_seconds if spec.HasField("termination_grace_period_seconds") \
        else DEFAULT_GRACE_S


def should_restart(restart_policy: str, exit_code: int) -> bool:
    if restart_policy == "Never":
        return False
    if restart_policy == "OnFailure":
        return exit_code != 0
    return True  # Always (the default)


# ------------------------------------------------------------------ internals


class _Ctx:
    def __init__(self, pod, mine, now, probe_results, backoff_state, policy):
        self.pod = pod
        self.mine = mine
        self.now = now
        self.probe_results = probe_results
        self.backoff_state = backoff_state
        self.policy = policy
        self.restart_policy = pod.spec.restart_policy or "Always"
        self.grace_s = float(pod_grace_s(pod))

    def instances(self, kind, name) -> list:
        """The pod's instances of one container, newest first."""
        return sorted((o for o in self.mine if o.kind == kind and o.container == name),
                      key=lambda o: (o.attempt, o.started_at), reverse=True)


def _plan_new_sandbox(ctx, latest_sb) -> list:
    pod = ctx.pod
    actions = [_kill(o, ctx.grace_s, "SandboxChanged", f"Container {o.container} is in a dead pod sandbox, "
                     "will be restarted", pre_stop=o.kind == APP)
               for o in ctx.mine if o.running and o.kind != SANDBOX]
    if latest_sb is not None and latest_sb.running:
        actions.append(_kill_sandbox(latest_sb))
    has_run = any(o.kind != SANDBOX for o in ctx.mine)
    if ctx.restart_policy == "Never" and latest_sb is not None and has_run:
        return actions  # a Never pod that already ran is not started again
    starts = []
    if pod.spec.init_containers:
        first = pod.spec.init_containers[0]
        starts.append(_start_or_backoff(ctx, first, INIT))
    else:
        for spec in pod.spec.containers:
            group = ctx.instances(APP, spec.name)
            latest = group[0] if group else None
            if latest is not None and latest.exited and not should_restart(ctx.restart_policy, latest.exit_code):
                continue  # OnFailure: a container that succeeded stays done
            starts.append(_start_or_backoff(ctx, spec, APP))
    if not starts:
        return actions
    attempt = latest_sb.attempt + 1 if latest_sb is not None else 0
    return actions + [CreateSandbox(attempt=attempt, recreate=latest_sb is not None)] + starts


def _plan_init(ctx, sb):
    """(actions, initialized, failed) for the init containers (sidecars included) in sandbox sb.

    Once an app container ran in sb the regular init containers are done; the sidecars
    are still looked after (restarted, probed) for as long as the pod runs."""
    apps_ran = any(o.kind == APP and o.sandbox_id == sb.id for o in ctx.mine)
    actions = []
    for spec in ctx.pod.spec.init_containers:
        current = [o for o in ctx.instances(INIT, spec.name) if o.sandbox_id == sb.id]
        latest = current[0] if current else None
        if sidecars.is_sidecar(spec):
            more, up = _plan_sidecar(ctx, spec, latest)
            actions += more
            if not up and not apps_ran:
                return actions, False, False
            continue
        if apps_ran:
            continue  # app containers ran in this sandbox: initialization was done
        if latest is None or latest.state == CREATED:
            return actions + [_start_or_backoff(ctx, spec, INIT)], False, False
        if latest.running:
            return actions, False, False
        if latest.exit_code == 0:
            continue
        if ctx.restart_policy == "Never":
            return actions, False, True
        return actions + [_start_or_backoff(ctx, spec, INIT)], False, False
    return actions, True, False


def _plan_sidecar(ctx, spec, latest):
    """(actions, started) for one sidecar whose newest instance in the current sandbox is latest."""
    if latest is None or latest.state == CREATED or latest.exited:
        return [_start_or_backoff(ctx, spec, INIT)], False
    if not latest.running:
        return [], False
    kill = _probe_or_spec_kill(ctx, spec, latest)
    if kill is not None:
        return [kill, _start_or_backoff(ctx, spec, INIT)], False
    return [], sidecars.started(spec, latest, ctx.probe_results)


def _probe_or_spec_kill(ctx, spec, latest):
    """The KillContainer a running container needs (spec hash changed, liveness or
    startup probe failed), or None. The event says "will be restarted" whatever the
    restart policy, as kubelet's does."""
    results = ctx.probe_results.get(latest.id) or ProbeResults()
    grace = ctx.grace_s
    if spechash.changed(latest.spec_hash, spechash.container_hash(spec)):
        reason, message = "SpecChanged", f"Container {spec.name} definition changed, will be restarted"
    elif results.liveness is False:
        reason, message = "LivenessProbe", f"Container {spec.name} failed liveness probe, will be restarted"
        if spec.liveness_probe.HasField("termination_grace_period_seconds"):
            grace = float(spec.liveness_probe.termination_grace_period_seconds)
    elif results.startup is False:
        reason, message = "StartupProbe", f"Container {spec.name} failed startup probe, will be restarted"
        if spec.startup_probe.HasField("termination_grace_period_seconds"):
            grace = float(spec.startup_probe.termination_grace_period_seconds)
    else:
        return None
    return _kill(latest, grace, reason, message, pre_stop=True)


def _plan_apps(ctx, sb):
    """(containers kept running, kill actions, start/back-off actions)."""
    kept, kills, starts = 0, [], []
    for spec in ctx.pod.spec.containers:
        group = ctx.instances(APP, spec.name)
        latest = group[0] if group else None
        if latest is None:
            starts.append(_start_or_backoff(ctx, spec, APP))
            continue
        if latest.running and latest.sandbox_id == sb.id:
            kill = _probe_or_spec_kill(ctx, spec, latest)
            if kill is None:
                kept += 1
                continue
            kills.append(kill)
            # A changed spec restarts whatever the policy; a failed probe per restartPolicy.
            if kill.reason == "SpecChanged" or ctx.restart_policy != "Never":
                starts.append(_start_or_backoff(ctx, spec, APP))
            continue
        if latest.running or latest.state == CREATED:
            # Running in a replaced sandbox (killed above) or never started: start anew.
            starts.append(_start_or_backoff(ctx, spec, APP))
            continue
        if should_restart(ctx.restart_policy, latest.exit_code):
            starts.append(_start_or_backoff(ctx, spec, APP))
    return kept, kills, starts


def _start_or_backoff(ctx, spec, kind):
    """StartContainer for the next attempt of spec, or WaitBackoff while it crash-loops."""
    pod = ctx.pod
    group = ctx.instances(kind, spec.name)
    if not group:
        return StartContainer(container=spec.name, kind=kind, attempt=0, restart_count=0)
    latest = group[0]
    attempt = max(o.attempt for o in group) + 1
    if latest.state == CREATED:
        return StartContainer(container=spec.name, kind=kind, attempt=attempt,
                              restart_count=latest.restart_count, remove_id=latest.id)
    key = backoff_key(pod.metadata.uid, spec.name, spechash.container_hash(spec))
    if latest.exited:
        finished = latest.finished_at or ctx.now
    else:
        # The running instance is being killed now (liveness, spec change, sandbox): like
        # kubelet, judge the back-off by the newest instance that already exited, if any.
        dead = next((o for o in group if o.exited), None)
        if dead is None:
            return StartContainer(container=spec.name, kind=kind, attempt=attempt,
                                  restart_count=latest.restart_count + 1)
        finished = dead.finished_at or ctx.now
    entry = ctx.backoff_state.get(key)
    if in_backoff(entry, finished, ctx.now, ctx.policy):
        remaining = entry.delay_s - (ctx.now - finished)
        message = (f"back-off {timeutil.go_duration(entry.delay_s)} restarting failed container={spec.name} "
                   f"pod={pod.metadata.name}_{pod.metadata.namespace}({pod.metadata.uid})")
        return WaitBackoff(container=spec.name, kind=kind, delay_s=entry.delay_s, remaining_s=remaining,
                           message=message)
    return StartContainer(container=spec.name, kind=kind, attempt=attempt,
                          restart_count=latest.restart_count + 1, backoff_key=key,
                          backoff_next=next_backoff(entry, finished, ctx.policy))


def _kill(o, grace_s, reason, message="", pre_stop=False) -> KillContainer:
    return KillContainer(container_id=o.id, container=o.container, kind=o.kind, grace_s=float(grace_s),
                         reason=reason, message=message, pre_stop=pre_stop)


def _kill_sandbox(sb, grace_s=SANDBOX_STOP_S) -> KillContainer:
    return KillContainer(container_id=sb.id, container=sb.container, kind=SANDBOX, grace_s=float(grace_s),
                         reason="StopSandbox")


def _stop_next(pod, mine, grace_s, reason) -> list:
    """The next group of a finished pod to stop, in sidecars.stop_order."""
    running = [o for o in mine if o.running]
    group, with_sandbox = sidecars.stop_order(pod, running)
    actions = [_kill(o, grace_s, reason, pre_stop=_has_hooks(pod, o)) for o in group]
    if with_sandbox:
        actions += [_kill_sandbox(o) for o in running if o.kind == SANDBOX]
    return actions


def _stop_sandbox_pod(ctx, sb, reason, stopping=frozenset()) -> list:
    """A pod done in sandbox sb (its app containers finished, or an init container failed
    under Never): stop its sidecars in order, then sb. Nothing is (re)started.
    stopping: ids of containers this plan already kills (a failed liveness probe under
    Never): the sidecars wait for them; the sandbox goes with them if no sidecar runs."""
    running = [o for o in ctx.mine if o.id not in stopping and o.running
               and (o.kind == SANDBOX and o.id == sb.id or o.kind != SANDBOX and o.sandbox_id == sb.id)]
    if stopping:
        if any(sidecars.observed_is_sidecar(ctx.pod, o) for o in running):
            return []
        return [_kill_sandbox(o) for o in running if o.kind == SANDBOX]
    return _stop_next(ctx.pod, running, ctx.grace_s, reason)


def _kill_all_now(mine, reason) -> list:
    """Every running container at once, grace 0 (no preStop, SIGKILL; sidecar order is moot),
    then the sandbox: the kubelet's local storage eviction."""
    running = [o for o in mine if o.running]
    return ([_kill(o, 0, reason) for o in running if o.kind != SANDBOX]
            + [_kill_sandbox(o) for o in running if o.kind == SANDBOX])


def _has_hooks(pod, o) -> bool:
    """Whether stopping o runs its preStop hook: app containers and sidecars have a lifecycle."""
    return o.kind == APP or sidecars.observed_is_sidecar(pod, o)


def _gc(mine) -> list:
    """Remove exited instances older than the latest KEEP_INSTANCES of each container,
    and every exited sandbox but the latest."""
    groups = {}
    for o in mine:
        groups.setdefault((o.kind, o.container), []).append(o)
    out = []
    for (kind, _), group in sorted(groups.items()):
        group.sort(key=lambda o: (o.attempt, o.started_at), reverse=True)
        keep = 1 if kind == SANDBOX else KEEP_INSTANCES
        out += [RemoveContainer(container_id=o.id, container=o.container)
                for o in group[keep:] if not o.running]
    return out
