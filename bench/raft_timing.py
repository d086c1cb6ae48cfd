"""Benchmark: what the Raft heartbeat and election timeouts cost and buy, on a bare PySyncObj trio.

Three SkiffSyncObj replicas (controlplane/store/raft.py, make_conf: the replicas' own settings)
in three processes on loopback, no API, no agents; each run with the given heartbeat and
election timeouts (`RaftTuning` in controlplane/config.py holds the defaults):

  idle      CPU of each replica over --window s after 5 s to settle, with --writes tiny
            entries a second through the leader (0: heartbeats only). From /proc.
  failover  --rounds times: a fresh trio, the leader killed with SIGKILL, the time until a
            survivor commits a write (each survivor tries one every 20 ms, 0.2 s timeout).

    .venv/bin/python bench/raft_timing.py idle 0.05 0.4 0.8 [--writes 5]
    .venv/bin/python bench/raft_timing.py failover 0.1 0.45 0.9 [--rounds 10]

Every replica's data directory is a temporary `skiff-raft-bench-*` directory, removed at the
end; the replicas are this script's children and are killed by pid. Ports: loopback only.
It reports, it never fails on a figure.
"""

import argparse
import multiprocessing as mp
import os
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def free_ports(n: int) -> list:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def replica(i, ports, timing, data_dir, writes_s, q):
    """One replica; reports (i, is_leader) now and then and (i, "ok", t) per committed write
    when q is given (failover), or writes writes_s entries a second while leading (idle)."""
    from pysyncobj import SyncObjConsumer, replicated

    from controlplane.store.raft import SkiffSyncObj, make_conf

    class Register(SyncObjConsumer):
        def __init__(self):
            super().__init__()
            self.value = 0

        @replicated
        def put(self, x):
            self.value = x
            return x

    hb, mn, mx = timing
    conf = make_conf(data_dir, "bench", min_timeout_s=mn, max_timeout_s=mx, heartbeat_s=hb,
                     compaction_min_entries=5000, compaction_min_time_s=300)
    reg = Register()
    s = SkiffSyncObj(f"127.0.0.1:{ports[i]}", [f"127.0.0.1:{p}" for j, p in enumerate(ports) if j != i],
                     conf=conf, consumers=[reg])
    n = 0
    while True:
        if q is not None:
            q.put((i, s._isLeader()))  # noqa: SLF001 - a benchmark's peek
            try:
                reg.put(n, sync=True, timeout=0.2)
                q.put((i, "ok", time.monotonic()))
            except Exception:  # noqa: BLE001 - no leader yet: try again
                pass
            time.sleep(0.02)
        elif writes_s and s._isLeader():  # noqa: SLF001
            reg.put(n, callback=lambda *_: None)
            time.sleep(1 / writes_s)
        else:
            time.sleep(0.1)
        n += 1


def start_trio(timing, writes_s=0.0, q=None):
    ports = free_ports(3)
    dirs = [tempfile.mkdtemp(prefix="skiff-raft-bench-") for _ in range(3)]
    procs = [mp.Process(target=replica, args=(i, ports, timing, dirs[i], writes_s, q), daemon=True)
             for i in range(3)]
    for p in procs:
        p.start()
    return procs, dirs


def stop_trio(procs, dirs):
    for p in procs:
        if p.is_alive():
            os.kill(p.pid, signal.SIGKILL)
        p.join()
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def idle(timing, window_s: float, writes_s: float) -> str:
    procs, dirs = start_trio(timing, writes_s)
    try:
        time.sleep(5.0)     # elect, settle
        t0, c0 = time.monotonic(), [cpu_ticks(p.pid) for p in procs]
        time.sleep(window_s)
        dt, c1 = time.monotonic() - t0, [cpu_ticks(p.pid) for p in procs]
    finally:
        stop_trio(procs, dirs)
    cpu = sorted((100 * (b - a) / os.sysconf("SC_CLK_TCK") / dt for a, b in zip(c0, c1)), reverse=True)
    return (f"idle hb={timing[0]} election={timing[1]}-{timing[2]} writes/s={writes_s}: "
            f"% of a core, busiest (the leader) first: " + " / ".join(f"{c:.2f}" for c in cpu))


def failover(timing, rounds: int) -> str:
    gaps, skipped = [], 0
    while len(gaps) < rounds:
        q = mp.Queue()
        procs, dirs = start_trio(timing, q=q)
        try:
            leader, deadline = None, time.monotonic() + 15
            while time.monotonic() < deadline:       # a leader that has committed a write
                m = q.get(timeout=15)
                if len(m) == 2 and m[1]:
                    leader = m[0]
                elif len(m) == 3 and leader is not None and m[0] == leader:
                    break
            time.sleep(0.5)
            os.kill(procs[leader].pid, signal.SIGKILL)
            t_kill = time.monotonic()
            while True:
                m = q.get(timeout=30)
                if len(m) == 3 and m[0] != leader and m[2] > t_kill:
                    if m[2] - t_kill > 0.05:
                        gaps.append(m[2] - t_kill)
                    else:          # that one had not led after all
                        skipped += 1
                    break
        finally:
            stop_trio(procs, dirs)
    return (f"failover hb={timing[0]} election={timing[1]}-{timing[2]}: kill -9 of the leader -> next commit: "
            f"median {statistics.median(gaps):.2f} s, max {max(gaps):.2f} s, min {min(gaps):.2f} s "
            f"over {len(gaps)} rounds ({skipped} skipped): " + " ".join(f"{g:.2f}" for g in gaps))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=("idle", "failover"))
    ap.add_argument("heartbeat_s", type=float)
    ap.add_argument("min_timeout_s", type=float)
    ap.add_argument("max_timeout_s", type=float)
    ap.add_argument("--window", type=float, default=20.0, help="idle: CPU window (s)")
    ap.add_argument("--writes", type=float, default=0.0, help="idle: entries a second through the leader")
    ap.add_argument("--rounds", type=int, default=10, help="failover: rounds")
    args = ap.parse_args()
    timing = (args.heartbeat_s, args.min_timeout_s, args.max_timeout_s)
    print(idle(timing, args.window, args.writes) if args.mode == "idle" else failover(timing, args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
