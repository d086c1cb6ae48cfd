"""The pure route planner: other nodes' pod CIDRs -> desired routes/neighbours/FDB entries,
and (desired, actual) -> actions.

host-gw: per remote node `<podCIDR> via <InternalIP> dev <ext>` (all nodes on one L2 segment).
vxlan (flannel's layout): per remote node
  - neighbour  <podCIDR network address> lladdr <remote VTEP MAC> dev skiff.1 (permanent)
  - FDB entry  <remote VTEP MAC> dst <remote InternalIP> dev skiff.1
  - route      <podCIDR> via <podCIDR network address> dev skiff.1 onlink
Every node also holds `unreachable <cluster CIDR>` (proto skiff): a pod IP of no live
node (its route deleted, or never there) fails at once with EHOSTUNREACH instead of
leaving through the default route and timing out. The node's own and its peers'
/24 routes are more specific, so they win.
A node is "remote" when it is not us, has a podCIDR and an InternalIP, and its Ready
condition is "True". Nodes that are gone (deleted, without podCIDR, or not Ready: the
node lifecycle controller sets Ready=Unknown when heartbeats stop) simply are not
desired: their entries are deleted, so traffic to a dead node's pods fails at once
instead of timing out silently through stale routes/neighbours/FDB entries; they come
back as soon as the node is Ready again.

Invariants: pure (no I/O); the same inputs give the same actions; deletions come before
additions (an add uses "replace", so deleting afterwards could remove the fresh entry);
actual entries are only those we own (routes with our protocol number; neighbours and
FDB entries on our VXLAN device), so nothing of anyone else is ever deleted.
"""

import ipaddress
from dataclasses import dataclass

from nodeagent.network.names import BACKEND_ANNOTATION, CLUSTER_CIDR_ANNOTATION, VTEP_MAC_ANNOTATION, vtep_mac

EXT = "ext"       # symbolic device names the applier resolves
VXLAN = "vxlan"
UNREACHABLE = "unreachable"   # not a device: a route of type unreachable


@dataclass(frozen=True, order=True)
class RemoteNode:
    name: str
    internal_ip: str
    pod_cidr: str
    vtep_mac: str = ""


@dataclass(frozen=True, order=True)
class Route:
    dst: str            # "10.244.2.0/24"
    gateway: str
    dev: str            # EXT or VXLAN
    onlink: bool = False


@dataclass(frozen=True, order=True)
class Neigh:
    dst: str
    lladdr: str


@dataclass(frozen=True, order=True)
class Fdb:
    lladdr: str
    dst: str


@dataclass(frozen=True)
class Entries:
    routes: frozenset = frozenset()
    neighs: frozenset = frozenset()
    fdbs: frozenset = frozenset()


@dataclass(frozen=True)
class Action:
    op: str             # "add" | "del"
    entry: object       # Route | Neigh | Fdb


def remote_nodes(nodes, self_name: str) -> list:
    """RemoteNode for every other Ready Node with a podCIDR and an InternalIP."""
    out = []
    for n in nodes:
        if n.metadata.name == self_name or not n.spec.pod_cidr or not is_ready(n):
            continue
        ip = next((a.address for a in n.status.addresses if a.type == "InternalIP"), "")
        if not ip:
            continue
        mac = n.metadata.annotations.get(VTEP_MAC_ANNOTATION, "") or vtep_mac(ip)
        out.append(RemoteNode(n.metadata.name, ip, n.spec.pod_cidr, mac))
    return sorted(out)


def node_key(node) -> tuple:
    """Everything of a Node the pod network reads (its podCIDR, InternalIP, Ready status and
    the network annotations), so that two Nodes with equal keys plan the same routes for
    every node. A heartbeat that renews only timestamps leaves the key as it is: the
    manager wakes only when the key changes."""
    ann = node.metadata.annotations
    ip = next((a.address for a in node.status.addresses if a.type == "InternalIP"), "")
    return (node.metadata.name, node.spec.pod_cidr, ip, is_ready(node), ann.get(VTEP_MAC_ANNOTATION, ""),
            ann.get(BACKEND_ANNOTATION, ""), ann.get(CLUSTER_CIDR_ANNOTATION, ""))


def is_ready(node) -> bool:
    """The Node's Ready condition is "True" (missing, "False" or "Unknown": not ready)."""
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)


def desired(remotes, backend: str, cluster_cidr: str = "") -> Entries:
    routes, neighs, fdbs = set(), set(), set()
    if cluster_cidr:
        routes.add(Route(str(ipaddress.IPv4Network(cluster_cidr, strict=False)), "", UNREACHABLE))
    for r in remotes:
        if backend == "host-gw":
            routes.add(Route(r.pod_cidr, r.internal_ip, EXT))
        elif backend == "vxlan":
            net = str(ipaddress.IPv4Network(r.pod_cidr, strict=False).network_address)
            routes.add(Route(r.pod_cidr, net, VXLAN, onlink=True))
            neighs.add(Neigh(net, r.vtep_mac))
            fdbs.add(Fdb(r.vtep_mac, r.internal_ip))
        else:
            raise ValueError(f"unknown backend {backend!r}")
    return Entries(frozenset(routes), frozenset(neighs), frozenset(fdbs))


def plan(want: Entries, have: Entries) -> list:
    """Actions turning have into want: deletions (routes, then neighbours, then FDB),
    then additions (FDB, neighbours, routes: a route's next hop resolves at once)."""
    dels, adds = [], []
    for kind in ("routes", "neighs", "fdbs"):
        w, h = getattr(want, kind), getattr(have, kind)
        dels += [Action("del", e) for e in sorted(h - w)]
    for kind in ("fdbs", "neighs", "routes"):
        w, h = getattr(want, kind), getattr(have, kind)
        adds += [Action("add", e) for e in sorted(w - h)]
    return dels + adds
