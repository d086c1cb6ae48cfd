"""The node agent: wires the API client, the Docker engine, node heartbeats, the pod
sync loop, probes and the agent's own gRPC server together.

start() returns once the node is registered and the loops run; stop() ends the
loops and the server but never touches containers: pods keep running across
agent restarts, and the next agent adopts them (their labels say what they are).

Every loop is built on the reconcile toolkit (skiff.reconcile): pod sync is a keyed
Loop; heartbeats, the pod network, the service proxy and DNS start-up are
bounded-frequency runners. They read one informer per kind from the agent's
InformerFactory: Services, Endpoints and Nodes (proxier, DNS, pod network; the node
status runner reads its own Node there too), and
this node's Pods (pod sync; the Endpoints one also orders a deleted pod's drain before
its SIGTERM: podsync/drain.py); started once every loop has registered its handlers.
"""

import logging
import os
import time

from skiff import client as clientmod
from skiff.events import EventRecorder
from skiff.informer import InformerFactory

from nodeagent import node as nodemod
from nodeagent.podsync.apply import Applier
from nodeagent.podsync.model import BackoffPolicy
from nodeagent.podsync.satoken import PodTokens
from nodeagent.podsync.syncer import PodSyncer
from nodeagent.probes.manager import ProbeManager
from nodeagent.runtime import docker as dockermod

log = logging.getLogger("skiff.agent")


