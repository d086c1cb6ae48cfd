"""The node's service proxy: informers on Services, Endpoints (and Nodes) -> iptables;
also the hostPorts of the node's pods (nodeagent/proxy/hostport.py).

Proxier(client, node_name, node_ip, informers=factory).start() / .stop(). The agent
runs inside the node's network namespace, so the iptables commands hit the node's
tables. The informers come from the agent's InformerFactory (shared with DNS and the
pod network); without one the proxier makes and runs its own.

The reconcile loop has a single key (the node's whole rule set), like kube-proxy's
syncProxyRules, so it is the toolkit's bounded-frequency runner. A sync reads the
rules once (iptables-save: the stale chains render() must delete, and the live rules),
renders the whole rule set with the pure render() and applies it with one
`iptables-restore --noflush`, then ensures the jumps from the built-in chains, only
when the text differs from the last one applied OR the live rules drifted from it
(drift.drifted: a deleted rule, chain or jump, a flushed table). Then it clears the
UDP conntrack entries of removed endpoints and (re)places LoadBalancer addresses this
node announces. Only SKIFF- chains are touched.

What wakes it, and what that costs:
- Service and Endpoints events, and Node events that change what the rules or the
  announcements are made of (the node's Ready status, the cluster CIDR annotation;
  not a heartbeat renewing timestamps): one sync, at most once per
  min_sync_interval_s (0.5 s: churn is batched, changes arriving meanwhile are taken
  by the next sync);
- events of this node's pods that change their hostPort mappings (a pod with a
  hostPort added or deleted, its IP set, finished): one sync, batched the same way;
  status churn of other pods costs nothing;
- an nf_tables change in the node's namespace (network.monitor, nft group: someone,
  or we, changed rules): one sync that re-applies only if the rules drifted. Our
  own restore wakes it once more and finds nothing: no loop;
- every resync_s (30 s, kube-proxy's syncPeriod) regardless: the bounded-frequency
  resync, the safety net for the legacy iptables backend (no events) and lost events.
  Idle, that is one iptables-save every 30 s (a few ms of CPU), where it used to be a
  forced re-apply: save, restore and eight `iptables -C`.
A failed sync is retried after 0.5 s doubling up to max_retry_s (30 s). A drift repair
is checked with one more iptables-save and re-applied up to REPAIR_ATTEMPTS times (the
first restore after an outside change can leave a chain empty: docs/networking.md fact
15); if the same drift still shows after every attempt, the text is marked unverifiable
and re-applied every resync_s (the old way), never in a loop. Drift that changes between
attempts is someone else writing at the same time, not an unverifiable text: the check
stays on and their next nf_tables event brings another sync.
"""

import logging
import math
import time

from nodeagent.network import events as netevents
from nodeagent.network.monitor import KernelMonitor
from nodeagent.proxy import conntrack, drift, hostport
from nodeagent.proxy.announce import Announcer, announcer, candidates
from nodeagent.proxy.iptables import Iptables
from nodeagent.proxy.render import Node, jump_rules, render_ports, service_ports, skiff_chains
from skiff.api.wellknown import CLUSTER_CIDR_ANNOTATION
from skiff.informer import InformerFactory
from skiff.reconcile import BoundedFrequencyRunner

log = logging.getLogger("skiff.proxy")

RETRY_BASE_S = 0.5
REPAIR_ATTEMPTS = 3     # re-applies of a drifted rule set before its drift check is distrusted (fact 15)


