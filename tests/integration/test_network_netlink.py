"""The pod network's netlink applier on real namespaces (root; CI runs as root).

Two "nodes" (netns skiff-nt<id>-n1/n2, linked by a veth pair as their eth0 on one L2
segment) and one "pod" per node (a netns holding a sleep process, like a pause
container). For both backends: the bridge, the pod veth (IP, MAC from the IP, default
route), the planner's routes/neighbours/FDB entries, then pod->pod traffic across
nodes keeps the pod's source IP; a deleted route is put back by the next plan; a node
that disappears from the desired set loses its entries; re-applying changes nothing.
"""

import os
import signal
import subprocess
import uuid

import pytest

from nodeagent.network import routes_plan as rp
from nodeagent.network.ipam import PodIpam
from nodeagent.network.names import BRIDGE, VXLAN_DEVICE, bridge_mac, pod_mac, veth_name, vtep_mac
from nodeagent.network.netlink import NetlinkApplier
from tests.helpers import remove, temp_dir, wait_until

NODE_IPS = ("192.168.231.1", "192.168.231.2")
CIDRS = ("10.244.0.0/24", "10.244.1.0/24")
CLUSTER_CIDR = "10.244.0.0/16"
UNREACHABLE = rp.Route(CLUSTER_CIDR, "", rp.UNREACHABLE)


def sh(*argv, check=True):
    r = subprocess.run(list(argv), capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(argv)}: {r.stderr}")
    return r


