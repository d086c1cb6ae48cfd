"""Node registration and heartbeats.

register(): create the Node if it is missing, else make sure our labels are on it
(other labels are kept) and write its status. The heartbeat loop then writes the
status every heartbeatS: condition Ready=True (reason KubeletReady) with a fresh
lastHeartbeatTime, MemoryPressure/DiskPressure/PIDPressure=False, addresses,
capacity/allocatable, nodeInfo, daemonEndpoints, and the engine's images (read
every 10 s). Every write is a compare-and-swap
on the resourceVersion last read; a Conflict re-reads the node and retries.
lastTransitionTime changes only when a condition's status changes (e.g. after the
node lifecycle controller set Ready=Unknown while we were away).

build_status() is pure (machine facts are gathered once by machine_facts()).
"""

import logging
import os
import platform
import threading
import time
from dataclasses import dataclass

from skiff import client as clientmod
from skiff.api import objects_pb2 as pb

from nodeagent.runtime import timeutil

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


def machine_facts(docker_version: str) -> MachineFacts:
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
                        os_image=os_image, machine_id=machine_id, docker_version=docker_version)


def node_labels(cfg) -> dict:
    labels = {"kubernetes.io/hostname": cfg.node_name, "kubernetes.io/os": "linux",
              "kubernetes.io/arch": "amd64"}
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
    capacity.update(cfg.capacity)
    status.capacity.update(capacity)
    status.allocatable.update(capacity)
    stamp = timeutil.rfc3339(now)
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


class NodeReporter:
    """Registers the node, then heartbeats on its own thread until stop()."""

    IMAGES_EVERY_S = 10.0

    def __init__(self, cfg, client: clientmod.Client, facts: MachineFacts, images_fn=None):
        self.cfg = cfg
        self.client = client
        self.facts = facts
        self.images_fn = images_fn      # () -> [(names, size bytes)]; read every IMAGES_EVERY_S
        self._images = None
        self._images_at = -1e9
        self._node = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self.heartbeats = 0

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
                return self.client.update_status(obj)
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
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self):
        if self._node is None and self.register() is None:
            return
        while not self._stop.wait(self.cfg.heartbeat_s):
            try:
                self._node = self._write_status(self._node)
                self.heartbeats += 1
            except clientmod.NotFound:
                log.info("event=node_missing node=%s action=register", self.cfg.node_name)
                self._node = None
                self.register()
            except clientmod.ApiError as exc:
                log.info("event=heartbeat_failed node=%s error=%s", self.cfg.node_name,
                         str(exc)[:200].replace(" ", "_"))
                try:
                    self._node = self.client.get("nodes", self.cfg.node_name, "")
                except clientmod.ApiError:
                    pass
