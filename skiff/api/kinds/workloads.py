"""Workload controllers' kinds (apps/v1): ReplicaSet and Deployment.

Both keep a number of pods from one template; they share the template's rules
(a selector that matches the template's labels, restartPolicy Always) and the
immutability of the selector. A Deployment owns ReplicaSets, a ReplicaSet owns Pods.
"""

from skiff.api import objects_pb2 as pb
from skiff.api import selectors
from skiff.api.defaults import default_pod_spec
from skiff.api.display import format_rows, indent, kv
from skiff.api.errors import FieldError, join
from skiff.api.kinds.registry import Kind, register
from skiff.api.podspec_validation import validate_pod_spec
from skiff.api.validation import (
    enum, forbidden, immutable, int_or_percent, int_or_string_set, int_or_string_value, invalid, non_negative,
    required, show,
    validate_label_selector, validate_template_meta,
)


# ---------------------------------------------------------------- admission

STRATEGY_TYPES = ("RollingUpdate", "Recreate")


def _validate_workload(spec, kind_name: str, errs) -> None:
    """What ReplicaSet, Deployment and DaemonSet specs share: replicas (when the kind has
    them), minReadySeconds, selector, template."""
    if "replicas" in spec.DESCRIPTOR.fields_by_name and spec.HasField("replicas"):
        non_negative(errs, "spec.replicas", spec.replicas)
    non_negative(errs, "spec.minReadySeconds", spec.min_ready_seconds)
    sel = spec.selector
    selector = None
    if not sel.match_labels and not sel.match_expressions:
        required(errs, "spec.selector", f"a {kind_name} needs a non-empty selector that matches "
                 "spec.template.metadata.labels (e.g. matchLabels: {app: web})")
    else:
        before = len(errs)
        validate_label_selector(sel, "spec.selector", errs)
        if len(errs) == before:
            selector = selectors.from_label_selector(sel)
    validate_template(spec.template, selector, kind_name, errs)


def validate_template(template, selector, kind_name: str, errs) -> None:
    """The pod template rules every replicating kind shares: the template's metadata, a
    selector (None: missing or invalid, already reported) that matches its labels, the pod
    spec, restartPolicy Always, no activeDeadlineSeconds."""
    template_labels = dict(template.metadata.labels)
    validate_template_meta(template.metadata, "spec.template.metadata", errs)
    if selector is not None and not selector.matches(template_labels):
        shown = ",".join(f"{k}={v}" for k, v in sorted(template_labels.items()))
        invalid(errs, "spec.selector", str(selector),
                f"`selector` does not match template `labels` ({shown or 'none'})")
    tspec = template.spec
    validate_pod_spec(tspec, "spec.template.spec", errs)
    if tspec.restart_policy and tspec.restart_policy != "Always":
        errs.append(FieldError("spec.template.spec.restartPolicy",
                               f"Unsupported value: {show(tspec.restart_policy)}: supported values: \"Always\""))
    if tspec.HasField("active_deadline_seconds"):
        forbidden(errs, "spec.template.spec.activeDeadlineSeconds",
                  f"activeDeadlineSeconds in a {kind_name}'s template is not supported")


def _validate_replica_set(rs: pb.ReplicaSet, errs) -> None:
    _validate_workload(rs.spec, "ReplicaSet", errs)


def _validate_deployment(d: pb.Deployment, errs) -> None:
    spec = d.spec
    _validate_workload(spec, "Deployment", errs)
    _validate_strategy(spec.strategy, "spec.strategy", errs)
    if spec.HasField("revision_history_limit"):
        non_negative(errs, "spec.revisionHistoryLimit", spec.revision_history_limit)
    if spec.HasField("progress_deadline_seconds"):
        if spec.progress_deadline_seconds <= 0:
            invalid(errs, "spec.progressDeadlineSeconds", spec.progress_deadline_seconds,
                    "must be greater than 0")
        elif spec.progress_deadline_seconds <= spec.min_ready_seconds:
            invalid(errs, "spec.progressDeadlineSeconds", spec.progress_deadline_seconds,
                    "must be greater than minReadySeconds")


def _validate_strategy(st: pb.DeploymentStrategy, path, errs) -> None:
    enum(errs, join(path, "type"), st.type, STRATEGY_TYPES)
    rpath = join(path, "rollingUpdate")
    if st.type == "Recreate" and st.HasField("rolling_update"):
        forbidden(errs, rpath, "may not be specified when strategy `type` is 'Recreate'")
        return
    if st.type != "RollingUpdate":
        return
    ru = st.rolling_update
    unavailable = int_or_percent(ru.max_unavailable, join(rpath, "maxUnavailable"), errs)
    surge = int_or_percent(ru.max_surge, join(rpath, "maxSurge"), errs)
    if unavailable is not None and unavailable[1] and unavailable[0] > 100:
        invalid(errs, join(rpath, "maxUnavailable"), ru.max_unavailable.str_val, "must not be greater than 100%")
    if unavailable is not None and surge is not None and unavailable[0] == 0 and surge[0] == 0:
        invalid(errs, join(rpath, "maxUnavailable"), int_or_string_value(ru.max_unavailable),
                "may not be 0 when `maxSurge` is 0")


def _validate_workload_update(new, old, errs) -> None:
    if new.spec.selector != old.spec.selector:
        immutable(errs, "spec.selector", str(_selector_text(new.spec.selector)))


