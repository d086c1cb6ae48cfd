"""Names, MACs and constants of the pod network (pure; shared with the Services code).

- BRIDGE "cbr0": the node bridge, address = .1 of the node's pod CIDR, MAC fixed to
  0a:58:<.1 in hex> (bridge_mac: see there why it must never float);
- VXLAN_DEVICE "skiff.1": VNI 1, UDP 8472 (flannel's), learning off;
- pod veth host end: "veth" + the first 11 characters of the sandbox container id
  (unique per sandbox: a recreated sandbox never collides with a dying old veth);
- MACs are derived from IPv4 addresses so a reused address never leaves stale ARP
  entries: pods 0a:58:<ip hex>, VTEPs 0e:58:<node ip hex> (locally administered).
"""

import ipaddress

from skiff.api.wellknown import BACKEND_ANNOTATION, CLUSTER_CIDR_ANNOTATION, VTEP_MAC_ANNOTATION  # noqa: F401 - re-exported

BRIDGE = "cbr0"
VXLAN_DEVICE = "skiff.1"
VXLAN_VNI = 1
VXLAN_PORT = 8472
VXLAN_MTU = 1450
NAT_CHAIN = "SKIFFNET-MASQ"  # not SKIFF-*: that namespace belongs to the service proxy
FWD_CHAIN = "SKIFFNET-FWD"      # filter: accept forwarding from/to the cluster CIDR (Docker sets FORWARD DROP)
VETH_PREFIX = "veth"
RTPROT_SKIFF = 77          # our routes carry this protocol number: "ours" = proto 77

BACKENDS = ("host-gw", "vxlan")


def _mac(prefix: str, ip: str) -> str:
    octets = ipaddress.IPv4Address(ip).packed
    return prefix + ":" + ":".join(f"{b:02x}" for b in octets)


def pod_mac(ip: str) -> str:
    """0a:58:+IP in hex (10.244.1.5 -> 0a:58:0a:f4:01:05), as Kubernetes' bridge plugins do."""
    return _mac("0a:58", ip)


def bridge_mac(pod_cidr: str) -> str:
    """The bridge's own MAC, set explicitly: 0a:58:+its address (.1) in hex.

    A Linux bridge whose MAC was never set takes the numerically lowest MAC of its ports
    (br_stp_recalculate_bridge_id) and changes it whenever that port leaves or a lower
    one joins. The host ends of pod veths have random MACs, so deleting or creating any
    pod could move the gateway's MAC under the other pods' ARP caches: their frames to
    the old MAC are flooded instead of delivered, and the gateway, the node's DNS on it
    and every off-node path go dark until the entry is re-resolved (30 s and more; the
    StatefulSet e2e saw it; docs/networking.md fact 9). The CNI bridge plugin sets the bridge's MAC for this reason;
    deriving it from the address keeps it the same across agent restarts and a bridge
    re-created. .1 is never a pod's address, so no pod MAC equals it."""
    return pod_mac(gateway(pod_cidr))


def vtep_mac(node_ip: str) -> str:
    """The VXLAN device's MAC of the node with InternalIP node_ip."""
    return _mac("0e:58", node_ip)


def veth_name(sandbox_id: str) -> str:
    return VETH_PREFIX + sandbox_id[:11]


def gateway(pod_cidr: str) -> str:
    """The bridge address: the first host of the pod CIDR (.1 of a /24)."""
    return str(ipaddress.IPv4Network(pod_cidr)[1])
