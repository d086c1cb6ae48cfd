"""The hostPort planner (nodeagent/proxy/hostport.py): which pods map which node ports, and the rules."""

import pytest

from nodeagent.proxy import drift, hostport
from nodeagent.proxy import render as r
from skiff.api import objects_pb2 as pb
from tests.unit.test_proxy_drift import JUMPS, saved_form


def pod(name="web", ports=((80, 8080, "", ""),), node="n1", ip="10.244.1.5", phase="Running",
        host_network=False, namespace="default"):
    """ports: (containerPort, hostPort, protocol, hostIP) of one container."""
    p = pb.Pod(metadata=pb.ObjectMeta(name=name, namespace=namespace))
    p.spec.node_name = node
    p.spec.host_network = host_network
    c = p.spec.containers.add(name="c", image="busybox")
    for container_port, host_port, protocol, host_ip in ports:
        c.ports.add(container_port=container_port, host_port=host_port, protocol=protocol, host_ip=host_ip)
    p.status.pod_ip = ip
    p.status.phase = phase
    return p


def m(host_port=8080, container_port=80, protocol="tcp", host_ip="", pod_ip="10.244.1.5", name="web"):
    return hostport.HostPortMapping("default", name, host_ip, host_port, protocol, pod_ip, container_port)


MAPPING_CASES = [
    ("a running pod's hostPort", [pod()], [m()]),
    ("a containerPort without hostPort maps nothing", [pod(ports=((80, 0, "", ""),))], []),
    ("protocol defaults to TCP, lowercased", [pod(ports=((53, 5353, "UDP", ""), (80, 8080, "", "")))],
     [m(5353, 53, "udp"), m()]),
    ("SCTP", [pod(ports=((99, 9999, "SCTP", ""),))], [m(9999, 99, "sctp")]),
    ("hostIP kept, 0.0.0.0 means every address", [pod(ports=((80, 8080, "", "10.0.0.1"), (81, 8081, "", "0.0.0.0")))],
     [m(host_ip="10.0.0.1"), m(8081, 81)]),
    ("an IPv6 hostIP is skipped", [pod(ports=((80, 8080, "", "fd00::1"),))], []),
    ("a pod on another node", [pod(node="n2")], []),
    ("a pod without an IP yet", [pod(ip="")], []),
    ("a pending pod with an IP is mapped", [pod(phase="Pending")], [m()]),
    ("a finished pod is not", [pod(phase="Succeeded"), pod("b", phase="Failed")], []),
    ("a hostNetwork pod binds the port itself", [pod(ports=((8080, 8080, "", ""),), host_network=True)], []),
    ("sorted by port, then pod", [pod("b", ip="10.244.1.6"), pod("a", ports=((80, 7070, "", ""),))],
     [m(7070, name="a"), m(pod_ip="10.244.1.6", name="b")]),
]


@pytest.mark.parametrize("pods, want", [c[1:] for c in MAPPING_CASES], ids=[c[0] for c in MAPPING_CASES])
def test_mappings(pods, want):
    assert hostport.mappings(pods, "n1") == want


def test_rules_of_a_mapping():
    chains = hostport.nat_chains([m(host_ip="10.0.0.1"), m(5353, 53, "udp")])
    a, b = hostport.mapping_chain(m(host_ip="10.0.0.1")), hostport.mapping_chain(m(5353, 53, "udp"))
    assert a.startswith("SKIFF-HP-") and len(a) <= 28 and a != b
    assert chains[r.HOSTPORTS] == [
        f'-A SKIFF-HOSTPORTS -d 10.0.0.1/32 -p tcp -m comment --comment "default/web hostPort 8080/tcp" '
        f'-m tcp --dport 8080 -j {a}',
        f'-A SKIFF-HOSTPORTS -p udp -m comment --comment "default/web hostPort 5353/udp" -m udp --dport 5353 -j {b}']
    assert chains[a] == [
        f'-A {a} -s 10.244.1.5/32 -m comment --comment "default/web hostPort 8080/tcp" -j SKIFF-MARK-MASQ',
        f'-A {a} -p tcp -m comment --comment "default/web hostPort 8080/tcp" -m tcp '
        '-j DNAT --to-destination 10.244.1.5:80']


