"""Pod network pure parts: MAC derivation, node CIDR allocation, route/neigh/FDB planner."""

import pytest

from controlplane.controllers.nodeipam_plan import (BACKEND_ANNOTATION, CLUSTER_CIDR_ANNOTATION, duplicates,
                                                    first_free, plan_node)
from nodeagent.network import routes_plan as rp
from nodeagent.network.names import VTEP_MAC_ANNOTATION, gateway, pod_mac, veth_name, vtep_mac
from skiff.api import objects_pb2 as pb


def node(name, cidr="", ip="", annotations=None, ready="True"):
    n = pb.Node()
    n.metadata.name = name
    n.metadata.annotations.update(annotations or {})
    n.spec.pod_cidr = cidr
    if ip:
        n.status.addresses.add(type="InternalIP", address=ip)
    if ready is not None:
        n.status.conditions.add(type="Ready", status=ready)
    return n


@pytest.mark.parametrize("ip,mac", [
    ("10.244.1.5", "0a:58:0a:f4:01:05"),
    ("10.244.255.254", "0a:58:0a:f4:ff:fe"),
    ("0.0.0.0", "0a:58:00:00:00:00"),
])
def test_pod_mac(ip, mac):
    assert pod_mac(ip) == mac


def test_vtep_mac_and_names():
    assert vtep_mac("10.200.0.21") == "0e:58:0a:c8:00:15"
    assert int(vtep_mac("10.200.0.21").split(":")[0], 16) & 0b11 == 0b10   # unicast, locally administered
    assert veth_name("0123456789abcdef") == "veth0123456789a" and len(veth_name("f" * 64)) <= 15
    assert gateway("10.244.3.0/24") == "10.244.3.1"


@pytest.mark.parametrize("used,mask,want", [
    ([], 24, "10.244.0.0/24"),
    (["10.244.0.0/24"], 24, "10.244.1.0/24"),
    (["10.244.1.0/24"], 24, "10.244.0.0/24"),                 # a released block is reused first
    (["10.244.0.0/24", "10.244.2.0/24"], 24, "10.244.1.0/24"),
    (["10.244.0.0/23"], 24, "10.244.2.0/24"),                 # overlapping bigger block
    (["10.244.0.0/24", "garbage"], 24, "10.244.1.0/24"),
    ([], 26, "10.244.0.0/26"),
    ([f"10.244.{i}.0/24" for i in range(256)], 24, ""),      # full
])
def test_first_free(used, mask, want):
    assert first_free("10.244.0.0/16", mask, used) == want


def test_plan_node():
    ann = {BACKEND_ANNOTATION: "vxlan", CLUSTER_CIDR_ANNOTATION: "10.244.0.0/16"}
    ch = plan_node(node("a"), ["10.244.0.0/24"], "10.244.0.0/16", 24, "vxlan")
    assert ch.pod_cidr == "10.244.1.0/24" and ch.annotations == ann
    done = node("b", "10.244.5.0/24", annotations=ann)
    assert plan_node(done, [], "10.244.0.0/16", 24, "vxlan").empty       # never moved, nothing to do
    ch = plan_node(done, [], "10.244.0.0/16", 24, "host-gw")
    assert ch.pod_cidr == "" and ch.annotations == {BACKEND_ANNOTATION: "host-gw"}
    assert duplicates([node("a", "10.244.0.0/24"), node("b", "10.244.0.0/24"), node("c", "10.244.1.0/24")]) == \
        {"10.244.0.0/24": ["a", "b"]}


NODES = [node("n1", "10.244.0.0/24", "10.200.0.21"),
         node("n2", "10.244.1.0/24", "10.200.0.22", {VTEP_MAC_ANNOTATION: "0e:58:0a:c8:00:16"}),
         node("n3", "", "10.200.0.23"),                # no podCIDR yet: not routed
         node("n4", "10.244.3.0/24")]                   # no InternalIP: not routed


def test_remote_nodes():
    r = rp.remote_nodes(NODES, "n1")
    assert r == [rp.RemoteNode("n2", "10.200.0.22", "10.244.1.0/24", "0e:58:0a:c8:00:16")]
    assert rp.remote_nodes(NODES, "n2")[0].vtep_mac == vtep_mac("10.200.0.21")   # derived when not published


N2_ROUTE = rp.RemoteNode("n2", "10.200.0.22", "10.244.1.0/24", vtep_mac("10.200.0.22"))


@pytest.mark.parametrize("ready,conditions_extra,routed", [
    ("True", [], True),
    ("Unknown", [], False),                     # heartbeats stopped (node lifecycle controller)
    ("False", [], False),
    (None, [], False),                          # no Ready condition at all
    ("True", [("MemoryPressure", "True")], True),
    (None, [("MemoryPressure", "True")], False),  # another condition True is not Ready
])
def test_remote_nodes_only_ready_peers(ready, conditions_extra, routed):
    n2 = node("n2", "10.244.1.0/24", "10.200.0.22", ready=ready)
    for typ, status in conditions_extra:
        n2.status.conditions.add(type=typ, status=status)
    nodes = [node("n1", "10.244.0.0/24", "10.200.0.21"), n2]
    assert rp.remote_nodes(nodes, "n1") == ([N2_ROUTE] if routed else [])
    # not Ready -> its entries are planned away; Ready again -> planned back
    for backend in ("host-gw", "vxlan"):
        routed_want = rp.desired([N2_ROUTE], backend)
        want = rp.desired(rp.remote_nodes(nodes, "n1"), backend)
        removed = rp.plan(want, routed_want)
        if routed:
            assert removed == []
        else:
            assert [a.op for a in removed] == ["del"] * (1 if backend == "host-gw" else 3)   # route (+neigh, fdb)
            assert {a.entry for a in removed} == routed_want.routes | routed_want.neighs | routed_want.fdbs
        restored = rp.plan(routed_want, want)                 # Ready again: everything comes back
        assert [a.op for a in restored] == ([] if routed else ["add"] * (1 if backend == "host-gw" else 3))


