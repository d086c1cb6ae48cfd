"""Persistence and failover on real replica processes: kill -9, restarts, catch-up,
leader loss under writes, and a kill during log compaction. Each test owns its cluster."""

import os
import threading
import time

import pytest

from skiff import client as clientmod
from skiff.api import kinds
from skiff.api import objects_pb2 as pb
from tests.helpers import remove, wait_until
from tests.integration.conftest import dump_logs, make_cluster


@pytest.fixture
def own_cluster(request):
    made = []

    def make(**kw):
        cp = make_cluster(request.node.name[:20], **kw)
        made.append(cp)
        return cp

    yield make
    for cp in made:
        if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
            dump_logs(cp)
        cp.stop_all()
        remove(cp.lab_dir)


def cm(name, payload=""):
    return pb.ConfigMap(metadata=pb.ObjectMeta(name=name, namespace="default"),
                        data={"payload": payload} if payload else {"n": name})


def snapshot(c) -> dict:
    """Every object of every kind as bytes, plus the store's resourceVersion."""
    out = {}
    rv = None
    for kind in kinds.KINDS:
        items, rv = c.list(kind)
        for o in items:
            out[(kind.name, o.metadata.namespace, o.metadata.name)] = kinds.encode(o)
    return out, rv


def replica_clients(cp):
    return {n: cp.client([cp.api_address(n)], failover_budget_s=5) for n in cp.names}


def wait_converged(cp, timeout_s=30):
    """Until every replica has applied the same resourceVersion (after a barrier write)."""
    c = cp.client()
    try:
        c.get("namespace", "default", linearizable=True)
        target = int(c.cluster_status().replicas[0].resource_version)
    finally:
        c.close()
    clients = replica_clients(cp)

    def same():
        rvs = {n: int(cl.list("namespace")[1]) for n, cl in clients.items()}
        return all(v >= target for v in rvs.values()) and len(set(rvs.values())) == 1

    try:
        wait_until(same, timeout_s, "replicas converged")
    finally:
        for cl in clients.values():
            cl.close()


class Writer(threading.Thread):
    """Writes ConfigMaps continuously through the all-endpoints client; records acks."""

    def __init__(self, cp, prefix, payload_bytes=0):
        super().__init__(daemon=True)
        self.client = cp.client(call_timeout_s=3, failover_budget_s=30)
        self.prefix = prefix
        self.payload = "x" * payload_bytes
        self.acked = []          # (name, monotonic time of ack)
        self.errors = []
        self.stop_flag = threading.Event()

    def run(self):
        i = 0
        while not self.stop_flag.is_set():
            name = f"{self.prefix}-{i}"
            try:
                self.client.create(cm(name, self.payload))
                self.acked.append((name, time.monotonic()))
                i += 1
            except clientmod.AlreadyExists:
                # An earlier attempt was applied but its answer was lost: still acked.
                self.acked.append((name, time.monotonic()))
                i += 1
            except clientmod.ApiError as exc:
                self.errors.append((time.monotonic(), repr(exc)))

    def stop(self):
        self.stop_flag.set()
        self.join(60)
        self.client.close()


def assert_all_present(cp, names):
    clients = replica_clients(cp)
    try:
        for replica, c in clients.items():
            items, _ = c.list("cm", namespace="default")
            have = {o.metadata.name for o in items}
            missing = [n for n in names if n not in have]
            assert not missing, f"{replica} lost {len(missing)} acknowledged writes, e.g. {missing[:5]}"
    finally:
        for c in clients.values():
            c.close()


def test_full_restart_after_kill9_of_all_replicas_keeps_identical_state(own_cluster):
    cp = own_cluster()
    c = cp.client()
    for i in range(150):
        c.create(cm(f"obj-{i}"))
    for i in range(0, 150, 3):
        c.update(cm(f"obj-{i}", payload=f"v2-{i}"))
    for i in range(0, 150, 5):
        c.delete("cm", f"obj-{i}")
    c.close()
    wait_converged(cp)
    before = snapshot(replica_clients(cp)[cp.names[0]])
    for name in cp.names:
        cp.kill(name)
    cp.start_all()
    cp.wait_ready(60)
    wait_converged(cp)
    for name, rc in replica_clients(cp).items():
        assert snapshot(rc) == before, f"{name} differs after a full restart"
        rc.close()


