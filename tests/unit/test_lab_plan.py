"""The lab layout is a pure function of its recorded inputs (no root, no processes)."""

import pytest

from skiff.lab.plan import PlanError, lab_mac, make_plan, overlaps


def test_default_layout():
    p = make_plan(nodes=3, replicas=3, lab_dir="/var/lib/skiff-lab")
    assert (p.lab_netns, p.host_link, p.run_dir) == ("skiff-lab", "skiff-host", "/run/skiff-lab")
    assert (p.host_address, p.gateway, p.prefixlen) == ("10.200.0.1", "10.200.0.254", 24)
    assert [(m.name, m.netns, m.address) for m in p.replicas] == [
        ("cp1", "skiff-cp1", "10.200.0.11"), ("cp2", "skiff-cp2", "10.200.0.12"),
        ("cp3", "skiff-cp3", "10.200.0.13")]
    assert [(m.name, m.netns, m.address) for m in p.nodes] == [
        ("node1", "skiff-node1", "10.200.0.21"), ("node2", "skiff-node2", "10.200.0.22"),
        ("node3", "skiff-node3", "10.200.0.23")]
    n1 = p.node_paths("node1")
    assert n1.socket == "/run/skiff-lab/node1/docker.sock"
    assert n1.docker_host == "unix:///run/skiff-lab/node1/docker.sock"
    assert n1.data_root == "/var/lib/skiff-lab/node1/docker"
    assert n1.agent_data == "/var/lib/skiff-lab/node1/agent"
    assert p.netns_names == ["skiff-lab", "skiff-cp1", "skiff-cp2", "skiff-cp3",
                             "skiff-node1", "skiff-node2", "skiff-node3"]


def test_same_inputs_same_layout_and_other_prefix_other_names():
    a = make_plan(prefix="skiff-ab12", subnet="10.231.7.0/24", nodes=2, replicas=1, lab_dir="/x")
    assert a == make_plan(prefix="skiff-ab12", subnet="10.231.7.0/24", nodes=2, replicas=1,
                          lab_dir="/x")
    assert a.host_link == "skiff-ab12-host" and len(a.host_link) <= 15
    assert a.node("node2").address == "10.231.7.22" and a.gateway == "10.231.7.254"
    assert a.node("node2").mac == lab_mac("10.231.7.22") == "0a:5a:0a:e7:07:16"


@pytest.mark.parametrize("kw, message", [
    (dict(prefix="lab"), "must start with 'skiff'"),
    (dict(prefix="skiff-toolong"), "at most 10"),
    (dict(prefix="skiff_x"), "must start with 'skiff'"),
    (dict(subnet="10.200.0.1/24"), "host bits set"),
    (dict(subnet="fd00::/64"), "IPv4 only"),
    (dict(subnet="10.200.0.0/28"), "too small"),
    (dict(nodes=0), "--nodes >= 1"),
    (dict(nodes=234), "too small"),
])
def test_bad_inputs_are_refused(kw, message):
    args = dict(nodes=3, replicas=3, lab_dir="/x") | kw
    with pytest.raises(PlanError, match=message.replace("(", r"\(")):
        make_plan(**args)


def test_biggest_lab_in_a_slash_24_fits():
    p = make_plan(nodes=233, replicas=3, lab_dir="/x")
    assert p.nodes[-1].address == "10.200.0.253" and p.gateway == "10.200.0.254"


@pytest.mark.parametrize("subnet, in_use, clash", [
    ("10.200.0.0/24", ["192.0.2.2/24", "127.0.0.1/8"], []),
    ("10.200.0.0/24", ["10.200.0.7/32"], ["10.200.0.7/32"]),
    ("10.200.0.0/24", ["10.0.0.0/8"], ["10.0.0.0/8"]),
    ("10.200.0.0/24", ["0.0.0.0/0", "not-an-address"], []),   # the default route is no clash
    ("10.200.0.0/24", ["fd00::2/64"], []),
])
def test_subnet_overlap(subnet, in_use, clash):
    assert overlaps(subnet, in_use) == clash
