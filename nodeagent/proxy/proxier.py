"""The node's service proxy: informers on Services, Endpoints (and Nodes) -> iptables.

Proxier(client, node_name, node_ip).start() / .stop(). The agent runs inside the
node's network namespace, so the iptables commands hit the node's tables.

The reconcile loop has a single key (the node's whole rule set), like kube-proxy's
syncProxyRules: informer handlers only mark it dirty; one worker thread renders the
whole rule set with the pure render() and applies it with one
`iptables-restore --noflush`, then ensures the jumps from the built-in chains, clears
the UDP conntrack entries of removed endpoints and (re)places LoadBalancer addresses
this node announces. Syncs run at most once per min_sync_interval_s (churn is
batched: changes arriving meanwhile are taken by the next sync), plus a full re-apply
every resync_s (repairs drift); a failed sync is retried with growing delays.
Identical text is not re-applied between resyncs. Only SKIFF- chains are touched.
"""

import logging
import threading
import time

from nodeagent.proxy import conntrack
from nodeagent.proxy.announce import Announcer, announcer, candidates
from nodeagent.proxy.iptables import Iptables
from nodeagent.proxy.render import Node, jump_rules, render_ports, service_ports, skiff_chains
from skiff.informer import Informer

log = logging.getLogger("skiff.proxy")

CLUSTER_CIDR_ANNOTATION = "skiff.io/cluster-cidr"


class Proxier:
    def __init__(self, client, node_name: str, node_ip: str = "", *, cluster_cidr: str = "",
                 min_sync_interval_s: float = 0.5, resync_s: float = 30.0, iptables=None,
                 announce: bool = True, max_retry_s: float = 30.0):
        self.client = client
        self.node_name = node_name
        self.node_ip = node_ip
        self.cluster_cidr = cluster_cidr
        self.min_sync_interval_s = min_sync_interval_s
        self.resync_s = resync_s
        self.max_retry_s = max_retry_s
        self.iptables = iptables or Iptables()
        self.announcer = Announcer(node_ip) if announce and node_ip else None
        self.services = Informer(client, "services", name="proxy-informer-services")
        self.endpoints = Informer(client, "endpoints", name="proxy-informer-endpoints")
        self.nodes = Informer(client, "nodes", name="proxy-informer-nodes")
        for inf in (self.services, self.endpoints, self.nodes):
            inf.add_handler(self._changed, lambda old, new: self._changed(new), self._changed)
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="proxier", daemon=True)
        self._last_text = None
        self._last_ports = []
        self.syncs = 0            # applied syncs (tests and logs)
        self.last_error = ""

    # ------------------------------------------------------------ lifecycle

    def start(self) -> "Proxier":
        for inf in (self.services, self.endpoints, self.nodes):
            inf.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops the loop; the rules stay (traffic keeps flowing while the agent restarts)."""
        self._stop.set()
        self._dirty.set()
        for inf in (self.services, self.endpoints, self.nodes):
            inf.stop()
        self._thread.join(5.0)

    def _changed(self, *_):
        self._dirty.set()

    # ------------------------------------------------------------ loop

    def _run(self) -> None:
        for inf in (self.services, self.endpoints, self.nodes):
            while not inf.wait_synced(0.2):
                if self._stop.is_set():
                    return
        last_sync = 0.0
        last_full = 0.0
        failures = 0
        self._dirty.set()
        while not self._stop.is_set():
            due_full = last_full + self.resync_s
            self._dirty.wait(max(0.0, due_full - time.monotonic()))
            if self._stop.is_set():
                return
            # Batch churn: never more often than once per min_sync_interval_s.
            wait_s = last_sync + self.min_sync_interval_s - time.monotonic()
            if wait_s > 0 and self._stop.wait(wait_s):
                return
            self._dirty.clear()
            full = time.monotonic() >= due_full
            last_sync = time.monotonic()
            try:
                self.sync(force=full)
                failures = 0
                if full:
                    last_full = last_sync
            except Exception as exc:  # noqa: BLE001 - retried; the loop must live on
                failures += 1
                self.last_error = str(exc)
                delay = min(self.max_retry_s, 0.5 * 2 ** (failures - 1))
                log.warning("event=proxy_sync_failed node=%s failures=%d retry_s=%.1f error=%s",
                            self.node_name, failures, delay, str(exc)[:300].replace(" ", "_"))
                timer = threading.Timer(delay, self._dirty.set)
                timer.daemon = True
                timer.start()

    def _node(self) -> Node:
        cidr = self.cluster_cidr
        if not cidr:
            me = self.nodes.get(self.node_name)
            if me is not None:
                cidr = me.metadata.annotations.get(CLUSTER_CIDR_ANNOTATION, "")
        return Node(self.node_name, cluster_cidr=cidr)

    def sync(self, force: bool = False) -> bool:
        """One level-triggered pass; True when rules were applied."""
        started = time.monotonic()
        ports = service_ports(self.services.list(), self.endpoints.list())
        existing = skiff_chains(self.iptables.save())
        text = render_ports(ports, self._node(), existing)
        applied = False
        if force or text != self._last_text:
            self.iptables.restore(text)
            for table, chain, spec in jump_rules():
                self.iptables.ensure_jump(table, chain, spec)
            self._last_text = text
            self.syncs += 1
            applied = True
            log.info("event=proxy_rules_applied node=%s service_ports=%d endpoints=%d full=%s took_ms=%.0f",
                     self.node_name, len(ports), sum(len(p.endpoints) for p in ports), force,
                     (time.monotonic() - started) * 1000)
        gone, fresh = conntrack.stale_udp(self._last_ports, ports)
        conntrack.clear_udp(gone, fresh)
        self._last_ports = ports
        if self.announcer is not None:
            self.announcer.sync(self._announced(ports))
        return applied

    def _announced(self, ports):
        ready = [n.metadata.name for n in self.nodes.list() if _ready(n)]
        ips = {ip for sp in ports for ip in sp.external_ips}
        return sorted(ip for ip in ips if announcer(ip, candidates(ip, ports, ready)) == self.node_name)


def _ready(node) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)
