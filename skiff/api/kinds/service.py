"""Service (a stable virtual address in front of pods) and Endpoints (who answers behind it)."""

from skiff.api import objects_pb2 as pb
from skiff.api import svcalloc, svcfamilies
from skiff.api.errors import join
from skiff.api.kinds.registry import Kind, StoreHooks, register
from skiff.api.selectors import validate_dns1035_label, validate_dns1123_label, validate_dns1123_subdomain
from skiff.api.validation import (
    PROTOCOLS, check, duplicate, enum, forbidden, immutable, in_range, int_or_string_set, invalid, required, show,
    validate_ipv4, validate_labels, validate_port_ref,
)

CLIENT_IP_TIMEOUT_SECONDS = 10800


# ---------------------------------------------------------------- Service: admission

SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
SESSION_AFFINITIES = ("None", "ClientIP")
TRAFFIC_POLICIES = ("Cluster", "Local")
NODE_PORT_RANGE = (30000, 32767)


def externally_accessible(spec) -> bool:
    """Reachable from outside the cluster: a node port, a LoadBalancer, or externalIPs
    (where externalTrafficPolicy means something)."""
    return spec.type in ("NodePort", "LoadBalancer") or bool(spec.external_ips)


def _validate_service(svc: pb.Service, errs) -> None:
    spec = svc.spec
    enum(errs, "spec.type", spec.type, SERVICE_TYPES)
    enum(errs, "spec.sessionAffinity", spec.session_affinity, SESSION_AFFINITIES)
    headless = spec.cluster_ip == "None"
    external = spec.type == "ExternalName"
    if not spec.ports and not external and not headless:
        required(errs, "spec.ports", "a service needs at least one port (unless it is headless, "
                 "clusterIP: None, or of type ExternalName)")
    _validate_service_ports(spec, errs)
    _validate_cluster_ip(spec, errs)
    if external:
        if not spec.external_name:
            required(errs, "spec.externalName", "type ExternalName needs a DNS name (e.g. db.example.com)")
        else:
            check(errs, "spec.externalName", spec.external_name,
                  validate_dns1123_subdomain(spec.external_name.rstrip(".")))
    for i, ip in enumerate(spec.external_ips):
        check(errs, f"spec.externalIPs[{i}]", ip, validate_ipv4(ip))
    enum(errs, "spec.externalTrafficPolicy", spec.external_traffic_policy, TRAFFIC_POLICIES, allow_empty=True)
    if spec.external_traffic_policy and not externally_accessible(spec):
        invalid(errs, "spec.externalTrafficPolicy", spec.external_traffic_policy,
                "may only be set for externally-accessible services (type NodePort or LoadBalancer, "
                "or with externalIPs)")
    enum(errs, "spec.internalTrafficPolicy", spec.internal_traffic_policy, TRAFFIC_POLICIES, allow_empty=True)
    if spec.HasField("session_affinity_config"):
        if spec.session_affinity != "ClientIP":
            forbidden(errs, "spec.sessionAffinityConfig", "must not be set when `sessionAffinity` is "
                      f"{show(spec.session_affinity)}")
        client_ip = spec.session_affinity_config.client_ip
        if client_ip.HasField("timeout_seconds"):
            in_range(errs, "spec.sessionAffinityConfig.clientIP.timeoutSeconds", client_ip.timeout_seconds,
                     1, 86400)
    validate_labels(spec.selector, "spec.selector", errs)
    svcfamilies.validate(spec, errs)


def _validate_cluster_ip(spec: pb.ServiceSpec, errs) -> None:
    ip = spec.cluster_ip
    if spec.type == "ExternalName":
        if ip:
            forbidden(errs, "spec.clusterIP", "may not be set for ExternalName services")
        return
    if ip == "None":
        if spec.type in ("NodePort", "LoadBalancer"):
            invalid(errs, "spec.clusterIP", ip, f"may not be set to 'None' for {spec.type} services")
    elif ip and validate_ipv4(ip):
        invalid(errs, "spec.clusterIP", ip, "must be empty, 'None', or a valid IPv4 address (e.g. 10.96.0.10)")


