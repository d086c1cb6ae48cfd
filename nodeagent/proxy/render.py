"""The Service rules of one node as one iptables-restore text (PURE: no I/O, no clock).

render(services, endpoints, node, existing) -> text for `iptables-restore --noflush`.
The layout is kube-proxy's iptables mode with a SKIFF- prefix (see docs/networking.md):

nat
  SKIFF-SERVICES      PREROUTING and OUTPUT jump here (ensure_jumps). One rule per
                      ClusterIP:port -> SKIFF-SVC-*, per LoadBalancer ingress / externalIP:port
                      -> SKIFF-EXT-*, last: `-m addrtype --dst-type LOCAL -j SKIFF-NODEPORTS`.
  SKIFF-NODEPORTS     per nodePort -> SKIFF-EXT-* (every local address of the node).
  SKIFF-EXT-<hash>    traffic from outside: mark for masquerade, then -> SKIFF-SVC-*.
                      externalTrafficPolicy Local: pod traffic (-s clusterCIDR) and the node's
                      own (--src-type LOCAL, masqueraded) -> SKIFF-SVC-*; the rest, unmasqueraded
                      (the pod sees the client's address), -> SKIFF-SVL-* over this node's
                      endpoints only; with none here it is not DNATed and filter DROPs it.
  SKIFF-SVL-<hash>    like SKIFF-SVC-*, over the endpoints on this node. internalTrafficPolicy
                      Local: the ClusterIP rule jumps here instead of SKIFF-SVC-* (no endpoint on
                      this node: no nat rule, filter DROPs the ClusterIP:port).
  SKIFF-SVC-<hash>    one per service port: [ClientIP affinity `-m recent --rcheck` per endpoint],
                      then `-m statistic --mode random --probability 1/(n-i)` per endpoint
                      (the last unconditional) -> SKIFF-SEP-*.
  SKIFF-SEP-<hash>    one per endpoint: hairpin (`-s <endpointIP>`) -> SKIFF-MARK-MASQ, then DNAT
                      (with `-m recent --set` under ClientIP affinity).
  SKIFF-MARK-MASQ     sets mark 0x4000.
  SKIFF-HOSTPORTS     PREROUTING and OUTPUT jump here for local, non-loopback destinations:
                      pods' hostPorts, rendered by nodeagent/proxy/hostport.py and passed
                      in as extra_nat (with their SKIFF-HP-* chains).
  SKIFF-POSTROUTING   POSTROUTING jumps here: MASQUERADE only packets carrying the mark.
filter
  SKIFF-SERVICES      OUTPUT and FORWARD (ctstate NEW) jump here: REJECT ClusterIP:ports
                      of services with no ready endpoint (connection refused at once).
  SKIFF-EXTERNAL-SERVICES  INPUT and FORWARD (ctstate NEW): REJECT nodePorts / LB IPs of such services;
                      DROP them for externalTrafficPolicy Local without an endpoint on this node
                      (like kube-proxy: the client's load balancer should pick another node).
  SKIFF-FORWARD       FORWARD jumps here: drop ctstate INVALID, accept marked and
                      RELATED,ESTABLISHED traffic.

Invariants:
- deterministic: services, ports and endpoints are sorted, so equal inputs give equal
  text (the applier skips identical text; an agent restart renders the same rules);
- every chain we use is declared (`:NAME - [0:0]`), which under --noflush flushes and
  refills it inside the one atomic commit; only chains with the SKIFF- prefix are named;
- stale skiff chains (in `existing` but not rendered) are declared (emptied) and
  deleted with -X in the same input, after the rules that referenced them are gone;
- the jumps from built-in chains are NOT in this text (re-declaring a built-in chain
  under --noflush does not flush it, so appending would duplicate): see jump_rules().
Chain names: prefix + base32(sha256(key))[:16] (26 characters; iptables allows 28).
"""

import base64
import hashlib
import ipaddress
from dataclasses import dataclass

