"""Which kernel events mean which repairs (nodeagent/network/events.py): a table."""

import pytest

from nodeagent.network import events as ev
from nodeagent.network.events import DEL, FULL, IPTABLES, NEW, NODE, NOTHING, ROUTES, Event, Owned
from nodeagent.network.names import RTPROT_SKIFF

OWNED = Owned(bridge=3, vxlan=5, ext=2, cluster_cidr="10.244.0.0/16")
NODE_ROUTES = frozenset({NODE, ROUTES})


@pytest.mark.parametrize("event,want", [
    # lost events and iptables changes
    (Event(ev.OVERRUN), {FULL}),
    (Event(ev.NFT), {IPTABLES}),
    # links: ours (by index, or by name when re-created) vs pod veths
    (Event(ev.LINK, DEL, ifindex=3, ifname="cbr0"), NODE_ROUTES),
    (Event(ev.LINK, NEW, ifindex=5, ifname="skiff.1"), NODE_ROUTES),
    (Event(ev.LINK, NEW, ifindex=2, ifname="eth0"), NODE_ROUTES),          # external link down/up
    (Event(ev.LINK, NEW, ifindex=9, ifname="cbr0"), NODE_ROUTES),          # re-created under a new index
    (Event(ev.LINK, NEW, ifindex=12, ifname="veth0123456789a"), NOTHING),  # a pod starts
    (Event(ev.LINK, DEL, ifindex=12, ifname="veth0123456789a"), NOTHING),
    # addresses on our devices (routes through a device losing its address vanish silently)
    (Event(ev.ADDR, DEL, ifindex=3), NODE_ROUTES),
    (Event(ev.ADDR, DEL, ifindex=2), NODE_ROUTES),
    (Event(ev.ADDR, NEW, ifindex=12), NOTHING),
    # routes
    (Event(ev.ROUTE, DEL, proto=RTPROT_SKIFF, dst="10.244.2.0/24"), {ROUTES}),
    (Event(ev.ROUTE, NEW, proto=RTPROT_SKIFF, dst="10.244.2.0/24"), NOTHING),      # our own add
    (Event(ev.ROUTE, NEW, proto=3, dst="10.244.2.0/24"), {ROUTES}),                 # someone replaced ours
    (Event(ev.ROUTE, NEW, proto=2, dst="10.244.1.0/24"), {ROUTES}),                 # (kernel route of a pod CIDR)
    (Event(ev.ROUTE, NEW, proto=3, dst="192.168.7.0/24"), NOTHING),                # outside the cluster CIDR
    (Event(ev.ROUTE, DEL, proto=2, dst="10.244.1.0/24"), NOTHING),                 # not ours
    (Event(ev.ROUTE, DEL, proto=RTPROT_SKIFF, table=255, dst="10.244.2.0/24"), NOTHING),  # local table
    # neighbours and FDB entries: only those on the VXLAN device
    (Event(ev.NEIGH, DEL, ifindex=5, state=0x80), {ROUTES}),
    (Event(ev.NEIGH, NEW, ifindex=5, state=0x80), NOTHING),        # our permanent entry
    (Event(ev.NEIGH, NEW, ifindex=5, state=0x04), {ROUTES}),       # ours replaced by a non-permanent one
    (Event(ev.NEIGH, NEW, ifindex=3, state=0x02), NOTHING),        # ARP on the bridge
    (Event(ev.NEIGH, DEL, ifindex=2, state=0x04), NOTHING),        # ARP on the external link
    (Event(ev.FDB, DEL, ifindex=5), {ROUTES}),
    (Event(ev.FDB, NEW, ifindex=5), NOTHING),
    (Event(ev.FDB, NEW, ifindex=3), NOTHING),                      # the bridge learning a pod MAC
])
def test_repairs(event, want):
    assert ev.repairs(event, OWNED) == frozenset(want)


def test_before_the_devices_exist_only_names_and_global_events_count():
    fresh = Owned()
    assert ev.repairs(Event(ev.LINK, NEW, ifindex=3, ifname="cbr0"), fresh) == NODE_ROUTES
    assert ev.repairs(Event(ev.NEIGH, DEL, ifindex=5), fresh) == NOTHING
    assert ev.repairs(Event(ev.ROUTE, NEW, proto=3, dst="10.244.2.0/24"), fresh) == NOTHING
    assert ev.repairs(Event(ev.ROUTE, DEL, proto=RTPROT_SKIFF, dst="10.244.2.0/24"), fresh) == {ROUTES}


def test_a_batch_is_the_union():
    batch = [Event(ev.LINK, NEW, ifindex=12, ifname="vethx"), Event(ev.FDB, DEL, ifindex=5), Event(ev.NFT)]
    assert ev.repairs_for(batch, OWNED) == {ROUTES, IPTABLES}
    assert ev.repairs_for([], OWNED) == NOTHING


@pytest.mark.parametrize("pending,first,now,want", [
    (set(), True, 5.0, {FULL}),                   # the first pass after start-up
    ({ROUTES}, False, 10.0, {ROUTES}),            # an event, the safety net not due
    ({ROUTES, IPTABLES}, False, 10.0, {ROUTES, IPTABLES}),
    ({FULL, ROUTES}, False, 10.0, {FULL}),        # an overrun
    (set(), False, 10.0, set()),                  # a request already served: nothing
    (set(), False, 31.0, {FULL}),                 # the safety net is due (last FULL at 1.0, every 30 s)
    ({ROUTES}, False, 31.0, {FULL}),
])
def test_pass_kinds(pending, first, now, want):
    assert ev.pass_kinds(pending, first, now, 1.0, 30.0) == frozenset(want)
