"""The node DNS server over real UDP/TCP sockets on 127.0.0.1: cluster answers, REFUSED
without an upstream, forwarding to a small upstream of the test's own (also on loopback),
SERVFAIL when that upstream is gone."""

from dnslib import QTYPE, RCODE, RR, A, DNSRecord
from dnslib.server import DNSServer

from nodeagent.dns.server import DnsServer, _QuietLogger
from nodeagent.dns.view import DictView
from skiff.api import objects_pb2 as pb
from tests.helpers import free_port_block


def _view():
    s = pb.Service()
    s.metadata.name, s.metadata.namespace = "web", "default"
    s.spec.cluster_ip, s.spec.type = "10.96.0.10", "ClusterIP"
    return DictView(services={("default", "web"): s})


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
    up = DNSServer(_Upstream(), address="127.0.0.1", port=port + 1, logger=_QuietLogger())
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
