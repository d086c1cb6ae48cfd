"""The pod-template hash every workload controller names its revisions with.

One function for all of them, so a template hashes the same wherever it is
looked at: the Deployment's pod-template-hash (ReplicaSet names and labels), the
StatefulSet's and DaemonSet's controller-revision-hash. Pure and stable across
processes and replicas (it hashes the deterministic encoding).
"""

from skiff.api import objects_pb2 as pb

SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' rand.SafeEncodeString alphabet


def fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def template_hash(template: pb.PodTemplateSpec, collision_count: int | None = None) -> str:
    """A short stable name suffix for a pod template (FNV-32a of its deterministic encoding,
    then the decimal digits mapped onto Kubernetes' vowel-free alphabet)."""
    data = template.SerializeToString(deterministic=True)
    if collision_count:
        data += collision_count.to_bytes(4, "little")
    return "".join(SAFE_ALPHABET[ord(c) % len(SAFE_ALPHABET)] for c in str(fnv32a(data)))
