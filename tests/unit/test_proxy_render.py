"""The pure iptables renderer (nodeagent/proxy/render.py): golden texts and invariants.

Golden files live in tests/unit/golden/proxy_*.txt; after an intended change of the
layout, regenerate them with SKIFF_REGEN_GOLDEN=1 and review the diff.
"""

import os
import re

import pytest

from nodeagent.proxy import render as r
from skiff.api import objects_pb2 as pb

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")
NODE = r.Node("node1")


def svc(name, ip, typ="ClusterIP", ports=(("http", 80, 0, "TCP"),), affinity_s=0, lb=(), ns="default"):
    s = pb.Service(metadata=pb.ObjectMeta(name=name, namespace=ns))
    s.spec.type, s.spec.cluster_ip = typ, ip
    for pname, port, node_port, proto in ports:
        s.spec.ports.add(name=pname, port=port, node_port=node_port, protocol=proto)
    if affinity_s:
        s.spec.session_affinity = "ClientIP"
        s.spec.session_affinity_config.client_ip.timeout_seconds = affinity_s
    for ip_ in lb:
        s.status.load_balancer.ingress.add(ip=ip_)
    return s


def eps(name, ips, ports=(("http", 8080, "TCP"),), not_ready=(), ns="default", node_of=None):
    e = pb.Endpoints(metadata=pb.ObjectMeta(name=name, namespace=ns))
    sub = e.subsets.add()
    for pname, port, proto in ports:
        sub.ports.add(name=pname, port=port, protocol=proto)
    for ip_ in ips:
        sub.addresses.add(ip=ip_, node_name=(node_of or {}).get(ip_, "node1"))
    for ip_ in not_ready:
        sub.not_ready_addresses.add(ip=ip_, node_name="node2")
    return e


def local(s):
    s.spec.external_traffic_policy = "Local"
    return s


def internal_local(s):
    s.spec.internal_traffic_policy = "Local"
    return s


