"""Everything that runs while this replica leads: shared informers and the leader-only loops.

The loops (scheduler, ReplicaSet, Deployment, DaemonSet, StatefulSet, Job, CronJob, Endpoints,
node IPAM, disruption, serviceaccounts, taint eviction: keyed
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

Periods and costs (each loop's own docstring has the details): scheduler and the
keyed controllers are event-driven with a 30 s resync; node lifecycle ticks every
grace/10 (lab: 0.5 s), GC every 1 s, bootstrap every 1 s: each an idle walk of the
informer caches, no API call. The steady idle cost is the seven informers' watches on
this replica, mostly the Lease informer's 16 events a second at 20 nodes (a decode
and a cache update each, no handler runs a loop).
"""

import logging
import threading

from controlplane.controllers.cronjob import CronJobController
from controlplane.controllers.daemonset import DaemonSetController
from controlplane.controllers.deployment import DeploymentController
from controlplane.controllers.disruption import DisruptionController
from controlplane.controllers.endpoints import EndpointsController
from controlplane.controllers.gc import GarbageCollector, gc_kinds
from controlplane.controllers.guard import LeaderGuardedClient
from controlplane.controllers.job import JobController
from controlplane.controllers.nodeipam import NodeIpamController
from controlplane.controllers.nodelifecycle import NodeLifecycleController
from controlplane.controllers.replicaset import ReplicaSetController
from controlplane.controllers.serviceaccount import ServiceAccountsController
from controlplane.controllers.statefulset import StatefulSetController
from controlplane.controllers.taint_eviction import TaintEvictionController
from controlplane.controllers.replicationcontroller import replication_controller_controller
from controlplane.scheduler.scheduler import Scheduler
from skiff import client as clientmod
from skiff.api import kinds
from skiff.api.kinds.coordination import NODE_LEASE_NAMESPACE
from skiff.events import EventRecorder
from skiff.informer import InformerFactory

log = logging.getLogger("skiff.controllers")

COMPONENT_SCHEDULER = "default-scheduler"
COMPONENT_CONTROLLERS = "controller-manager"
CLOSE_AFTER_S = 6.0       # informers cancel their watches on stop; loops' in-flight calls end within this


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
        self.client = clientmod.Client(api_endpoints(cfg), call_timeout_s=5.0, failover_budget_s=10.0,
                                       tls=cfg.tls.credentials() if cfg.tls else None)
        guarded = LeaderGuardedClient(self.client, is_leader)
        host = cfg.name
        self.informers = InformerFactory(self.client)
        pods, nodes = self.informers.informer("pods"), self.informers.informer("nodes")
        rss, deploys = self.informers.informer("replicasets"), self.informers.informer("deployments")
        stss = self.informers.informer("statefulsets")
        jobs, cronjobs = self.informers.informer("jobs"), self.informers.informer("cronjobs")
        dss = self.informers.informer("daemonsets")
        # Only kube-node-lease: node heartbeats (a Lease elsewhere is no node's business here).
        leases = self.informers.informer("leases", namespace=NODE_LEASE_NAMESPACE)
        ctl = cfg.controllers
        # The scheduler's events are written in the background: a binding is one round trip, not two.
        self.scheduler = Scheduler(guarded, pods, nodes,
                                   EventRecorder(guarded, COMPONENT_SCHEDULER, host, asynchronous=True),
                                   namespaces=self.informers.informer("namespaces"))
        recorder = EventRecorder(guarded, COMPONENT_CONTROLLERS, host)
        self.loops = [
            self.scheduler,
            ReplicaSetController(guarded, rss, pods, recorder),
            replication_controller_controller(guarded, self.informers.informer("replicationcontrollers"), pods, recorder),
            DeploymentController(guarded, deploys, rss, recorder, pods=pods),
            NodeLifecycleController(guarded, nodes, pods, recorder, ctl.node_monitor_grace_period_s,
                                    ctl.pod_eviction_timeout_s, leases=leases),
            # NoExecute taints other than node.kubernetes.io/unreachable (node lifecycle's).
            TaintEvictionController(guarded, nodes, pods, recorder),
            GarbageCollector(guarded, pods, rss, deploys, nodes,
                             dependents=(leases, *(self.informers.informer(k.plural) for k in gc_kinds()))),
            StatefulSetController(guarded, stss, pods, recorder),
            DaemonSetController(guarded, dss, pods, nodes, recorder),
        ]
        self.loops.append(JobController(guarded, jobs, pods, recorder,
                                        backoff_base_s=ctl.job_backoff_base_s))
        if getattr(cfg, "network", None) is not None:   # node IPAM only with a network: section
            self.loops.append(NodeIpamController(guarded, nodes, cfg.network))
        # Services: Endpoints per selector.
        self.loops.append(EndpointsController(guarded, self.informers.informer("services"),
                                              self.informers.informer("endpoints"), pods))
        # PodDisruptionBudgets: status from the pods and the scale of every scalable kind.
        self.loops.append(DisruptionController(guarded, self.informers.informer("poddisruptionbudgets"), pods, {
            k.name: self.informers.informer(k.plural) for k in kinds.KINDS if k.scale}, recorder))
        self.loops.append(CronJobController(guarded, cronjobs, jobs, recorder))
        # A `default` ServiceAccount in every namespace.
        self.loops.append(ServiceAccountsController(guarded, self.informers.informer("namespaces"),
                                                    self.informers.informer("serviceaccounts")))
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
        """Stop everything without blocking the caller: the informers cancel their watches
        at once; the client is closed CLOSE_AFTER_S later, once the loops' in-flight calls
        (5 s call timeout) have ended."""
        self._stop.set()
        for loop in self.loops:
            loop.stop()
        self.informers.stop()
        closer = threading.Timer(CLOSE_AFTER_S, self.client.close)
        closer.daemon = True
        closer.start()
        log.info("event=controllers_stopped replica=%s", self.cfg.name)
