"""Local ephemeral storage limits, judged as the kubelet's eviction manager does
(localStorageEviction). Pure: the measuring is diskusage.py's.

A pod's local ephemeral storage is each container's writable layer plus its logs,
and its disk-backed emptyDir volumes (medium "" ; a medium: Memory emptyDir is a
tmpfs that the kernel limits, and counts as memory). judge(pod, usage) checks, in
the kubelet's order, and the first excess wins:

1. each emptyDir with a sizeLimit: usage > sizeLimit
   -> "Usage of EmptyDir volume \"data\" exceeds the limit \"10Mi\". "
2. the pod, if any container has an ephemeral-storage limit: the sum of all its
   containers' usage and its emptyDirs' > the pod's limit (the sum of the app
   containers' limits, or an init container's if larger: Kubernetes' PodLimits)
   -> "Pod ephemeral local storage usage exceeds the total limit of containers 10Mi. "
3. each app container with a limit: its usage > its limit
   -> "Container c exceeded its local ephemeral storage limit \"10Mi\". "

Comparisons are strict (usage equal to the limit is allowed), the messages are the
kubelet's to the byte (with their trailing space). A pod judged over a limit is
evicted: phase Failed, reason Evicted, this message, its containers killed at once
(grace 0, as the kubelet's local storage eviction), a Warning event Evicted, and the
condition DisruptionTarget=True (reason TerminationByKubelet) as the kubelet adds.
"""

from dataclasses import dataclass, field

from skiff.api.quantity import memory_bytes
from skiff.api.wellknown import is_sidecar

REASON = "Evicted"
DISRUPTION_CONDITION = "DisruptionTarget"
DISRUPTION_REASON = "TerminationByKubelet"
RESOURCE = "ephemeral-storage"
# The kubelet's formats (eviction/helpers.go); {q_...} are Go's %q (a double-quoted string).
EMPTYDIR_MESSAGE = "Usage of EmptyDir volume {q_name} exceeds the limit {q_limit}. "
POD_MESSAGE = "Pod ephemeral local storage usage exceeds the total limit of containers {limit}. "
CONTAINER_MESSAGE = "Container {name} exceeded its local ephemeral storage limit {q_limit}. "

_BINARY = (("Ei", 2 ** 60), ("Pi", 2 ** 50), ("Ti", 2 ** 40), ("Gi", 2 ** 30), ("Mi", 2 ** 20), ("Ki", 2 ** 10))
_DECIMAL = (("E", 10 ** 18), ("P", 10 ** 15), ("T", 10 ** 12), ("G", 10 ** 9), ("M", 10 ** 6), ("k", 10 ** 3))


@dataclass(frozen=True)
class Usage:
    """What a pod uses on the node's disk, in bytes: containers by name (writable layer +
    log; the newest instance of each, init containers too) and disk-backed emptyDirs by name."""
    containers: dict = field(default_factory=dict)
    volumes: dict = field(default_factory=dict)


def _q(text: str) -> str:
    """A Go-quoted string (%q) for the plain ASCII names and quantities in the messages."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def canonical(value_b: int, binary: bool) -> str:
    """Kubernetes' Quantity.String() for a whole number of bytes: the largest suffix of the
    quantity's format (binary Ki..Ei or decimal k..E) that divides it exactly."""
    for suffix, size in (_BINARY if binary else _DECIMAL):
        if value_b and value_b % size == 0:
            return f"{value_b // size}{suffix}"
    return str(value_b)


def _bytes(text: str) -> int:
    try:
        return memory_bytes(text)
    except ValueError:
        return 0   # admission validated it


def _is_binary(text: str) -> bool:
    return text.rstrip().endswith("i")


def _canonical_text(text: str) -> str:
    return canonical(_bytes(text), _is_binary(text))


def disk_backed_empty_dirs(pod) -> list:
    return [v for v in pod.spec.volumes if v.HasField("empty_dir") and v.empty_dir.medium != "Memory"]


def pod_limit(pod):
    """(bytes, canonical text) of the pod's ephemeral-storage limit, or None when no container
    has one. Kubernetes' PodLimits: the app containers' and sidecars' sum (sidecars run beside
    the apps), or, if larger, the peak of initialization (a regular init container beside the
    sidecars declared before it)."""
    limited = [c.resources.limits[RESOURCE] for c in (*pod.spec.containers, *pod.spec.init_containers)
               if RESOURCE in c.resources.limits]
    if not limited:
        return None
    apps = sum(_bytes(c.resources.limits.get(RESOURCE, "0")) for c in pod.spec.containers)
    side = peak = 0
    for c in pod.spec.init_containers:
        own = _bytes(c.resources.limits.get(RESOURCE, "0"))
        if is_sidecar(c):
            side += own
            peak = max(peak, side)
        else:
            peak = max(peak, own + side)
    total = max(apps + side, peak)
    return total, canonical(total, _is_binary(limited[0]))


def watched(pod) -> bool:
    """Whether the pod has anything to judge: an ephemeral-storage limit or a disk-backed
    emptyDir with a sizeLimit (the agent measures only such pods)."""
    return pod_limit(pod) is not None or any(v.empty_dir.size_limit for v in disk_backed_empty_dirs(pod))


def judge(pod, usage: Usage):
    """The eviction message for the first limit the pod's usage exceeds, or None."""
    for vol in disk_backed_empty_dirs(pod):
        limit = vol.empty_dir.size_limit
        used = usage.volumes.get(vol.name)
        if limit and used is not None and _bytes(limit) > 0 and used > _bytes(limit):
            return EMPTYDIR_MESSAGE.format(q_name=_q(vol.name), q_limit=_q(_canonical_text(limit)))
    limit = pod_limit(pod)
    if limit is not None:
        total = sum(usage.containers.values()) + sum(usage.volumes.values())
        if total > limit[0]:
            return POD_MESSAGE.format(limit=limit[1])
    for c in pod.spec.containers:
        text = c.resources.limits.get(RESOURCE)
        used = usage.containers.get(c.name)
        if text and used is not None and used > _bytes(text):
            return CONTAINER_MESSAGE.format(name=c.name, q_limit=_q(_canonical_text(text)))
    return None