class Agent:
    def __init__(self, cfg):
        self.cfg = cfg
        creds = cfg.tls.credentials() if cfg.tls else None
        self.client = clientmod.Client(list(cfg.servers), tls=creds)
        # Pod syncs write status and events and read configMaps/secrets through a client that
        # gives up quickly: with the control plane unreachable, containers must still be
        # restarted on time (the status is written again by a later sync).
        self.sync_client = clientmod.Client(list(cfg.servers), call_timeout_s=5.0, failover_budget_s=3.0,
                                            tls=creds)
        self.informers = InformerFactory(self.client)
        self.docker = None
        self.runtime = None
        self.reporter = None
        self.syncer = None
        self.server = None
        self.network = None
        self.proxier = None
        self.dns = None
        self.renewer = None
        self.recorder = None
        self.sa_tokens = None
        self._stopping = False

    def _connect_engine(self, timeout_s: float = 120.0):
        """The engine may still be starting (the lab starts both together): wait for it."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                client = dockermod.connect(self.cfg.docker_host)
                version = client.version().get("Version", "unknown")
                return client, version
            except Exception as exc:  # noqa: BLE001 - reported, retried
                if time.monotonic() >= deadline or self._stopping:
                    raise RuntimeError(f"docker engine at {self.cfg.docker_host} unreachable: {exc}") from None
                log.info("event=engine_wait host=%s error=%s", self.cfg.docker_host, str(exc)[:200].replace(" ", "_"))
                time.sleep(1.0)

    def start(self) -> "Agent":
        cfg = self.cfg
        os.makedirs(os.path.join(cfg.data_dir, "pods"), exist_ok=True)
        self.docker, version = self._connect_engine()
        log.info("event=engine_connected host=%s version=%s", cfg.docker_host, version)
        # Serve logs/exec/image load before the first heartbeat, so a node that reports
        # Ready can also be reached on its port.
        self._start_server()
        from nodeagent.join import start_renewal   # TLS: renew the node certificate before it expires
        self.renewer = start_renewal(cfg, self.sync_client)
        self.runtime = dockermod.DockerRuntime(
            self.docker, cfg.node_name,
            pull_client=dockermod.connect(cfg.docker_host, timeout_s=cfg.image_pull_timeout_s))
        facts = nodemod.machine_facts(version, cfg.data_dir)
        self.reporter = nodemod.NodeReporter(cfg, self.client, facts, images_fn=self.runtime.images)
        self.reporter.register()
        self.reporter.start()
        if cfg.pod_network:
            # Only an agent that owns its node's network namespace touches routes and
            # iptables (the lab's agents; not one running in the host's namespace).
            from nodeagent.network.manager import NetworkManager
            from nodeagent.proxy.proxier import Proxier
            self.network = NetworkManager(client=self.client, node_name=cfg.node_name, address=cfg.address,
                                          data_dir=cfg.data_dir, informers=self.informers).start()
            self.proxier = Proxier(self.client, cfg.node_name, cfg.address, informers=self.informers).start()
            from nodeagent.dns.server import NodeDns   # cluster DNS on cbr0's .1:53
            # Pod records are checked with a read of the namespace's pods: a client that gives up quickly.
            self.dns = NodeDns(self.sync_client, self.network, upstream=cfg.dns_upstream,
                               informers=self.informers).start()
        # Events are written in the background; a pod's are flushed before its status (skiff/events.py).
        recorder = self.recorder = EventRecorder(self.sync_client, "skiff-agent", cfg.node_name, asynchronous=True)
        allocatable = {"cpu": facts.cpu, "memory": facts.memory}
        if facts.ephemeral_storage:
            allocatable["ephemeral-storage"] = facts.ephemeral_storage
        allocatable.update({k: v for k, v in cfg.capacity.items() if k in ("cpu", "memory", "ephemeral-storage")})
        probes = ProbeManager(self.runtime, recorder)
        self.sa_tokens = PodTokens(cfg.data_dir, self._request_token, ca_bundle=self._ca_bundle).start()
        applier = Applier(runtime=self.runtime, node_name=cfg.node_name, data_dir=cfg.data_dir,
                          pause_image=cfg.pause_image, host_ip=cfg.address, recorder=recorder,
                          get_configmap=self._getter("configmaps"), get_secret=self._getter("secrets"),
                          delete_pod=self._delete_pod, probes=probes, allocatable=allocatable,
                          network=self.network,
                          list_services=self.dns.list_services if self.dns else None,
                          cluster_dns=self.dns.address if self.dns else None, sa_tokens=self.sa_tokens)
        self.syncer = PodSyncer(client=self.sync_client, informer_client=self.client, runtime=self.runtime,
                                applier=applier, probes=probes,
                                node_name=cfg.node_name, host_ip=cfg.address, data_dir=cfg.data_dir,
                                policy=BackoffPolicy(cfg.restart_backoff_base_s, cfg.restart_backoff_cap_s),
                                workers=cfg.sync_workers, resync_s=cfg.resync_s, informers=self.informers,
                                drain=self._endpoints_drain())
        probes.on_change = self.syncer.enqueue
        probes.pod_ip = applier.pod_ip     # where grpc probes call (kubelet: the pod's IP)
        if self.network is not None:   # IP garbage collection once the node's pods are known
            self.network.live_uids = lambda: self.syncer._all_uids() if self.syncer.informer.synced else None
        self.syncer.start()
        if self.network is not None:   # the network's Node informer: the status runner reads it too
            self.reporter.use_cache(self.informers.informer("nodes"))
        self.informers.start()      # every loop has its handlers: one watch per kind from here on
        log.info("event=agent_started node=%s listen=%s", cfg.node_name, cfg.listen)
        return self

    def _endpoints_drain(self):
        """A deleted pod leaves the Endpoints before SIGTERM (podsync/drain.py): over the
        proxier's endpoints informer, settling one proxier sync interval; an agent
        without a proxier (no pod network) stops deleted pods at once."""
        if self.proxier is None:
            return None
        from nodeagent.podsync.drain import RESTORE_MARGIN_S, EndpointsDrain
        return EndpointsDrain(self.informers.informer("endpoints"),
                              settle_s=self.proxier.min_sync_interval_s + RESTORE_MARGIN_S)

    def _start_server(self):
        try:
            from nodeagent import server as servermod
        except ImportError as exc:
            log.warning("event=agent_server_missing error=%s (logs/exec/image load not served)",
                        str(exc).replace(" ", "_"))
            return
        try:
            self.server = servermod.serve(self.cfg.listen, self.docker, self.cfg.node_name,
                                          creds=self.cfg.tls.credentials() if self.cfg.tls else None)
        except Exception:  # noqa: BLE001 - pods still run without the server
            log.exception("event=agent_server_failed listen=%s", self.cfg.listen)

    def _getter(self, kind):
        def get(namespace, name):
            try:
                return self.sync_client.get(kind, name, namespace)
            except clientmod.NotFound:
                return None
        return get

    def _request_token(self, namespace, account, pod, uid, expiration_s, audiences=()):
        return self.sync_client.request_token(namespace, account, pod_name=pod, pod_uid=uid,
                                              expiration_s=expiration_s, audiences=audiences)

    def _ca_bundle(self) -> bytes:
        """The cluster CA for pods' ca.crt: the CA file of the agent's tls: section (the file
        a joining agent pinned by the token's digest); empty with TLS off."""
        path = self.cfg.tls.ca_file if self.cfg.tls is not None else ""
        if not path:
            return b""
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError:
            return b""

    def _delete_pod(self, pod):
        meta = pod.metadata
        try:
            self.sync_client.delete("pods", meta.name, meta.namespace, uid=meta.uid, grace_period_seconds=0)
            log.info("event=pod_deleted pod=%s/%s uid=%s", meta.namespace, meta.name, meta.uid)
        except (clientmod.NotFound, clientmod.Conflict):
            pass  # gone already, or a new pod of that name (uid precondition)

    def stop(self) -> None:
        """Stop every loop; containers are left running."""
        self._stopping = True
        if self.server is not None:
            try:
                self.server.stop(1.0)
            except Exception:  # noqa: BLE001
                pass
        if self.syncer is not None:
            self.syncer.stop()
        if self.reporter is not None:
            self.reporter.stop()
        if self.sa_tokens is not None:
            self.sa_tokens.stop()
        if self.network is not None:
            self.network.stop()
        if self.proxier is not None:
            self.proxier.stop()  # rules stay: traffic keeps flowing across an agent restart
        if self.dns is not None:
            self.dns.stop()
        if self.renewer is not None:
            self.renewer.stop()
        self.informers.stop()
        if self.recorder is not None:
            self.recorder.flush(timeout_s=1.0)
        log.info("event=agent_stopped node=%s", self.cfg.node_name)
