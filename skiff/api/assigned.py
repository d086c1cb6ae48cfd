"""What the cluster assigned to an object and a re-applied manifest leaves out.

Pure and deterministic: the API server uses it for admission, and the replicated
apply uses it again against the stored object (a replica's own copy may be stale).
"""

from skiff.api.kinds import Kind
from skiff.api.validation import externally_accessible


def carry_over_assigned(kind: Kind, new, old) -> None:
    """Keep what the cluster assigned when a manifest leaves it out.

    A user re-applying their manifest does not mention the node a pod was bound
    to or the clusterIP/nodePorts a Service was given; kubectl's merge keeps
    them, and so do we (only when the new object leaves the field empty).
    """
    if kind.name == "Pod" and not new.spec.node_name:
        new.spec.node_name = old.spec.node_name
    elif kind.name == "Service":
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
