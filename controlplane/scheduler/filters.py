"""Feasibility checkers: may this pod run on this node, and if not, why not.

Each filter is a pure function (pod, NodeInfo) -> list of reasons; an empty list
means the node passes. Reasons are Kubernetes' own wording, because they end up
in "0/3 nodes are available: 2 Insufficient cpu, ..." messages people search for.
Filters run in FILTERS order and a node stops at the first filter that rejects
it (as Kubernetes' framework does); one filter may give several reasons
(Insufficient cpu and Insufficient memory). These are the node-local filters;
the cluster-wide ones (PodTopologySpread, InterPodAffinity) run after them, in
algorithm.FILTERS.
"""

from controlplane.controllers.podutil import get_condition
from controlplane.scheduler.nodeinfo import NodeInfo, host_ports, pod_requests, ports_conflict
from skiff.api import objects_pb2 as pb
from skiff.api.wellknown import TAINT_UNSCHEDULABLE

UNSCHEDULABLE = "node(s) were unschedulable"
NOT_READY = "node(s) were not ready"
AFFINITY_MISMATCH = "node(s) didn't match Pod's node affinity/selector"
TOO_MANY_PODS = "Too many pods"
INSUFFICIENT = "Insufficient {}"
NO_FREE_PORTS = "node(s) didn't have free ports for the requested pod ports"
UNSCHEDULABLE_TAINT_KEY = TAINT_UNSCHEDULABLE
BLOCKING_EFFECTS = ("NoSchedule", "NoExecute")


def untolerated_taint_reason(taint: pb.Taint) -> str:
    return f"node(s) had untolerated taint {{{taint.key}: {taint.value}}}"


# ---------------------------------------------------------------- taints and tolerations

def tolerates(toleration: pb.Toleration, taint: pb.Taint) -> bool:
    """Kubernetes' Toleration.ToleratesTaint: effect, key and value/operator all agree."""
    if toleration.effect and toleration.effect != taint.effect:
        return False
    if toleration.key and toleration.key != taint.key:
        return False
    if toleration.operator in ("", "Equal"):
        return toleration.value == taint.value
    return toleration.operator == "Exists"


def tolerated(pod: pb.Pod, taint: pb.Taint) -> bool:
    return any(tolerates(t, taint) for t in pod.spec.tolerations)


def first_untolerated(pod: pb.Pod, taints, effects) -> pb.Taint | None:
    for taint in taints:
        if taint.effect in effects and not tolerated(pod, taint):
            return taint
    return None


# ---------------------------------------------------------------- node affinity

def _int(text: str):
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def requirement_matches(req: pb.NodeSelectorRequirement, labels) -> bool:
    """One matchExpressions entry against a node's labels (In, NotIn, Exists, DoesNotExist, Gt, Lt)."""
    present = req.key in labels
    value = labels.get(req.key)
    op = req.operator
    if op == "In":
        return present and value in req.values
    if op == "NotIn":
        return not present or value not in req.values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt"):
        if not present or len(req.values) != 1:
            return False
        have, want = _int(value), _int(req.values[0])
        if have is None or want is None:
            return False
        return have > want if op == "Gt" else have < want
    return False


def _field_matches(req: pb.NodeSelectorRequirement, node: pb.Node) -> bool:
    if req.key != "metadata.name":
        return False
    if req.operator == "In":
        return node.metadata.name in req.values
    if req.operator == "NotIn":
        return node.metadata.name not in req.values
    return False


def term_matches(term: pb.NodeSelectorTerm, node: pb.Node) -> bool:
    """All of a term's expressions and fields match; an empty term matches nothing."""
    if not term.match_expressions and not term.match_fields:
        return False
    labels = node.metadata.labels
    return (all(requirement_matches(r, labels) for r in term.match_expressions)
            and all(_field_matches(r, node) for r in term.match_fields))


def node_affinity_matches(pod: pb.Pod, node: pb.Node) -> bool:
    """nodeSelector (every label equal) AND required node affinity (terms ORed)."""
    labels = node.metadata.labels
    for key, value in pod.spec.node_selector.items():
        if labels.get(key) != value:
            return False
    affinity = pod.spec.affinity
    if affinity.HasField("node_affinity") and affinity.node_affinity.HasField(
            "required_during_scheduling_ignored_during_execution"):
        terms = affinity.node_affinity.required_during_scheduling_ignored_during_execution.node_selector_terms
        if not any(term_matches(t, node) for t in terms):
            return False
    return True


# ---------------------------------------------------------------- the filters

def node_unschedulable(pod: pb.Pod, info: NodeInfo) -> list:
    """spec.unschedulable (cordoned) blocks unless the pod tolerates the unschedulable taint."""
    if not info.node.spec.unschedulable:
        return []
    if tolerated(pod, pb.Taint(key=UNSCHEDULABLE_TAINT_KEY, effect="NoSchedule")):
        return []
    return [UNSCHEDULABLE]


def node_ready(pod: pb.Pod, info: NodeInfo) -> list:
    cond = get_condition(info.node.status.conditions, "Ready")
    return [] if cond is not None and cond.status == "True" else [NOT_READY]


def taint_toleration(pod: pb.Pod, info: NodeInfo) -> list:
    """NoSchedule and NoExecute taints block unless tolerated (PreferNoSchedule only scores)."""
    taint = first_untolerated(pod, info.node.spec.taints, BLOCKING_EFFECTS)
    return [untolerated_taint_reason(taint)] if taint is not None else []


def node_affinity(pod: pb.Pod, info: NodeInfo) -> list:
    return [] if node_affinity_matches(pod, info.node) else [AFFINITY_MISMATCH]


def node_ports(pod: pb.Pod, info: NodeInfo) -> list:
    """Kubernetes' NodePorts: no hostPort of the pod (by hostIP, protocol, port; hostIP
    0.0.0.0 clashes with every IP) is already used by a pod on the node."""
    if any(ports_conflict(info.used_ports, want) for want in host_ports(pod)):
        return [NO_FREE_PORTS]
    return []


def resources_fit(pod: pb.Pod, info: NodeInfo) -> list:
    """Requests fit into allocatable minus what the node's pods already request."""
    want = pod_requests(pod)
    have = info.allocatable
    used = info.requested
    reasons = []
    if used.pods + 1 > have.pods:
        reasons.append(TOO_MANY_PODS)
    if want.cpu_m > 0 and want.cpu_m > have.cpu_m - used.cpu_m:
        reasons.append(INSUFFICIENT.format("cpu"))
    if want.memory_b > 0 and want.memory_b > have.memory_b - used.memory_b:
        reasons.append(INSUFFICIENT.format("memory"))
    if want.ephemeral_b > 0 and want.ephemeral_b > have.ephemeral_b - used.ephemeral_b:
        reasons.append(INSUFFICIENT.format("ephemeral-storage"))
    return reasons


FILTERS = (
    ("NodeUnschedulable", node_unschedulable),
    ("NodeReady", node_ready),
    ("TaintToleration", taint_toleration),
    ("NodeAffinity", node_affinity),
    ("NodePorts", node_ports),
    ("NodeResourcesFit", resources_fit),
)


def check(pod: pb.Pod, info: NodeInfo) -> list:
    """The reasons the first rejecting filter gives, or [] when the node is feasible."""
    for _name, fn in FILTERS:
        reasons = fn(pod, info)
        if reasons:
            return reasons
    return []