PREFIX = "SKIFF-"
MASQ_MARK = "0x4000/0x4000"
SERVICES = "SKIFF-SERVICES"
NODEPORTS = "SKIFF-NODEPORTS"
POSTROUTING = "SKIFF-POSTROUTING"
MARK_MASQ = "SKIFF-MARK-MASQ"
EXTERNAL_SERVICES = "SKIFF-EXTERNAL-SERVICES"
FORWARD = "SKIFF-FORWARD"
HOSTPORTS = "SKIFF-HOSTPORTS"
NAT_BASE = (SERVICES, NODEPORTS, POSTROUTING, MARK_MASQ, HOSTPORTS)
FILTER_BASE = (SERVICES, EXTERNAL_SERVICES, FORWARD)
DEFAULT_AFFINITY_S = 10800


@dataclass(frozen=True)
class Node:
    name: str
    # Pod network CIDR; when set, traffic to a ClusterIP from outside it is masqueraded
    # (kube-proxy's --cluster-cidr behaviour). Empty: no such rule.
    cluster_cidr: str = ""


@dataclass(frozen=True)
class Endpoint:
    ip: str
    port: int
    node_name: str = ""


@dataclass(frozen=True)
class ServicePort:
    """One (service, port): everything a rule needs, with its ready endpoints."""
    namespace: str
    name: str
    port_name: str
    protocol: str          # tcp, udp, sctp
    cluster_ip: str
    port: int
    node_port: int
    external_ips: tuple    # LoadBalancer ingress IPs and spec.externalIPs
    affinity_s: int        # 0: no session affinity
    endpoints: tuple       # of Endpoint, sorted
    # externalTrafficPolicy Local on a port reachable from outside (nodePort / LB IP / externalIP)
    local_external: bool = False
    # internalTrafficPolicy Local: in-cluster traffic only to this node's endpoints (none: dropped)
    local_internal: bool = False

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}:{self.port_name}/{self.protocol}"

    @property
    def label(self) -> str:
        return f"{self.namespace}/{self.name}:{self.port_name}" if self.port_name else \
            f"{self.namespace}/{self.name}"


def chain_name(kind: str, key: str) -> str:
    digest = hashlib.sha256(key.encode()).digest()
    return f"{PREFIX}{kind}-{base64.b32encode(digest).decode()[:16]}"


def svc_chain(sp: ServicePort) -> str:
    return chain_name("SVC", sp.key)


def ext_chain(sp: ServicePort) -> str:
    return chain_name("EXT", sp.key)


def svl_chain(sp: ServicePort) -> str:
    return chain_name("SVL", sp.key)


def sep_chain(sp: ServicePort, ep: Endpoint) -> str:
    return chain_name("SEP", f"{sp.key}:{ep.ip}:{ep.port}")


# ---------------------------------------------------------------- model

def service_ports(services, endpoints) -> list:
    """The ServicePorts to program, sorted; headless/ExternalName/unallocated ones skipped."""
    eps = {(e.metadata.namespace, e.metadata.name): e for e in endpoints}
    out = []
    for svc in services:
        spec = svc.spec
        if spec.type == "ExternalName" or not spec.cluster_ip or spec.cluster_ip == "None":
            continue
        ext_ips = sorted({i.ip for i in svc.status.load_balancer.ingress if i.ip} | set(spec.external_ips),
                         key=_ip_order)
        affinity_s = 0
        if spec.session_affinity == "ClientIP":
            cfg = spec.session_affinity_config.client_ip
            affinity_s = cfg.timeout_seconds if cfg.HasField("timeout_seconds") else DEFAULT_AFFINITY_S
        ep = eps.get((svc.metadata.namespace, svc.metadata.name))
        for p in spec.ports:
            protocol = (p.protocol or "TCP").upper()
            ready = set()
            if ep is not None:
                for subset in ep.subsets:
                    for epp in subset.ports:
                        if epp.name == p.name and (epp.protocol or "TCP").upper() == protocol:
                            ready.update(Endpoint(a.ip, epp.port, a.node_name) for a in subset.addresses)
            node_port = p.node_port if spec.type in ("NodePort", "LoadBalancer") else 0
            out.append(ServicePort(
                namespace=svc.metadata.namespace, name=svc.metadata.name, port_name=p.name,
                protocol=protocol.lower(), cluster_ip=spec.cluster_ip, port=p.port,
                node_port=node_port, external_ips=tuple(ext_ips), affinity_s=affinity_s,
                endpoints=tuple(sorted(ready, key=lambda e: (_ip_order(e.ip), e.port))),
                local_external=spec.external_traffic_policy == "Local" and bool(node_port or ext_ips),
                local_internal=spec.internal_traffic_policy == "Local"))
    out.sort(key=lambda sp: (sp.namespace, sp.name, sp.port_name, sp.protocol, sp.port))
    return out