def test_no_mapping_still_declares_the_chain_the_jumps_need():
    assert hostport.nat_chains([]) == {r.HOSTPORTS: []}
    text = r.render_ports([], r.Node("n1"), {}, extra_nat=hostport.nat_chains([]))
    assert ":SKIFF-HOSTPORTS - [0:0]" in text
    assert [spec[-1] for t, chain, spec in r.jump_rules() if chain in ("PREROUTING", "OUTPUT") and t == "nat"
            ].count(r.HOSTPORTS) == 2


def test_rendered_with_the_service_rules_and_removed_when_the_pod_goes():
    maps = hostport.mappings([pod()], "n1")
    chain = hostport.mapping_chain(maps[0])
    text = r.render_ports([], r.Node("n1"), {}, extra_nat=hostport.nat_chains(maps))
    nat = text.split("*nat")[1]
    assert f":{chain} - [0:0]" in nat and "-j DNAT --to-destination 10.244.1.5:80" in nat
    assert drift.drifted(saved_form(text), text, JUMPS) == []
    # The pod is gone: its chain is emptied and deleted in the same transaction.
    after = r.render_ports([], r.Node("n1"), r.skiff_chains(saved_form(text)), extra_nat=hostport.nat_chains([]))
    assert f"-X {chain}" in after and "DNAT" not in after
    assert "-X SKIFF-HOSTPORTS" not in after


def test_a_changed_pod_ip_is_drift_of_the_applied_text():
    old = r.render_ports([], r.Node("n1"), {}, extra_nat=hostport.nat_chains(hostport.mappings([pod()], "n1")))
    new = r.render_ports([], r.Node("n1"), {}, extra_nat=hostport.nat_chains(
        hostport.mappings([pod(ip="10.244.1.9")], "n1")))
    assert any("rules differ" in p for p in drift.drifted(saved_form(old), new, JUMPS))


def test_the_loopback_exclusion_is_spelt_as_iptables_save_prints_it():
    spec = next(s for t, c, s in r.jump_rules() if c == "PREROUTING" and s[-1] == r.HOSTPORTS)
    assert drift.jump_line("PREROUTING", spec) == (
        '-A PREROUTING ! -d 127.0.0.0/8 -m comment --comment "skiff hostports" -m addrtype --dst-type LOCAL '
        '-j SKIFF-HOSTPORTS')


# ---------------------------------------------------------------- the proxier's use of it

class RecordingIptables:
    """The iptables seam: keeps the last restored text; nothing is live."""
    def __init__(self):
        self.texts = []

    def save(self):
        return ""

    def restore(self, text):
        self.texts.append(text)

    def ensure_jump(self, table, chain, spec):
        pass


def test_the_proxier_maps_this_nodes_pods_and_wakes_only_for_mapping_changes():
    from nodeagent.proxy.proxier import Proxier
    from skiff.informer import InformerFactory
    from tests.unit.test_reconcile import FakeClient

    factory = InformerFactory(FakeClient({"pods": [pod(), pod("plain", ports=())]}))
    ipt = RecordingIptables()
    px = Proxier(None, "n1", announce=False, iptables=ipt, monitor=False, informers=factory)
    assert px.pods.field_selector == "spec.nodeName=n1"
    factory.start()
    try:
        assert px.pods.wait_synced(5)
        assert px.sync()
        assert "-j DNAT --to-destination 10.244.1.5:80" in ipt.texts[-1]
    finally:
        factory.stop()
    wakes = []
    px.runner.run = lambda: wakes.append(1)
    px._pod_updated(pod(phase="Running"), pod(phase="Running"))           # status churn, same mapping
    px._pod_updated(pod("plain", ports=(), ip=""), pod("plain", ports=()))  # no hostPort: an IP changes nothing
    px._pod_changed(pod("plain", ports=()))
    assert wakes == []
    px._pod_updated(pod(ip=""), pod())                                     # the IP arrives
    px._pod_updated(pod(), pod(phase="Succeeded"))                         # finished: the mapping goes
    px._pod_changed(pod())                                                 # added / deleted
    assert len(wakes) == 3
