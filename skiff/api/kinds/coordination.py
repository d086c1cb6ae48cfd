"""The coordination.k8s.io group: Lease.

A node agent renews one Lease per node in the kube-node-lease namespace (named
after the node, owned by the Node) instead of rewriting its Node every few
seconds: the node lifecycle controller watches Leases for liveness, and everything
that watches Nodes (schedulers, proxies, DNS) no longer wakes up per heartbeat.

Times in a Lease are MicroTime (RFC 3339 with microseconds, "2024-05-01T12:00:00.123456Z"),
as in Kubernetes: a renewal every second or so must change renewTime every time.
"""

import datetime

from skiff.api import objects_pb2 as pb
from skiff.api.kinds.registry import Kind, register
from skiff.api.validation import invalid, non_negative
from skiff.api.wellknown import parse_rfc3339

NODE_LEASE_NAMESPACE = "kube-node-lease"
MICRO_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"


def micro_time(when: float) -> str:
    """An epoch float (wall clock) as a MicroTime: "2024-05-01T12:00:00.123456Z" (UTC)."""
    return datetime.datetime.fromtimestamp(when, datetime.timezone.utc).strftime(MICRO_TIME)


def _validate_lease(lease: pb.Lease, errs) -> None:
    spec = lease.spec
    if spec.HasField("lease_duration_seconds") and spec.lease_duration_seconds <= 0:
        invalid(errs, "spec.leaseDurationSeconds", spec.lease_duration_seconds, "must be greater than 0")
    if spec.HasField("lease_transitions"):
        non_negative(errs, "spec.leaseTransitions", spec.lease_transitions)
    for field, path in (("acquire_time", "spec.acquireTime"), ("renew_time", "spec.renewTime")):
        if spec.HasField(field) and parse_rfc3339(getattr(spec, field)) is None:
            invalid(errs, path, getattr(spec, field),
                    "must be an RFC 3339 time, e.g. 2024-05-01T12:00:00.000000Z")


def _lease_row(lease):
    return [lease.spec.holder_identity or ""], []


LEASE = register(Kind(
    "Lease", "coordination.k8s.io/v1", "leases", (), True, pb.Lease, "lease", True,
    validate=_validate_lease,
    columns=("HOLDER", "AGE"), row=_lease_row,
))
