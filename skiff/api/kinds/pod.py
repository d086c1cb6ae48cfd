"""Pod: one or more containers sharing a network namespace and volumes, bound to a node."""

from skiff.api import objects_pb2 as pb
from skiff.api.kinds.registry import Kind, StoreHooks, register

DEFAULT_TERMINATION_GRACE_S = 30


def carry_over(new: pb.Pod, old: pb.Pod) -> None:
    """A re-applied manifest does not name the node the pod was bound to: keep it."""
    if not new.spec.node_name:
        new.spec.node_name = old.spec.node_name


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


POD = register(Kind(
    "Pod", "v1", "pods", ("po",), True, pb.Pod, "pod", True,
    carry_over=carry_over,
    quantity_fields=("skiff.api.ResourceRequirements.limits", "skiff.api.ResourceRequirements.requests",
                     "skiff.api.EmptyDirVolumeSource.size_limit"),
    field_selectors={"spec.nodeName": lambda p: p.spec.node_name,
                     "status.phase": lambda p: p.status.phase},
    in_get_all=True,
    store=StoreHooks(graceful_delete_s=graceful_delete_s),
))
