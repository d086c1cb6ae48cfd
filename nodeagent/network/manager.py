"""The node's pod network: wiring of IPAM, bridge, pod veths, routes and masquerade.

One loop, the reconcile toolkit's bounded-frequency runner (so the agent and
hostNetwork pods never wait for it), over the Nodes informer of the agent's
InformerFactory (shared with the proxier). Start-up: every NOT_READY_S (0.5 s), wait
until our Node has spec.podCIDR and the annotations the node IPAM controller writes
(skiff.io/network-backend, skiff.io/cluster-cidr); then sysctls, the bridge
cbr0 (.1 of the pod CIDR), for vxlan the device skiff.1 (its MAC published in the
Node annotation skiff.io/vtep-mac), the masquerade rule. From then on ready() is True.

What drives a pass (check(kinds)), and what it costs:
- the desired state: a Node event that changes what the routes are made of
  (routes_plan.node_key: podCIDR, InternalIP, Ready, the network annotations) ->
  ROUTES: the planner over the informer, one dump of routes (+ neighbours and FDB
  for vxlan), the difference applied. A heartbeat that only renews a timestamp
  does not wake the loop.
- kernel events (monitor.KernelMonitor, a netlink socket in the node's namespace):
  a deleted route / neighbour / FDB entry of ours -> ROUTES, a change of the bridge,
  the VXLAN device or the external link -> NODE + ROUTES, any nf_tables change ->
  IPTABLES (hostcfg.ensure_chains: one iptables-save, a restore only on drift).
  Events are batched by the runner's MIN_INTERVAL_S (0.2 s); repairs take well under
  a second. The agent's own changes cost at most one extra pass (events.py).
- the safety net, a FULL pass every check_s (FULL_CHECK_S, 30 s; kube-proxy's
  syncPeriod): sysctls, bridge, VXLAN, iptables (one iptables-save), routes, and the
  GC below. It repairs what no event reports (sysctls, iptables with the legacy
  backend) and anything the monitor missed. A receive-buffer overrun (events lost)
  asks for a FULL pass at once. Idle, that is the loop's only work (one iptables-save,
  a few dumps, every 30 s). flannel re-checks every 10 s without events; with events the net is
  only for what slips through, and FALLBACK_CHECK_S (10 s, flannel's) is used when
  the monitor cannot start.
A failed pass is retried after NOT_READY_S, doubling up to check_s; the repairs it
owed are kept for the retry.
After the node's pods are known (live_uids() not None), FULL passes release the IP
allocations of pods that no longer exist and delete veths without an allocation.

Pods: ensure_pod() allocates (or finds) the pod's IP, keyed by pod uid, and sets up the
veth of the given sandbox; a recreated sandbox keeps the pod's IP (the MAC is derived
from it, so peers' ARP caches stay right). release_pod() deletes the veth and frees
the IP. What has been verified for a sandbox is remembered in memory, so a resync
costs no netlink call; after an agent restart the first look finds the existing veth
and sets up nothing again.
"""

import ipaddress
import logging
import math
import os
import threading
import time

from nodeagent.network import events as ev
from nodeagent.network import hostcfg
from nodeagent.network import routes_plan as rp
from nodeagent.network.ipam import PodIpam
from nodeagent.network.monitor import KernelMonitor
from nodeagent.network.names import (BACKEND_ANNOTATION, BACKENDS, BRIDGE, CLUSTER_CIDR_ANNOTATION, VETH_PREFIX,
                                     VXLAN_DEVICE, VTEP_MAC_ANNOTATION, veth_name, vtep_mac)
from nodeagent.network.netlink import NetlinkApplier
from skiff import client as clientmod
from skiff.api import objects_pb2 as pb
from skiff.informer import InformerFactory
from skiff.reconcile import BoundedFrequencyRunner

log = logging.getLogger("skiff.agent.network")

