"""hostPort: a node's port mapped to a pod's containerPort (PURE planner: no I/O, no clock).

What the CNI portmap plugin does for Kubernetes, as iptables nat rules the proxier
applies in the same iptables-restore text as the Service rules (one transaction, the
same drift check, the same stale-chain removal):

nat
  SKIFF-HOSTPORTS     PREROUTING and OUTPUT jump here for traffic to a local address of
                      the node other than loopback (render.jump_rules; portmap's
                      CNI-HOSTPORT-DNAT). One rule per mapping: [-d hostIP] -p proto
                      --dport hostPort -> SKIFF-HP-<hash>.
  SKIFF-HP-<hash>     one per mapping (portmap's CNI-DN-*): hairpin (the pod reaching its
                      own hostPort, `-s podIP`) -> SKIFF-MARK-MASQ (masqueraded by
                      SKIFF-POSTROUTING), then DNAT to podIP:containerPort.

mappings(pods, node_name) -> the HostPortMappings of the pods running on the node;
nat_chains(mappings) -> {chain: [rules]} for render.render_ports(extra_nat=...).

Invariants:
- only pods bound to node_name, not finished (phase Succeeded/Failed), with an IPv4 pod
  IP and not on the host network (a hostNetwork pod binds the node's port itself) are
  mapped; a pod that goes (deleted, finished) loses its chain at the next sync;
- hostIP "" and "0.0.0.0" mean every address of the node; an IPv6 hostIP is skipped
  (skiff's rules are IPv4 only);
- deterministic: mappings are sorted, so equal inputs give equal text;
- two pods claiming the same (hostIP, protocol, hostPort) on one node (the scheduler's
  NodePorts filter prevents it; a pod with spec.nodeName set bypasses it): the first in
  (namespace, name) order gets the traffic, as the first portmap rule would;
- loopback (127.0.0.0/8) is not mapped: its source cannot be routed to a pod.
"""

import ipaddress
from dataclasses import dataclass

from nodeagent.proxy.render import HOSTPORTS, MARK_MASQ, chain_name
from skiff.api.wellknown import POD_FINISHED_PHASES

WILDCARD_IP = "0.0.0.0"


@dataclass(frozen=True)
class HostPortMapping:
    namespace: str
    pod: str
    host_ip: str           # "" = every address of the node
    host_port: int
    protocol: str          # tcp, udp, sctp
    pod_ip: str
    container_port: int

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.pod}:{self.host_ip or WILDCARD_IP}:{self.host_port}/{self.protocol}"

    @property
    def label(self) -> str:
        return f"{self.namespace}/{self.pod} hostPort {self.host_port}/{self.protocol}"


def _ipv4(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).version == 4
    except ValueError:
        return False


def mappings(pods, node_name: str) -> list:
    """The hostPort mappings of the node's running pods, sorted."""
    out = []
    for pod in pods:
        spec, status = pod.spec, pod.status
        if (spec.node_name != node_name or spec.host_network or status.phase in POD_FINISHED_PHASES
                or not _ipv4(status.pod_ip)):
            continue
        for c in spec.containers:
            for p in c.ports:
                if not p.host_port:
                    continue
                host_ip = "" if p.host_ip in ("", WILDCARD_IP) else p.host_ip
                if host_ip and not _ipv4(host_ip):
                    continue
                out.append(HostPortMapping(
                    namespace=pod.metadata.namespace, pod=pod.metadata.name, host_ip=host_ip,
                    host_port=p.host_port, protocol=(p.protocol or "TCP").lower(), pod_ip=status.pod_ip,
                    container_port=p.container_port))
    out.sort(key=lambda m: (m.host_port, m.protocol, m.host_ip, m.namespace, m.pod, m.container_port))
    return out


def mapping_chain(m: HostPortMapping) -> str:
    return chain_name("HP", m.key)


def nat_chains(maps) -> dict:
    """{chain: [rules]}: SKIFF-HOSTPORTS (always, maybe empty: the jumps need it) and one
    SKIFF-HP-* chain per mapping; rules in iptables-save's spelling (drift compares them)."""
    out = {HOSTPORTS: []}
    for m in maps:
        chain = mapping_chain(m)
        if chain in out:    # the same pod listing one mapping twice (validation refuses it)
            continue
        dest = f"-d {m.host_ip}/32 " if m.host_ip else ""
        comment = f'-m comment --comment "{m.label}"'
        out[HOSTPORTS].append(f"-A {HOSTPORTS} {dest}-p {m.protocol} {comment} "
                              f"-m {m.protocol} --dport {m.host_port} -j {chain}")
        out[chain] = [
            f"-A {chain} -s {m.pod_ip}/32 {comment} -j {MARK_MASQ}",
            f"-A {chain} -p {m.protocol} {comment} -m {m.protocol} "
            f"-j DNAT --to-destination {m.pod_ip}:{m.container_port}"]
    return out