SCENARIOS = {
    "empty": ([], [], NODE, None),
    # externalTrafficPolicy Local on node1: web has one endpoint here (SVL over it), db none (DROP);
    "external_local": (
        [local(svc("web", "10.96.0.10", "LoadBalancer", (("http", 80, 30080, "TCP"),), affinity_s=60,
                   lb=["10.200.0.200"])),
         local(svc("db", "10.96.0.11", "NodePort", (("pg", 5432, 30432, "TCP"),)))],
        [eps("web", ["10.244.1.5", "10.244.2.5"], node_of={"10.244.2.5": "node2"}),
         eps("db", ["10.244.2.9"], ports=(("pg", 5432, "TCP"),), node_of={"10.244.2.9": "node2"})],
        r.Node("node1", cluster_cidr="10.244.0.0/16"), None),
    # internalTrafficPolicy Local on node1: cache has an endpoint here (ClusterIP -> SVL), remote
    # none (DROP); edge is a NodePort with both policies Local and no endpoint here (all dropped).
    "internal_local": (
        [internal_local(svc("cache", "10.96.0.12")), internal_local(svc("remote", "10.96.0.13")),
         local(internal_local(svc("edge", "10.96.0.14", "NodePort", (("http", 80, 30081, "TCP"),))))],
        [eps("cache", ["10.244.1.5", "10.244.2.5"], node_of={"10.244.2.5": "node2"}),
         eps("remote", ["10.244.2.6"], node_of={"10.244.2.6": "node2"}),
         eps("edge", ["10.244.2.7"], node_of={"10.244.2.7": "node2"})],
        r.Node("node1", cluster_cidr="10.244.0.0/16"), None),
    "clusterip_three_endpoints": (
        [svc("web", "10.96.0.10")],
        [eps("web", ["10.244.2.7", "10.244.1.5", "10.244.1.10"], not_ready=["10.244.3.3"])], NODE, None),
    "nodeport_lb_affinity_udp": (
        [svc("web", "10.96.0.10", "LoadBalancer", (("http", 80, 30080, "TCP"),), affinity_s=60,
             lb=["10.200.0.200"]),
         svc("dns", "10.96.0.53", "NodePort", (("dns", 53, 30053, "UDP"), ("dns-tcp", 53, 30054, "TCP")),
             ns="kube-system")],
        [eps("web", ["10.244.1.5", "10.244.2.5"]),
         eps("dns", ["10.244.1.9"], ports=(("dns", 5353, "UDP"), ("dns-tcp", 5353, "TCP")), ns="kube-system")],
        r.Node("node1", cluster_cidr="10.244.0.0/16"), None),
    "no_endpoints_reject_and_stale": (
        [svc("down", "10.96.0.20", "LoadBalancer", (("http", 80, 30090, "TCP"),), lb=["10.200.0.201"]),
         svc("headless", "None"), svc("ext", "", "ExternalName")],
        [eps("down", [], not_ready=["10.244.1.5"])], NODE,
        {"nat": {"SKIFF-SERVICES", "SKIFF-SVC-STALE0000000000", "SKIFF-SEP-STALE0000000000", "KUBE-SERVICES"},
         "filter": {"SKIFF-OLD-FILTER", "DOCKER"}}),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_golden(name):
    services, endpoints, node, existing = SCENARIOS[name]
    text = r.render(services, endpoints, node, existing)
    path = os.path.join(GOLDEN, f"proxy_{name}.txt")
    if os.environ.get("SKIFF_REGEN_GOLDEN"):
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    with open(path, encoding="utf-8") as f:
        assert text == f.read()


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_invariants(name):
    services, endpoints, node, existing = SCENARIOS[name]
    text = r.render(services, endpoints, node, existing)
    # Deterministic, also with inputs in another order.
    assert text == r.render(list(reversed(services)), list(reversed(endpoints)), node, existing)
    declared, used, deleted = set(), set(), set()
    table = None
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":"):
            chain = line[1:].split()[0]
            assert chain.startswith("SKIFF-") and len(chain) <= 28
            declared.add((table, chain))
        elif line.startswith("-A "):
            chain = line.split()[1]
            assert (table, chain) in declared, line
            target = re.search(r"-j (\S+)", line).group(1)
            if target.startswith("SKIFF-"):
                used.add((table, target))
        elif line.startswith("-X "):
            assert line.split()[1].startswith("SKIFF-")
            deleted.add((table, line.split()[1]))
    assert used <= declared
    # Every per-service chain is jumped to (kube-proxy renders no unreferenced chains either).
    dynamic = {(t, c) for t, c in declared - deleted if re.match(r"SKIFF-(SVC|SVL|SEP|EXT)-", c)}
    assert dynamic <= used, sorted(dynamic - used)
    assert text.count("COMMIT") == 2
    assert "KUBE-" not in text and "DOCKER" not in text   # never touches other software's chains


def test_probabilities_spread_evenly():
    ips = [f"10.244.1.{i}" for i in range(1, 5)]
    text = r.render([svc("web", "10.96.0.10")], [eps("web", ips)], NODE)
    probs = re.findall(r"--probability (\S+)", text)
    assert probs == ["0.2500000000", "0.3333333333", "0.5000000000"]
    svc_chain = r.chain_name("SVC", "default/web:http/tcp")
    rules = [line for line in text.splitlines() if line.startswith(f"-A {svc_chain}")]
    assert len(rules) == 4 and "statistic" not in rules[-1]


def test_chain_names():
    name = r.chain_name("SVC", "default/web:http/tcp")
    assert re.fullmatch(r"SKIFF-SVC-[A-Z2-7]{16}", name)
    assert r.chain_name("SEP", "x") != r.chain_name("SEP", "y")


def test_skiff_chains_and_lines_from_save():
    save = ("# Generated by iptables-save\n*nat\n:PREROUTING ACCEPT [3:120]\n:SKIFF-SERVICES - [0:0]\n"
            ":KUBE-X - [0:0]\n-A PREROUTING -j SKIFF-SERVICES\n-A KUBE-X -j RETURN\nCOMMIT\n*filter\n"
            ":SKIFF-FORWARD - [0:0]\nCOMMIT\n")
    assert r.skiff_chains(save) == {"nat": {"SKIFF-SERVICES"}, "filter": {"SKIFF-FORWARD"}}
    assert r.skiff_lines(save) == ("*nat\n:SKIFF-SERVICES\n-A PREROUTING -j SKIFF-SERVICES\n*filter\n"
                                   ":SKIFF-FORWARD\n")
