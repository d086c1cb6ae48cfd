"""Pod: one or more containers sharing a network namespace and volumes, bound to a node."""

from skiff.api import objects_pb2 as pb
from skiff.api.defaults import default_pod_spec
from skiff.api.display import indent, kv
from skiff.api.kinds.registry import Kind, StoreHooks, register
from skiff.api.podspec_validation import validate_pod_spec
from skiff.api.validation import changed_fields, forbidden, invalid
from skiff.api.wellknown import is_sidecar

DEFAULT_TERMINATION_GRACE_S = 30


# ---------------------------------------------------------------- admission

def _defaults(pod: pb.Pod) -> None:
    default_pod_spec(pod.spec)


def _validate(pod: pb.Pod, errs) -> None:
    validate_pod_spec(pod.spec, "spec", errs)
    if pod.spec.node_name and pod.spec.scheduling_gates:
        forbidden(errs, "spec.nodeName", "cannot be set until all schedulingGates have been cleared")

POD_UPDATE_FORBIDDEN = ("pod updates may not change fields other than `spec.containers[*].image`, "
                        "`spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, "
                        "`spec.tolerations` (only additions to existing tolerations) or `spec.nodeName` "
                        "(only from empty, when binding)")


def _validate_update(new: pb.Pod, old: pb.Pod, errs) -> None:
    """Only images, activeDeadlineSeconds, toleration additions, scheduling-gate removals
    and binding may change."""
    masked = pb.PodSpec()
    masked.CopyFrom(new.spec)
    _update_scheduling_gates(new.spec, old.spec, errs)
    del masked.scheduling_gates[:]
    masked.scheduling_gates.extend(old.spec.scheduling_gates)
    for group, old_group in ((masked.containers, old.spec.containers),
                             (masked.init_containers, old.spec.init_containers)):
        for c, old_c in zip(group, old_group):
            c.image = old_c.image
    _update_active_deadline(new.spec, old.spec, errs)
    if old.spec.HasField("active_deadline_seconds"):
        masked.active_deadline_seconds = old.spec.active_deadline_seconds
    else:
        masked.ClearField("active_deadline_seconds")
    new_tolerations = list(new.spec.tolerations)
    if all(t in new_tolerations for t in old.spec.tolerations):
        del masked.tolerations[:]
        masked.tolerations.extend(old.spec.tolerations)
    if not old.spec.node_name:
        masked.node_name = ""
    if masked != old.spec:
        changed = ", ".join(changed_fields(masked, old.spec, "spec"))
        forbidden(errs, "spec", f"{POD_UPDATE_FORBIDDEN} (changed: {changed})")


def _update_scheduling_gates(new: pb.PodSpec, old: pb.PodSpec, errs) -> None:
    """Gates are set at creation and only removed afterwards (Kubernetes'
    validateOnlyDeletedSchedulingGates); a pod bound to a node has none left to add."""
    old_names = {g.name for g in old.scheduling_gates}
    for gate in new.scheduling_gates:
        if gate.name not in old_names:
            forbidden(errs, "spec.schedulingGates",
                      f"only deletion is allowed, but found new scheduling gate '{gate.name}'")
    if new.scheduling_gates and new.node_name and not old.node_name:
        forbidden(errs, "spec.nodeName", "cannot be set until all schedulingGates have been cleared")


def _update_active_deadline(new: pb.PodSpec, old: pb.PodSpec, errs) -> None:
    """activeDeadlineSeconds may be added or lowered, never removed or raised."""
    path = "spec.activeDeadlineSeconds"
    if not old.HasField("active_deadline_seconds"):
        return
    if not new.HasField("active_deadline_seconds"):
        forbidden(errs, path, "may not be removed once set")
    elif new.active_deadline_seconds > old.active_deadline_seconds:
        invalid(errs, path, new.active_deadline_seconds,
                f"must be less than or equal to the previous value {old.active_deadline_seconds}")


