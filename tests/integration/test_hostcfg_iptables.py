"""The node's masquerade and forward chains on real iptables (root; CI runs as root), in a
network namespace of their own (skiff-hc<rand>): created from nothing, unchanged on the
next check, a deleted jump and a tampered chain repaired, everyone else's rules kept."""

import subprocess
import sys
import uuid

import pytest

POD, CLUSTER = "10.244.1.0/24", "10.244.0.0/16"
ENSURE = ("import sys; from nodeagent.network import hostcfg; "
          "print(hostcfg.ensure_chains(sys.argv[1], sys.argv[2]))")


def sh(*argv):
    r = subprocess.run(list(argv), capture_output=True, text=True)
    assert r.returncode == 0, f"{' '.join(argv)}: {r.stderr}"
    return r.stdout


@pytest.fixture
def ns():
    name = f"skiff-hc{uuid.uuid4().hex[:6]}"
    sh("ip", "netns", "add", name)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def ensure(ns) -> bool:
    return sh("ip", "netns", "exec", ns, sys.executable, "-c", ENSURE, POD, CLUSTER).strip() == "True"


def rules(ns, table) -> list:
    return [line for line in sh("ip", "netns", "exec", ns, "iptables-save", "-t", table).splitlines()
            if line.startswith("-A ")]


def ipt(ns, *args):
    sh("ip", "netns", "exec", ns, "iptables", "-w", *args)


def test_chains_created_kept_and_repaired(ns):
    ipt(ns, "-t", "nat", "-A", "POSTROUTING", "-s", "172.17.0.0/16", "-j", "MASQUERADE")   # someone else's
    ipt(ns, "-P", "FORWARD", "DROP")
    assert ensure(ns) is True
    nat, filt = rules(ns, "nat"), rules(ns, "filter")
    assert nat == ["-A POSTROUTING -s 172.17.0.0/16 -j MASQUERADE", "-A POSTROUTING -j SKIFFNET-MASQ",
                   f"-A SKIFFNET-MASQ -s {POD} ! -d {CLUSTER} -j MASQUERADE"]
    assert filt == ["-A FORWARD -j SKIFFNET-FWD", f"-A SKIFFNET-FWD -s {CLUSTER} -j ACCEPT",
                    f"-A SKIFFNET-FWD -d {CLUSTER} -j ACCEPT"]
    assert ensure(ns) is False                   # nothing to do: no restore

    ipt(ns, "-t", "nat", "-D", "POSTROUTING", "-j", "SKIFFNET-MASQ")
    ipt(ns, "-A", "SKIFFNET-FWD", "-j", "DROP")
    assert ensure(ns) is True
    assert rules(ns, "nat") == nat and rules(ns, "filter") == filt
    assert ensure(ns) is False
