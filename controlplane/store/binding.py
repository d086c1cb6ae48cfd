"""The binding subresource: a pod gets its node and its PodScheduled condition in one write.

Kubernetes' Binding (pkg/registry/core/pod/storage) sets spec.nodeName and
PodScheduled=True in the same etcd write; so does skiff, inside the replicated
apply. Pure and deterministic like the rest of the apply: the time comes from the
command, and a refusal is returned (code, message), never raised.

Rules (as Kubernetes): only a pod no node holds yet, and that is not being deleted,
can be bound (anything else is a Conflict: a pod is never moved), and only once its
schedulingGates are all removed; the node name is required.
"""


def supports(kind) -> bool:
    """Kinds that can be bound: their spec has nodeName and their status has conditions."""
    fields = kind.message.DESCRIPTOR.fields_by_name
    spec, status = fields.get("spec"), fields.get("status")
    return (spec is not None and spec.message_type is not None
            and "node_name" in spec.message_type.fields_by_name
            and status is not None and status.message_type is not None
            and "conditions" in status.message_type.fields_by_name)


def bind(pod, target, now: str):
    """Bind pod (a fresh copy of the stored pod, mutated in place) to target.spec.nodeName.

    Returns None, or (error code, message) and leaves the decision to the caller.
    """
    node = target.spec.node_name
    name = pod.metadata.name
    if not node:
        return ("invalid", f'Binding of pod "{name}" is invalid: spec.nodeName: Required value')
    if pod.metadata.deletion_timestamp:
        return ("conflict", f'pod "{name}" is being deleted, cannot be assigned to a host')
    if pod.spec.node_name:
        return ("conflict", f'pod "{name}" is already assigned to node "{pod.spec.node_name}"')
    if pod.spec.scheduling_gates:
        return ("conflict", f'pod "{name}" has non-empty .spec.schedulingGates')
    pod.spec.node_name = node
    set_condition(pod.status.conditions, "PodScheduled", "True", now)
    return None


def set_condition(conditions, ctype: str, status: str, now: str, reason: str = "", message: str = ""):
    """Set a condition in place; lastTransitionTime moves only when the status changes."""
    for cond in conditions:
        if cond.type == ctype:
            if cond.status != status:
                cond.last_transition_time = now
            cond.status, cond.reason, cond.message = status, reason, message
            return
    conditions.add(type=ctype, status=status, reason=reason, message=message, last_transition_time=now)
