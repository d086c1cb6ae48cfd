"""Node registration, the node Lease (liveness) and the Node status (facts), as the kubelet does them.

register(): create the Node if it is missing, else make sure our labels are on it
(other labels are kept) and write its status. Then two bounded-frequency runners of
the reconcile toolkit (no event triggers them, only time):

- the Lease runner renews kube-node-lease/<node> every lease_renew_s (a quarter of
  nodeLeaseDurationS, the kubelet's ratio: 10 s for 40 s; lab 1.25 s for 5 s). Cost:
  one small Lease update per period (the API server lets it wait up to 250 ms to share
  a Raft entry with other nodes' renewals: controlplane/apiserver/renewals.py; the
  update returns once it is committed); nothing that watches Nodes
  wakes up, only the node lifecycle controller's Lease cache changes. The Lease is
  created when missing (first start, deleted by someone, its namespace deleted and
  re-created by bootstrap): holderIdentity = the node name, leaseDurationSeconds,
  renewTime (MicroTime), ownerReference to the Node (set when the Lease has none,
  as the kubelet's setNodeOwnerFunc). A failed renewal is retried after 0.2 s,
  doubling up to the renewal period; it never ends the loop.
- the status runner runs every nodeStatusUpdateFrequencyS (lab 2.5 s, Kubernetes
  10 s): it reads the Node (from the agent's Node informer when it has one and it has
  synced, else a GET: the kubelet reads it from the API server's watch cache) and
  computes the status (condition
  Ready=True reason KubeletReady, MemoryPressure/DiskPressure/PIDPressure=False,
  addresses, capacity/allocatable (ephemeral-storage: the size of the data dir's
  filesystem, as the kubelet's root dir's), nodeInfo, daemonEndpoints, the engine's images
  read every 10 s), and WRITES it only when it differs from the stored one beyond
  the heartbeat times (status_changed) or nodeStatusReportFrequencyS (lab and
  Kubernetes: 300 s) has passed since our last write. The Ready condition's
  lastHeartbeatTime therefore moves only on those writes: liveness is the Lease's.
  After a renewal that follows failed ones (the control plane was unreachable, the
  node may have been marked Unknown meanwhile) the status check runs at once.

Every status write is a compare-and-swap on the resourceVersion last read; a
Conflict re-reads the node and retries. lastTransitionTime changes only when a
condition's status changes (e.g. after the node lifecycle controller set
Ready=Unknown while we were away).

build_status(), status_changed(), new_lease() and renewed_lease() are pure
(machine facts are gathered once by machine_facts()).
"""

import logging
import os
import platform
import threading
import time
from dataclasses import dataclass

from skiff import client as clientmod
from skiff.api import objects_pb2 as pb
from skiff.api import wellknown
from skiff.api.kinds.coordination import NODE_LEASE_NAMESPACE, micro_time
from skiff.reconcile import BoundedFrequencyRunner

log = logging.getLogger("skiff.agent.node")

KUBELET_VERSION = "skiff-0.1.0"
DEFAULT_PODS = "110"


@dataclass(frozen=True)
class MachineFacts:
    cpu: str
    memory: str            # "16318480Ki"
    kernel_version: str
    os_image: str
    machine_id: str
    docker_version: str
    ephemeral_storage: str = ""   # "102626232Ki": size of the filesystem of the agent's data dir; "" unknown


def filesystem_size(path: str) -> str:
    """Total size of the filesystem holding path, as the kubelet reports ephemeral-storage
    capacity (its root dir's filesystem: blocks * fragment size), in Ki; "" if unreadable."""
    try:
        st = os.statvfs(path)
    except OSError:
        return ""
    return f"{st.f_blocks * st.f_frsize // 1024}Ki"


