"""LoadBalancer addresses on the lab's L2 segment: one node answers ARP for each.

Which node: rendezvous hashing over the Ready nodes (pure `announcer()`), so every
agent agrees without talking to the others, an address moves only when its node
leaves, and addresses spread over nodes; for externalTrafficPolicy Local only over
the nodes with an endpoint of the service (`candidates()`). The announcing node holds the address as a
/32 on the interface that carries its InternalIP (label `<ifname>:lb`, which is how
ours are told apart from anything else); the kernel then answers ARP for it, and the
nat rules (SKIFF-SERVICES `-d <lbIP>`) DNAT it like a ClusterIP. Other nodes need no
address: their own traffic to the IP is DNATed in PREROUTING/OUTPUT already.
An address moves when its node leaves or, with externalTrafficPolicy Local, when the
service's endpoints move; the new holder sends one gratuitous ARP (busybox/iputils
`arping -U`, best effort) so peers' caches follow at once instead of after their timeout.
"""

import hashlib
import logging
import shutil
import subprocess

log = logging.getLogger("skiff.proxy")
LABEL_SUFFIX = ":lb"


def candidates(ip: str, ports, ready_nodes) -> list:
    """The Ready nodes that may announce ip. For a port with externalTrafficPolicy Local
    only nodes holding one of its endpoints serve it (the others drop its traffic), so
    those are preferred; with none ready, any Ready node (it drops, as Kubernetes would)."""
    ready = set(ready_nodes)
    local = {ep.node_name for sp in ports if sp.local_external and ip in sp.external_ips
             for ep in sp.endpoints} & ready
    return sorted(local or ready)


def announcer(ip: str, ready_nodes) -> str:
    """The node that announces ip ("" when no node is ready)."""
    best = ""
    best_score = b""
    for name in sorted(ready_nodes):
        score = hashlib.sha256(f"{ip}|{name}".encode()).digest()
        if score > best_score:
            best, best_score = name, score
    return best


class Announcer:
    """Keeps exactly the wanted /32 addresses (labelled ours) on the node's interface."""

    def __init__(self, node_ip: str):
        self.node_ip = node_ip
        self._arpings: list = []

    def _gratuitous_arp(self, ifname: str, ip: str) -> None:
        """Fire-and-forget `arping -U` (reaped on later calls); skipped without arping."""
        self._arpings = [p for p in self._arpings if p.poll() is None]
        if shutil.which("arping"):
            argv = ["arping", "-U", "-c", "1", "-w", "1", "-I", ifname, ip]
        elif shutil.which("busybox"):
            argv = ["busybox", "arping", "-U", "-c", "1", "-w", "1", "-I", ifname, ip]
        else:
            log.info("event=lb_garp_skipped ip=%s reason=no_arping", ip)
            return
        try:
            self._arpings.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        except OSError as exc:
            log.info("event=lb_garp_failed ip=%s error=%s", ip, str(exc).replace(" ", "_"))

    def sync(self, wanted) -> None:
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            addrs = list(ipr.get_addr(family=2))
            index = next((a["index"] for a in addrs if a.get_attr("IFA_ADDRESS") == self.node_ip), None)
            if index is None:
                return
            ifname = ipr.get_links(index)[0].get_attr("IFLA_IFNAME")
            label = (ifname + LABEL_SUFFIX)[:15]
            ours = {a.get_attr("IFA_ADDRESS") for a in addrs
                    if a["index"] == index and a.get_attr("IFA_LABEL") == label}
            for ip in sorted(set(wanted) - ours):
                ipr.addr("add", index=index, address=ip, prefixlen=32, label=label)
                log.info("event=lb_announce ip=%s ifname=%s", ip, ifname)
                self._gratuitous_arp(ifname, ip)
            for ip in sorted(ours - set(wanted)):
                ipr.addr("del", index=index, address=ip, prefixlen=32)
                log.info("event=lb_withdraw ip=%s ifname=%s", ip, ifname)