def _validate_service_ports(spec: pb.ServiceSpec, errs) -> None:
    names = set()
    seen = set()
    node_ports = set()
    for i, p in enumerate(spec.ports):
        ppath = f"spec.ports[{i}]"
        if p.name:
            check(errs, join(ppath, "name"), p.name, validate_dns1123_label(p.name))
            if p.name in names:
                duplicate(errs, join(ppath, "name"), p.name)
            names.add(p.name)
        elif len(spec.ports) > 1:
            required(errs, join(ppath, "name"), "every port needs a name when a service has more than one port")
        if p.port == 0:
            required(errs, join(ppath, "port"))
        else:
            in_range(errs, join(ppath, "port"), p.port, 1, 65535)
        enum(errs, join(ppath, "protocol"), p.protocol, PROTOCOLS, allow_empty=True)
        if int_or_string_set(p.target_port):
            validate_port_ref(p.target_port, join(ppath, "targetPort"), errs)
        key = (p.port, p.protocol or "TCP")
        if key in seen:
            duplicate(errs, ppath, f"{p.port}/{key[1]}", "port and protocol must be unique")
        seen.add(key)
        if p.node_port:
            _validate_node_port(p, ppath, spec.type, node_ports, errs)


def _validate_node_port(p: pb.ServicePort, path, service_type: str, seen: set, errs) -> None:
    npath = join(path, "nodePort")
    if service_type not in ("NodePort", "LoadBalancer"):
        forbidden(errs, npath, f"may not be used when `type` is {show(service_type)}")
        return
    in_range(errs, npath, p.node_port, *NODE_PORT_RANGE)
    key = (p.node_port, p.protocol or "TCP")
    if key in seen:
        duplicate(errs, npath, p.node_port)
    seen.add(key)


def _validate_service_update(new: pb.Service, old: pb.Service, errs) -> None:
    old_ip, new_ip = old.spec.cluster_ip, new.spec.cluster_ip
    to_or_from_external = (old.spec.type == "ExternalName") != (new.spec.type == "ExternalName")
    if old_ip and new_ip != old_ip and not to_or_from_external:
        immutable(errs, "spec.clusterIP", new_ip)
    svcfamilies.validate_update(new.spec, old.spec, errs)


def _default_service(svc: pb.Service) -> None:
    spec = svc.spec
    if not spec.type:
        spec.type = "ClusterIP"
    if not spec.session_affinity:
        spec.session_affinity = "None"
    if spec.session_affinity == "ClientIP":
        client_ip = spec.session_affinity_config.client_ip
        if not client_ip.HasField("timeout_seconds"):
            client_ip.timeout_seconds = CLIENT_IP_TIMEOUT_SECONDS
    for port in spec.ports:
        if not port.protocol:
            port.protocol = "TCP"
        # targetPort = port; an absent or out-of-range port is left for validation to report, once
        if not int_or_string_set(port.target_port) and 1 <= port.port <= 65535:
            port.target_port.int_val = port.port
    svcfamilies.defaults(spec)


def carry_over(new: pb.Service, old: pb.Service) -> None:
    """Keep what the allocator assigned when a re-applied manifest leaves it out
    (clusterIP(s), nodePorts of the same port/protocol, IP families and policy), as
    kubectl's merge does."""
    _drop_external_policy_left_behind(new.spec, old.spec)
    svcfamilies.carry_over(new.spec, old.spec)
    if not new.spec.cluster_ip and new.spec.type != "ExternalName":
        new.spec.cluster_ip = old.spec.cluster_ip
        if not new.spec.cluster_ips:
            new.spec.cluster_ips.extend(old.spec.cluster_ips)
    if new.spec.type in ("NodePort", "LoadBalancer"):   # a ClusterIP service has none
        assigned = {(p.port, p.protocol or "TCP"): p.node_port for p in old.spec.ports}
        for p in new.spec.ports:
            if not p.node_port:
                p.node_port = assigned.get((p.port, p.protocol or "TCP"), 0)