def test_remote_nodes_ignore_own_readiness():
    me = node("n1", "10.244.0.0/24", "10.200.0.21", ready="Unknown")   # our own view may lag: routes to peers stay
    assert rp.remote_nodes([me, node("n2", "10.244.1.0/24", "10.200.0.22")], "n1") == [N2_ROUTE]


def test_desired():
    remotes = rp.remote_nodes(NODES, "n1")
    hg = rp.desired(remotes, "host-gw")
    assert hg == rp.Entries(frozenset({rp.Route("10.244.1.0/24", "10.200.0.22", rp.EXT)}))
    vx = rp.desired(remotes, "vxlan")
    assert vx.routes == {rp.Route("10.244.1.0/24", "10.244.1.0", rp.VXLAN, onlink=True)}
    assert vx.neighs == {rp.Neigh("10.244.1.0", "0e:58:0a:c8:00:16")}
    assert vx.fdbs == {rp.Fdb("0e:58:0a:c8:00:16", "10.200.0.22")}
    with pytest.raises(ValueError):
        rp.desired(remotes, "udp")
    # the cluster CIDR's unreachable route is there for either backend, even without peers
    for backend in ("host-gw", "vxlan"):
        assert rp.desired([], backend, "10.244.0.0/16") == \
            rp.Entries(frozenset({rp.Route("10.244.0.0/16", "", rp.UNREACHABLE)}))
    assert rp.Route("10.244.0.0/16", "", rp.UNREACHABLE) in rp.desired(remotes, "host-gw", "10.244.0.0/16").routes


R1 = rp.Route("10.244.1.0/24", "10.200.0.22", rp.EXT)
R2 = rp.Route("10.244.2.0/24", "10.200.0.23", rp.EXT)
R2_MOVED = rp.Route("10.244.2.0/24", "10.200.0.99", rp.EXT)
N2 = rp.Neigh("10.244.2.0", "0e:58:00:00:00:02")
F2 = rp.Fdb("0e:58:00:00:00:02", "10.200.0.23")
V2 = rp.Route("10.244.2.0/24", "10.244.2.0", rp.VXLAN, True)
U = rp.Route("10.244.0.0/16", "", rp.UNREACHABLE)
U2 = rp.Route("10.240.0.0/12", "", rp.UNREACHABLE)


def E(routes=(), neighs=(), fdbs=()):
    return rp.Entries(frozenset(routes), frozenset(neighs), frozenset(fdbs))


@pytest.mark.parametrize("want,have,expected", [
    (E(), E(), []),
    (E([R1]), E([R1]), []),                                                  # converged: no action
    (E([R1, R2]), E([R1]), [("add", R2)]),                                   # new node / deleted route
    (E([R1]), E([R1, R2]), [("del", R2)]),                                   # node gone
    (E([R2_MOVED]), E([R2]), [("del", R2), ("add", R2_MOVED)]),              # node changed address
    (E([V2], [N2], [F2]), E(), [("add", F2), ("add", N2), ("add", V2)]),     # vxlan: fdb, neigh, then route
    (E(), E([V2], [N2], [F2]), [("del", V2), ("del", N2), ("del", F2)]),     # vxlan node gone
    (E([V2], [N2], [F2]), E([V2], [N2]), [("add", F2)]),                     # one FDB entry lost
    (E([U, R1]), E([R1]), [("add", U)]),                                     # unreachable route lost
    (E([U2]), E([U]), [("del", U), ("add", U2)]),                            # cluster CIDR changed
])
def test_plan(want, have, expected):
    assert [(a.op, a.entry) for a in rp.plan(want, have)] == expected


def _with(n, edit):
    copy = pb.Node()
    copy.CopyFrom(n)
    edit(copy)
    return copy


BASE = node("n2", "10.244.2.0/24", "192.168.50.22", {VTEP_MAC_ANNOTATION: "0e:58:c0:a8:32:16"})


@pytest.mark.parametrize("what,edit,changes", [
    ("heartbeat timestamp", lambda n: setattr(n.status.conditions[0], "last_heartbeat_time", "2026-12-07T15:00:00Z"), False),
    ("another label", lambda n: n.metadata.labels.update({"zone": "a"}), False),
    ("resource version", lambda n: setattr(n.metadata, "resource_version", "42"), False),
    ("podCIDR", lambda n: setattr(n.spec, "pod_cidr", "10.244.3.0/24"), True),
    ("InternalIP", lambda n: setattr(n.status.addresses[0], "address", "192.168.50.23"), True),
    ("not Ready", lambda n: setattr(n.status.conditions[0], "status", "Unknown"), True),
    ("VTEP MAC", lambda n: n.metadata.annotations.update({VTEP_MAC_ANNOTATION: "0e:58:00:00:00:01"}), True),
    ("backend", lambda n: n.metadata.annotations.update({BACKEND_ANNOTATION: "vxlan"}), True),
    ("cluster CIDR", lambda n: n.metadata.annotations.update({CLUSTER_CIDR_ANNOTATION: "10.0.0.0/8"}), True),
])
def test_node_key_changes_only_with_what_routes_are_made_of(what, edit, changes):
    assert (rp.node_key(_with(BASE, edit)) != rp.node_key(BASE)) is changes, what