def carry_over(new: pb.Pod, old: pb.Pod) -> None:
    """A re-applied manifest does not name the node the pod was bound to, nor the service
    account, token mount and imagePullSecrets the ServiceAccount admission plugin filled
    in: keep them."""
    if not new.spec.node_name:
        new.spec.node_name = old.spec.node_name
    if not new.spec.service_account_name:
        new.spec.service_account_name = old.spec.service_account_name
    if not new.spec.HasField("automount_service_account_token") and \
            old.spec.HasField("automount_service_account_token"):
        new.spec.automount_service_account_token = old.spec.automount_service_account_token
    if not new.spec.image_pull_secrets:
        new.spec.image_pull_secrets.extend(old.spec.image_pull_secrets)


# ---------------------------------------------------------------- the replicated apply

def graceful_delete_s(pod: pb.Pod, requested_s) -> int:
    """A bound pod is stopped by its node first: deleting marks it with a grace period
    (the request's, else terminationGracePeriodSeconds, else 30 s); 0 removes it at once.
    A pod no node holds yet is removed at once."""
    if not pod.spec.node_name:
        return 0
    if requested_s is None:
        return (pod.spec.termination_grace_period_seconds
                if pod.spec.HasField("termination_grace_period_seconds") else DEFAULT_TERMINATION_GRACE_S)
    return requested_s


# ---------------------------------------------------------------- presentation

def pod_status(p) -> str:
    """kubectl's STATUS column: Terminating, Init:N/M, a container's waiting or terminated
    reason, SchedulingGated (PodScheduled=False for that reason), else the phase."""
    if p.metadata.deletion_timestamp:
        return "Terminating"
    reason = p.status.reason or p.status.phase or "Pending"
    if any(c.type == "PodScheduled" and c.reason == "SchedulingGated" for c in p.status.conditions):
        reason = "SchedulingGated"
    side = _sidecars(p)
    initialized = any(c.type == "Initialized" and c.status == "True" for c in p.status.conditions)
    for i, cs in enumerate([] if initialized else p.status.init_container_statuses):
        if cs.name in side and cs.started:
            continue  # a started sidecar is done initializing (kubectl's printer)
        if cs.state.HasField("terminated") and cs.state.terminated.exit_code != 0:
            return f"Init:{cs.state.terminated.reason or 'Error'}"
        if cs.state.HasField("waiting") and cs.state.waiting.reason not in ("", "PodInitializing"):
            return f"Init:{cs.state.waiting.reason}"
        if not (cs.state.HasField("terminated") and cs.state.terminated.exit_code == 0):
            return f"Init:{i}/{len(p.spec.init_containers)}"
    for cs in p.status.container_statuses:
        if cs.state.HasField("waiting") and cs.state.waiting.reason:
            reason = cs.state.waiting.reason
        elif cs.state.HasField("terminated") and cs.state.terminated.reason:
            reason = cs.state.terminated.reason
    return reason


def _sidecars(p) -> set:
    """Names of the pod's sidecars (init containers with restartPolicy Always)."""
    return {c.name for c in p.spec.init_containers if is_sidecar(c)}


def _row(p):
    # kubectl's: sidecars count in READY; RESTARTS counts init containers' restarts too.
    side = _sidecars(p)
    ready = sum(1 for cs in p.status.container_statuses if cs.ready)
    ready += sum(1 for cs in p.status.init_container_statuses if cs.name in side and cs.ready)
    restarts = sum(cs.restart_count for cs in list(p.status.container_statuses) + list(p.status.init_container_statuses))
    return ([f"{ready}/{len(p.spec.containers) + len(side)}", pod_status(p), str(restarts)],
            [p.status.pod_ip or "<none>", p.spec.node_name or "<none>"])


