"""Lease renewals from many nodes land in fewer Raft entries, on a real 3-replica control plane.

Twelve "nodes" (threads, each with its own client on one of the three replicas, as the lab
spreads its agents) renew their Leases in rounds, each round's renewals spread over about
100 ms as agents started together are. Unbatched, every renewal was one Raft entry; with
renewals waiting up to 250 ms in the store's Batcher, a replica's renewals of one round
share an entry. The Raft log is counted by the leader's commit index (ClusterStatus), with
the controllers off so that nothing else writes. No timing is asserted.
"""

import threading
import time

import pytest

from skiff import client as clientmod
from skiff.api import objects_pb2 as pb
from skiff.api.kinds.coordination import NODE_LEASE_NAMESPACE, micro_time
from skiff.lab.controlplane import ControlPlane
from tests.helpers import free_port_block, remove, temp_dir
from tests.integration.conftest import dump_logs

NODES = 12
ROUNDS = 5
STAGGER_S = 0.008        # node i renews i * 8 ms into a round


@pytest.fixture(scope="module")
def quiet_cluster():
    base = free_port_block(6)
    cp = ControlPlane(temp_dir("lease-batching"), replicas=3, api_base_port=base, raft_base_port=base + 3,
                      controllers={"enabled": False})
    cp.write_configs()
    cp.start_all()
    try:
        cp.wait_ready(60)
        yield cp
    finally:
        dump_logs(cp)
        cp.stop_all()
        remove(cp.lab_dir)


def leader_commit_index(c, timeout_s: float = 30.0) -> int:
    """The leader's commit index; waits (with a deadline) while a loaded replica does not
    answer ClusterStatus in time and no leader shows."""
    deadline = time.monotonic() + timeout_s
    while True:
        leaders = [r for r in c.cluster_status().replicas if r.role == "leader"]
        if len(leaders) == 1:
            return leaders[0].commit_index
        assert time.monotonic() < deadline, f"no single leader in ClusterStatus: {leaders}"
        threading.Event().wait(0.2)


def node_lease(name: str, now: float) -> pb.Lease:
    lease = pb.Lease(api_version="coordination.k8s.io/v1", kind="Lease")
    lease.metadata.name, lease.metadata.namespace = name, NODE_LEASE_NAMESPACE
    lease.spec.holder_identity = name
    lease.spec.lease_duration_seconds = 5
    lease.spec.renew_time = micro_time(now)
    return lease


def renewed(lease: pb.Lease, now: float) -> pb.Lease:
    out = pb.Lease()
    out.CopyFrom(lease)
    out.spec.renew_time = micro_time(now)
    return out


def test_renewals_from_many_nodes_share_raft_entries(quiet_cluster):
    clients = [quiet_cluster.client([quiet_cluster.api_address(quiet_cluster.names[i % 3])]) for i in range(NODES)]
    admin = quiet_cluster.client()
    try:
        names = [f"node{i + 1}" for i in range(NODES)]
        leases = [clients[i].create(node_lease(n, time.time())) for i, n in enumerate(names)]
        before = leader_commit_index(admin)
        versions, errors = [], []
        lock = threading.Lock()

        def renew(i):
            threading.Event().wait(i * STAGGER_S)     # spread the round, as agents' timers are
            try:
                got = clients[i].update(renewed(leases[i], time.time()))
            except clientmod.ApiError as exc:          # reported below
                with lock:
                    errors.append(f"{names[i]}: {exc}")
                return
            with lock:
                versions.append(int(got.metadata.resource_version))
            assert got.spec.renew_time != leases[i].spec.renew_time
            leases[i] = got

        for _ in range(ROUNDS):
            threads = [threading.Thread(target=renew, args=(i,)) for i in range(NODES)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
        entries = leader_commit_index(admin) - before
        print(f"renewals={NODES * ROUNDS} raft_entries={entries}")
        renewals = NODES * ROUNDS
        assert not errors, errors
        # Each renewal is still its own change: one new resourceVersion each, none shared.
        assert len(versions) == renewals and len(set(versions)) == renewals
        # Unbatched this was one entry per renewal (60); a round's renewals at one replica share one.
        assert entries <= renewals // 2, f"{renewals} renewals took {entries} Raft entries"
        stored = {x.metadata.name: x for x in admin.list("leases", NODE_LEASE_NAMESPACE)[0]}
        for lease in leases:
            assert stored[lease.metadata.name].spec.renew_time == lease.spec.renew_time
    finally:
        for c in clients:
            c.close()
        admin.close()


def test_a_stale_renewal_batched_with_others_still_conflicts(quiet_cluster):
    """Optimistic concurrency holds inside a shared entry: a renewal against an old
    resourceVersion is refused while the renewals beside it succeed."""
    c = quiet_cluster.client()
    try:
        fresh = [c.create(node_lease(f"stale{i}", time.time())) for i in range(3)]
        stale = pb.Lease()
        stale.CopyFrom(fresh[0])
        fresh[0] = c.update(renewed(fresh[0], time.time()))      # moves its resourceVersion on
        results = {}

        def renew(key, lease):
            try:
                results[key] = c.update(renewed(lease, time.time()))
            except clientmod.Conflict as exc:
                results[key] = exc

        threads = [threading.Thread(target=renew, args=(k, x))
                   for k, x in (("stale", stale), ("a", fresh[1]), ("b", fresh[2]))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert isinstance(results["stale"], clientmod.Conflict)
        assert isinstance(results["a"], pb.Lease) and isinstance(results["b"], pb.Lease)
        assert results["a"].metadata.resource_version != results["b"].metadata.resource_version
    finally:
        c.close()
