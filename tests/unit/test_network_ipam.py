"""Pod IPAM on disk: allocate, reuse, persist across restarts, release, GC."""

import os
import threading

import pytest

from nodeagent.network.ipam import IpamError, PodIpam


@pytest.fixture
def ipam(tmp_path):
    i = PodIpam(str(tmp_path))
    i.set_cidr("10.244.1.0/24")
    return i


def test_allocate_skips_network_gateway_and_is_lowest_first(ipam):
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
        ["10.244.1.2", "10.244.1.3", "10.244.1.4"]


def test_release_frees_and_reuses(ipam):
    ipam.allocate("a", "sb-a")
    ipam.allocate("b", "sb-b")
    assert ipam.release("a") == [("10.244.1.2", "sb-a")]
    assert ipam.release("a") == []
    assert ipam.lookup("a") is None
    assert ipam.allocate("c", "sb-c") == "10.244.1.2"


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
