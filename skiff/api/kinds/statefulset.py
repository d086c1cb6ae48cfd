"""StatefulSet (apps/v1): numbered pods with stable names, hostnames and DNS names.

Admission follows kube-apiserver's apps/v1 defaults and
pkg/apis/apps/validation (ValidateStatefulSetSpec / ValidateStatefulSetUpdate):
- defaults: replicas 1, podManagementPolicy OrderedReady, updateStrategy
  RollingUpdate with rollingUpdate.partition 0, revisionHistoryLimit 10, the pod
  template's spec defaults;
- the template rules every workload shares (selector required and matching the
  template's labels, restartPolicy Always, no activeDeadlineSeconds: workloads.py);
- serviceName is optional (Kubernetes marked it so in 1.33: a StatefulSet
  without one gets pods without a subdomain); when set it becomes every pod's
  spec.subdomain, so it must be a DNS-1123 label;
- on update only replicas, template, updateStrategy, revisionHistoryLimit and
  minReadySeconds may change: anything else (selector, serviceName,
  podManagementPolicy) is refused with Kubernetes' one message on `spec`;
- refused as not supported yet: volumeClaimTemplates, persistentVolumeClaimRetentionPolicy
  and ordinals (not in skiff's API: the decoder says so, see unsupported.NOT_IN_API) and
  rollingUpdate.maxUnavailable (behind Kubernetes' alpha MaxUnavailableStatefulSet gate:
  updates go one pod at a time).
revisionHistoryLimit bounds the templates the controller remembers in place of
ControllerRevision objects, which skiff does not have yet (controlplane's statefulset.py).
"""

from skiff.api import objects_pb2 as pb
from skiff.api.errors import FieldError, join
from skiff.api.kinds.registry import Kind, register
from skiff.api.kinds.workloads import _containers, _validate_workload
from skiff.api.defaults import default_pod_spec
from skiff.api.selectors import validate_dns1123_label
from skiff.api.unsupported import FORBIDDEN
from skiff.api.validation import check, forbidden, int_or_string_set, invalid, non_negative, required

ORDERED_READY = "OrderedReady"
PARALLEL = "Parallel"
POD_MANAGEMENT_POLICIES = (ORDERED_READY, PARALLEL)
ROLLING_UPDATE = "RollingUpdate"
ON_DELETE = "OnDelete"
UPDATE_STRATEGIES = (ROLLING_UPDATE, ON_DELETE)

# What ValidateStatefulSetUpdate lets change (proto field names of StatefulSetSpec), and its message.
MUTABLE_SPEC_FIELDS = ("replicas", "template", "update_strategy", "revision_history_limit", "min_ready_seconds")
IMMUTABLE_MESSAGE = ("updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
                     "'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' "
                     "and 'minReadySeconds' are forbidden")


# ---------------------------------------------------------------- admission

def _defaults(sts: pb.StatefulSet) -> None:
    spec = sts.spec
    if not spec.HasField("replicas"):
        spec.replicas = 1
    if not spec.pod_management_policy:
        spec.pod_management_policy = ORDERED_READY
    if not spec.update_strategy.type:
        spec.update_strategy.type = ROLLING_UPDATE
    if spec.update_strategy.type == ROLLING_UPDATE and not spec.update_strategy.rolling_update.HasField("partition"):
        spec.update_strategy.rolling_update.partition = 0
    if not spec.HasField("revision_history_limit"):
        spec.revision_history_limit = 10
    default_pod_spec(spec.template.spec)


def _validate(sts: pb.StatefulSet, errs) -> None:
    spec = sts.spec
    _validate_workload(spec, "StatefulSet", errs)
    policy = spec.pod_management_policy
    if not policy:
        required(errs, "spec.podManagementPolicy")
    elif policy not in POD_MANAGEMENT_POLICIES:
        invalid(errs, "spec.podManagementPolicy", policy, f"must be '{ORDERED_READY}' or '{PARALLEL}'")
    _validate_update_strategy(spec.update_strategy, "spec.updateStrategy", errs)
    if spec.HasField("revision_history_limit"):
        non_negative(errs, "spec.revisionHistoryLimit", spec.revision_history_limit)
    if spec.service_name:
        check(errs, "spec.serviceName", spec.service_name, validate_dns1123_label(spec.service_name))


def _validate_update_strategy(st: pb.StatefulSetUpdateStrategy, path, errs) -> None:
    rpath = join(path, "rollingUpdate")
    if not st.type:
        required(errs, path)
    elif st.type == ON_DELETE:
        if st.HasField("rolling_update"):
            invalid(errs, rpath, "{...}", f"only allowed for updateStrategy '{ROLLING_UPDATE}'")
    elif st.type == ROLLING_UPDATE:
        ru = st.rolling_update
        if ru.HasField("partition"):
            non_negative(errs, join(rpath, "partition"), ru.partition)
        if int_or_string_set(ru.max_unavailable):
            errs.append(FieldError(join(rpath, "maxUnavailable"), f"{FORBIDDEN} (a StatefulSet updates one "
                                   "pod at a time, as Kubernetes does without its alpha MaxUnavailableStatefulSet "
                                   "feature; remove maxUnavailable)"))
    else:
        invalid(errs, path, st.type, f"must be '{ROLLING_UPDATE}' or '{ON_DELETE}'")


def _validate_update(new: pb.StatefulSet, old: pb.StatefulSet, errs) -> None:
    a, b = pb.StatefulSetSpec(), pb.StatefulSetSpec()
    a.CopyFrom(new.spec)
    b.CopyFrom(old.spec)
    for name in MUTABLE_SPEC_FIELDS:
        a.ClearField(name)
        b.ClearField(name)
    if a != b:
        forbidden(errs, "spec", IMMUTABLE_MESSAGE)


# ---------------------------------------------------------------- presentation

def _row(sts: pb.StatefulSet):
    """kubectl's columns: READY readyReplicas/spec.replicas; wide: CONTAINERS IMAGES."""
    want = sts.spec.replicas if sts.spec.HasField("replicas") else 1
    names, images = _containers(sts.spec.template)
    return [f"{sts.status.ready_replicas}/{want}"], [names, images]


def _describe(sts: pb.StatefulSet) -> str:
    spec, status = sts.spec, sts.status
    want = spec.replicas if spec.HasField("replicas") else 1
    lines = [f"Replicas:           {want} desired | {status.replicas} total",
             f"Update Strategy:    {spec.update_strategy.type}"]
    if spec.update_strategy.type == ROLLING_UPDATE:
        lines.append(f"  Partition:        {spec.update_strategy.rolling_update.partition}")
    lines += [f"Pod Management:     {spec.pod_management_policy}",
              f"Service Name:       {spec.service_name or '<none>'}",
              f"Current Revision:   {status.current_revision or '<none>'}",
              f"Update Revision:    {status.update_revision or '<none>'}"]
    return "\n".join(lines)


STATEFUL_SET = register(Kind(
    "StatefulSet", "apps/v1", "statefulsets", ("sts",), True, pb.StatefulSet, "stateful_set", True,
    defaults=_defaults, validate=_validate, validate_update=_validate_update,
    scale=True, owns=("Pod",),
    columns=("READY", "AGE"), wide_columns=("CONTAINERS", "IMAGES"),
    row=_row, describe=_describe,
    in_get_all=True,
))
