"""The Endpoints a Service with a selector should have (pure; Kubernetes' endpoints controller).

Rules (those of Kubernetes' Endpoints, simplified where noted):
- pods of the Service's namespace whose labels match spec.selector;
- skipped: pods without status.podIP, terminal pods (Succeeded/Failed) and pods being
  deleted (metadata.deletionTimestamp set) — a terminating pod is gone from the
  Endpoints at once, so proxies stop sending it new connections;
- Ready condition True -> `addresses`, otherwise `notReadyAddresses`
  (spec.publishNotReadyAddresses puts every address in `addresses`);
- every Service port is resolved per pod: targetPort as a number is taken as is; as a
  name it is looked up among the pod's container ports (same protocol); a pod that has
  no such named port is left out for that port;
- addresses with the same resolved port set share one subset; output is sorted
  (subsets by ports, addresses by IP then pod name), so equal inputs give equal objects
  and the controller writes only real changes;
- each address carries ip, nodeName, targetRef (Pod namespace/name/uid) and hostname
  when the pod's spec.hostname is set and its spec.subdomain is the Service's name.
"""

import ipaddress

from controlplane.controllers.podutil import is_pod_ready, is_terminated
from skiff.api import objects_pb2 as pb
from skiff.api import selectors


def wants_endpoints(svc: pb.Service) -> bool:
    """Only Services with a selector get controller-managed Endpoints (ExternalName none)."""
    return bool(svc.spec.selector) and svc.spec.type != "ExternalName"


def selects(svc: pb.Service, pod: pb.Pod) -> bool:
    return (wants_endpoints(svc) and pod.metadata.namespace == svc.metadata.namespace
            and selectors.from_map(dict(svc.spec.selector)).matches(pod.metadata.labels))


def resolve_port(svc_port: pb.ServicePort, pod: pb.Pod):
    """The pod's port number for svc_port's targetPort, or None."""
    target = svc_port.target_port
    if target.HasField("int_val"):
        return target.int_val
    if target.HasField("str_val"):
        if target.str_val.isdigit():
            return int(target.str_val)
        protocol = svc_port.protocol or "TCP"
        for c in pod.spec.containers:
            for cp in c.ports:
                if cp.name == target.str_val and (cp.protocol or "TCP") == protocol:
                    return cp.container_port
        return None
    return svc_port.port


def plan_endpoints(svc: pb.Service, pods) -> pb.Endpoints:
    """The Endpoints object (metadata: name, namespace, labels) svc should have."""
    ep = pb.Endpoints(api_version="v1", kind="Endpoints")
    ep.metadata.name = svc.metadata.name
    ep.metadata.namespace = svc.metadata.namespace
    ep.metadata.labels.update(svc.metadata.labels)
    if svc.spec.cluster_ip == "None":
        ep.metadata.labels["service.kubernetes.io/headless"] = ""
    groups = {}   # port tuple -> (ready addresses, not-ready addresses)
    for pod in pods:
        if not selects(svc, pod) or not pod.status.pod_ip or is_terminated(pod) \
                or pod.metadata.deletion_timestamp:
            continue
        ports = []
        for sp in svc.spec.ports:
            number = resolve_port(sp, pod)
            if number is not None:
                ports.append((sp.name, number, sp.protocol or "TCP", sp.app_protocol))
        if svc.spec.ports and not ports:
            continue
        addr = pb.EndpointAddress(ip=pod.status.pod_ip, node_name=pod.spec.node_name)
        if pod.spec.hostname and pod.spec.subdomain == svc.metadata.name:
            addr.hostname = pod.spec.hostname
        addr.target_ref.kind = "Pod"
        addr.target_ref.namespace = pod.metadata.namespace
        addr.target_ref.name = pod.metadata.name
        addr.target_ref.uid = pod.metadata.uid
        ready = is_pod_ready(pod) or svc.spec.publish_not_ready_addresses
        groups.setdefault(tuple(sorted(ports)), ([], []))[0 if ready else 1].append(addr)
    for ports in sorted(groups):
        ready, not_ready = groups[ports]
        subset = ep.subsets.add()
        subset.addresses.extend(sorted(ready, key=_addr_order))
        subset.not_ready_addresses.extend(sorted(not_ready, key=_addr_order))
        for name, number, protocol, app_protocol in ports:
            subset.ports.add(name=name, port=number, protocol=protocol, app_protocol=app_protocol)
    return ep


def _addr_order(addr):
    try:
        ip = int(ipaddress.ip_address(addr.ip))
    except ValueError:
        ip = 0
    return (ip, addr.target_ref.name)


def needs_write(current, desired) -> bool:
    """True when the stored Endpoints differ from desired in what the controller owns."""
    if current is None:
        return True
    return (list(current.subsets) != list(desired.subsets)
            or dict(current.metadata.labels) != dict(desired.metadata.labels))