class Lab:
    def __init__(self):
        tag = uuid.uuid4().hex[:6]
        self.nodes = [f"skiff-nt{tag}-n{i}" for i in (1, 2)]
        self.pods = [f"skiff-nt{tag}-p{i}" for i in (1, 2)]
        self.procs = []
        self.appliers = []
        self.dir = temp_dir("net")

    def build(self):
        for ns in self.nodes + self.pods:
            sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", "skiffnt0", "netns", self.nodes[0], "type", "veth", "peer", "name", "skiffnt1",
           "netns", self.nodes[1])
        for i, ns in enumerate(self.nodes):
            sh("ip", "-n", ns, "link", "set", f"skiffnt{i}", "name", "eth0")
            sh("ip", "-n", ns, "addr", "add", f"{NODE_IPS[i]}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        for ns in self.pods:   # the "pause" process whose /proc/<pid>/ns/net the agent uses
            p = subprocess.Popen(["ip", "netns", "exec", ns, "sleep", "600"])
            self.procs.append(p)
        wait_until(lambda: all(os.readlink(f"/proc/{p.pid}/ns/net") != os.readlink("/proc/self/ns/net")
                               for p in self.procs), 5, "pods in their namespaces")
        self.appliers = [NetlinkApplier(ns) for ns in self.nodes]

    def close(self):
        for a in self.appliers:
            a.close()
        for p in self.procs:
            p.send_signal(signal.SIGKILL)
            p.wait()
        for ns in self.pods + self.nodes:
            sh("ip", "netns", "del", ns, check=False)
        remove(self.dir)


@pytest.fixture
def lab():
    lab = Lab()
    try:
        lab.build()
        yield lab
    finally:
        lab.close()


def remotes(me):
    return [rp.RemoteNode(f"n{i}", NODE_IPS[i], CIDRS[i], vtep_mac(NODE_IPS[i])) for i in range(2) if i != me]


def sync(lab, i, backend, nodes=None):
    net = lab.appliers[i]
    ext = net.index("eth0")
    vx = net.index(VXLAN_DEVICE)
    want = rp.desired(remotes(i) if nodes is None else nodes, backend, CLUSTER_CIDR)
    actions = rp.plan(want, net.read(ext, vx))
    assert net.apply(actions, ext, vx) == 0
    return actions


def setup(lab, backend):
    mtu = 1450 if backend == "vxlan" else 1500
    ips = []
    for i, net in enumerate(lab.appliers):
        net.ensure_bridge(CIDRS[i])
        if backend == "vxlan":
            net.ensure_vxlan(NODE_IPS[i], net.index("eth0"), CIDRS[i])
        ipam = PodIpam(os.path.join(lab.dir, f"n{i}"))
        ipam.set_cidr(CIDRS[i])
        sandbox = uuid.uuid4().hex * 2
        ip = ipam.allocate(f"uid{i}", sandbox)
        assert net.setup_pod(sandbox, lab.procs[i].pid, ip, CIDRS[i], mtu) is True
        assert net.setup_pod(sandbox, lab.procs[i].pid, ip, CIDRS[i], mtu) is False  # adopted, not redone
        ips.append((ip, sandbox))
    for i in range(2):
        assert sync(lab, i, backend)
        assert sync(lab, i, backend) == []        # idempotent: nothing left to do
    return ips


def reach(lab, src, dst_ip, port=8080):
    """A TCP connection from pod src to dst_ip:port; returns what the server saw as its peer."""
    server_ns = lab.pods[1 - src]
    srv = subprocess.Popen(["ip", "netns", "exec", server_ns, "busybox", "nc", "-l", "-p", str(port), "-e",
                            "busybox", "netstat", "-tn"],
                           stdout=subprocess.PIPE, text=True)
    try:
        def connect():
            r = sh("ip", "netns", "exec", lab.pods[src], "busybox", "nc", "-w", "2", dst_ip, str(port), check=False)
            return r.stdout if r.returncode == 0 and r.stdout else None
        out = wait_until(connect, 10, f"pod {src} -> {dst_ip}:{port}")
        return out
    finally:
        srv.kill()
        srv.wait()


@pytest.mark.parametrize("backend", ["host-gw", "vxlan"])
def test_pod_to_pod_across_nodes_keeps_source_ip(lab, backend):
    (ip0, sb0), (ip1, _sb1) = setup(lab, backend)
    assert ip0 == "10.244.0.2" and ip1 == "10.244.1.2"
    addr = sh("ip", "netns", "exec", lab.pods[0], "ip", "-o", "addr", "show", "eth0").stdout
    assert "10.244.0.2/24" in addr
    link = sh("ip", "netns", "exec", lab.pods[0], "ip", "-o", "link", "show", "eth0").stdout
    assert pod_mac(ip0) in link
    assert ("mtu 1450" in link) == (backend == "vxlan")
    route = sh("ip", "netns", "exec", lab.pods[0], "ip", "route").stdout
    assert "default via 10.244.0.1 dev eth0" in route
    port = sh("ip", "-n", lab.nodes[0], "-d", "link", "show", veth_name(sb0)).stdout
    assert "hairpin on" in port and f"master {BRIDGE}" in port
    seen = reach(lab, 0, ip1)
    assert f"{ip1}:8080" in seen and f"{ip0}:" in seen, seen   # the server sees the client's pod IP


@pytest.mark.parametrize("backend", ["host-gw", "vxlan"])
def test_drift_is_repaired_and_gone_nodes_are_removed(lab, backend):
    setup(lab, backend)
    sh("ip", "-n", lab.nodes[0], "route", "del", CIDRS[1])
    actions = sync(lab, 0, backend)
    assert [(a.op, type(a.entry).__name__) for a in actions] == [("add", "Route")]
    assert CIDRS[1] in sh("ip", "-n", lab.nodes[0], "route").stdout
    # node 2 is gone: every entry for it goes, only the cluster CIDR's unreachable route remains
    actions = sync(lab, 0, backend, nodes=[])
    assert actions and all(a.op == "del" for a in actions)
    net = lab.appliers[0]
    assert net.read(net.index("eth0"), net.index(VXLAN_DEVICE)) == rp.Entries(frozenset({UNREACHABLE}))
    routes = sh("ip", "-n", lab.nodes[0], "route").stdout
    assert CIDRS[1] not in routes and f"unreachable {CLUSTER_CIDR} proto 77" in routes, routes
    # ... so a connection to its pod fails at once with "no route to host" (the nodes here have
    # no default route: without the unreachable route it would be "network unreachable")
    r = sh("ip", "netns", "exec", lab.pods[0], "busybox", "nc", "-w", "5", "10.244.1.2", "8080", check=False)
    assert r.returncode != 0 and "No route to host" in r.stderr, r.stderr
    # the unreachable route is drift-repaired like any other
    sh("ip", "-n", lab.nodes[0], "route", "del", "unreachable", CLUSTER_CIDR)
    assert [(a.op, a.entry) for a in sync(lab, 0, backend, nodes=[])] == [("add", UNREACHABLE)]
    if backend == "vxlan":
        assert vtep_mac(NODE_IPS[1]) not in sh("ip", "netns", "exec", lab.nodes[0], "bridge", "fdb", "show",
                                               "dev", VXLAN_DEVICE).stdout


def test_bridge_and_teardown(lab):
    (ip0, sb0), _ = setup(lab, "host-gw")
    net = lab.appliers[0]
    assert net.ensure_bridge(CIDRS[0]) is False          # already right: no change
    assert veth_name(sb0) in net.pod_veths()
    assert net.delete_link(veth_name(sb0)) is True
    assert veth_name(sb0) not in net.pod_veths()
    assert net.delete_link(veth_name(sb0)) is False
    # the bridge follows a new pod CIDR (a node re-created with another block)
    assert net.ensure_bridge("10.244.7.0/24") is True
    assert "10.244.7.1/24" in sh("ip", "-n", lab.nodes[0], "addr", "show", BRIDGE).stdout
    assert "10.244.0.1/24" not in sh("ip", "-n", lab.nodes[0], "addr", "show", BRIDGE).stdout


def test_bridge_mac_is_fixed_while_ports_come_and_go(lab):
    """The bridge keeps the MAC set on it while ports with lower and higher MACs join and
    leave (an unset bridge MAC follows the lowest port's, so a pod's ARP entry for the
    gateway would go stale: docs/networking.md fact 9), and a bridge left with another MAC
    (by an older agent) gets it set."""
    node, net = lab.nodes[0], lab.appliers[0]

    def bridge():
        return sh("ip", "netns", "exec", node, "cat", f"/sys/class/net/{BRIDGE}/address").stdout.strip()
    assert net.ensure_bridge(CIDRS[0]) is True
    assert bridge() == bridge_mac(CIDRS[0]) == "0a:58:0a:f4:00:01"
    for i, mac in enumerate(["02:00:00:00:00:01", "fe:00:00:00:00:01", "00:00:00:00:00:01"]):
        sh("ip", "-n", node, "link", "add", f"skiffp{i}", "address", mac, "type", "veth", "peer", "name", f"skiffq{i}")
        sh("ip", "-n", node, "link", "set", f"skiffp{i}", "master", BRIDGE, "up")
        assert bridge() == bridge_mac(CIDRS[0]), f"after {mac} joined"
    for i in (2, 0):
        sh("ip", "-n", node, "link", "del", f"skiffp{i}")
        assert bridge() == bridge_mac(CIDRS[0]), f"after skiffp{i} left"
    # an unset bridge (as agents before the fix made it) takes its lowest port's MAC ...
    sh("ip", "-n", node, "link", "del", BRIDGE)
    sh("ip", "-n", node, "link", "add", BRIDGE, "type", "bridge")
    sh("ip", "-n", node, "link", "set", "skiffp1", "master", BRIDGE)
    assert bridge() == "fe:00:00:00:00:01"
    # ... and the agent sets it, after which it no longer follows the ports
    assert net.ensure_bridge(CIDRS[0]) is True
    assert net.ensure_bridge(CIDRS[0]) is False
    sh("ip", "-n", node, "link", "del", "skiffp1")
    assert bridge() == bridge_mac(CIDRS[0])
    # another pod CIDR, another bridge address and MAC
    assert net.ensure_bridge("10.244.7.0/24") is True
    assert bridge() == "0a:58:0a:f4:07:01"
