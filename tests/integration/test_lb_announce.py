"""The LoadBalancer address announcer (nodeagent/proxy/announce.py) in real namespaces
(root): the holder gets the /32 with our label, and its gratuitous ARP moves a peer's
stale neighbour entry to the holder's MAC at once; withdrawing removes only our address."""

import os
import subprocess
import sys
import uuid

import pytest

from tests.helpers import wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LB = "10.252.0.200"


def sh(*argv, check=True):
    r = subprocess.run(list(argv), capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(argv)}: {r.stderr}")
    return r


@pytest.fixture
def pair():
    tag = uuid.uuid4().hex[:5]
    a, b = f"skiff-an{tag}-a", f"skiff-an{tag}-b"
    try:
        for ns in (a, b):
            sh("ip", "netns", "add", ns)
        sh("ip", "-n", a, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", b)
        for ns, ip in ((a, "10.252.0.21"), (b, "10.252.0.22")):
            sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
        yield a, b
    finally:
        for ns in (a, b):
            sh("ip", "netns", "del", ns, check=False)


def sync(ns, wanted):
    code = ("import sys, time; sys.path.insert(0, sys.argv[1]);"
            "from nodeagent.proxy.announce import Announcer;"
            "a = Announcer('10.252.0.21'); a.sync(sys.argv[2:]);"
            "[p.wait(5) for p in a._arpings]")
    sh("ip", "netns", "exec", ns, sys.executable, "-c", code, ROOT, *wanted)


def test_announce_moves_a_stale_neighbour_and_withdraws(pair):
    a, b = pair
    mac_a = sh("ip", "-n", a, "-br", "link", "show", "eth0").stdout.split()[2]
    # b believes the LB address is somewhere else (a node that held it before)
    sh("ip", "-n", b, "neigh", "replace", LB, "lladdr", "02:00:00:00:00:99", "dev", "eth0", "nud", "stale")
    sync(a, [LB])
    addrs = sh("ip", "-n", a, "-o", "addr", "show", "dev", "eth0").stdout
    assert f"inet {LB}/32" in addrs and "eth0:lb" in addrs, addrs
    wait_until(lambda: mac_a in sh("ip", "-n", b, "neigh", "show", LB).stdout, 5,
               "b's neighbour entry for the LB address moved to a's MAC")
    sync(a, [])
    addrs = sh("ip", "-n", a, "-o", "addr", "show", "dev", "eth0").stdout
    assert LB not in addrs and "10.252.0.21/24" in addrs, addrs