def machine_facts(docker_version: str, data_dir: str = "") -> MachineFacts:
    mem_kib = 0
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_kib = int(line.split()[1])
                    break
    except OSError:
        pass
    os_image = "Linux"
    try:
        with open("/etc/os-release", encoding="utf-8") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    os_image = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    machine_id = ""
    try:
        with open("/etc/machine-id", encoding="utf-8") as f:
            machine_id = f.read().strip()
    except OSError:
        pass
    return MachineFacts(cpu=str(os.cpu_count() or 1), memory=f"{mem_kib}Ki", kernel_version=platform.release(),
                        os_image=os_image, machine_id=machine_id, docker_version=docker_version,
                        ephemeral_storage=filesystem_size(data_dir) if data_dir else "")


def node_labels(cfg) -> dict:
    labels = {wellknown.LABEL_HOSTNAME: cfg.node_name, wellknown.LABEL_OS: "linux",
              wellknown.LABEL_ARCH: "amd64"}
    labels.update(cfg.labels)
    return labels


def build_node(cfg, facts: MachineFacts, now: float) -> pb.Node:
    node = pb.Node(api_version="v1", kind="Node")
    node.metadata.name = cfg.node_name
    node.metadata.labels.update(node_labels(cfg))
    node.status.CopyFrom(build_status(cfg, facts, now, pb.NodeStatus()))
    return node


def build_status(cfg, facts: MachineFacts, now: float, old: pb.NodeStatus, images=None) -> pb.NodeStatus:
    """images: [(names, size bytes)] the engine has; None keeps the old list."""
    status = pb.NodeStatus()
    capacity = {"cpu": facts.cpu, "memory": facts.memory, "pods": DEFAULT_PODS}
    if facts.ephemeral_storage:
        capacity["ephemeral-storage"] = facts.ephemeral_storage
    capacity.update(cfg.capacity)
    status.capacity.update(capacity)
    status.allocatable.update(capacity)
    stamp = wellknown.rfc3339(now)
    old_by_type = {c.type: c for c in old.conditions}

    def cond(ctype, value, reason, message):
        prev = old_by_type.get(ctype)
        transition = prev.last_transition_time if prev is not None and prev.status == value \
            and prev.last_transition_time else stamp
        status.conditions.add(type=ctype, status=value, reason=reason, message=message,
                              last_heartbeat_time=stamp, last_transition_time=transition)

    cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "skiff agent has sufficient memory available")
    cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "skiff agent has no disk pressure")
    cond("PIDPressure", "False", "KubeletHasSufficientPID", "skiff agent has sufficient PID available")
    cond("Ready", "True", "KubeletReady", "skiff agent is posting ready status")
    own = {c.type for c in status.conditions}
    status.conditions.extend(c for c in old.conditions if c.type not in own)  # e.g. NetworkUnavailable
    status.addresses.add(type="InternalIP", address=cfg.address)
    status.addresses.add(type="Hostname", address=cfg.node_name)
    info = status.node_info
    info.machine_id = facts.machine_id
    info.kernel_version = facts.kernel_version
    info.os_image = facts.os_image
    info.container_runtime_version = f"docker://{facts.docker_version}"
    info.kubelet_version = KUBELET_VERSION
    info.operating_system = "linux"
    info.architecture = "amd64"
    status.daemon_endpoints.kubelet_endpoint.port = cfg.listen_port
    if images is None:
        status.images.extend(old.images)
    else:
        for names, size in sorted(images, key=lambda i: (-i[1], list(i[0]))):
            status.images.add(names=list(names), size_bytes=size)
    return status


def status_changed(old: pb.NodeStatus, new: pb.NodeStatus) -> bool:
    """True when new says something old does not: anything but the conditions' lastHeartbeatTime."""
    a, b = pb.NodeStatus(), pb.NodeStatus()
    a.CopyFrom(old)
    b.CopyFrom(new)
    for status in (a, b):
        for c in status.conditions:
            c.last_heartbeat_time = ""
    return a != b


