"""Pod IPAM on disk: allocate (round-robin, as host-local), reuse, persist across restarts,
release, GC."""

import os
import threading

import pytest

import ipaddress

from nodeagent.network.ipam import IpamError, PodIpam, allocation_order


@pytest.fixture
def ipam(tmp_path):
    i = PodIpam(str(tmp_path))
    i.set_cidr("10.244.1.0/24")
    return i


def test_allocate_skips_network_and_gateway_one_ip_per_pod(ipam):
    assert ipam.allocate("a", "sb-a") == "10.244.1.2"
    assert ipam.allocate("b", "sb-b") == "10.244.1.3"
    assert ipam.allocate("a", "sb-a") == "10.244.1.2"          # one IP per pod
    assert ipam.lookup("b") == ("10.244.1.3", "sb-b")


def test_new_sandbox_keeps_ip_and_records_it(ipam):
    ip = ipam.allocate("a", "sb1")
    assert ipam.allocate("a", "sb2") == ip
    assert ipam.lookup("a") == (ip, "sb2")


def test_persisted_and_reused_after_restart(tmp_path, ipam):
    ipam.allocate("a", "sb-a")
    ipam.allocate("b", "sb-b")
    again = PodIpam(str(tmp_path))
    again.set_cidr("10.244.1.0/24")
    assert again.allocate("b", "sb-b") == "10.244.1.3"
    assert again.allocate("c", "sb-c") == "10.244.1.4"
    assert sorted(os.listdir(os.path.join(str(tmp_path), "network", "ipam"))) == \
        ["10.244.1.2", "10.244.1.3", "10.244.1.4", "last_reserved_ip"]


def test_release_frees_without_handing_the_address_out_again_at_once(ipam):
    ipam.allocate("a", "sb-a")
    ipam.allocate("b", "sb-b")
    assert ipam.release("a") == [("10.244.1.2", "sb-a")]
    assert ipam.release("a") == []
    assert ipam.lookup("a") is None
    # round-robin: the next pod gets the address after the last one handed out, not a's
    assert ipam.allocate("c", "sb-c") == "10.244.1.4"
    assert ipam.allocate("a", "sb-a2") == "10.244.1.5"     # a recreated pod: a new address too


@pytest.mark.parametrize("cidr, last, head, tail", [
    # no last address yet: from the first host, the bridge (.1) skipped
    ("10.244.1.0/24", None, ["10.244.1.2", "10.244.1.3"], ["10.244.1.253", "10.244.1.254"]),
    # right after the last one, wrapping around so that the last one comes last
    ("10.244.1.0/24", "10.244.1.7", ["10.244.1.8", "10.244.1.9"], ["10.244.1.6", "10.244.1.7"]),
    # the last one at the end of the range: start over
    ("10.244.1.0/24", "10.244.1.254", ["10.244.1.2", "10.244.1.3"], ["10.244.1.253", "10.244.1.254"]),
    # a last address outside the CIDR (the node got another block) or garbage: from the start
    ("10.244.1.0/24", "10.244.9.5", ["10.244.1.2", "10.244.1.3"], ["10.244.1.253", "10.244.1.254"]),
    ("10.244.1.0/24", "not-an-ip", ["10.244.1.2", "10.244.1.3"], ["10.244.1.253", "10.244.1.254"]),
    # the bridge or the network address as the last one: the first host after it
    ("10.244.1.0/24", "10.244.1.1", ["10.244.1.2", "10.244.1.3"], ["10.244.1.253", "10.244.1.254"]),
    ("10.244.1.0/24", "10.244.1.0", ["10.244.1.2", "10.244.1.3"], ["10.244.1.253", "10.244.1.254"]),
    # a small block: .2-.6 usable
    ("10.244.1.0/29", "10.244.1.4", ["10.244.1.5", "10.244.1.6"], ["10.244.1.3", "10.244.1.4"]),
])
def test_allocation_order(cidr, last, head, tail):
    order = allocation_order(ipaddress.IPv4Network(cidr), last)
    net = ipaddress.IPv4Network(cidr)
    assert order[:2] == head and order[-2:] == tail
    assert sorted(order, key=ipaddress.IPv4Address) == [str(a) for a in net.hosts() if a != net[1]]


def test_round_robin_wraps_and_skips_taken_addresses(tmp_path):
    i = PodIpam(str(tmp_path))
    i.set_cidr("10.244.1.0/29")                                # .2-.6
    assert [i.allocate(f"p{n}") for n in range(4)] == ["10.244.1.2", "10.244.1.3", "10.244.1.4", "10.244.1.5"]
    i.release("p1")                                            # .3 free
    assert i.allocate("q") == "10.244.1.6"                     # after the last (.5), not the freed .3
    assert i.allocate("r") == "10.244.1.3"                     # wrapped: .2 is taken, .3 free


def test_last_address_survives_a_restart(tmp_path, ipam):
    ipam.allocate("a", "sb-a")
    ipam.allocate("b", "sb-b")
    ipam.release("b")
    again = PodIpam(str(tmp_path))
    again.set_cidr("10.244.1.0/24")
    assert again.allocate("c", "sb-c") == "10.244.1.4"
    assert set(again.allocations()) == {"10.244.1.2", "10.244.1.4"}   # the record file is no allocation


def test_gc_releases_dead_pods_and_other_cidrs(ipam):
    ipam.allocate("a", "sb-a")
    ipam.allocate("b", "sb-b")
    assert ipam.gc({"a", "b"}) == []
    assert ipam.gc({"a"}) == [("10.244.1.3", "b", "sb-b")]
    ipam.set_cidr("10.244.9.0/24")                            # node re-created with another block
    assert ipam.gc({"a"}) == [("10.244.1.2", "a", "sb-a")]
    assert ipam.allocate("a", "sb-a") == "10.244.9.2"


def test_full_and_no_cidr(tmp_path):
    i = PodIpam(str(tmp_path))
    with pytest.raises(IpamError):
        i.allocate("a")
    i.set_cidr("10.244.1.0/29")                                # hosts .1-.6, .1 is the bridge
    got = [i.allocate(f"p{n}") for n in range(5)]
    assert got == [f"10.244.1.{n}" for n in range(2, 7)]
    with pytest.raises(IpamError):
        i.allocate("p9")


def test_concurrent_allocations_never_share_an_ip(ipam):
    out = {}

    def worker(n):
        out[n] = ipam.allocate(f"pod{n}", "")
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(out.values())) == 40