def describe_probe(probe) -> str:
    """kubectl describe's one line for a probe: the action, then its timing."""
    attrs = (f"delay={probe.initial_delay_seconds}s timeout={probe.timeout_seconds}s "
             f"period={probe.period_seconds}s #success={probe.success_threshold} "
             f"#failure={probe.failure_threshold}")

    def port(p):
        return p.str_val if p.HasField("str_val") else str(p.int_val)

    if probe.HasField("exec"):
        return f"exec [{' '.join(probe.exec.command)}] {attrs}"
    if probe.HasField("http_get"):
        a = probe.http_get
        return f"http-get {(a.scheme or 'HTTP').lower()}://{a.host}:{port(a.port)}{a.path} {attrs}"
    if probe.HasField("tcp_socket"):
        return f"tcp-socket {probe.tcp_socket.host}:{port(probe.tcp_socket.port)} {attrs}"
    if probe.HasField("grpc"):
        service = f"{probe.grpc.service} " if probe.grpc.service else ""
        return f"grpc <pod>:{probe.grpc.port} {service}{attrs}"
    return f"unknown {attrs}"


def _describe(p) -> str:
    rows = [("Node", p.spec.node_name or "<none>"), ("Start Time", p.status.start_time or "<none>"),
            ("Status", pod_status(p))]
    # kubectl describe's Reason and Message lines, when the pod has them (e.g. Evicted).
    rows += [(k, v) for k, v in (("Reason", p.status.reason), ("Message", p.status.message)) if v]
    rows.append(("IP", p.status.pod_ip or "<none>"))
    lines = [kv(rows)]
    if p.spec.init_containers:
        lines.append("Init Containers:")
        lines += _describe_containers(p.spec.init_containers, p.status.init_container_statuses, _sidecars(p))
    lines.append("Containers:")
    lines += _describe_containers(p.spec.containers, p.status.container_statuses, set())
    if p.status.conditions:
        lines.append("Conditions:")
        lines.append(indent(kv([(c.type, c.status) for c in p.status.conditions]), 2))
    return "\n".join(lines)


def _describe_containers(specs, container_statuses, sidecars) -> list:
    lines = []
    statuses = {cs.name: cs for cs in container_statuses}
    for c in specs:
        cs = statuses.get(c.name)
        state = "Waiting"
        if cs is not None:
            state = ("Running" if cs.state.HasField("running") else
                     "Terminated" if cs.state.HasField("terminated") else
                     f"Waiting ({cs.state.waiting.reason})" if cs.state.waiting.reason else "Waiting")
        lines.append(f"  {c.name}:")
        lines.append(indent(kv([
            ("Image", c.image),
            ("Container ID", cs.container_id if cs else "<none>"),
            ("State", state),
            ("Ready", str(cs.ready) if cs else "False"),
            ("Restart Count", str(cs.restart_count) if cs else "0"),
        ] + ([("Restart Policy", "Always")] if c.name in sidecars else [])
          + [(title, describe_probe(getattr(c, field)))
             for field, title in (("liveness_probe", "Liveness"), ("readiness_probe", "Readiness"),
                                  ("startup_probe", "Startup")) if c.HasField(field)]), 4))
    return lines


POD = register(Kind(
    "Pod", "v1", "pods", ("po",), True, pb.Pod, "pod", True,
    defaults=_defaults, validate=_validate, validate_update=_validate_update,
    carry_over=carry_over,
    quantity_fields=("skiff.api.ResourceRequirements.limits", "skiff.api.ResourceRequirements.requests",
                     "skiff.api.EmptyDirVolumeSource.size_limit"),
    field_selectors={"spec.nodeName": lambda p: p.spec.node_name,
                     "status.phase": lambda p: p.status.phase},
    columns=("READY", "STATUS", "RESTARTS", "AGE"), wide_columns=("IP", "NODE"), row=_row,
    describe=_describe,
    in_get_all=True,
    store=StoreHooks(graceful_delete_s=graceful_delete_s),
))