def _ip_order(ip):
    try:
        return (0, int(ipaddress.ip_address(ip)))
    except ValueError:
        return (1, ip)


# ---------------------------------------------------------------- rendering

def render(services, endpoints, node: Node, existing=None) -> str:
    """iptables-restore text for the whole skiff rule set.

    existing: {"nat": chain names, "filter": chain names} currently present (the applier
    reads them from iptables-save); the skiff ones not rendered now are deleted.
    """
    return render_ports(service_ports(services, endpoints), node, existing)


def render_ports(ports, node: Node, existing=None, extra_nat=None) -> str:
    """extra_nat: {chain: [rules]} rendered elsewhere (hostport.nat_chains), added to the
    nat table; rules of a base chain (SKIFF-HOSTPORTS) are appended to it."""
    existing = existing or {}
    extra_nat = extra_nat or {}
    nat_chains = list(NAT_BASE)
    nat_rules = []
    filter_rules = []
    svc_lines, nodeport_lines, per_chain = [], [], {}

    for sp in ports:
        if not sp.endpoints:
            why = f'-m comment --comment "{sp.label} has no endpoints"'
            filter_rules.append(f"-A {SERVICES} -d {sp.cluster_ip}/32 -p {sp.protocol} {why} "
                                f"-m {sp.protocol} --dport {sp.port} -j REJECT --reject-with icmp-port-unreachable")
            filter_rules.extend(_external_filter(sp, "has no endpoints",
                                                 "REJECT --reject-with icmp-port-unreachable"))
            continue
        svc, ext = svc_chain(sp), ext_chain(sp)
        seps = [(sep_chain(sp, ep), ep) for ep in sp.endpoints]
        local = [(chain, ep) for chain, ep in seps if ep.node_name == node.name]
        svl = svl_chain(sp) if local else ""
        # Where in-cluster traffic (pods, the node itself) goes: "" = dropped.
        internal = (svl if sp.local_internal else svc)
        if internal:
            svc_lines.append(f'-A {SERVICES} -d {sp.cluster_ip}/32 -p {sp.protocol} -m comment --comment '
                             f'"{sp.label} cluster IP" -m {sp.protocol} --dport {sp.port} -j {internal}')
        else:
            filter_rules.append(f'-A {SERVICES} -d {sp.cluster_ip}/32 -p {sp.protocol} -m comment --comment '
                                f'"{sp.label} has no local endpoints" -m {sp.protocol} --dport {sp.port} -j DROP')
        external = bool(sp.external_ips or sp.node_port)
        for ip in sp.external_ips:
            svc_lines.append(f'-A {SERVICES} -d {ip}/32 -p {sp.protocol} -m comment --comment '
                             f'"{sp.label} loadbalancer IP" -m {sp.protocol} --dport {sp.port} -j {ext}')
        if sp.node_port:
            nodeport_lines.append(f'-A {NODEPORTS} -p {sp.protocol} -m comment --comment "{sp.label}" '
                                  f'-m {sp.protocol} --dport {sp.node_port} -j {ext}')
        # The cluster-wide chain is only rendered when something jumps to it: the ClusterIP
        # rule (internalTrafficPolicy Cluster) or the EXT chain (both external policies send
        # some traffic there). Likewise only the endpoint chains a rendered chain uses.
        if not sp.local_internal or external:
            rules = []
            if node.cluster_cidr:
                rules.append(f'-A {svc} ! -s {node.cluster_cidr} -d {sp.cluster_ip}/32 -p {sp.protocol} '
                             f'-m comment --comment "{sp.label} cluster IP" -m {sp.protocol} '
                             f'--dport {sp.port} -j {MARK_MASQ}')
            per_chain[svc] = rules + _spread(svc, sp, seps)
        else:
            seps = local
        if svl and (sp.local_internal or (external and sp.local_external)):
            per_chain[svl] = _spread(svl, sp, local)
        if external and sp.local_external:
            per_chain[ext] = _local_ext_rules(ext, svc, sp, node)
            if svl:
                per_chain[ext].append(f"-A {ext} -j {svl}")
            else:
                filter_rules.extend(_external_filter(sp, "has no local endpoints", "DROP"))
        elif external:
            per_chain[ext] = [
                f'-A {ext} -m comment --comment "masquerade traffic for {sp.label} external destinations" '
                f"-j {MARK_MASQ}",
                f"-A {ext} -j {svc}"]
        for chain, ep in seps:
            recent = (f"-m recent --set --name {chain} --mask 255.255.255.255 --rsource "
                      if sp.affinity_s else "")
            # Match order as iptables-save prints it, so saved rules equal rendered ones.
            per_chain[chain] = [
                f'-A {chain} -s {ep.ip}/32 -m comment --comment "{sp.label}" -j {MARK_MASQ}',
                f'-A {chain} -p {sp.protocol} -m comment --comment "{sp.label}" {recent}'
                f"-m {sp.protocol} -j DNAT --to-destination {ep.ip}:{ep.port}"]

    dynamic = sorted(per_chain)
    extra = sorted(c for c in extra_nat if c not in NAT_BASE)
    nat_chains.extend(dynamic + extra)
    nat_rules.append(f"-A {POSTROUTING} -m mark ! --mark {MASQ_MARK} -j RETURN")
    nat_rules.append(f"-A {POSTROUTING} -j MARK --xor-mark 0x4000")
    nat_rules.append(f'-A {POSTROUTING} -m comment --comment "skiff service traffic requiring SNAT" '
                     "-j MASQUERADE")
    nat_rules.append(f"-A {MARK_MASQ} -j MARK --or-mark 0x4000")
    nat_rules.extend(svc_lines)
    nat_rules.append(f'-A {SERVICES} -m comment --comment "skiff service nodeports; NOTE: this must be '
                     f'the last rule in this chain" -m addrtype --dst-type LOCAL -j {NODEPORTS}')
    nat_rules.extend(nodeport_lines)
    for chain in dynamic:
        nat_rules.extend(per_chain[chain])
    nat_rules.extend(extra_nat.get(HOSTPORTS, ()))
    for chain in extra:
        nat_rules.extend(extra_nat[chain])

    filter_rules.extend([
        f"-A {FORWARD} -m conntrack --ctstate INVALID -j DROP",
        f'-A {FORWARD} -m comment --comment "skiff forwarding rules" -m mark --mark {MASQ_MARK} -j ACCEPT',
        f'-A {FORWARD} -m comment --comment "skiff forwarding conntrack rule" '
        "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"])

    out = []
    for table, chains, rules in (("filter", list(FILTER_BASE), filter_rules), ("nat", nat_chains, nat_rules)):
        stale = sorted(c for c in existing.get(table, ()) if c.startswith(PREFIX) and c not in chains)
        out.append(f"*{table}")
        out.extend(f":{c} - [0:0]" for c in chains + stale)
        out.extend(rules)
        out.extend(f"-X {c}" for c in stale)
        out.append("COMMIT")
    return "\n".join(out) + "\n"


