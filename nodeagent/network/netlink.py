"""The idempotent netlink applier of one node's pod network (pyroute2).

One IPRoute handle for the node's namespace (the agent runs inside it; tests pass a
netns name), guarded by a lock: pyroute2's sync handle is not for concurrent use, and
a dump is always read into a list before the next request on the same socket.
Pod-side configuration runs on a fresh thread setns()'ed into the pause container's
/proc/<pid>/ns/net (nodeagent.probes.netns.run_in_netns) with a handle of its own.

Every ensure_* call may be repeated: it changes only what differs from the wanted
state (adopting what an earlier agent, or this one before a crash, left behind).
"""

import errno
import ipaddress
import logging
import socket
import threading

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from nodeagent.network import routes_plan as rp
from nodeagent.network.names import (BRIDGE, RTPROT_SKIFF, VETH_PREFIX, VXLAN_DEVICE, VXLAN_MTU, VXLAN_PORT,
                                     VXLAN_VNI, bridge_mac, pod_mac, veth_name, vtep_mac)
from nodeagent.probes.netns import run_in_netns

log = logging.getLogger("skiff.agent.network")

RTNH_F_ONLINK = 4
RTN_UNREACHABLE = 7
NUD_PERMANENT = 0x80
POD_SETUP_TIMEOUT_S = 10.0


