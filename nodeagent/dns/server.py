"""The node's DNS server: UDP and TCP on <address>:<port> (the agent: cbr0's .1, port 53).

Questions inside cluster.local are answered by resolver.answer() over the view; other
names go to the configured upstream (one try over UDP, TCP when the reply is truncated)
or, without an upstream, get REFUSED — never the machine's own resolver. A failed
upstream gives SERVFAIL. An answer ending in a CNAME (ExternalName) is followed, as
CoreDNS does: a target inside the zone from the view, one outside from the upstream,
its records appended (at most MAX_CNAME_HOPS; a failed lookup leaves the bare CNAME).
dnslib's DNSServer runs one thread per protocol.

Period and cost: no periodic work. The runner starts the server once the node has a
pod CIDR (retried every retry_s, 1 s, until then) and never runs again; the server
threads sleep in recv() until a query arrives. The view is the agent's shared
Services/Endpoints informers.
"""

import logging
import socket

from dnslib import CNAME, QTYPE, RCODE, RR, SRV, A, DNSQuestion, DNSRecord

from nodeagent.dns import resolver
from skiff import dnsserve
from skiff.dnsserve import parse_upstream

log = logging.getLogger("skiff.dns")

UPSTREAM_TIMEOUT_S = 2.0
MAX_CNAME_HOPS = 8


def _rdata(rec: resolver.Record):
    if rec.rtype == "A":
        return QTYPE.A, A(rec.value)
    if rec.rtype == "CNAME":
        return QTYPE.CNAME, CNAME(rec.value + ".")
    prio, weight, port, target = rec.value
    return QTYPE.SRV, SRV(priority=prio, weight=weight, port=port, target=target + ".")


def _rr(rec: resolver.Record) -> RR:
    rtype, rdata = _rdata(rec)
    return RR(rec.name + ".", rtype, rdata=rdata, ttl=rec.ttl)


class ClusterResolver:
    """dnslib resolver interface: resolve(request, handler) -> reply."""

    def __init__(self, view, upstream: tuple | None = None):
        self.view = view
        self.upstream = upstream

    def resolve(self, request, handler):
        reply = request.reply()
        q = request.q
        qname = str(q.qname)
        qtype = QTYPE.get(q.qtype, str(q.qtype))
        try:
            ans = resolver.answer(qname, qtype, self.view)
        except Exception:  # noqa: BLE001 - one bad question must not kill the server
            log.exception("event=dns_answer_failed qname=%s", qname)
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        if ans.forward:
            return self._forward(request, reply, handler)
        reply.header.aa = 1
        reply.header.rcode = getattr(RCODE, ans.rcode)
        for rec in ans.records:
            reply.add_answer(_rr(rec))
        for rec in ans.additional:
            reply.add_ar(_rr(rec))
        if ans.records and ans.records[-1].rtype == "CNAME" and qtype not in ("CNAME", "ANY"):
            try:
                chased = self._chase(qname, ans.records[-1].value, q.qtype, qtype, handler)
            except Exception:  # noqa: BLE001 - the bare CNAME is still a right answer
                log.exception("event=dns_cname_chase_failed qname=%s", qname)
                chased = []
            for rr in chased:
                reply.add_answer(rr)
        return reply

    def _chase(self, qname: str, target: str, qtype_code: int, qtype: str, handler) -> list:
        """The records of a CNAME's target (and of its own CNAMEs), [] when unknown; a
        loop (a name seen before) ends the chase."""
        out = []
        seen = {qname.lower().rstrip(".")}
        for _ in range(MAX_CNAME_HOPS):
            if target.lower() in seen:
                return out
            seen.add(target.lower())
            if resolver.in_zone(target):
                ans = resolver.answer(target, qtype, self.view)
                out += [_rr(rec) for rec in ans.records]
                if not ans.records or ans.records[-1].rtype != "CNAME":
                    return out
                target = ans.records[-1].value
                continue
            if self.upstream is None:
                return out
            question = DNSRecord(q=DNSQuestion(target + ".", qtype_code))
            reply = self._forward(question, None, handler)
            return out + list(reply.rr) if reply.header.rcode == RCODE.NOERROR else out
        return out

    def _forward(self, request, reply, handler):
        reply = reply if reply is not None else request.reply()
        if self.upstream is None:
            reply.header.rcode = RCODE.REFUSED
            return reply
        host, port = self.upstream
        try:
            tcp = getattr(handler, "protocol", "udp") == "tcp"
            data = request.send(host, port, tcp=tcp, timeout=UPSTREAM_TIMEOUT_S)
            answer = DNSRecord.parse(data)
            if answer.header.tc and not tcp:
                answer = DNSRecord.parse(request.send(host, port, tcp=True, timeout=UPSTREAM_TIMEOUT_S))
            return answer
        except (OSError, socket.timeout, Exception) as exc:  # noqa: BLE001 - upstream down: SERVFAIL
            log.info("event=dns_upstream_failed upstream=%s:%d error=%s", host, port,
                     str(exc)[:100].replace(" ", "_"))
            reply.header.rcode = RCODE.SERVFAIL
            return reply