def new_lease(cfg, node: pb.Node | None, now: float) -> pb.Lease:
    """The node's Lease as the kubelet creates it (no acquireTime, no transitions)."""
    lease = pb.Lease(api_version="coordination.k8s.io/v1", kind="Lease")
    lease.metadata.name = cfg.node_name
    lease.metadata.namespace = NODE_LEASE_NAMESPACE
    return renewed_lease(lease, cfg, node, now)


def renewed_lease(lease: pb.Lease, cfg, node: pb.Node | None, now: float) -> pb.Lease:
    """A copy of lease renewed at now (wall clock): holder, duration, renewTime, and the
    Node as owner when the lease has no owner yet and the Node is known."""
    out = pb.Lease()
    out.CopyFrom(lease)
    out.spec.holder_identity = cfg.node_name
    out.spec.lease_duration_seconds = cfg.node_lease_duration_s
    out.spec.renew_time = micro_time(now)
    if not out.metadata.owner_references and node is not None and node.metadata.uid:
        out.metadata.owner_references.add(api_version="v1", kind="Node", name=node.metadata.name,
                                          uid=node.metadata.uid)
    return out


class NodeReporter:
    """Registers the node, then renews its Lease and reports its status until stop()."""

    IMAGES_EVERY_S = 10.0
    LEASE_RETRY_S = 0.2          # first retry of a failed renewal (the kubelet's 200 ms), doubling

    def __init__(self, cfg, client: clientmod.Client, facts: MachineFacts, images_fn=None,
                 clock=time.monotonic):
        self.cfg = cfg
        self.client = client
        self.facts = facts
        self.images_fn = images_fn      # () -> [(names, size bytes)]; read every IMAGES_EVERY_S
        self._clock = clock
        self._images = None
        self._images_at = -1e9
        self._node = None
        self._lease = None
        self._renew_failed = False
        self._reported_at_s = -1e18     # monotonic time of our last status write
        self._stop = threading.Event()          # ends a register() retrying meanwhile
        renew_s = cfg.lease_renew_s
        self.lease_runner = BoundedFrequencyRunner(
            "node-lease", self._renew, max_interval_s=renew_s, retry_base_s=min(self.LEASE_RETRY_S, renew_s),
            retry_max_s=renew_s, run_at_start=True, logger=log)
        every_s = cfg.node_status_update_frequency_s
        self.status_runner = BoundedFrequencyRunner(
            "node-status", self._sync_status, max_interval_s=every_s, retry_base_s=every_s,
            retry_max_s=every_s, run_at_start=False, logger=log)
        self.renewals = 0
        self.status_writes = 0
        # () -> this node as the agent's Node informer has it, or None (not synced, not
        # seen): read instead of a GET every status period (use_cache). A stale copy is
        # harmless: a write is a compare-and-swap, and its Conflict re-reads with a GET.
        self._cached_node = None

    def use_cache(self, nodes_informer) -> None:
        """Read this Node from nodes_informer (a skiff.informer.Informer of Nodes) once it
        has synced: at 20 nodes and the lab's 2.5 s, 8 GETs a second fewer for the API."""
        name = self.cfg.node_name
        self._cached_node = lambda: nodes_informer.get(name) if nodes_informer.synced else None

    def register(self) -> pb.Node:
        """Create or adopt the Node object; retries until the API answers or stop()."""
        while not self._stop.is_set():
            try:
                self._node = self._register_once()
                log.info("event=node_registered node=%s", self.cfg.node_name)
                return self._node
            except clientmod.ApiError as exc:
                log.info("event=node_register_retry node=%s error=%s", self.cfg.node_name,
                         str(exc)[:200].replace(" ", "_"))
                self._stop.wait(1.0)
        return None

    def _register_once(self) -> pb.Node:
        try:
            node = self.client.get("nodes", self.cfg.node_name, "")
        except clientmod.NotFound:
            try:
                created = self.client.create(build_node(self.cfg, self.facts, time.time()))
            except clientmod.AlreadyExists:
                return self._register_once()
            # Create may not store status (a status subresource): write it explicitly.
            return self._write_status(created)
        wanted = node_labels(self.cfg)
        if any(node.metadata.labels.get(k) != v for k, v in wanted.items()):
            updated = pb.Node()
            updated.CopyFrom(node)
            updated.metadata.labels.update(wanted)
            node = self.client.update(updated)
        return self._write_status(node)

    def _write_status(self, node: pb.Node) -> pb.Node:
        for _ in range(5):
            obj = pb.Node()
            obj.CopyFrom(node)
            obj.status.CopyFrom(build_status(self.cfg, self.facts, time.time(), node.status, self._current_images()))
            try:
                written = self.client.update_status(obj)
                self._reported_at_s = self._clock()
                self.status_writes += 1
                return written
            except clientmod.Conflict:
                node = self.client.get("nodes", self.cfg.node_name, "")
        raise clientmod.Conflict(f"node {self.cfg.node_name}: status still conflicting after 5 attempts")

    def _current_images(self):
        if self.images_fn is None:
            return None
        if time.monotonic() - self._images_at >= self.IMAGES_EVERY_S:
            try:
                self._images = self.images_fn()
                self._images_at = time.monotonic()
            except Exception as exc:  # noqa: BLE001 - the engine is busy or restarting
                log.info("event=images_unavailable error=%s", str(exc)[:200].replace(" ", "_"))
        return self._images

    def start(self) -> "NodeReporter":
        self.lease_runner.start()
        self.status_runner.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.lease_runner.stop()
        self.status_runner.stop()

    # ------------------------------------------------------------ status (on change)

    def _sync_status(self):
        """The status runner's sync: read the Node, write its status if it changed or is due."""
        if self._node is None:
            self.register()
            return
        node = self._cached_node() if self._cached_node is not None else None
        try:
            if node is None:   # no cache, or the cache does not have it (then the API decides)
                node = self.client.get("nodes", self.cfg.node_name, "")
        except clientmod.NotFound:
            log.info("event=node_missing node=%s action=register", self.cfg.node_name)
            self._node = None
            self.register()
            return
        self._node = node
        due = self._clock() - self._reported_at_s >= self.cfg.node_status_report_frequency_s
        wanted = build_status(self.cfg, self.facts, time.time(), node.status, self._current_images())
        changed = status_changed(node.status, wanted)
        if not (changed or due):
            return
        self._node = self._write_status(node)
        log.info("event=node_status_written node=%s reason=%s", self.cfg.node_name,
                 "changed" if changed else "report_due")

    # ------------------------------------------------------------ lease (liveness)

    def _renew(self):
        """The Lease runner's sync: renew the node's Lease, creating it when missing.
        Raises on failure (the runner retries soon); a Conflict or NotFound forgets the
        cached Lease so the retry reads (or creates) it afresh."""
        try:
            self._renew_once()
        except clientmod.ApiError:
            self._renew_failed = True
            raise
        self.renewals += 1
        if self._renew_failed:   # back after failures: the node may have been marked Unknown
            self._renew_failed = False
            self.status_runner.run()

    def _renew_once(self):
        name = self.cfg.node_name
        if self._lease is None:
            try:
                self._lease = self.client.get("leases", name, NODE_LEASE_NAMESPACE)
            except clientmod.NotFound:
                self._lease = self.client.create(new_lease(self.cfg, self._node, time.time()))
                log.info("event=node_lease_created node=%s namespace=%s duration_s=%d", name,
                         NODE_LEASE_NAMESPACE, self.cfg.node_lease_duration_s)
                return
        try:
            self._lease = self.client.update(renewed_lease(self._lease, self.cfg, self._node, time.time()))
        except (clientmod.Conflict, clientmod.NotFound):
            self._lease = None
            raise
