"""Table tests for the pure cluster DNS resolver (nodeagent/dns/resolver.py)."""

import pytest

from nodeagent.dns.resolver import Record, answer
from nodeagent.dns.view import DictView
from skiff.api import objects_pb2 as pb


def svc(name, ns="default", ip="10.96.0.10", type_="ClusterIP", ports=(), external="", pnr=False):
    s = pb.Service()
    s.metadata.name, s.metadata.namespace = name, ns
    s.spec.cluster_ip, s.spec.type, s.spec.external_name = ip, type_, external
    s.spec.publish_not_ready_addresses = pnr
    for pname, port, proto in ports:
        s.spec.ports.add(name=pname, port=port, protocol=proto)
    return s


def eps(name, ns="default", ready=(), not_ready=(), ports=()):
    e = pb.Endpoints()
    e.metadata.name, e.metadata.namespace = name, ns
    sub = e.subsets.add()
    for ip, host in ready:
        sub.addresses.add(ip=ip, hostname=host)
    for ip in not_ready:
        sub.not_ready_addresses.add(ip=ip)
    for pname, port, proto in ports:
        sub.ports.add(name=pname, port=port, protocol=proto)
    return e


VIEW = DictView(
    services={
        ("default", "web"): svc("web", ports=[("http", 80, "TCP"), ("", 81, "TCP")]),
        ("apps", "db"): svc("db", "apps", ip="None", ports=[("pg", 5432, "TCP")]),
        ("apps", "pub"): svc("pub", "apps", ip="None", pnr=True),
        ("default", "ext"): svc("ext", type_="ExternalName", ip="", external="example.lab."),
    },
    endpoints={
        ("apps", "db"): eps("db", "apps", ready=[("10.244.1.5", ""), ("10.244.2.7", "db-0")],
                            not_ready=["10.244.3.9"], ports=[("pg", 5432, "TCP")]),
        ("apps", "pub"): eps("pub", "apps", ready=[("10.244.1.6", "")], not_ready=["10.244.3.8"]),
    },
    pod_ips={("apps", "10.244.1.5")},
)

A = "A"


@pytest.mark.parametrize("qname,qtype,rcode,records", [
    # ClusterIP service: FQDN (any case, trailing dot) -> ClusterIP
    ("web.default.svc.cluster.local.", A, "NOERROR", [("web.default.svc.cluster.local", A, "10.96.0.10")]),
    ("WEB.Default.svc.cluster.local", A, "NOERROR", [("web.default.svc.cluster.local", A, "10.96.0.10")]),
    ("web.default.svc.cluster.local", "AAAA", "NOERROR", []),      # exists, no IPv6: NODATA
    ("web.default.svc.cluster.local", "ANY", "NOERROR", [("web.default.svc.cluster.local", A, "10.96.0.10")]),
    # headless: the ready endpoints only
    ("db.apps.svc.cluster.local", A, "NOERROR", [("db.apps.svc.cluster.local", A, "10.244.1.5"),
                                                 ("db.apps.svc.cluster.local", A, "10.244.2.7")]),
    # publishNotReadyAddresses: not-ready ones too
    ("pub.apps.svc.cluster.local", A, "NOERROR", [("pub.apps.svc.cluster.local", A, "10.244.1.6"),
                                                  ("pub.apps.svc.cluster.local", A, "10.244.3.8")]),
    # headless endpoint hostnames (hostname, else dashed IP)
    ("db-0.db.apps.svc.cluster.local", A, "NOERROR", [("db-0.db.apps.svc.cluster.local", A, "10.244.2.7")]),
    ("10-244-1-5.db.apps.svc.cluster.local", A, "NOERROR",
     [("10-244-1-5.db.apps.svc.cluster.local", A, "10.244.1.5")]),
    ("10-244-3-9.db.apps.svc.cluster.local", A, "NXDOMAIN", []),   # not ready
    ("x.web.default.svc.cluster.local", A, "NXDOMAIN", []),        # not headless
    # ExternalName -> CNAME (whatever the type asked)
    ("ext.default.svc.cluster.local", A, "NOERROR", [("ext.default.svc.cluster.local", "CNAME", "example.lab")]),
    # pods ("verified": a pod of that namespace has the IP)
    ("10-244-1-5.apps.pod.cluster.local", A, "NOERROR", [("10-244-1-5.apps.pod.cluster.local", A, "10.244.1.5")]),
    ("10-244-1-5.default.pod.cluster.local", A, "NXDOMAIN", []),
    ("10-244-1-500.apps.pod.cluster.local", A, "NXDOMAIN", []),
    ("010-244-1-5.apps.pod.cluster.local", A, "NXDOMAIN", []),
    # unknown names inside the zone
    ("nope.default.svc.cluster.local", A, "NXDOMAIN", []),
    ("web.other.svc.cluster.local", A, "NXDOMAIN", []),
    ("web.default.cluster.local", A, "NXDOMAIN", []),
    ("a.b.c.d.e.f.svc.cluster.local", A, "NXDOMAIN", []),
    ("web.default.svc.cluster.local.default.svc.cluster.local", A, "NXDOMAIN", []),
    # the zone's structure exists (NODATA, not NXDOMAIN)
    ("cluster.local", A, "NOERROR", []),
    ("svc.cluster.local", A, "NOERROR", []),
    ("default.svc.cluster.local", A, "NOERROR", []),
])
def test_answers(qname, qtype, rcode, records):
    ans = answer(qname, qtype, VIEW)
    assert not ans.forward
    assert ans.rcode == rcode
    assert [(r.name, r.rtype, r.value) for r in ans.records] == records


def test_srv_named_port_of_a_clusterip_service():
    ans = answer("_http._tcp.web.default.svc.cluster.local", "SRV", VIEW)
    assert ans.records == (Record("_http._tcp.web.default.svc.cluster.local", "SRV",
                                  (0, 100, 80, "web.default.svc.cluster.local")),)
    assert ans.additional == (Record("web.default.svc.cluster.local", "A", "10.96.0.10"),)


def test_srv_of_a_headless_service_names_each_endpoint():
    ans = answer("_pg._tcp.db.apps.svc.cluster.local", "SRV", VIEW)
    assert [r.value for r in ans.records] == [(0, 100, 5432, "10-244-1-5.db.apps.svc.cluster.local"),
                                              (0, 100, 5432, "db-0.db.apps.svc.cluster.local")]
    assert [(r.name, r.value) for r in ans.additional] == [("10-244-1-5.db.apps.svc.cluster.local", "10.244.1.5"),
                                                           ("db-0.db.apps.svc.cluster.local", "10.244.2.7")]


@pytest.mark.parametrize("qname,qtype,rcode", [
    ("_http._udp.web.default.svc.cluster.local", "SRV", "NXDOMAIN"),   # wrong protocol
    ("_nope._tcp.web.default.svc.cluster.local", "SRV", "NXDOMAIN"),   # unknown port name
    ("_http._tcp.web.default.svc.cluster.local", "A", "NOERROR"),      # exists, no A: NODATA
])
def test_srv_misses(qname, qtype, rcode):
    ans = answer(qname, qtype, VIEW)
    assert ans.rcode == rcode and ans.records == ()


@pytest.mark.parametrize("qname", ["example.lab", "example.lab.", "local", "cluster.local.evil", "notcluster.local"])
def test_names_outside_the_zone_are_forwarded(qname):
    ans = answer(qname, "A", VIEW)
    assert ans.forward and ans.records == ()
