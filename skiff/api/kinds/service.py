"""Service (a stable virtual address in front of pods) and Endpoints (who answers behind it)."""

from skiff.api import objects_pb2 as pb
from skiff.api import svcalloc
from skiff.api.kinds.registry import Kind, StoreHooks, register
from skiff.api.validation import externally_accessible


def carry_over(new: pb.Service, old: pb.Service) -> None:
    """Keep what the allocator assigned when a re-applied manifest leaves it out
    (clusterIP(s), nodePorts of the same port/protocol), as kubectl's merge does."""
    _drop_external_policy_left_behind(new.spec, old.spec)
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
    externalIPs as outside reach: validation's externally_accessible decides both).
    A policy the update changes is the user's and is validated as given."""
    if (externally_accessible(old) and not externally_accessible(new)
            and new.external_traffic_policy == old.external_traffic_policy):
        new.external_traffic_policy = ""


def keep_load_balancer(merged: pb.Service, old: pb.Service) -> None:
    """status.loadBalancer belongs to the allocator: a status write keeps the assigned ingress."""
    merged.status.ClearField("load_balancer")
    if old.status.HasField("load_balancer"):
        merged.status.load_balancer.CopyFrom(old.status.load_balancer)


SERVICE = register(Kind(
    "Service", "v1", "services", ("svc",), True, pb.Service, "service", True,
    carry_over=carry_over,
    in_get_all=True,
    store=StoreHooks(allocate=svcalloc.allocate, settings_section="services",
                     keep_on_status_write=keep_load_balancer),
))

ENDPOINTS = register(Kind("Endpoints", "v1", "endpoints", ("ep",), True, pb.Endpoints, "endpoints", False))