def _selector_text(sel: pb.LabelSelector) -> str:
    try:
        return str(selectors.from_label_selector(sel))
    except ValueError:
        return "(invalid)"


# ---------------------------------------------------------------- carry-over

DEPLOYMENT_REVISION = "deployment.kubernetes.io/revision"


def _carry_over_deployment(new: pb.Deployment, old: pb.Deployment) -> None:
    """The controller records the current revision in an annotation; a re-applied manifest
    does not carry it, and kubectl's merge keeps it (else every apply would be a change)."""
    if DEPLOYMENT_REVISION in old.metadata.annotations and DEPLOYMENT_REVISION not in new.metadata.annotations:
        new.metadata.annotations[DEPLOYMENT_REVISION] = old.metadata.annotations[DEPLOYMENT_REVISION]


# ---------------------------------------------------------------- defaults

def _default_replica_set(rs: pb.ReplicaSet) -> None:
    if not rs.spec.HasField("replicas"):
        rs.spec.replicas = 1
    default_pod_spec(rs.spec.template.spec)


def _default_deployment(d: pb.Deployment) -> None:
    spec = d.spec
    if not spec.HasField("replicas"):
        spec.replicas = 1
    if not spec.strategy.type:
        spec.strategy.type = "RollingUpdate"
    if spec.strategy.type == "RollingUpdate":
        rolling = spec.strategy.rolling_update
        if not int_or_string_set(rolling.max_unavailable):
            rolling.max_unavailable.str_val = "25%"
        if not int_or_string_set(rolling.max_surge):
            rolling.max_surge.str_val = "25%"
    if not spec.HasField("revision_history_limit"):
        spec.revision_history_limit = 10
    if not spec.HasField("progress_deadline_seconds"):
        spec.progress_deadline_seconds = 600
    default_pod_spec(spec.template.spec)


# ---------------------------------------------------------------- presentation

def _containers(template):
    """(names, images) of a pod template's containers, comma-separated: the wide columns."""
    cs = template.spec.containers
    return ",".join(c.name for c in cs), ",".join(c.image for c in cs)


def _selector_shown(sel) -> str:
    """kubectl's SELECTOR column: app=web,tier in (a,b)."""
    parts = [f"{k}={v}" for k, v in sorted(sel.match_labels.items())]
    for e in sel.match_expressions:
        parts.append(f"{e.key} {e.operator.lower()} ({','.join(e.values)})")
    return ",".join(parts) or "<none>"


def _deployment_row(d):
    want = d.spec.replicas if d.spec.HasField("replicas") else 1
    names, images = _containers(d.spec.template)
    return ([f"{d.status.ready_replicas}/{want}", str(d.status.updated_replicas),
             str(d.status.available_replicas)], [names, images, _selector_shown(d.spec.selector)])


def _describe_deployment(d) -> str:
    """kubectl's lines: Replicas, StrategyType, MinReadySeconds, RollingUpdateStrategy, Conditions."""
    want = d.spec.replicas if d.spec.HasField("replicas") else 1
    st = d.status
    rows = [("Replicas", f"{want} desired | {st.updated_replicas} updated | {st.replicas} total | "
                         f"{st.available_replicas} available | {st.unavailable_replicas} unavailable"),
            ("StrategyType", d.spec.strategy.type), ("MinReadySeconds", str(d.spec.min_ready_seconds))]
    if d.spec.strategy.type == "RollingUpdate":
        ru = d.spec.strategy.rolling_update
        rows.append(("RollingUpdateStrategy", f"{int_or_string_value(ru.max_unavailable)} max unavailable, "
                                              f"{int_or_string_value(ru.max_surge)} max surge"))
    out = kv(rows, width=24)
    if st.conditions:
        table = [["Type", "Status", "Reason"], ["----", "------", "------"]]
        table += [[c.type, c.status, c.reason] for c in st.conditions]
        out += "\nConditions:\n" + indent(format_rows(table))
    return out


def _replica_set_row(r):
    want = r.spec.replicas if r.spec.HasField("replicas") else 1
    names, images = _containers(r.spec.template)
    return ([str(want), str(r.status.replicas), str(r.status.ready_replicas)],
            [names, images, _selector_shown(r.spec.selector)])


REPLICA_SET = register(Kind(
    "ReplicaSet", "apps/v1", "replicasets", ("rs",), True, pb.ReplicaSet, "replica_set", True,
    defaults=_default_replica_set, validate=_validate_replica_set, validate_update=_validate_workload_update,
    scale=True, owns=("Pod",),
    columns=("DESIRED", "CURRENT", "READY", "AGE"), wide_columns=("CONTAINERS", "IMAGES", "SELECTOR"),
    row=_replica_set_row,
    in_get_all=True,
))

DEPLOYMENT = register(Kind(
    "Deployment", "apps/v1", "deployments", ("deploy",), True, pb.Deployment, "deployment", True,
    defaults=_default_deployment, validate=_validate_deployment, validate_update=_validate_workload_update,
    carry_over=_carry_over_deployment, scale=True, owns=("ReplicaSet",),
    columns=("READY", "UP-TO-DATE", "AVAILABLE", "AGE"), wide_columns=("CONTAINERS", "IMAGES", "SELECTOR"),
    row=_deployment_row, describe=_describe_deployment,
    in_get_all=True,
))