class Proxier:
    def __init__(self, client, node_name: str, node_ip: str = "", *, cluster_cidr: str = "",
                 min_sync_interval_s: float = 0.5, resync_s: float = 30.0, iptables=None,
                 announce: bool = True, max_retry_s: float = 30.0, informers: InformerFactory | None = None,
                 monitor: bool = True):
        self.client = client
        self.node_name = node_name
        self.node_ip = node_ip
        self.cluster_cidr = cluster_cidr
        self.min_sync_interval_s = min_sync_interval_s
        self.resync_s = resync_s
        self.max_retry_s = max_retry_s
        self.iptables = iptables or Iptables()
        self.announcer = Announcer(node_ip) if announce and node_ip else None
        self._own_informers = informers is None
        self.informers = informers if informers is not None else InformerFactory(client)
        self.services = self.informers.informer("services")
        self.endpoints = self.informers.informer("endpoints")
        self.nodes = self.informers.informer("nodes")
        # This node's pods (the pod syncer's informer): their hostPorts.
        self.pods = self.informers.informer("pods", field_selector=f"spec.nodeName={node_name}")
        self.runner = BoundedFrequencyRunner(
            "proxier", self._sync_once, min_interval_s=min_sync_interval_s, max_interval_s=resync_s,
            retry_base_s=RETRY_BASE_S, retry_max_s=max_retry_s, logger=log,
            informers=(self.services, self.endpoints, self.nodes, self.pods))
        self._last_full = -math.inf       # start of the last successful full sync (monotonic)
        self._last_text = None
        self._unverifiable = None         # a text whose re-apply did not clear the drift check
        self._last_ports = []
        self.use_monitor = monitor
        self.monitor = None
        self.syncs = 0            # applied syncs (tests and logs)
        self.drift_repairs = 0    # syncs that re-applied because the live rules drifted
        self.last_error = ""

    # ------------------------------------------------------------ lifecycle

    def start(self) -> "Proxier":
        for inf in (self.services, self.endpoints):
            inf.add_handler(self._changed, lambda old, new: self._changed(new), self._changed)
        self.nodes.add_handler(self._changed, self._node_updated, self._changed)
        self.pods.add_handler(self._pod_changed, self._pod_updated, self._pod_changed)
        if self.use_monitor:
            try:
                self.monitor = KernelMonitor(self._rules_changed, netns=self.iptables.netns_path or None,
                                             rtnl=False, name="proxier-monitor").start()
            except OSError as exc:
                log.warning("event=nft_monitor_unavailable node=%s error=%s", self.node_name,
                            str(exc).replace(" ", "_"))
        self.runner.start()
        if self._own_informers:
            self.informers.start()
        return self

    def stop(self) -> None:
        """Stops the loop; the rules stay (traffic keeps flowing while the agent restarts)."""
        self.runner.stop(join_s=5.0)
        if self.monitor is not None:
            self.monitor.stop()
        if self._own_informers:
            self.informers.stop()

    def _changed(self, *_):
        self.runner.run()

    def _node_updated(self, old, new):
        if node_key(old) != node_key(new):
            self.runner.run()

    def _pod_changed(self, pod):
        if _has_host_port(pod):
            self.runner.run()

    def _pod_updated(self, old, new):
        # Status churn of pods without hostPorts (most of them) costs no sync.
        if hostport.mappings([old], self.node_name) != hostport.mappings([new], self.node_name):
            self.runner.run()

    def _rules_changed(self, repairs):
        if netevents.IPTABLES in repairs or netevents.FULL in repairs:
            self.runner.run()

    # ------------------------------------------------------------ loop

    def _sync_once(self) -> float:
        """The runner's sync (every sync checks for drift; a periodic one is simply due
        resync_s after the last); returns the seconds until the next periodic one."""
        started = time.monotonic()
        full = started >= self._last_full + self.resync_s
        try:
            # A text whose drift cannot be checked is re-applied every resync_s (the old way).
            self.sync(force=full and self._last_text is not None and self._last_text == self._unverifiable)
        except Exception as exc:
            self.last_error = str(exc)
            raise
        if full:
            self._last_full = started
        return max(0.0, self._last_full + self.resync_s - time.monotonic())

    def _node(self) -> Node:
        cidr = self.cluster_cidr
        if not cidr:
            me = self.nodes.get(self.node_name)
            if me is not None:
                cidr = me.metadata.annotations.get(CLUSTER_CIDR_ANNOTATION, "")
        return Node(self.node_name, cluster_cidr=cidr)

    def sync(self, force: bool = False) -> bool:
        """One level-triggered pass; True when rules were applied (force: even when the
        live rules are exactly the text)."""
        started = time.monotonic()
        ports = service_ports(self.services.list(), self.endpoints.list())
        saved = self.iptables.save()
        maps = hostport.mappings(self.pods.list(), self.node_name)
        text = render_ports(ports, self._node(), skiff_chains(saved), extra_nat=hostport.nat_chains(maps))
        problems = []
        if text == self._last_text and text != self._unverifiable:
            problems = drift.drifted(saved, text, jump_rules())
            if problems:
                self.drift_repairs += 1
                log.warning("event=proxy_rules_drifted node=%s problems=%d first=%s", self.node_name,
                            len(problems), problems[0].replace(" ", "_"))
        applied = False
        if force or text != self._last_text or problems:
            remaining = []
            for attempt in range(1, REPAIR_ATTEMPTS + 1 if problems else 2):
                self.iptables.restore(text)
                for table, chain, spec in jump_rules():
                    self.iptables.ensure_jump(table, chain, spec)
                still = drift.drifted(self.iptables.save(), text, jump_rules()) if problems else []
                if not still:
                    break
                remaining.append(still)
                log.warning("event=proxy_drift_remains node=%s attempt=%d problems=%d first=%s", self.node_name,
                            attempt, len(still), still[0].replace(" ", "_"))
            else:
                if all(still == remaining[0] for still in remaining):
                    # The kernel saves this text differently every time: stop checking it.
                    self._unverifiable = text
                    log.warning("event=proxy_drift_unverifiable node=%s", self.node_name)
                else:
                    # Different problems each attempt: someone else is writing right now;
                    # their next nf_tables event (or the safety net) brings another sync.
                    log.warning("event=proxy_drift_contended node=%s", self.node_name)
            self._last_text = text
            self.syncs += 1
            applied = True
            log.info("event=proxy_rules_applied node=%s service_ports=%d endpoints=%d host_ports=%d drift=%s "
                     "took_ms=%.0f", self.node_name, len(ports), sum(len(p.endpoints) for p in ports), len(maps),
                     bool(problems),
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


def node_key(node) -> tuple:
    """What the proxier reads of a Node: its Ready status (announcements) and the cluster
    CIDR annotation (masquerade rules); a heartbeat renewing timestamps does not change it."""
    return (node.metadata.name, _ready(node), node.metadata.annotations.get(CLUSTER_CIDR_ANNOTATION, ""))


def _has_host_port(pod) -> bool:
    return any(p.host_port for c in pod.spec.containers for p in c.ports)


def _ready(node) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)
