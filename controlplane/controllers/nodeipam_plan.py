"""The node IPAM controller's pure part: which pod CIDR (and annotations) a Node should get.

Invariants:
- allocations are derived from the Nodes themselves (spec.podCIDR of every existing
  Node is "used"), so deleting a Node releases its block, and a new leader needs no
  state of its own;
- first_free() is deterministic: the lowest block of the cluster CIDR that no Node uses;
- a Node that already has a podCIDR keeps it (never moved), even one outside the
  cluster CIDR (an operator's choice);
- plan_node() never mutates its inputs.
"""

import ipaddress
from dataclasses import dataclass, field

from skiff.api.wellknown import BACKEND_ANNOTATION, CLUSTER_CIDR_ANNOTATION  # noqa: F401 - re-exported


@dataclass(frozen=True)
class NodeIpamChange:
    pod_cidr: str = ""                  # "" = keep the node's spec.podCIDR/podCIDRs as they are
    annotations: dict = field(default_factory=dict)   # to set (only those that differ)

    @property
    def empty(self) -> bool:
        return not self.pod_cidr and not self.annotations


def first_free(cluster_cidr: str, mask_size: int, used) -> str:
    """The lowest /mask_size block of cluster_cidr that overlaps nothing in used; "" if full."""
    cluster = ipaddress.IPv4Network(cluster_cidr)
    taken = []
    for cidr in used:
        try:
            taken.append(ipaddress.IPv4Network(cidr, strict=False))
        except ValueError:
            continue
    for block in cluster.subnets(new_prefix=mask_size):
        if not any(block.overlaps(t) for t in taken):
            return str(block)
    return ""


def plan_node(node, used, cluster_cidr: str, mask_size: int, backend: str) -> NodeIpamChange:
    """What node needs: a pod CIDR if it has none (first free among used, which must not
    include node's own), and the network annotations if they differ."""
    annotations = {}
    wanted = {BACKEND_ANNOTATION: backend, CLUSTER_CIDR_ANNOTATION: cluster_cidr}
    for key, value in wanted.items():
        if node.metadata.annotations.get(key) != value:
            annotations[key] = value
    pod_cidr = ""
    if not node.spec.pod_cidr:
        pod_cidr = first_free(cluster_cidr, mask_size, used)
    return NodeIpamChange(pod_cidr=pod_cidr, annotations=annotations)


def duplicates(nodes) -> dict:
    """{cidr: [node names]} of pod CIDRs held by more than one Node (must stay empty)."""
    by_cidr: dict = {}
    for n in nodes:
        if n.spec.pod_cidr:
            by_cidr.setdefault(n.spec.pod_cidr, []).append(n.metadata.name)
    return {c: sorted(ns) for c, ns in by_cidr.items() if len(ns) > 1}