def _external_filter(sp: ServicePort, why: str, verdict: str) -> list:
    """filter rules with `verdict` for the service port's LB/external IPs and nodePort."""
    comment = f'-m comment --comment "{sp.label} {why}"'
    out = [f"-A {EXTERNAL_SERVICES} -d {ip}/32 -p {sp.protocol} {comment} -m {sp.protocol} --dport {sp.port} "
           f"-j {verdict}" for ip in sp.external_ips]
    if sp.node_port:
        out.append(f"-A {EXTERNAL_SERVICES} -p {sp.protocol} {comment} -m addrtype --dst-type LOCAL "
                   f"-m {sp.protocol} --dport {sp.node_port} -j {verdict}")
    return out


def _spread(chain: str, sp: ServicePort, seps) -> list:
    """Rules of a service chain over (endpoint chain, endpoint) pairs: ClientIP affinity
    checks first, then an even random spread (the last rule unconditional)."""
    rules = []
    if sp.affinity_s:
        for sep, ep in seps:
            rules.append(f'-A {chain} -m comment --comment "{sp.label} -> {ep.ip}:{ep.port}" '
                         f'-m recent --rcheck --seconds {sp.affinity_s} --reap --name {sep} '
                         f'--mask 255.255.255.255 --rsource -j {sep}')
    n = len(seps)
    for i, (sep, ep) in enumerate(seps):
        comment = f'-m comment --comment "{sp.label} -> {ep.ip}:{ep.port}"'
        if i < n - 1:
            rules.append(f"-A {chain} {comment} -m statistic --mode random "
                         f"--probability {1.0 / (n - i):.10f} -j {sep}")
        else:
            rules.append(f"-A {chain} {comment} -j {sep}")
    return rules