def _drop_external_policy_left_behind(new, old) -> None:
    """A Service that stops being reachable from outside (type ClusterIP or ExternalName,
    no externalIPs) and still carries the externalTrafficPolicy it had, unchanged, loses
    it: the user changed the type, not the policy, which means nothing any more.
    Kubernetes drops it the same way (its test is the type alone; skiff also counts
    externalIPs as outside reach: externally_accessible below decides both).
    A policy the update changes is the user's and is validated as given."""
    if (externally_accessible(old) and not externally_accessible(new)
            and new.external_traffic_policy == old.external_traffic_policy):
        new.external_traffic_policy = ""


def keep_load_balancer(merged: pb.Service, old: pb.Service) -> None:
    """status.loadBalancer belongs to the allocator: a status write keeps the assigned ingress."""
    merged.status.ClearField("load_balancer")
    if old.status.HasField("load_balancer"):
        merged.status.load_balancer.CopyFrom(old.status.load_balancer)


# ---------------------------------------------------------------- Service: presentation

def _ports(spec) -> str:
    out = []
    for port in spec.ports:
        s = f"{port.port}:{port.node_port}" if port.node_port else str(port.port)
        out.append(f"{s}/{port.protocol or 'TCP'}")
    return ",".join(out) or "<none>"


def _service_row(s):
    spec = s.spec
    if spec.type == "ExternalName":
        external = spec.external_name
    elif spec.type == "LoadBalancer":
        external = ",".join(i.ip or i.hostname for i in s.status.load_balancer.ingress) or "<pending>"
    else:
        external = ",".join(spec.external_ips) or "<none>"
    selector = ",".join(f"{k}={v}" for k, v in sorted(spec.selector.items())) or "<none>"
    return [spec.type or "ClusterIP", spec.cluster_ip or "<none>", external, _ports(spec)], [selector]


SERVICE = register(Kind(
    "Service", "v1", "services", ("svc",), True, pb.Service, "service", True,
    defaults=_default_service, validate=_validate_service, validate_update=_validate_service_update,
    carry_over=carry_over,
    name_rule=validate_dns1035_label,   # a Service's name is a DNS label that starts with a letter
    columns=("TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"), wide_columns=("SELECTOR",),
    row=_service_row,
    in_get_all=True,
    store=StoreHooks(allocate=svcalloc.allocate, settings_section="services",
                     keep_on_status_write=keep_load_balancer),
))


# ---------------------------------------------------------------- Endpoints

def _validate_endpoints(ep: pb.Endpoints, errs) -> None:
    for i, subset in enumerate(ep.subsets):
        spath = f"subsets[{i}]"
        for field, json_name in (("addresses", "addresses"), ("not_ready_addresses", "notReadyAddresses")):
            for j, addr in enumerate(getattr(subset, field)):
                apath = f"{spath}.{json_name}[{j}].ip"
                if not addr.ip:
                    required(errs, apath)
                else:
                    check(errs, apath, addr.ip, validate_ipv4(addr.ip))
        names = set()
        for j, port in enumerate(subset.ports):
            ppath = f"{spath}.ports[{j}]"
            in_range(errs, join(ppath, "port"), port.port, 1, 65535)
            enum(errs, join(ppath, "protocol"), port.protocol, PROTOCOLS, allow_empty=True)
            if port.name:
                check(errs, join(ppath, "name"), port.name, validate_dns1123_label(port.name))
                if port.name in names:
                    duplicate(errs, join(ppath, "name"), port.name)
                names.add(port.name)
            elif len(subset.ports) > 1:
                required(errs, join(ppath, "name"), "every port needs a name when there is more than one")


def _default_endpoints(ep: pb.Endpoints) -> None:
    for subset in ep.subsets:
        for port in subset.ports:
            if not port.protocol:
                port.protocol = "TCP"


def _endpoints_row(e):
    addrs = []
    for sub in e.subsets:
        for a in sub.addresses:
            for p in sub.ports or [None]:
                addrs.append(f"{a.ip}:{p.port}" if p else a.ip)
    shown = ",".join(addrs[:3]) + (f" + {len(addrs) - 3} more..." if len(addrs) > 3 else "")
    return [shown or "<none>"], []


ENDPOINTS = register(Kind(
    "Endpoints", "v1", "endpoints", ("ep",), True, pb.Endpoints, "endpoints", False,
    defaults=_default_endpoints, validate=_validate_endpoints,
    columns=("ENDPOINTS", "AGE"), row=_endpoints_row,
))
