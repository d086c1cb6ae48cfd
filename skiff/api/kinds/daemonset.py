"""DaemonSet (apps/v1): one pod of a template on every eligible node.

Admission follows Kubernetes' apps validation (pkg/apis/apps/validation,
ValidateDaemonSetSpec / ValidateRollingUpdateDaemonSet):
- the selector must be non-empty and match the template's labels, and may not
  change (shared with ReplicaSet and Deployment: workloads._validate_workload);
- the template's restartPolicy must be Always (defaulted);
- updateStrategy.type is RollingUpdate (default) or OnDelete; rollingUpdate only
  with RollingUpdate;
- maxUnavailable / maxSurge are ints >= 0 or percentages <= 100%, and exactly ONE
  of them is non-zero: both zero is "Required value: cannot be 0 when maxSurge is
  0" on maxUnavailable, both non-zero is "may not be set when maxUnavailable is
  non-zero" on maxSurge (a DaemonSet surges OR removes first, never both);
- defaults: maxUnavailable 1, maxSurge 0, revisionHistoryLimit 10.
The controller (controlplane/controllers/daemonset.py) owns its pods; `drain`
leaves them (daemon=True).
"""

from skiff.api import objects_pb2 as pb
from skiff.api.defaults import default_pod_spec
from skiff.api.display import indent, kv
from skiff.api.errors import join
from skiff.api.kinds.registry import Kind, register
from skiff.api.kinds.workloads import _containers, _selector_shown, _validate_workload, _validate_workload_update
from skiff.api.validation import (enum, forbidden, int_or_percent, int_or_string_set, int_or_string_value,
                                  invalid, non_negative, required)

UPDATE_STRATEGIES = ("RollingUpdate", "OnDelete")


# ---------------------------------------------------------------- admission

def _defaults(ds: pb.DaemonSet) -> None:
    spec = ds.spec
    if not spec.update_strategy.type:
        spec.update_strategy.type = "RollingUpdate"
    if spec.update_strategy.type == "RollingUpdate":
        ru = spec.update_strategy.rolling_update
        if not int_or_string_set(ru.max_unavailable):
            ru.max_unavailable.int_val = 1
        if not int_or_string_set(ru.max_surge):
            ru.max_surge.int_val = 0
    if not spec.HasField("revision_history_limit"):
        spec.revision_history_limit = 10
    default_pod_spec(spec.template.spec)


def _validate(ds: pb.DaemonSet, errs) -> None:
    spec = ds.spec
    _validate_workload(spec, "DaemonSet", errs)
    if spec.HasField("revision_history_limit"):
        non_negative(errs, "spec.revisionHistoryLimit", spec.revision_history_limit)
    _validate_strategy(spec.update_strategy, "spec.updateStrategy", errs)


def _validate_strategy(st: pb.DaemonSetUpdateStrategy, path, errs) -> None:
    enum(errs, join(path, "type"), st.type, UPDATE_STRATEGIES)
    rpath = join(path, "rollingUpdate")
    if st.type == "OnDelete" and st.HasField("rolling_update"):
        forbidden(errs, rpath, "may not be specified when strategy `type` is 'OnDelete'")
        return
    if st.type != "RollingUpdate":
        return
    ru = st.rolling_update
    values = {}
    for name, v in (("maxUnavailable", ru.max_unavailable), ("maxSurge", ru.max_surge)):
        parsed = int_or_percent(v, join(rpath, name), errs)
        if parsed is not None and parsed[1] and parsed[0] > 100:
            invalid(errs, join(rpath, name), v.str_val, "must not be greater than 100%")
        values[name] = parsed
    if values["maxUnavailable"] is None or values["maxSurge"] is None:
        return
    has_unavailable, has_surge = values["maxUnavailable"][0] != 0, values["maxSurge"][0] != 0
    if has_unavailable and has_surge:
        invalid(errs, join(rpath, "maxSurge"), int_or_string_value(ru.max_surge),
                "may not be set when maxUnavailable is non-zero")
    elif not has_unavailable and not has_surge:
        required(errs, join(rpath, "maxUnavailable"), "cannot be 0 when maxSurge is 0")


# ---------------------------------------------------------------- presentation

def _node_selector_shown(template) -> str:
    """kubectl's NODE SELECTOR column: the template's nodeSelector, k=v joined by ','."""
    sel = template.spec.node_selector
    return ",".join(f"{k}={v}" for k, v in sorted(sel.items())) or "<none>"


def _row(ds):
    st = ds.status
    names, images = _containers(ds.spec.template)
    return ([str(st.desired_number_scheduled), str(st.current_number_scheduled), str(st.number_ready),
             str(st.updated_number_scheduled), str(st.number_available), _node_selector_shown(ds.spec.template)],
            [names, images, _selector_shown(ds.spec.selector)])


def _describe(ds) -> str:
    """kubectl describe daemonset's counts (its Pods Status line needs the pods: not here)."""
    st = ds.status
    rows = [("Selector", _selector_shown(ds.spec.selector)),
            ("Node-Selector", _node_selector_shown(ds.spec.template)),
            ("Update Strategy", ds.spec.update_strategy.type or "RollingUpdate"),
            ("Desired Number of Nodes Scheduled", str(st.desired_number_scheduled)),
            ("Current Number of Nodes Scheduled", str(st.current_number_scheduled)),
            ("Number of Nodes Scheduled with Up-to-date Pods", str(st.updated_number_scheduled)),
            ("Number of Nodes Scheduled with Available Pods", str(st.number_available)),
            ("Number of Nodes Misscheduled", str(st.number_misscheduled))]
    names, images = _containers(ds.spec.template)
    width = max(len(k) for k, _ in rows) + 2    # kubectl pads every label to the longest one
    return "\n".join([kv(rows, width), "Pod Template:", indent(kv([("Containers", names), ("Images", images)]), 2)])


DAEMON_SET = register(Kind(
    "DaemonSet", "apps/v1", "daemonsets", ("ds",), True, pb.DaemonSet, "daemon_set", True,
    defaults=_defaults, validate=_validate, validate_update=_validate_workload_update,
    owns=("Pod",), daemon=True,
    columns=("DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR", "AGE"),
    wide_columns=("CONTAINERS", "IMAGES", "SELECTOR"),
    row=_row, describe=_describe,
    in_get_all=True,
))