class DnsServer(dnsserve.DnsServer):
    """The cluster DNS server: skiff/dnsserve.py's UDP + TCP plumbing answering with a
    ClusterResolver over `view` (other names to `upstream`)."""

    def __init__(self, view, address: str, port: int = 53, upstream: tuple | None = None):
        super().__init__(ClusterResolver(view, upstream), address, port)


class NodeDns:
    """The agent's DNS: waits for the node's podCIDR (network.ready()), then serves on the
    bridge's .1 port 53. A bounded-frequency runner of the reconcile toolkit tries the
    bind every retry_s (1 s) until it works or stop(); once serving, it has nothing left
    to do (the view follows the cluster by itself).

    The view reads the Services and Endpoints informers of the agent's InformerFactory
    (shared with the proxier). Pod records (a-b-c-d.<ns>.pod) are verified by reading
    the namespace's pods from the API when asked (cached for the record TTL), instead
    of watching every pod of the cluster on every node: they are rare questions, pod
    status writes are the cluster's most frequent changes, and the pod syncer's own
    informer holds only this node's pods."""

    def __init__(self, client, network, upstream: str = "", port: int = 53, retry_s: float = 1.0, view=None,
                 informers=None):
        from nodeagent.dns.view import ApiPodIps, InformerView
        from skiff.informer import InformerFactory
        from skiff.reconcile import BoundedFrequencyRunner
        self.client = client
        self._own_informers = view is None and informers is None
        self.informers = informers if informers is not None else InformerFactory(client)
        self.view = view or InformerView(self.informers.informer("services"), self.informers.informer("endpoints"),
                                         ApiPodIps(client))
        self.network = network
        self.upstream = parse_upstream(upstream)
        self.port = port
        self.retry_s = retry_s
        self.server = None
        self.runner = BoundedFrequencyRunner("dns", self._serve, retry_base_s=retry_s, retry_max_s=retry_s,
                                             logger=log)

    def address(self) -> str:
        """The nameserver for ClusterFirst pods ("" until the node has a podCIDR)."""
        return bridge_address(self.network.pod_cidr) if self.network.ready() else ""

    def list_services(self, ns: str) -> list:
        """The namespace's services (service links): from the cache once synced, else read."""
        if self.view.services.synced:
            return self.view.list_services(ns)
        return self.client.list("services", namespace=ns)[0]

    def start(self) -> "NodeDns":
        self.runner.start()
        if self._own_informers:
            self.informers.start()
        return self

    def stop(self) -> None:
        self.runner.stop(join_s=5.0)
        if self.server is not None:
            self.server.stop()
        if self._own_informers:
            self.informers.stop()

    def _serve(self):
        """The runner's sync: bind once the network is ready; seconds until the next try,
        None once serving (no more tries)."""
        if self.server is not None:
            return None
        if not self.network.ready():
            return self.retry_s
        address = bridge_address(self.network.pod_cidr)
        try:
            self.server = DnsServer(self.view, address, self.port, self.upstream).start()
        except OSError as exc:
            log.warning("event=dns_bind_failed address=%s port=%d error=%s", address, self.port,
                        str(exc).replace(" ", "_"))
            return self.retry_s
        return None


def bridge_address(pod_cidr: str) -> str:
    """The node bridge's address: the .1 of the podCIDR (nameserver of ClusterFirst pods)."""
    import ipaddress
    return str(ipaddress.ip_network(pod_cidr, strict=False).network_address + 1)