def _local_ext_rules(ext: str, svc: str, sp: ServicePort, node: Node) -> list:
    """The EXT chain of an externalTrafficPolicy Local port, before its jump to SVL: pods'
    and the node's own traffic to the external address is subject to neither policy
    (as in kube-proxy): it goes to the cluster-wide SKIFF-SVC-*."""
    rules = []
    if node.cluster_cidr:   # pods reaching the external address are served like in-cluster traffic
        rules.append(f'-A {ext} -s {node.cluster_cidr} -m comment --comment '
                     f'"pod traffic for {sp.label} external destinations" -j {svc}')
    rules += [f'-A {ext} -m comment --comment "masquerade LOCAL traffic for {sp.label} external destinations" '
              f"-m addrtype --src-type LOCAL -j {MARK_MASQ}",
              f'-A {ext} -m comment --comment "route LOCAL traffic for {sp.label} external destinations" '
              f"-m addrtype --src-type LOCAL -j {svc}"]
    return rules


def jump_rules():
    """(table, built-in chain, rule spec) for the jumps into our chains; the applier
    ensures each with `iptables -t T -C CHAIN SPEC || iptables -t T -I CHAIN 1 SPEC`."""
    nf = ["-m", "conntrack", "--ctstate", "NEW"]
    # iptables-save's order of matches: `! -d` before `-m`.
    hostports = ["!", "-d", "127.0.0.0/8", "-m", "comment", "--comment", "skiff hostports",
                 "-m", "addrtype", "--dst-type", "LOCAL", "-j", HOSTPORTS]
    return [
        ("nat", "PREROUTING", ["-m", "comment", "--comment", "skiff service portals", "-j", SERVICES]),
        ("nat", "OUTPUT", ["-m", "comment", "--comment", "skiff service portals", "-j", SERVICES]),
        ("nat", "POSTROUTING", ["-m", "comment", "--comment", "skiff postrouting rules", "-j", POSTROUTING]),
        ("filter", "INPUT", nf + ["-m", "comment", "--comment", "skiff externally-visible service portals",
                                  "-j", EXTERNAL_SERVICES]),
        ("filter", "FORWARD", nf + ["-m", "comment", "--comment", "skiff service portals", "-j", SERVICES]),
        ("filter", "FORWARD", nf + ["-m", "comment", "--comment", "skiff externally-visible service portals",
                                    "-j", EXTERNAL_SERVICES]),
        ("filter", "FORWARD", ["-m", "comment", "--comment", "skiff forwarding rules", "-j", FORWARD]),
        ("filter", "OUTPUT", nf + ["-m", "comment", "--comment", "skiff service portals", "-j", SERVICES]),
        ("nat", "PREROUTING", hostports),
        ("nat", "OUTPUT", hostports),
    ]


def skiff_chains(save_text: str) -> dict:
    """{"nat": {...}, "filter": {...}}: the SKIFF- chains in an iptables-save text."""
    out, table = {}, None
    for line in save_text.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
            out.setdefault(table, set())
        elif line.startswith(":") and table is not None:
            name = line[1:].split()[0]
            if name.startswith(PREFIX):
                out[table].add(name)
    return out


def skiff_lines(save_text: str) -> str:
    """Only skiff's chains and rules from an iptables-save text (counters and comments
    about the save itself dropped): what an agent restart must reproduce exactly."""
    keep = []
    for line in save_text.splitlines():
        if line.startswith("*"):
            keep.append(line)
        elif line.startswith(":"):
            if line[1:].startswith(PREFIX):
                keep.append(line.split()[0])
        elif line.startswith("-A ") and (PREFIX in line):
            keep.append(line)
    return "\n".join(keep) + "\n"
