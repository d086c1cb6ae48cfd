"""Which kernel events mean which repairs of the pod network (PURE: no I/O, no clock).

The monitor (monitor.py) turns every netlink message it receives into an Event and
asks repairs(event, owned) what, if anything, must be re-checked:

  NODE      the node level: bridge cbr0, VXLAN device skiff.1, their addresses, up
  ROUTES    the routes / neighbours / FDB entries of the remote nodes (routes_plan)
  IPTABLES  our masquerade and forward chains and their jumps (hostcfg)
  FULL      everything, including the slow parts (pod veth GC): events were lost

Rules (table-tested in tests/unit/test_network_events.py):
- a receive-buffer overrun (ENOBUFS: multicast events are dropped under load) -> FULL;
- any nf_tables change (iptables-nft: every rule change is a netlink message of the
  NFNLGRP_NFTABLES group; reading rules sends none) -> IPTABLES;
- a link event (new, changed, deleted) of the bridge, the VXLAN device or the
  external interface (by index, or by name for a re-created device), and an address
  event on one of them -> NODE and ROUTES: the kernel removes IPv4 routes through a
  device that goes down or loses its address WITHOUT sending RTM_DELROUTE;
- a deleted route of ours (protocol skiff, main table) -> ROUTES; a route added in the
  main table by someone else into the cluster CIDR (it may have replaced one of ours,
  which sends no deletion) -> ROUTES; routes we add (protocol skiff) -> nothing;
- on the VXLAN device: a deleted neighbour or FDB entry, or a neighbour that is no
  longer permanent (someone replaced ours) -> ROUTES; our own permanent entries -> nothing;
- everything else (pod veths coming and going, ARP on cbr0 and the external link,
  the bridge learning pod MACs, other tables) -> nothing.

Invariant (no feedback loop): a repair pass that changes nothing emits no event that
maps to a repair; one that changes something emits at most deletions of our own
entries and link/address events of our devices, each answered by one more pass that
finds nothing to do. So the agent's own changes cost one extra pass, never a loop.
"""

import ipaddress
from dataclasses import dataclass

from nodeagent.network.names import BRIDGE, RTPROT_SKIFF, VXLAN_DEVICE

NODE = "node"
ROUTES = "routes"
IPTABLES = "iptables"
FULL = "full"

# Event kinds
LINK, ADDR, ROUTE, NEIGH, FDB, NFT, OVERRUN = "link", "addr", "route", "neigh", "fdb", "nft", "overrun"
NEW, DEL = "new", "del"

MAIN_TABLE = 254
NUD_PERMANENT = 0x80
NOTHING = frozenset()


@dataclass(frozen=True)
class Event:
    kind: str               # LINK, ADDR, ROUTE, NEIGH, FDB, NFT or OVERRUN
    op: str = NEW           # NEW (also "changed") or DEL
    ifindex: int = 0        # link/addr/neigh/fdb: the device; route: its output device
    ifname: str = ""        # link events only
    proto: int = 0          # route events: the routing protocol number
    table: int = MAIN_TABLE
    dst: str = ""           # route events: "10.244.2.0/24"
    state: int = 0          # neighbour events: NUD state bits


@dataclass(frozen=True)
class Owned:
    """The devices and addresses the pod network owns right now (indexes change when a
    device is re-created; the manager hands the monitor a fresh Owned after each pass)."""
    bridge: int | None = None
    vxlan: int | None = None
    ext: int | None = None
    cluster_cidr: str = ""

    def indexes(self) -> set:
        return {i for i in (self.bridge, self.vxlan, self.ext) if i is not None}


def _in_cluster(dst: str, cluster_cidr: str) -> bool:
    if not dst or not cluster_cidr:
        return False
    try:
        return ipaddress.IPv4Network(dst, strict=False).subnet_of(ipaddress.IPv4Network(cluster_cidr))
    except (ValueError, TypeError):
        return False


def repairs(event: Event, owned: Owned) -> frozenset:
    """The repairs one event calls for (see the module docstring); NOTHING for most."""
    k = event.kind
    if k == OVERRUN:
        return frozenset({FULL})
    if k == NFT:
        return frozenset({IPTABLES})
    if k == LINK:
        if event.ifindex in owned.indexes() or event.ifname in (BRIDGE, VXLAN_DEVICE):
            return frozenset({NODE, ROUTES})
        return NOTHING
    if k == ADDR:
        return frozenset({NODE, ROUTES}) if event.ifindex in owned.indexes() else NOTHING
    if k == ROUTE:
        if event.table != MAIN_TABLE:
            return NOTHING
        if event.op == DEL:
            return frozenset({ROUTES}) if event.proto == RTPROT_SKIFF else NOTHING
        if event.proto != RTPROT_SKIFF and _in_cluster(event.dst, owned.cluster_cidr):
            return frozenset({ROUTES})
        return NOTHING
    if k in (NEIGH, FDB):
        if owned.vxlan is None or event.ifindex != owned.vxlan:
            return NOTHING
        if event.op == DEL:
            return frozenset({ROUTES})
        if k == NEIGH and not event.state & NUD_PERMANENT:
            return frozenset({ROUTES})
        return NOTHING
    return NOTHING


def repairs_for(events, owned: Owned) -> frozenset:
    """The union of the repairs a batch of events calls for."""
    out = set()
    for e in events:
        out |= repairs(e, owned)
    return frozenset(out)


def pass_kinds(pending, first: bool, now: float, last_full: float, full_every_s: float) -> frozenset:
    """What one pass of the manager does: FULL for the first pass after start-up (or a new
    pod CIDR) and whenever full_every_s has passed since the last FULL one (the safety net),
    else what was asked for since the last pass (possibly nothing: a request that was
    already served)."""
    if first or now >= last_full + full_every_s or FULL in pending:
        return frozenset({FULL})
    return frozenset(pending)
