"""The node DNS server over real UDP/TCP sockets on 127.0.0.1: cluster answers, REFUSED
without an upstream, forwarding to an upstream (the lab's own resolver,
skiff.lab.upstream_dns, also on loopback), SERVFAIL when that upstream is gone, and
ExternalName CNAMEs followed to their target's addresses."""

from dnslib import QTYPE, RCODE, RR, A, DNSQuestion, DNSRecord
from dnslib.server import DNSServer

from nodeagent.dns.server import DnsServer
from nodeagent.dns.view import DictView
from skiff.api import objects_pb2 as pb
from skiff.dnsserve import QuietLogger
from skiff.lab import upstream_dns
from tests.helpers import free_port_block


def _svc(name, **spec):
    s = pb.Service()
    s.metadata.name, s.metadata.namespace = name, "default"
    for k, v in spec.items():
        setattr(s.spec, k, v)
    return s


def _view():
    services = [_svc("web", cluster_ip="10.96.0.10", type="ClusterIP"),
                _svc("outside", type="ExternalName", external_name="node1.lab"),
                _svc("inside", type="ExternalName", external_name="web.default.svc.cluster.local"),
                _svc("dangling", type="ExternalName", external_name="nosuch.lab"),
                _svc("loop", type="ExternalName", external_name="loop.default.svc.cluster.local")]
    return DictView(services={("default", s.metadata.name): s for s in services})


def _ask(port, name, qtype="A", tcp=False):
    return DNSRecord.parse(DNSRecord.question(name, qtype).send("127.0.0.1", port, tcp=tcp, timeout=3))


class _Upstream:
    def resolve(self, request, handler):
        reply = request.reply()
        reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A("192.0.2.7"), ttl=30))
        return reply


def test_cluster_names_over_udp_and_tcp_and_refused_without_upstream():
    port = free_port_block(1)
    srv = DnsServer(_view(), "127.0.0.1", port).start()
    try:
        for tcp in (False, True):
            r = _ask(port, "web.default.svc.cluster.local", tcp=tcp)
            assert r.header.rcode == RCODE.NOERROR and r.header.aa == 1
            assert [str(rr.rdata) for rr in r.rr] == ["10.96.0.10"]
        r = _ask(port, "nope.default.svc.cluster.local")
        assert r.header.rcode == RCODE.NXDOMAIN and not r.rr
        r = _ask(port, "example.lab")
        assert r.header.rcode == RCODE.REFUSED and not r.rr
    finally:
        srv.stop()


def test_other_names_go_to_the_configured_upstream():
    port = free_port_block(2)
    up = DNSServer(_Upstream(), address="127.0.0.1", port=port + 1, logger=QuietLogger())
    up.start_thread()
    srv = DnsServer(_view(), "127.0.0.1", port, upstream=("127.0.0.1", port + 1)).start()
    try:
        r = _ask(port, "example.lab")
        assert r.header.rcode == RCODE.NOERROR
        assert [(str(rr.rname), str(rr.rdata)) for rr in r.rr] == [("example.lab.", "192.0.2.7")]
        assert [str(rr.rdata) for rr in _ask(port, "web.default.svc.cluster.local").rr] == ["10.96.0.10"]
        up.stop()
        up.server.server_close()
        r = _ask(port, "example.lab")
        assert r.header.rcode == RCODE.SERVFAIL
    finally:
        srv.stop()


def _answers(r):
    return [(str(rr.rname), QTYPE.get(rr.rtype), str(rr.rdata)) for rr in r.rr]


def test_forwarding_to_the_lab_resolver_and_external_names_followed():
    port = free_port_block(2)
    lab = upstream_dns.serve(("127.0.0.1", port + 1), "lab", {"node1": "10.200.0.21", "gateway": "10.200.0.254"})
    srv = DnsServer(_view(), "127.0.0.1", port, upstream=("127.0.0.1", port + 1)).start()
    try:
        for tcp in (False, True):
            r = _ask(port, "node1.lab", tcp=tcp)
            assert r.header.rcode == RCODE.NOERROR and _answers(r) == [("node1.lab.", "A", "10.200.0.21")]
        for name in ("nosuch.lab", "example.com"):      # the lab has no internet: NXDOMAIN at once
            r = _ask(port, name)
            assert r.header.rcode == RCODE.NXDOMAIN and not r.rr, name
        r = _ask(port, "node1.lab", "AAAA")              # a known name without that type: NODATA
        assert r.header.rcode == RCODE.NOERROR and not r.rr
        # ExternalName: the CNAME, then its target's address from the upstream (as CoreDNS)
        r = _ask(port, "outside.default.svc.cluster.local")
        assert _answers(r) == [("outside.default.svc.cluster.local.", "CNAME", "node1.lab."),
                               ("node1.lab.", "A", "10.200.0.21")]
        # ... or from the cluster zone itself
        r = _ask(port, "inside.default.svc.cluster.local")
        assert _answers(r) == [("inside.default.svc.cluster.local.", "CNAME", "web.default.svc.cluster.local."),
                               ("web.default.svc.cluster.local.", "A", "10.96.0.10")]
        # a target nobody knows: the bare CNAME; asked for the CNAME itself: not followed
        assert [t for _, t, _ in _answers(_ask(port, "dangling.default.svc.cluster.local"))] == ["CNAME"]
        assert [t for _, t, _ in _answers(_ask(port, "outside.default.svc.cluster.local", "CNAME"))] == ["CNAME"]
        # a name pointing at itself: one CNAME, no loop; a type dnslib has no name for: still an answer
        assert [t for _, t, _ in _answers(_ask(port, "loop.default.svc.cluster.local"))] == ["CNAME"]
        r = DNSRecord.parse(DNSRecord(q=DNSQuestion("outside.default.svc.cluster.local", 65280)).send(
            "127.0.0.1", port, timeout=3))
        assert r.header.rcode == RCODE.NOERROR and [t for _, t, _ in _answers(r)][:1] == ["CNAME"]
    finally:
        srv.stop()
        lab.stop()


def test_external_name_without_upstream_is_the_bare_cname():
    port = free_port_block(1)
    srv = DnsServer(_view(), "127.0.0.1", port).start()
    try:
        r = _ask(port, "outside.default.svc.cluster.local")
        assert r.header.rcode == RCODE.NOERROR
        assert _answers(r) == [("outside.default.svc.cluster.local.", "CNAME", "node1.lab.")]
    finally:
        srv.stop()
