"""UDP conntrack cleanup: a UDP "connection" to a Service outlives its endpoint (the NAT
decision is cached in conntrack), so entries whose reply comes from a removed endpoint
are deleted, as kube-proxy does. pyroute2 Conntrack in this process's namespace; dump
to a list first, then delete (never delete while iterating the dump)."""

import logging

log = logging.getLogger("skiff.proxy")

UDP = 17


def stale_udp(old_ports, new_ports):
    """(endpoint ip, port) pairs that served a UDP service port before and no longer do,
    and the (cluster IP, port) of UDP service ports that just got their first endpoint."""
    new = {sp.key: sp for sp in new_ports if sp.protocol == "udp"}
    gone, fresh = set(), set()
    for sp in old_ports:
        if sp.protocol != "udp":
            continue
        now = new.get(sp.key)
        kept = {(e.ip, e.port) for e in now.endpoints} if now else set()
        gone.update((e.ip, e.port) for e in sp.endpoints if (e.ip, e.port) not in kept)
    old_keys = {sp.key: sp for sp in old_ports}
    for key, sp in new.items():
        before = old_keys.get(key)
        if sp.endpoints and (before is None or not before.endpoints):
            fresh.add((sp.cluster_ip, sp.port))
    return sorted(gone), sorted(fresh)


def clear_udp(gone, fresh) -> int:
    """Delete the conntrack entries of gone endpoints (by reply source) and of fresh
    service addresses (by original destination). Returns how many were deleted."""
    if not gone and not fresh:
        return 0
    from pyroute2 import Conntrack
    from pyroute2.netlink.nfnetlink.nfctsocket import NFCTAttrTuple

    deleted = 0
    with Conntrack() as ct:
        filters = ([dict(tuple_reply=NFCTAttrTuple(saddr=ip, sport=port, proto=UDP)) for ip, port in gone]
                   + [dict(tuple_orig=NFCTAttrTuple(daddr=ip, dport=port, proto=UDP)) for ip, port in fresh])
        for f in filters:
            for entry in list(ct.dump_entries(**f)):
                try:
                    ct.delete(entry)
                    deleted += 1
                except Exception as exc:  # noqa: BLE001 - an entry may expire meanwhile
                    log.debug("event=conntrack_delete_failed error=%s", exc)
    if deleted:
        log.info("event=conntrack_udp_cleared entries=%d endpoints=%d", deleted, len(gone))
    return deleted
