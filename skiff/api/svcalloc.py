"""Service address allocation: ClusterIP, NodePorts and LoadBalancer ingress.

Runs INSIDE the replicated apply (controlplane/store/state.py), as the Service kind's
StoreHooks.allocate (skiff/api/kinds/service.py), so it obeys the state machine's
rules: deterministic (the lowest free address/port, computed from the stored Services
and the settings carried in the command), never raises on bad input (returns an error
string), and mutates only the new object it is handed (never stored state). Because allocation happens in the single ordered apply, two
concurrent creates can never get the same address: the second one sees the first.

What is "taken" is recomputed from the stored Services on every write, so
deleting a Service (or its namespace) frees its addresses with no bookkeeping.

Settings (plain data, pickled in the Raft log; see ServicesConfig.alloc_settings):
  {"cidr": "10.96.0.0/12", "nodePorts": (30000, 32767), "lbPool": ("first", "last") or ()}

Rules:
- spec.clusterIP "None" = headless (no address); an explicit address is honoured if it
  lies in the CIDR and no other Service holds it; otherwise the lowest free address
  from the second host address on (network address and broadcast excluded). The first
  host address (10.96.0.1) is never handed out automatically: it belongs to
  default/kubernetes, which the leader creates asking for it by name, and a Service a
  user creates before the leader got to it must not take it. clusterIPs mirrors clusterIP.
- NodePort/LoadBalancer: every port without a nodePort gets the lowest free one in the
  range; an explicit one must be in the range and unused by other Services.
- LoadBalancer: status.loadBalancer.ingress gets one pool address (spec.loadBalancerIP
  if given: it must be in the pool and free); kept across updates; an empty or full pool
  leaves the ingress empty (EXTERNAL-IP <pending>). Other types have no ingress.
"""

import ipaddress

DEFAULT_SETTINGS = {"cidr": "10.96.0.0/12", "nodePorts": (30000, 32767), "lbPool": ()}
_NODE_PORT_TYPES = ("NodePort", "LoadBalancer")


def allocate(svc, old, others, settings=None):
    """Fill in svc's clusterIP, nodePorts and LB ingress in place.

    svc: the Service being written (a fresh message, already merged with what is stored
    when it is an update); old: the stored version or None; others: every OTHER stored
    Service. Returns None, or an error message (nothing was decided worth keeping).
    """
    settings = settings or DEFAULT_SETTINGS
    spec = svc.spec
    if spec.type == "ExternalName":
        del spec.cluster_ips[:]
        svc.status.ClearField("load_balancer")
        return None
    err = _cluster_ip(spec, old, others, settings["cidr"])
    if err:
        return err
    err = _node_ports(spec, others, settings["nodePorts"])
    if err:
        return err
    return _load_balancer(svc, old, others, settings.get("lbPool") or ())


def _cluster_ip(spec, old, others, cidr):
    if spec.cluster_ip == "None":
        del spec.cluster_ips[:]
        spec.cluster_ips.append("None")
        return None
    net = ipaddress.IPv4Network(cidr)
    taken = {o.spec.cluster_ip for o in others}
    ip = spec.cluster_ip
    if ip:
        kept = old is not None and old.spec.cluster_ip == ip
        if not kept:
            if not _is_ipv4(ip) or ipaddress.IPv4Address(ip) not in net:
                return (f'spec.clusterIP: Invalid value: "{ip}": provided IP is not in the valid '
                        f"range. The range of valid IPs is {cidr}")
            if ip in taken:
                return f'spec.clusterIP: Invalid value: "{ip}": provided IP is already allocated'
    else:
        # +2: the first host address is reserved for the API Service (asked for explicitly)
        first, last = int(net.network_address) + 2, int(net.broadcast_address) - 1
        taken_ints = {int(ipaddress.IPv4Address(t)) for t in taken if _is_ipv4(t)}
        n = first
        while n in taken_ints:
            n += 1
        if n > last:
            return f"spec.clusterIP: failed to allocate a service IP: range {cidr} is full"
        ip = str(ipaddress.IPv4Address(n))
        spec.cluster_ip = ip
    del spec.cluster_ips[:]
    spec.cluster_ips.append(ip)
    return None


def _node_ports(spec, others, port_range):
    if spec.type not in _NODE_PORT_TYPES:
        for p in spec.ports:
            p.node_port = 0
        return None
    lo, hi = port_range
    taken = {p.node_port for o in others for p in o.spec.ports if p.node_port}
    mine = set()
    for i, p in enumerate(spec.ports):
        if not p.node_port:
            continue
        if not lo <= p.node_port <= hi:
            return (f"spec.ports[{i}].nodePort: Invalid value: {p.node_port}: provided port is "
                    f"not in the valid range. The range of valid ports is {lo}-{hi}")
        if p.node_port in taken:
            return f"spec.ports[{i}].nodePort: Invalid value: {p.node_port}: provided port is already allocated"
        mine.add(p.node_port)
    n = lo
    for i, p in enumerate(spec.ports):
        if p.node_port:
            continue
        while n in taken or n in mine:
            n += 1
        if n > hi:
            return f"spec.ports[{i}].nodePort: failed to allocate a node port: range {lo}-{hi} is full"
        p.node_port = n
        mine.add(n)
    return None


def _load_balancer(svc, old, others, pool):
    spec = svc.spec
    if spec.type != "LoadBalancer":
        svc.status.ClearField("load_balancer")
        return None
    in_pool = _pool_test(pool)
    taken = {ing.ip for o in others for ing in o.status.load_balancer.ingress if ing.ip}
    current = ""
    if old is not None and old.spec.type == "LoadBalancer":
        current = next((i.ip for i in old.status.load_balancer.ingress if i.ip), "")
        if not in_pool(current):
            current = ""      # the pool moved: allocate afresh
    wanted = spec.load_balancer_ip
    if wanted and wanted != current:
        if not in_pool(wanted):
            return (f'spec.loadBalancerIP: Invalid value: "{wanted}": not in the load balancer pool '
                    f"{'-'.join(pool) or '(none configured)'}")
        if wanted in taken:
            return f'spec.loadBalancerIP: Invalid value: "{wanted}": provided IP is already allocated'
        current = wanted
    if not current and pool:
        first, last = (int(ipaddress.IPv4Address(a)) for a in pool)
        taken_ints = {int(ipaddress.IPv4Address(t)) for t in taken if _is_ipv4(t)}
        n = first
        while n in taken_ints:
            n += 1
        if n <= last:
            current = str(ipaddress.IPv4Address(n))
    svc.status.ClearField("load_balancer")
    if current:
        svc.status.load_balancer.ingress.add(ip=current)
    return None


def _pool_test(pool):
    if not pool:
        return lambda ip: False
    first, last = (int(ipaddress.IPv4Address(a)) for a in pool)
    return lambda ip: _is_ipv4(ip) and first <= int(ipaddress.IPv4Address(ip)) <= last


def _is_ipv4(text) -> bool:
    try:
        ipaddress.IPv4Address(text)
        return True
    except ValueError:
        return False
