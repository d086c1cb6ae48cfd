"""PodDisruptionBudget (policy/v1): how many of an application's pods voluntary
disruptions (an eviction, `skiff drain`) may take down at once.

Rules, as Kubernetes' (pkg/apis/policy/validation, pkg/registry/policy/poddisruptionbudget):
- exactly one of spec.minAvailable / spec.maxUnavailable (Kubernetes refuses both;
  skiff also refuses neither, which in Kubernetes is a budget that blocks every
  eviction of its pods forever); each an integer >= 0 or a percentage up to 100%;
- spec.selector: a valid label selector. Unset selects no pod; set but empty selects
  every pod of the namespace (policy/v1's rule; v1beta1's empty selector matched
  nothing) — selects() is that rule, used by the disruption controller and by the
  eviction check in the replicated apply alike;
- spec.unhealthyPodEvictionPolicy: IfHealthyBudget or AlwaysAllow; unset stays unset
  and means IfHealthyBudget (Kubernetes does not default it either);
- the spec may change (policy/v1); status belongs to the disruption controller and to
  evictions (status.disruptionsAllowed, status.disruptedPods): a create stores none.

Eviction (policy/v1) has no kind record on purpose: it is created, never stored, so
it must not be gettable or listable. The API server recognises an Eviction in a
Create's envelope before it decodes a kind (controlplane/apiserver/eviction.py).
"""

from skiff.api import objects_pb2 as pb
from skiff.api import selectors
from skiff.api.display import indent, kv
from skiff.api.errors import FieldError
from skiff.api.kinds.registry import Kind, StoreHooks, register
from skiff.api.validation import enum, int_or_percent, int_or_string_set, int_or_string_value, invalid, \
    validate_label_selector

IF_HEALTHY_BUDGET = "IfHealthyBudget"
ALWAYS_ALLOW = "AlwaysAllow"
UNHEALTHY_POD_EVICTION_POLICIES = (IF_HEALTHY_BUDGET, ALWAYS_ALLOW)

# status.conditions: the one condition, its reasons (policy/v1 constants).
DISRUPTION_ALLOWED = "DisruptionAllowed"
SUFFICIENT_PODS = "SufficientPods"
INSUFFICIENT_PODS = "InsufficientPods"
SYNC_FAILED = "SyncFailed"

# What a refused eviction says (Kubernetes' 429 TooManyRequests text, which kubectl
# drain prints before "will retry").
BUDGET_VIOLATED = "Cannot evict pod as it would violate the pod's disruption budget."


def unhealthy_pod_eviction_policy(pdb: pb.PodDisruptionBudget) -> str:
    """The policy in force: unset means IfHealthyBudget."""
    spec = pdb.spec
    return spec.unhealthy_pod_eviction_policy if spec.HasField("unhealthy_pod_eviction_policy") \
        else IF_HEALTHY_BUDGET


def selects(pdb: pb.PodDisruptionBudget, labels) -> bool:
    """Whether the budget covers a pod with these labels (same namespace assumed):
    no selector = nothing, an empty one = everything, an invalid one = nothing."""
    if not pdb.spec.HasField("selector"):
        return False
    try:
        return selectors.from_label_selector(pdb.spec.selector).matches(labels)
    except ValueError:
        return False


# ---------------------------------------------------------------- admission

def _validate(pdb: pb.PodDisruptionBudget, errs) -> None:
    spec = pdb.spec
    has_min, has_max = int_or_string_set(spec.min_available), int_or_string_set(spec.max_unavailable)
    if has_min and has_max:
        errs.append(FieldError("spec", "Invalid value: minAvailable and maxUnavailable cannot be both set"))
    elif not has_min and not has_max:
        errs.append(FieldError("spec", "Required value: one of minAvailable or maxUnavailable"))
    for path, value in (("spec.minAvailable", spec.min_available), ("spec.maxUnavailable", spec.max_unavailable)):
        parsed = int_or_percent(value, path, errs)
        if parsed is not None and parsed[1] and parsed[0] > 100:
            invalid(errs, path, value.str_val, "must not be greater than 100%")
    if spec.HasField("selector"):
        validate_label_selector(spec.selector, "spec.selector", errs)
    if spec.HasField("unhealthy_pod_eviction_policy"):
        enum(errs, "spec.unhealthyPodEvictionPolicy", spec.unhealthy_pod_eviction_policy,
             UNHEALTHY_POD_EVICTION_POLICIES)


# ---------------------------------------------------------------- presentation

def _shown(v: pb.IntOrString) -> str:
    return str(int_or_string_value(v)) if int_or_string_set(v) else "N/A"


def _row(pdb):
    return [_shown(pdb.spec.min_available), _shown(pdb.spec.max_unavailable),
            str(pdb.status.disruptions_allowed)], []


def _describe(pdb) -> str:
    """kubectl's: the budget, the selector, then the status counts."""
    spec, st = pdb.spec, pdb.status
    rows = []
    if int_or_string_set(spec.min_available):
        rows.append(("Min available", _shown(spec.min_available)))
    if int_or_string_set(spec.max_unavailable):
        rows.append(("Max unavailable", _shown(spec.max_unavailable)))
    selector = "<unset>"
    if spec.HasField("selector"):
        try:
            selector = str(selectors.from_label_selector(spec.selector)) or "<all pods>"
        except ValueError:
            selector = "<invalid>"
    rows.append(("Selector", selector))
    status = kv([("Allowed disruptions", str(st.disruptions_allowed)), ("Current", str(st.current_healthy)),
                 ("Desired", str(st.desired_healthy)), ("Total", str(st.expected_pods))], width=22)
    return "\n".join([kv(rows), "Status:", indent(status, 4)])


POD_DISRUPTION_BUDGET = register(Kind(
    "PodDisruptionBudget", "policy/v1", "poddisruptionbudgets", ("pdb",), True, pb.PodDisruptionBudget,
    "pod_disruption_budget", True,
    validate=_validate,
    columns=("MIN AVAILABLE", "MAX UNAVAILABLE", "ALLOWED DISRUPTIONS", "AGE"), row=_row,
    describe=_describe,
    store=StoreHooks(status_from_controller_only=True),
))
