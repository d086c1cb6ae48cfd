"""Which writes may wait for others to share their Raft entry: Lease renewals.

Idle, nearly every write a control plane sees is a node's Lease renewal (20 nodes with
the lab's 5 s lease renewed every 1.25 s: 16 a second), and each Raft entry costs the
leader about ten PySyncObj messages. A renewal tolerates a short delay: the holder
renews at a quarter of leaseDurationSeconds and readers (the node lifecycle controller)
give it nodeMonitorGracePeriod, so a few hundred milliseconds are a few percent of the
slack. The API server therefore lets a renewal wait up to renewal_wait_s() in the
store's Batcher (controlplane/store/store.py), where the renewals reaching a replica in
that window, and any ordinary write proposed meanwhile, share one entry. Every other
write goes out at once, as before.

What counts as a renewal (Kubernetes has no such notion in the API: this is our
batching rule, and it changes no semantics): an update (no subresource) of a Lease by
its current holder that moves spec.renewTime and leaves the rest of the spec alone
(holderIdentity, leaseDurationSeconds, acquireTime, leaseTransitions). Metadata may
change with it (the kubelet sets the Node as owner on a renewal). Taking over a Lease
(a new holder), releasing it or changing its duration is not a renewal and is not
delayed: leader election hand-overs keep their latency. The renewal's resourceVersion
precondition is checked when it is applied, exactly as for an unbatched update.

The window: RENEWAL_WINDOW_S (250 ms), but never more than RENEWAL_WINDOW_SHARE of the
lease (5 %: 250 ms of the lab's 5 s lease, 2 s of Kubernetes' 40 s capped to 250 ms, 50 ms
of a 1 s lease). Pure (tests/unit/test_renewal_batching.py).
"""

from skiff.api import objects_pb2 as pb

RENEWAL_WINDOW_S = 0.25
RENEWAL_WINDOW_SHARE = 0.05


def _spec_but_renew_time(lease: pb.Lease) -> bytes:
    spec = pb.LeaseSpec()
    spec.CopyFrom(lease.spec)
    spec.ClearField("renew_time")
    return spec.SerializeToString(deterministic=True)


def is_renewal(old: pb.Lease, new: pb.Lease) -> bool:
    """new renews old: the same non-empty holder, a new renewTime, nothing else in spec changed."""
    holder = new.spec.holder_identity
    if not holder or old.spec.holder_identity != holder:
        return False
    if not new.spec.renew_time or new.spec.renew_time == old.spec.renew_time:
        return False
    return _spec_but_renew_time(old) == _spec_but_renew_time(new)


def renewal_wait_s(kind_name: str, subresource: str, old, new) -> float:
    """How long this update may wait in the Batcher for others to share its Raft entry:
    0 for anything but a Lease renewal (see the module docstring)."""
    if kind_name != "Lease" or subresource != "" or old is None or not is_renewal(old, new):
        return 0.0
    duration_s = new.spec.lease_duration_seconds
    if duration_s <= 0:
        return 0.0
    return min(RENEWAL_WINDOW_S, RENEWAL_WINDOW_SHARE * duration_s)
