"""The cluster DNS answer for one question, as a pure function (CoreDNS kubernetes plugin).

answer(qname, qtype, view) -> Answer. Names answered (zone cluster.local, TTL 5 s):

    <svc>.<ns>.svc.cluster.local         A: the ClusterIP; headless (clusterIP None): the
                                          ready endpoint IPs (also not-ready ones when
                                          publishNotReadyAddresses); ExternalName: a CNAME
    <host>.<svc>.<ns>.svc.cluster.local  A: a headless service's endpoint whose hostname
                                          (or dashed IP) is <host>
    _<port>._<proto>.<svc>.<ns>.svc...   SRV for a named port (headless: one per endpoint)
    <a-b-c-d>.<ns>.pod.cluster.local     A a.b.c.d when a pod of <ns> has that IP ("verified")

Invariants: a name inside the zone that matches nothing is NXDOMAIN; a name that exists
but has no record of the asked type is NOERROR with no answer (NODATA); names outside
the zone are never answered here (forward=True: the server forwards them upstream or
refuses). Answers depend only on (qname, qtype, view).

The view is any object with service(ns, name), endpoints(ns, name) -> object or None
and pod_ip_exists(ns, ip) -> bool.
"""

import ipaddress
from dataclasses import dataclass

ZONE = "cluster.local"
TTL_S = 5


@dataclass(frozen=True)
class Record:
    name: str       # absolute, no trailing dot
    rtype: str      # A | CNAME | SRV
    value: object   # A/CNAME: str; SRV: (priority, weight, port, target)
    ttl: int = TTL_S


@dataclass(frozen=True)
class Answer:
    rcode: str = "NOERROR"                # NOERROR | NXDOMAIN
    records: tuple = ()
    additional: tuple = ()
    forward: bool = False                 # not ours: forward upstream (or refuse)


NXDOMAIN = Answer(rcode="NXDOMAIN")
NODATA = Answer()


def in_zone(qname: str, zone: str = ZONE) -> bool:
    q = qname.lower().rstrip(".")
    return q == zone or q.endswith("." + zone)


def answer(qname: str, qtype: str, view, zone: str = ZONE) -> Answer:
    q = qname.lower().rstrip(".")
    if not in_zone(q, zone):
        return Answer(forward=True)
    rel = q[: -len(zone)].rstrip(".")
    labels = rel.split(".") if rel else []
    # The zone's own structure: cluster.local, svc.cluster.local, <ns>.svc..., pod.cluster.local...
    if len(labels) <= 1 and (not labels or labels[0] in ("svc", "pod")):
        return NODATA
    if len(labels) == 2 and labels[1] in ("svc", "pod"):
        return NODATA
    if labels[-1] == "pod" and len(labels) == 3:
        return _pod(q, labels[0], labels[1], qtype, view)
    if labels[-1] != "svc":
        return NXDOMAIN
    if len(labels) == 3:
        return _service(q, labels[0], labels[1], qtype, view, zone)
    if len(labels) == 4:
        return _endpoint_host(q, labels[0], labels[1], labels[2], qtype, view)
    if len(labels) == 5 and labels[0].startswith("_") and labels[1].startswith("_"):
        return _srv(q, labels[0][1:], labels[1][1:], labels[2], labels[3], qtype, view, zone)
    return NXDOMAIN


def _wants(qtype: str, rtype: str) -> bool:
    return qtype in (rtype, "ANY")


def _is_headless(svc) -> bool:
    return svc.spec.cluster_ip == "None"


def _addresses(view, ns: str, name: str, svc) -> list:
    """[(ip, hostname, ports)] of the service's endpoints, ready ones (plus not-ready ones
    when the service publishes them), in the Endpoints' order, each IP once."""
    ep = view.endpoints(ns, name)
    out, seen = [], set()
    if ep is None:
        return out
    for subset in ep.subsets:
        addrs = list(subset.addresses)
        if svc.spec.publish_not_ready_addresses:
            addrs += list(subset.not_ready_addresses)
        for a in addrs:
            if a.ip and a.ip not in seen:
                seen.add(a.ip)
                out.append((a.ip, a.hostname, list(subset.ports)))
    return out


def _service(q, name, ns, qtype, view, zone) -> Answer:
    svc = view.service(ns, name)
    if svc is None:
        return NXDOMAIN
    if svc.spec.type == "ExternalName":
        target = svc.spec.external_name.rstrip(".")
        if not target:
            return NODATA
        return Answer(records=(Record(q, "CNAME", target),))
    if not _wants(qtype, "A"):
        return NODATA
    if _is_headless(svc):
        return Answer(records=tuple(Record(q, "A", ip) for ip, _, _ in _addresses(view, ns, name, svc)))
    if not svc.spec.cluster_ip:
        return NODATA
    return Answer(records=(Record(q, "A", svc.spec.cluster_ip),))


def _host_label(ip: str, hostname: str) -> str:
    return hostname or ip.replace(".", "-")


def _endpoint_host(q, host, name, ns, qtype, view) -> Answer:
    svc = view.service(ns, name)
    if svc is None or not _is_headless(svc):
        return NXDOMAIN
    ips = [ip for ip, hn, _ in _addresses(view, ns, name, svc) if _host_label(ip, hn) == host]
    if not ips:
        return NXDOMAIN
    if not _wants(qtype, "A"):
        return NODATA
    return Answer(records=tuple(Record(q, "A", ip) for ip in ips))


def _srv(q, port_name, proto, name, ns, qtype, view, zone) -> Answer:
    svc = view.service(ns, name)
    if svc is None or svc.spec.type == "ExternalName":
        return NXDOMAIN
    svc_fqdn = f"{name}.{ns}.svc.{zone}"
    if _is_headless(svc):
        records, extra = [], []
        for ip, hn, ports in _addresses(view, ns, name, svc):
            for p in ports:
                if p.name == port_name and (p.protocol or "TCP").lower() == proto:
                    target = f"{_host_label(ip, hn)}.{svc_fqdn}"
                    records.append(Record(q, "SRV", (0, 100, p.port, target)))
                    extra.append(Record(target, "A", ip))
    else:
        records, extra = [], []
        for p in svc.spec.ports:
            if p.name and p.name == port_name and (p.protocol or "TCP").lower() == proto:
                records.append(Record(q, "SRV", (0, 100, p.port, svc_fqdn)))
                if svc.spec.cluster_ip:
                    extra = [Record(svc_fqdn, "A", svc.spec.cluster_ip)]
    if not records:
        return NXDOMAIN
    if not _wants(qtype, "SRV"):
        return NODATA
    return Answer(records=tuple(records), additional=tuple(extra))


def _pod(q, dashed, ns, qtype, view) -> Answer:
    try:
        ip = str(ipaddress.IPv4Address(dashed.replace("-", ".")))
    except ValueError:
        return NXDOMAIN
    if ip.replace(".", "-") != dashed or not view.pod_ip_exists(ns, ip):
        return NXDOMAIN
    if not _wants(qtype, "A"):
        return NODATA
    return Answer(records=(Record(q, "A", ip),))
