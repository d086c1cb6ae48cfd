"""Cluster-scoped kinds of the core group: Namespace and Node."""

import ipaddress

from skiff.api import objects_pb2 as pb
from skiff.api import wellknown
from skiff.api.display import condition_status
from skiff.api.errors import join
from skiff.api.kinds.registry import Kind, StoreHooks, register
from skiff.api.selectors import validate_dns1123_label, validate_label_key, validate_label_value
from skiff.api.validation import (
    TAINT_EFFECTS, check, duplicate, enum, invalid, required, validate_quantity,
)


# ---------------------------------------------------------------- Namespace

def _default_namespace(ns: pb.Namespace) -> None:
    if not ns.status.phase:
        ns.status.phase = "Active"


def _validate_namespace(ns: pb.Namespace, errs) -> None:
    enum(errs, "status.phase", ns.status.phase, ("Active", "Terminating"), allow_empty=True)


def _namespace_row(n):
    return [n.status.phase or "Active"], []


NAMESPACE = register(Kind(
    "Namespace", "v1", "namespaces", ("ns",), False, pb.Namespace, "namespace", True,
    defaults=_default_namespace, validate=_validate_namespace,
    name_rule=validate_dns1123_label,   # a namespace's name is a DNS label: it appears in DNS names
    columns=("STATUS", "AGE"), row=_namespace_row,
    # Kubernetes empties a namespace in a controller; skiff removes its objects in the
    # same replicated step as the namespace itself (one event per object).
    store=StoreHooks(cascade_namespace=True),
))


# ---------------------------------------------------------------- Node

def _validate_node(node: pb.Node, errs) -> None:
    seen = set()
    for i, t in enumerate(node.spec.taints):
        tpath = f"spec.taints[{i}]"
        if not t.key:
            required(errs, join(tpath, "key"))
        else:
            check(errs, join(tpath, "key"), t.key, validate_label_key(t.key))
        check(errs, join(tpath, "value"), t.value, validate_label_value(t.value))
        enum(errs, join(tpath, "effect"), t.effect, TAINT_EFFECTS)
        if (t.key, t.effect) in seen:
            duplicate(errs, tpath, f"{t.key}:{t.effect}", "taints must be unique by key and effect")
        seen.add((t.key, t.effect))
    for cidr, cpath in [(node.spec.pod_cidr, "spec.podCIDR")] + [
            (c, f"spec.podCIDRs[{i}]") for i, c in enumerate(node.spec.pod_cidrs)]:
        if cidr:
            try:
                ipaddress.ip_network(cidr)
            except ValueError:
                invalid(errs, cpath, cidr, "must be a valid CIDR (e.g. 10.244.1.0/24)")
    for which in ("capacity", "allocatable"):
        for name, value in sorted(getattr(node.status, which).items()):
            validate_quantity(value, f"status.{which}[{name}]", errs)


def _stamp_node(node: pb.Node, old: pb.Node | None, now: str) -> None:
    """A NoExecute taint written without timeAdded gets one, as Kubernetes' API does: the
    stored node's timeAdded when it already had the same taint (key, value, effect; so
    re-applying a node manifest, or a read-modify-write without the field, does not
    restart the countdown of tolerationSeconds), else now. The taint eviction controller
    counts tolerationSeconds from it."""
    known = {}
    if old is not None:
        known = {(t.key, t.value, t.effect): t.time_added for t in old.spec.taints if t.time_added}
    for taint in node.spec.taints:
        if taint.effect == "NoExecute" and not taint.time_added:
            taint.time_added = known.get((taint.key, taint.value, taint.effect), now)


def _node_row(n):
    ready = condition_status(n.status.conditions, "Ready")
    # kubectl shows NotReady for both False and Unknown (a node that stopped reporting).
    status = "Ready" if ready == "True" else "NotReady"
    if n.spec.unschedulable:
        status += ",SchedulingDisabled"
    roles = sorted(k.split("/", 1)[1] for k in n.metadata.labels
                   if k.startswith(wellknown.LABEL_NODE_ROLE_PREFIX)) or ["<none>"]
    internal = next((a.address for a in n.status.addresses if a.type == "InternalIP"), "<none>")
    info = n.status.node_info
    return ([status, ",".join(roles), info.kubelet_version or "<unknown>", internal],
            [info.os_image or "<unknown>", info.kernel_version or "<unknown>",
             info.container_runtime_version or "<unknown>"])


NODE = register(Kind(
    "Node", "v1", "nodes", ("no",), False, pb.Node, "node", True,
    validate=_validate_node,
    stamp=_stamp_node,
    quantity_fields=("skiff.api.NodeStatus.capacity", "skiff.api.NodeStatus.allocatable"),
    columns=("STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP"),
    wide_columns=("OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"),
    row=_node_row,
))
