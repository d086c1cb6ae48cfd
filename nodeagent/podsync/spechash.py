"""Versioned hashes of what, when changed, needs a new container ("v1:<hex>").

Kubelet hashes the container spec and restarts a running container whose hash
label differs. Pods are immutable except container images, so in practice an
image change restarts the container. A label written under another hash version
is not compared (a new agent must not restart every container it adopts).
"""

import hashlib

from nodeagent.runtime import labels
from skiff.api import objects_pb2 as pb


def container_hash(container: pb.Container) -> str:
    data = container.SerializeToString(deterministic=True)
    return f"{labels.HASH_VERSION}:{hashlib.sha256(data).hexdigest()[:16]}"


def sandbox_hash(pod: pb.Pod) -> str:
    """What the pause container is made from: hostname and the shared namespaces."""
    spec = pod.spec
    text = "\0".join([spec.hostname or pod.metadata.name, spec.subdomain,
                      str(spec.share_process_namespace), str(spec.host_network)])
    return f"{labels.HASH_VERSION}:{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def changed(label_value: str, desired: str) -> bool:
    """True when the label was written by this hash version and differs from desired."""
    prefix = labels.HASH_VERSION + ":"
    return label_value.startswith(prefix) and label_value != desired