class NetlinkApplier:
    def __init__(self, netns: str | None = None):
        self.ipr = IPRoute(netns=netns, flags=0) if netns else IPRoute()
        self.netns = netns
        self.lock = threading.RLock()

    def close(self):
        self.ipr.close()

    # ------------------------------------------------------------ links

    def index(self, name: str):
        with self.lock:
            found = self.ipr.link_lookup(ifname=name)
        return found[0] if found else None

    def index_of_address(self, address: str):
        with self.lock:
            addrs = list(self.ipr.get_addr(family=socket.AF_INET))
        for a in addrs:
            if a.get_attr("IFA_ADDRESS") == address:
                return a["index"]
        return None

    def _ipv4(self, index):
        with self.lock:
            return [(a.get_attr("IFA_ADDRESS"), a["prefixlen"])
                    for a in self.ipr.get_addr(family=socket.AF_INET, index=index)]

    def _ensure_only_addr(self, index, address, prefixlen):
        changed = False
        for addr, plen in self._ipv4(index):
            if (addr, plen) != (address, prefixlen):
                with self.lock:
                    self.ipr.addr("del", index=index, address=addr, prefixlen=plen)
                changed = True
        if (address, prefixlen) not in self._ipv4(index):
            with self.lock:
                self.ipr.addr("add", index=index, address=address, prefixlen=prefixlen)
            changed = True
        return changed

    def _link(self, index):
        with self.lock:
            return self.ipr.get_links(index)[0]

    def _up(self, index):
        link = self._link(index)
        if not link["flags"] & 1:
            with self.lock:
                self.ipr.link("set", index=index, state="up")
            return True
        return False

    def ensure_bridge(self, pod_cidr: str) -> bool:
        """cbr0 with the pod CIDR's .1 as its only IPv4 address, its MAC set to
        bridge_mac() (an address set by hand never follows the ports), up. True if
        anything changed."""
        net = ipaddress.IPv4Network(pod_cidr)
        mac = bridge_mac(pod_cidr)
        changed = False
        idx = self.index(BRIDGE)
        if idx is None:
            with self.lock:
                self.ipr.link("add", ifname=BRIDGE, kind="bridge", address=mac)
            idx = self.index(BRIDGE)
            changed = True
        if self._link(idx).get_attr("IFLA_ADDRESS") != mac:
            # a bridge made before the MAC was fixed (or another CIDR's): set it once
            with self.lock:
                self.ipr.link("set", index=idx, address=mac)
            log.info("event=bridge_mac_set bridge=%s mac=%s", BRIDGE, mac)
            changed = True
        changed |= self._ensure_only_addr(idx, str(net[1]), net.prefixlen)
        changed |= self._up(idx)
        return changed

    def ensure_vxlan(self, local_ip: str, ext_index: int, pod_cidr: str) -> bool:
        """skiff.1: VNI 1, UDP 8472, learning off, MAC from local_ip, MTU 1450, address =
        the pod CIDR's network address /32 (flannel's layout). A device with other
        settings (another local IP) is recreated."""
        net = ipaddress.IPv4Network(pod_cidr)
        mac = vtep_mac(local_ip)
        changed = False
        idx = self.index(VXLAN_DEVICE)
        if idx is not None:
            link = self._link(idx)
            info = (link.get_attr("IFLA_LINKINFO") or {})
            data = info.get_attr("IFLA_INFO_DATA") if info else None
            local = data.get_attr("IFLA_VXLAN_LOCAL") if data else None
            if local != local_ip or link.get_attr("IFLA_ADDRESS") != mac:
                with self.lock:
                    self.ipr.link("del", index=idx)
                idx = None
        if idx is None:
            with self.lock:
                self.ipr.link("add", ifname=VXLAN_DEVICE, kind="vxlan", vxlan_id=VXLAN_VNI, vxlan_local=local_ip,
                              vxlan_link=ext_index, vxlan_port=VXLAN_PORT, vxlan_learning=0, address=mac,
                              mtu=VXLAN_MTU)
            idx = self.index(VXLAN_DEVICE)
            changed = True
        changed |= self._ensure_only_addr(idx, str(net.network_address), 32)
        changed |= self._up(idx)
        return changed

    def remove_vxlan(self) -> bool:
        idx = self.index(VXLAN_DEVICE)
        if idx is None:
            return False
        with self.lock:
            self.ipr.link("del", index=idx)
        return True

    # ------------------------------------------------------------ routes / neighbours / FDB

    def read(self, ext_index, vx_index) -> rp.Entries:
        """What we own now: routes with our protocol, neighbours and FDB entries on skiff.1."""
        names = {ext_index: rp.EXT, vx_index: rp.VXLAN}
        routes, neighs, fdbs = set(), set(), set()
        with self.lock:
            dump = list(self.ipr.get_routes(family=socket.AF_INET, table=254))
        for r in dump:
            if r["proto"] != RTPROT_SKIFF:
                continue
            dst = f"{r.get_attr('RTA_DST')}/{r['dst_len']}"
            if r["type"] == RTN_UNREACHABLE:
                routes.add(rp.Route(dst, "", rp.UNREACHABLE))
                continue
            dev = names.get(r.get_attr("RTA_OIF"), f"if{r.get_attr('RTA_OIF')}")
            routes.add(rp.Route(dst, r.get_attr("RTA_GATEWAY") or "", dev, bool(r["flags"] & RTNH_F_ONLINK)))
        if vx_index is not None:
            with self.lock:
                ndump = list(self.ipr.get_neighbours(family=socket.AF_INET, ifindex=vx_index))
                fdump = list(self.ipr.fdb("dump", ifindex=vx_index))
            for n in ndump:
                if n["ifindex"] == vx_index and n["state"] & NUD_PERMANENT and n.get_attr("NDA_LLADDR"):
                    neighs.add(rp.Neigh(n.get_attr("NDA_DST"), n.get_attr("NDA_LLADDR")))
            for f in fdump:
                if f["ifindex"] == vx_index and f.get_attr("NDA_DST") and f.get_attr("NDA_LLADDR") != "00:00:00:00:00:00":
                    fdbs.add(rp.Fdb(f.get_attr("NDA_LLADDR"), f.get_attr("NDA_DST")))
        return rp.Entries(frozenset(routes), frozenset(neighs), frozenset(fdbs))

    def apply(self, actions, ext_index, vx_index) -> int:
        """Carry out the planner's actions; an entry already in the wanted state is no error.
        Returns how many failed (logged; the next periodic check retries them)."""
        devs = {rp.EXT: ext_index, rp.VXLAN: vx_index}
        failed = 0
        for a in actions:
            e = a.entry
            try:
                with self.lock:
                    if isinstance(e, rp.Route):
                        dst, plen = e.dst.split("/")
                        if e.dev == rp.UNREACHABLE:
                            self.ipr.route("replace" if a.op == "add" else "del", dst=dst, dst_len=int(plen),
                                           type=RTN_UNREACHABLE, proto=RTPROT_SKIFF, table=254)
                            log.info("event=net_%s entry=%s", a.op, e)
                            continue
                        kw = dict(dst=dst, dst_len=int(plen), gateway=e.gateway, oif=devs.get(e.dev), table=254)
                        if a.op == "add":
                            self.ipr.route("replace", proto=RTPROT_SKIFF, flags=RTNH_F_ONLINK if e.onlink else 0,
                                           **kw)
                        else:
                            self.ipr.route("del", **{k: v for k, v in kw.items() if v is not None})
                    elif isinstance(e, rp.Neigh):
                        if a.op == "add":
                            self.ipr.neigh("replace", ifindex=vx_index, dst=e.dst, lladdr=e.lladdr,
                                           state=NUD_PERMANENT)
                        else:
                            self.ipr.neigh("del", ifindex=vx_index, dst=e.dst, lladdr=e.lladdr)
                    elif isinstance(e, rp.Fdb):
                        if a.op == "add":
                            self.ipr.fdb("append", ifindex=vx_index, lladdr=e.lladdr, dst=e.dst)
                        else:
                            self.ipr.fdb("del", ifindex=vx_index, lladdr=e.lladdr, dst=e.dst)
                log.info("event=net_%s entry=%s", a.op, e)
            except NetlinkError as exc:
                if (a.op == "del" and exc.code in (errno.ESRCH, errno.ENOENT)) or \
                        (a.op == "add" and exc.code == errno.EEXIST):
                    continue
                failed += 1
                log.warning("event=net_%s_failed entry=%s error=%s", a.op, e, str(exc).replace(" ", "_"))
        return failed

    # ------------------------------------------------------------ pods

    def pod_veths(self) -> list:
        """Names of veths of ours (prefix 'veth') attached to the bridge."""
        br = self.index(BRIDGE)
        with self.lock:
            links = list(self.ipr.get_links())
        return [l.get_attr("IFLA_IFNAME") for l in links
                if l.get_attr("IFLA_MASTER") == br and (l.get_attr("IFLA_IFNAME") or "").startswith(VETH_PREFIX)]

    def delete_link(self, name: str) -> bool:
        idx = self.index(name)
        if idx is None:
            return False
        try:
            with self.lock:
                self.ipr.link("del", index=idx)
        except NetlinkError as exc:
            if exc.code != errno.ENODEV:
                raise
        return True

    def setup_pod(self, sandbox_id: str, pid: int, ip: str, pod_cidr: str, mtu: int) -> bool:
        """The pod's veth (host end on cbr0, hairpin on; eth0 with ip, MAC from ip, MTU,
        default route via the bridge address). Returns True if a veth was created,
        False if it existed (then only the pod side is checked and completed)."""
        net = ipaddress.IPv4Network(pod_cidr)
        gw = str(net[1])
        host_name = veth_name(sandbox_id)
        br = self.index(BRIDGE)
        if br is None:
            raise RuntimeError(f"bridge {BRIDGE} does not exist")
        created = False
        idx = self.index(host_name)
        if idx is None:
            with self.lock:
                self.ipr.link("add", ifname=host_name, kind="veth", mtu=mtu,
                              peer={"ifname": "eth0", "net_ns_fd": f"/proc/{pid}/ns/net",
                                    "address": pod_mac(ip), "mtu": mtu})
            idx = self.index(host_name)
            created = True
        link = self._link(idx)
        with self.lock:
            if link.get_attr("IFLA_MASTER") != br or not link["flags"] & 1:
                self.ipr.link("set", index=idx, master=br, state="up")
            self.ipr.brport("set", index=idx, mode=1)   # hairpin (hairpin_mode=1 is ignored)

        def pod_side():
            with IPRoute() as pod:
                eth = pod.link_lookup(ifname="eth0")
                if not eth:
                    raise RuntimeError("eth0 missing in the pod's namespace")
                eth = eth[0]
                have = [(a.get_attr("IFA_ADDRESS"), a["prefixlen"])
                        for a in pod.get_addr(family=socket.AF_INET, index=eth)]
                if (ip, net.prefixlen) not in have:
                    pod.addr("add", index=eth, address=ip, prefixlen=net.prefixlen)
                pod.link("set", index=eth, state="up")
                lo = pod.link_lookup(ifname="lo")
                if lo:
                    pod.link("set", index=lo[0], state="up")
                pod.route("replace", dst="0.0.0.0", dst_len=0, gateway=gw, oif=eth)

        run_in_netns(pid, pod_side, POD_SETUP_TIMEOUT_S)
        return created
