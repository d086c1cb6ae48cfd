"""Everything that runs while this replica leads: shared informers and the leader-only loops.

The loops (scheduler, ReplicaSet, Deployment, Endpoints, node IPAM: keyed
reconcile Loops; node lifecycle and GC: bounded-frequency runners) all read one
informer per kind from this manager's InformerFactory. Leases (kube-node-lease,
renewed by every node every leaseDurationSeconds / 4) are read by the node
lifecycle controller and GC only, and wake neither: their informer has no
handler that runs a loop on a renewal.

One ControllerManager lives for one term of leadership: start() after winning,
stop() after losing (controlplane.leader.LeaderSupervisor does both). It talks
to the cluster only through the API, with a client that dials this replica's
own API first and the peers after, and whose writes re-check leadership (guard).

Before its informers list anything it makes one linearizable read, so this
replica has applied everything committed before it took over: a new leader
never acts on a state older than its predecessor's last write.
"""

import logging
import threading

from controlplane.controllers.deployment import DeploymentController
from controlplane.controllers.endpoints import EndpointsController
from controlplane.controllers.gc import GarbageCollector
from controlplane.controllers.guard import LeaderGuardedClient
from controlplane.controllers.nodeipam import NodeIpamController
from controlplane.controllers.nodelifecycle import NodeLifecycleController
from controlplane.controllers.replicaset import ReplicaSetController
from controlplane.scheduler.scheduler import Scheduler
from skiff import client as clientmod
from skiff.api.kinds.coordination import NODE_LEASE_NAMESPACE
from skiff.events import EventRecorder
from skiff.informer import InformerFactory

log = logging.getLogger("skiff.controllers")

COMPONENT_SCHEDULER = "default-scheduler"
COMPONENT_CONTROLLERS = "controller-manager"
CLOSE_AFTER_S = 6.0       # informers watch in 5 s slices; close their channels after that


def api_endpoints(cfg) -> list:
    """This replica's API first, then its peers' (reads come from the leader's own state)."""
    own = cfg.self_peer.api_address
    if own.startswith("0.0.0.0:"):
        own = "127.0.0.1:" + own.rsplit(":", 1)[1]
    return [own] + [p.api_address for p in cfg.peers if p.api_address != own]


class ControllerManager:
    def __init__(self, cfg, is_leader):
        self.cfg = cfg
        self.is_leader = is_leader
        self.client = clientmod.Client(api_endpoints(cfg), call_timeout_s=5.0, failover_budget_s=10.0)
        guarded = LeaderGuardedClient(self.client, is_leader)
        host = cfg.name
        self.informers = InformerFactory(self.client)
        pods, nodes = self.informers.informer("pods"), self.informers.informer("nodes")
        rss, deploys = self.informers.informer("replicasets"), self.informers.informer("deployments")
        # Only kube-node-lease: node heartbeats (a Lease elsewhere is no node's business here).
        leases = self.informers.informer("leases", namespace=NODE_LEASE_NAMESPACE)
        ctl = cfg.controllers
        self.scheduler = Scheduler(guarded, pods, nodes, EventRecorder(guarded, COMPONENT_SCHEDULER, host))
        recorder = EventRecorder(guarded, COMPONENT_CONTROLLERS, host)
        self.loops = [
            self.scheduler,
            ReplicaSetController(guarded, rss, pods, recorder),
            DeploymentController(guarded, deploys, rss, recorder, pods=pods),
            NodeLifecycleController(guarded, nodes, pods, recorder, ctl.node_monitor_grace_period_s,
                                    ctl.pod_eviction_timeout_s, leases=leases),
            GarbageCollector(guarded, pods, rss, deploys, nodes, dependents=(leases,)),
        ]
        if getattr(cfg, "network", None) is not None:   # node IPAM only with a network: section
            self.loops.append(NodeIpamController(guarded, nodes, cfg.network))
        # Services: Endpoints per selector.
        self.loops.append(EndpointsController(guarded, self.informers.informer("services"),
                                              self.informers.informer("endpoints"), pods))
        self._stop = threading.Event()
        self._starter = threading.Thread(target=self._start, name="controllers-start", daemon=True)

    def start(self) -> None:
        self._starter.start()

    def _start(self) -> None:
        while not self._stop.is_set():
            try:
                self.client.get("namespaces", "default", linearizable=True)
                break
            except clientmod.ApiError as exc:
                log.info("event=leader_catchup_retry error=%s", str(exc)[:120].replace(" ", "_"))
                self._stop.wait(0.2)
        if self._stop.is_set():
            return
        self.informers.start()
        for loop in self.loops:
            loop.start()
        log.info("event=controllers_started replica=%s", self.cfg.name)

    def stop(self) -> None:
        """Stop everything without blocking the caller; the client is closed once the
        informers' current watch slices (at most ~5 s) have ended."""
        self._stop.set()
        for loop in self.loops:
            loop.stop()
        self.informers.stop()
        closer = threading.Timer(CLOSE_AFTER_S, self.client.close)
        closer.daemon = True
        closer.start()
        log.info("event=controllers_stopped replica=%s", self.cfg.name)