FULL_CHECK_S = 30.0     # the safety net: a FULL pass this often (events drive every other pass)
FALLBACK_CHECK_S = 10.0  # the FULL period when the kernel monitor cannot run (flannel's period)
MIN_INTERVAL_S = 0.2    # passes start at most this often: a burst of events is one pass
NOT_READY_S = 0.5       # how often start-up looks for the node's podCIDR and annotations
DEFAULT_MTU = 1500


class NetworkNotReady(Exception):
    pass


class NetworkManager:
    def __init__(self, *, client, node_name: str, address: str, data_dir: str, netns: str | None = None,
                 check_s: float = FULL_CHECK_S, host_config: bool = True, informers: InformerFactory | None = None,
                 monitor: bool = True, iptables=None):
        self.client = client
        self.node_name = node_name
        self.address = address
        self.ipam = PodIpam(data_dir)
        self.netns = netns
        self.check_s = check_s
        self.host_config = host_config          # sysctls + iptables (off in tests without a netns of their own)
        self.iptables = iptables                # an explicit handle (tests: a namespace's): chains ensured through it
        self._own_informers = informers is None
        self.informers = informers if informers is not None else InformerFactory(client)
        self.nodes = self.informers.informer("nodes")
        self.live_uids = None                   # () -> set of uids, or None while unknown
        self.net = None
        self.pod_cidr = ""
        self.cluster_cidr = ""
        self.backend = ""
        self.mtu = DEFAULT_MTU
        self._ready = threading.Event()
        self._verified: dict = {}               # uid -> sandbox id set up / checked
        self._lock = threading.Lock()
        self._pending: set = set()              # repairs asked for since the last pass (events.*)
        self._last_full = -math.inf             # monotonic start of the last FULL pass
        self._owned = ev.Owned()                # what the monitor's events are matched against
        self.use_monitor = monitor
        self.monitor = None
        self.runner = BoundedFrequencyRunner("pod-network", self._reconcile, min_interval_s=MIN_INTERVAL_S,
                                             max_interval_s=check_s, retry_base_s=NOT_READY_S, retry_max_s=check_s,
                                             informers=(self.nodes,), logger=log)
        self.checks = 0
        self.full_checks = 0
        self.repairs = 0

    # ------------------------------------------------------------ lifecycle

    def start(self) -> "NetworkManager":
        self.net = NetlinkApplier(self.netns)
        if self.use_monitor:
            # Before the first pass, so no change between that pass and the first event is missed.
            try:
                self.monitor = KernelMonitor(self.request, lambda: self._owned, netns=self.netns,
                                             name="pod-network-monitor").start()
            except OSError as exc:
                self.monitor = None
                log.warning("event=netlink_monitor_unavailable node=%s error=%s full_check_s=%s", self.node_name,
                            str(exc).replace(" ", "_"), FALLBACK_CHECK_S)
        if self.monitor is None:
            self.check_s = min(self.check_s, FALLBACK_CHECK_S)
            self.runner.pacing.max_interval_s = self.check_s
        kick = lambda *a: self.request({ev.ROUTES})  # noqa: E731
        self.nodes.add_handler(on_add=kick, on_update=self._node_updated, on_delete=kick)
        self.runner.start()
        if self._own_informers:
            self.informers.start()
        return self

    def stop(self) -> None:
        self.runner.stop()
        if self.monitor is not None:
            self.monitor.stop()
        if self._own_informers:
            self.informers.stop()

    def ready(self) -> bool:
        return self._ready.is_set()

    def wait_ready(self, timeout_s: float) -> bool:
        return self._ready.wait(timeout_s)

    def request(self, kinds) -> None:
        """Ask for a pass doing (at least) these repairs (events.NODE/ROUTES/IPTABLES/FULL);
        safe from any thread (informer handlers, the monitor)."""
        with self._lock:
            self._pending |= set(kinds)
        self.runner.run()

    def _node_updated(self, old, new):
        if rp.node_key(old) != rp.node_key(new):
            self.request({ev.ROUTES})

    def _reconcile(self):
        """The runner's sync: start-up until ready, then check() of the pending repairs (FULL
        when check_s has passed since the last FULL one); the seconds until the next FULL."""
        with self._lock:
            kinds, self._pending = self._pending, set()
        try:
            first = not self._ready.is_set()
            if first:
                self._try_init()
                if not self._ready.is_set():
                    return NOT_READY_S
            now = time.monotonic()
            kinds = ev.pass_kinds(kinds, first, now, self._last_full, self.check_s)
            if ev.FULL in kinds:
                self._last_full = now
            if kinds:
                self.check(kinds)
        except Exception:
            with self._lock:
                self._pending |= kinds or {ev.FULL}
            raise
        return max(0.0, self._last_full + self.check_s - time.monotonic())

    def _own_node(self):
        return self.nodes.get(self.node_name)

    def _try_init(self):
        node = self._own_node()
        if node is None or not node.spec.pod_cidr:
            return
        backend = node.metadata.annotations.get(BACKEND_ANNOTATION, "")
        cluster = node.metadata.annotations.get(CLUSTER_CIDR_ANNOTATION, "")
        if backend not in BACKENDS or not cluster:
            return
        self.pod_cidr, self.cluster_cidr, self.backend = node.spec.pod_cidr, cluster, backend
        self.mtu = 1450 if backend == "vxlan" else DEFAULT_MTU
        self.ipam.set_cidr(self.pod_cidr)
        self._ensure_node_level()
        if backend == "vxlan":
            self._publish_vtep_mac()
        self._ready.set()
        log.info("event=network_ready node=%s pod_cidr=%s backend=%s cluster_cidr=%s", self.node_name,
                 self.pod_cidr, backend, cluster)

    def _ensure_node_level(self, kinds=frozenset({ev.FULL})) -> bool:
        """sysctls (FULL only: no event reports them), bridge and VXLAN device (FULL, NODE),
        our iptables chains (FULL, IPTABLES). True if anything changed."""
        full = ev.FULL in kinds
        changed = False
        if self.host_config and full:
            changed |= bool(hostcfg.ensure_sysctls())
        if full or ev.NODE in kinds:
            changed |= self.net.ensure_bridge(self.pod_cidr)
            if self.backend == "vxlan":
                ext = self._ext_index()
                changed |= self.net.ensure_vxlan(self.address, ext, self.pod_cidr)
            else:
                changed |= self.net.remove_vxlan()
        if (self.host_config or self.iptables is not None) and (full or ev.IPTABLES in kinds):
            changed |= hostcfg.ensure_chains(self.pod_cidr, self.cluster_cidr, self.iptables)
        return changed

    def _ext_index(self):
        idx = self.net.index_of_address(self.address)
        if idx is None:
            raise RuntimeError(f"no interface holds the node address {self.address}")
        return idx

    def _publish_vtep_mac(self):
        mac = vtep_mac(self.address)
        for _ in range(10):
            try:
                node = self.client.get("nodes", self.node_name, "")
            except clientmod.ApiError:
                return  # the next check tries again
            if node.metadata.annotations.get(VTEP_MAC_ANNOTATION) == mac:
                return
            updated = pb.Node()
            updated.CopyFrom(node)
            updated.metadata.annotations[VTEP_MAC_ANNOTATION] = mac
            try:
                self.client.update(updated)
                log.info("event=vtep_mac_published node=%s mac=%s", self.node_name, mac)
                return
            except clientmod.Conflict:
                continue  # a heartbeat came first
            except clientmod.ApiError:
                return

    # ------------------------------------------------------------ passes

    def check(self, kinds=None) -> int:
        """One reconcile of what `kinds` names (events.*; None: FULL, everything); returns
        the route/neighbour/FDB actions applied."""
        kinds = frozenset({ev.FULL}) if kinds is None else frozenset(kinds)
        full = ev.FULL in kinds
        self.checks += 1
        self.full_checks += full
        node = self._own_node()
        if node is not None and node.spec.pod_cidr and node.spec.pod_cidr != self.pod_cidr:
            # Our Node was re-created and got another block: start over with it.
            log.warning("event=pod_cidr_changed node=%s old=%s new=%s", self.node_name, self.pod_cidr,
                        node.spec.pod_cidr)
            self._ready.clear()
            self._try_init()
            return 0
        if self._ensure_node_level(kinds):
            self.repairs += 1
        if self.backend == "vxlan" and node is not None and \
                node.metadata.annotations.get(VTEP_MAC_ANNOTATION) != vtep_mac(self.address):
            self._publish_vtep_mac()
        actions = []
        if full or kinds & {ev.NODE, ev.ROUTES}:
            ext = self._ext_index()
            vx = self.net.index(VXLAN_DEVICE)
            want = rp.desired(rp.remote_nodes(self.nodes.list(), self.node_name), self.backend,
                              self.cluster_cidr)
            have = self.net.read(ext, vx)
            actions = rp.plan(want, have)
            if actions:
                self.net.apply(actions, ext, vx)
                self.repairs += 1
                log.info("event=network_repaired node=%s actions=%d kinds=%s", self.node_name, len(actions),
                         ",".join(sorted(kinds)))
            self._owned = ev.Owned(self.net.index(BRIDGE), vx, ext, self.cluster_cidr)
        if full:
            self._gc()
        return len(actions)

    def _gc(self):
        live_fn = self.live_uids
        live = live_fn() if live_fn is not None else None
        if live is None:
            return
        for ip, uid, sandbox in self.ipam.gc(live):
            with self._lock:
                self._verified.pop(uid, None)
            if sandbox:
                self.net.delete_link(veth_name(sandbox))
            log.info("event=pod_ip_released reason=gc ip=%s uid=%s", ip, uid)
        keep = {veth_name(sb) for _uid, sb in self.ipam.allocations().values() if sb}
        for name in self.net.pod_veths():
            if name.startswith(VETH_PREFIX) and name not in keep:
                self.net.delete_link(name)
                log.info("event=veth_removed reason=gc veth=%s", name)

    # ------------------------------------------------------------ pods

    def pod_ip(self, uid: str) -> str:
        found = self.ipam.lookup(uid)
        return found[0] if found else ""

    def is_set_up(self, uid: str, sandbox_id: str) -> bool:
        with self._lock:
            return self._verified.get(uid) == sandbox_id

    def ensure_pod(self, uid: str, sandbox_id: str, pid: int) -> str:
        """The pod's IP, with the sandbox's veth set up (idempotent). NetworkNotReady
        while the node has no pod CIDR yet."""
        with self._lock:
            if self._verified.get(uid) == sandbox_id:
                found = self.ipam.lookup(uid)
                if found:
                    return found[0]
        if not self._ready.is_set():
            raise NetworkNotReady(f"network not ready: node {self.node_name} has no podCIDR yet")
        if pid <= 0 or not os.path.exists(f"/proc/{pid}/ns/net"):
            raise RuntimeError(f"sandbox {sandbox_id[:12]} has no running process")
        previous = self.ipam.lookup(uid)
        ip = self.ipam.allocate(uid, sandbox_id)
        if previous and previous[1] and previous[1] != sandbox_id:
            self.net.delete_link(veth_name(previous[1]))   # the old sandbox's veth (its netns is dying)
        created = self.net.setup_pod(sandbox_id, pid, ip, self.pod_cidr, self.mtu)
        with self._lock:
            self._verified[uid] = sandbox_id
        log.info("event=pod_network_%s uid=%s ip=%s veth=%s", "set_up" if created else "adopted", uid, ip,
                 veth_name(sandbox_id))
        return ip

    def release_pod(self, uid: str) -> None:
        with self._lock:
            self._verified.pop(uid, None)
        for ip, sandbox in self.ipam.release(uid):
            if sandbox and self.net is not None:
                self.net.delete_link(veth_name(sandbox))
            log.info("event=pod_ip_released uid=%s ip=%s", uid, ip)


def in_cidr(ip: str, cidr: str) -> bool:
    return ipaddress.IPv4Address(ip) in ipaddress.IPv4Network(cidr)
