"""What the scheduler knows about each node: the Node, the pods bound to it, and their requests.

Invariants:
- NodeInfo.pods holds the non-terminated pods bound to the node (phase not
  Succeeded/Failed), including pods that are being deleted (they still hold
  their resources until the node has stopped them) and pods the scheduler has
  just bound but not yet seen come back from the API ("assumed" pods);
- requests are summed exactly as the resource filter compares them, so "fits"
  means allocatable - requested >= the pod's request for every resource;
- pods_with_affinity is the sublist of pods that have pod affinity or
  anti-affinity terms (Kubernetes' PodsWithAffinity): the inter-pod affinity
  checks walk only these for the existing pods' own terms;
- used_ports holds the (hostIP, protocol, hostPort) of every hostPort of those
  pods' containers (Kubernetes' HostPortInfo; an empty hostIP is "0.0.0.0").
"""

import functools
from dataclasses import dataclass, field

from controlplane.scheduler.podterms import has_pod_affinity
from skiff.api import objects_pb2 as pb
from skiff.api.quantity import cpu_millicores, memory_bytes
from skiff.api.wellknown import POD_FINISHED_PHASES, is_sidecar

# Used when a node reports no allocatable/capacity pod count (the kubelet's --max-pods default).
DEFAULT_MAX_PODS = 110
# Kubernetes scores a pod without requests as if it asked for this much (scoring only, never fit).
NONZERO_CPU_M = 100
NONZERO_MEMORY_B = 200 * 1024 * 1024


@dataclass(frozen=True)
class Resources:
    cpu_m: int = 0
    memory_b: int = 0
    pods: int = 0
    ephemeral_b: int = 0          # ephemeral-storage bytes (scored by nothing, only filtered)

    def __add__(self, other: "Resources") -> "Resources":
        return Resources(self.cpu_m + other.cpu_m, self.memory_b + other.memory_b, self.pods + other.pods,
                         self.ephemeral_b + other.ephemeral_b)


@functools.lru_cache(maxsize=4096)
def _quantity(fn, value: str) -> int:
    """fn(value), memoized: every cycle re-reads the same few request strings ("100m",
    "64Mi") of hundreds of pods, and exact parsing (fractions) dominated a cycle's cost."""
    try:
        return fn(value)
    except ValueError:
        return 0  # admission validated it; a bad value never blocks the whole scheduler


def _container_requests(c: pb.Container) -> tuple:
    """(cpu_m, memory_b, ephemeral_b): requests, or limits where a request is missing
    (Kubernetes' defaulting copies limits into absent requests)."""
    req, lim = c.resources.requests, c.resources.limits
    cpu = req.get("cpu") or lim.get("cpu") or "0"
    mem = req.get("memory") or lim.get("memory") or "0"
    eph = req.get("ephemeral-storage") or lim.get("ephemeral-storage") or "0"
    return _quantity(cpu_millicores, cpu), _quantity(memory_bytes, mem), _quantity(memory_bytes, eph)


def pod_requests(pod: pb.Pod) -> Resources:
    """What the pod asks for (Kubernetes' PodRequests): the sum over its app containers and
    sidecars (init containers with restartPolicy Always: they keep running beside the apps),
    or, if larger, the peak of initialization: a regular init container runs alone but
    beside the sidecars declared before it. Per resource: cpu, memory, ephemeral-storage."""
    apps = [0, 0, 0]
    for c in pod.spec.containers:
        apps = [a + b for a, b in zip(apps, _container_requests(c))]
    side = [0, 0, 0]
    init = [0, 0, 0]
    for c in pod.spec.init_containers:
        req = list(_container_requests(c))
        if is_sidecar(c):
            side = [a + b for a, b in zip(side, req)]
            req = side
        else:
            req = [a + b for a, b in zip(req, side)]
        init = [max(a, b) for a, b in zip(init, req)]
    cpu, mem, eph = (max(a + s, i) for a, s, i in zip(apps, side, init))
    return Resources(cpu, mem, 1, eph)


def nonzero_requests(pod: pb.Pod) -> Resources:
    """The app containers' and sidecars' requests, with Kubernetes' scoring defaults for
    containers that request nothing."""
    cpu = mem = 0
    for c in list(pod.spec.containers) + [c for c in pod.spec.init_containers if is_sidecar(c)]:
        c_cpu, c_mem, _ = _container_requests(c)
        cpu += c_cpu or NONZERO_CPU_M
        mem += c_mem or NONZERO_MEMORY_B
    return Resources(cpu, mem, 1)


WILDCARD_IP = "0.0.0.0"


def host_ports(pod: pb.Pod) -> list:
    """(hostIP, protocol, hostPort) of the pod's containers' ports that ask for a hostPort,
    with Kubernetes' defaults (hostIP 0.0.0.0, protocol TCP). Init containers run before
    the pod's ports matter and are left out, as in Kubernetes."""
    return [(p.host_ip or WILDCARD_IP, p.protocol or "TCP", p.host_port)
            for c in pod.spec.containers for p in c.ports if p.host_port]


def ports_conflict(used: set, want) -> bool:
    """Kubernetes' HostPortInfo.CheckConflict: a wanted (ip, protocol, port) clashes with a
    used one of the same protocol and port when either IP is the wildcard or they are equal."""
    ip, protocol, port = want
    if ip == WILDCARD_IP:
        return any(u[1] == protocol and u[2] == port for u in used)
    return (ip, protocol, port) in used or (WILDCARD_IP, protocol, port) in used


def allocatable(node: pb.Node) -> Resources:
    """status.allocatable, falling back to status.capacity per resource. A node that
    reports no ephemeral-storage has 0 of it (Kubernetes: a pod requesting some does
    not fit there)."""
    def get(name):
        return node.status.allocatable.get(name) or node.status.capacity.get(name) or ""
    cpu, mem, pods, eph = get("cpu"), get("memory"), get("pods"), get("ephemeral-storage")
    return Resources(_quantity(cpu_millicores, cpu) if cpu else 0,
                     _quantity(memory_bytes, mem) if mem else 0,
                     _quantity(memory_bytes, pods) if pods else DEFAULT_MAX_PODS,
                     _quantity(memory_bytes, eph) if eph else 0)


@dataclass
class NodeInfo:
    node: pb.Node
    pods: list = field(default_factory=list)
    requested: Resources = Resources()
    nonzero_requested: Resources = Resources()
    pods_with_affinity: list = field(default_factory=list)
    used_ports: set = field(default_factory=set)

    @property
    def name(self) -> str:
        return self.node.metadata.name

    @property
    def allocatable(self) -> Resources:
        return allocatable(self.node)

    def add_pod(self, pod: pb.Pod) -> None:
        self.pods.append(pod)
        self.requested = self.requested + pod_requests(pod)
        self.nonzero_requested = self.nonzero_requested + nonzero_requests(pod)
        if has_pod_affinity(pod):
            self.pods_with_affinity.append(pod)
        self.used_ports.update(host_ports(pod))


def build_node_infos(nodes, pods) -> dict:
    """name -> NodeInfo for every node; pods bound to unknown nodes or finished are ignored."""
    infos = {n.metadata.name: NodeInfo(n) for n in nodes}
    for pod in pods:
        info = infos.get(pod.spec.node_name)
        if info is not None and pod.status.phase not in POD_FINISHED_PHASES:
            info.add_pod(pod)
    return infos