def test_replica_down_for_a_while_catches_up(own_cluster):
    cp = own_cluster()
    down = cp.names[2]
    cp.kill(down)
    c = cp.client()
    for i in range(300):
        c.create(cm(f"while-down-{i}"))
    c.close()
    cp.start(down)
    cp.wait_ready(60)
    wait_converged(cp)
    clients = replica_clients(cp)
    assert snapshot(clients[down]) == snapshot(clients[cp.names[0]])
    for rc in clients.values():
        rc.close()


def test_leader_kill_under_writes_loses_nothing_and_heals(own_cluster):
    cp = own_cluster()
    writer = Writer(cp, "lk")
    writer.start()
    wait_until(lambda: len(writer.acked) > 200, 30, "writes flowing")
    leader = cp.leader()
    t_kill = time.monotonic()
    cp.kill(leader)
    wait_until(lambda: any(t > t_kill for _, t in writer.acked), 15, "a write acknowledged after the kill")
    first_after = min(t for _, t in writer.acked if t > t_kill)
    gap_s = first_after - t_kill
    count_at_kill = len(writer.acked)
    wait_until(lambda: len(writer.acked) > count_at_kill + 100, 30, "writes flowing again")
    cp.start(leader)
    cp.wait_ready(60)
    writer.stop()
    wait_converged(cp)
    assert_all_present(cp, [n for n, _ in writer.acked])
    print(f"leader={leader} write gap after kill: {gap_s:.2f}s acked={len(writer.acked)}")
    # The bar is 2 s on a LAN; bench/ measures it. Here only a loose
    # sanity bound so a loaded CI machine does not flake.
    assert gap_s < 6.0


def test_kill_during_compaction_under_writes_loses_no_acknowledged_write(own_cluster):
    """docs/store.md, trap 3: kill -9 of the replica's pid alone while its compaction child runs.

    The compaction child must die with its parent (no dump renamed into place after
    the replica is gone), and no acknowledged write may be lost anywhere.
    """
    cp = own_cluster(raft={"compactionMinEntries": 300})
    writer = Writer(cp, "cw", payload_bytes=4000)
    writer.start()
    kills = 0
    try:
        for rnd in range(8):
            victim = cp.names[rnd % 3]
            pid = cp.pids[victim]
            dump = os.path.join(cp.data_dir(victim), "raft.dump")
            try:
                children = wait_until(lambda: _children(pid), 20, f"{victim} compacting",
                                      interval_s=0.002)
            except AssertionError:
                continue
            cp.kill_pid_only(victim)
            # The parent is dead now; whatever dump is in place was written while it lived.
            at_death = _inode(dump)
            wait_until(lambda: not any(os.path.exists(f"/proc/{c}") for c in children), 10,
                       "compaction child gone")
            assert _inode(dump) == at_death, "the orphaned compaction child replaced the dump"
            kills += 1
            cp.start(victim)
            cp.wait_ready(60)
    finally:
        writer.stop()
    assert kills >= 3, f"caught only {kills} compactions in progress"
    wait_converged(cp, 60)
    assert_all_present(cp, [n for n, _ in writer.acked])


def _inode(path):
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


def _children(pid) -> list:
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += f.read().split()
    except OSError:
        return []
    return out


def test_pipelined_writes_never_truncate_applied_entries(own_cluster):
    """PySyncObj moved a follower's nextIndex back on every success reply, re-sending
    entries in flight; followers then truncated already-applied entries (CRITICAL).
    skiff's SyncObj keeps nextIndex where the leader had sent it."""
    cp = own_cluster()
    writers = [Writer(cp, f"pipe{i}") for i in range(8)]
    for w in writers:
        w.start()
    wait_until(lambda: sum(len(w.acked) for w in writers) > 1500, 60, "1500 concurrent writes")
    for w in writers:
        w.stop()
    wait_converged(cp)
    assert_all_present(cp, [n for w in writers for n, _ in w.acked])
    for name in cp.names:
        with open(cp.log_path(name), encoding="utf-8", errors="replace") as f:
            text = f.read()
        assert "truncating already-applied" not in text, f"{name} re-appended applied entries"
