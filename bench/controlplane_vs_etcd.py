#!/usr/bin/env python3
"""Benchmark: a 3-replica skiff control plane against a 3-member etcd cluster.

Both run on loopback in one go, with free ports and data under one temporary
directory (prefix skiff-bench-). Measured through each system's public gRPC API:

  1. sequential write latency (one client, one write at a time): p50 / p99,
     through the leader and through a follower;
  2. write throughput with N concurrent clients spread over P processes for a
     fixed duration (same concurrency for both systems);
  3. leader kill -9 to first successful write, over several rounds.

skiff writes are ConfigMap updates through skiff.client.Client (the objects are
created during the warm-up); etcd writes are KV.Put through a minimal client
built from bench/etcd_min.proto (compiled at run time), with a failover loop over
the three endpoints like skiff's client has. See bench/README.md.

This is a benchmark, not a test: it prints figures and never fails on them.
"""

import argparse
import glob
import json
import multiprocessing as mp
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(1, ROOT)

import grpc  # noqa: E402

from skiff import client as skiff_client  # noqa: E402
from skiff.api import objects_pb2 as pb  # noqa: E402

PROTO = os.path.join(HERE, "etcd_min.proto")
# Same channel options as skiff.client.Client uses, so reconnects behave alike.
CHANNEL_OPTIONS = [("grpc.initial_reconnect_backoff_ms", 100),
                   ("grpc.min_reconnect_backoff_ms", 100),
                   ("grpc.max_reconnect_backoff_ms", 1000)]
VALUE_BYTES = 64
KEYS_PER_CLIENT = 32


# ============================================================ small helpers

def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def port_free(port):
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port_block(count, avoid=()):
    """A base port such that base..base+count-1 are free on 127.0.0.1 (checked, not reserved)."""
    for _ in range(500):
        base = random.randint(20000, 45000)
        block = range(base, base + count)
        if any(p in avoid for p in block):
            continue
        if all(port_free(p) for p in block):
            return base
    raise RuntimeError("no free block of loopback ports")


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """user+system CPU seconds of pid (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b") ", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def percentile(values, q):
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def payload(i):
    head = f"{i:010d}-"
    return head + "x" * (VALUE_BYTES - len(head))


def rotated(endpoints, first):
    """endpoints starting at index `first` (the client tries them in this order)."""
    n = len(endpoints)
    return [endpoints[(first + k) % n] for k in range(n)]


# ============================================================ etcd: stubs and client

def compile_etcd_proto(out_dir):
    from grpc_tools import protoc
    import grpc_tools
    os.makedirs(out_dir, exist_ok=True)
    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    rc = protoc.main(["grpc_tools.protoc", f"-I{HERE}", f"-I{include}",
                      f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", PROTO])
    if rc != 0:
        raise RuntimeError(f"protoc failed on {PROTO} (exit {rc})")


def etcd_modules(gen_dir):
    if gen_dir not in sys.path:
        sys.path.insert(0, gen_dir)
    import etcd_min_pb2
    import etcd_min_pb2_grpc
    return etcd_min_pb2, etcd_min_pb2_grpc


class EtcdUnavailable(Exception):
    pass


class EtcdClient:
    """KV.Put with failover over the endpoints, shaped like skiff.client.Client._call.

    On UNAVAILABLE / DEADLINE_EXCEEDED (etcd sends "etcdserver: leader changed",
    "no leader", "request timed out" as UNAVAILABLE; a server-side "context deadline
    exceeded" comes as UNKNOWN) try the next endpoint; after a
    full round of endpoints sleep 0.1 s; give up after failover_budget_s.
    """

    RETRY_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    RETRY_TEXT = ("leader changed", "no leader", "request timed out", "proposal dropped",
                  "not capable", "stopped", "deadline exceeded")

    def __init__(self, endpoints, gen_dir, call_timeout_s=10.0, failover_budget_s=20.0,
                 on_retry=None):
        self.pb, self.pbg = etcd_modules(gen_dir)
        self.endpoints = list(endpoints)
        self.call_timeout_s = call_timeout_s
        self.failover_budget_s = failover_budget_s
        self.on_retry = on_retry
        self._current = 0
        self._channels = {}

    @property
    def endpoint(self):
        return self.endpoints[self._current]

    def _channel(self, ep):
        ch = self._channels.get(ep)
        if ch is None:
            ch = grpc.insecure_channel(ep, options=CHANNEL_OPTIONS)
            self._channels[ep] = ch
        return ch

    def close(self):
        for ch in self._channels.values():
            ch.close()
        self._channels.clear()

    def _retryable(self, exc):
        if exc.code() in self.RETRY_CODES:
            return True
        details = (exc.details() or "").lower()
        return any(t in details for t in self.RETRY_TEXT)

    def put(self, key, value):
        return self._call("Put", self.pb.PutRequest(key=key, value=value))

    def get(self, key):
        """A serializable (member-local) read, the counterpart of skiff's default Get."""
        return self._call("Range", self.pb.RangeRequest(key=key, serializable=True))

    def _call(self, method, request):
        deadline = time.monotonic() + self.failover_budget_s
        tried = 0
        while True:
            ep = self.endpoints[self._current]
            try:
                return getattr(self.pbg.KVStub(self._channel(ep)), method)(
                    request, timeout=self.call_timeout_s)
            except grpc.RpcError as exc:
                if not self._retryable(exc):
                    raise
                if self.on_retry:
                    self.on_retry(ep, exc)
                tried += 1
                self._current = (self._current + 1) % len(self.endpoints)
                if time.monotonic() >= deadline:
                    raise EtcdUnavailable(f"no etcd member answered: {exc.code().name} "
                                          f"{exc.details()}") from None
                if tried % len(self.endpoints) == 0:
                    time.sleep(0.1)

    def status(self, ep, timeout_s=1.0):
        return self.pbg.MaintenanceStub(self._channel(ep)).Status(
            self.pb.StatusRequest(), timeout=timeout_s)


# ============================================================ writers (one client each)

class SkiffWriter:
    """Updates its own set of ConfigMaps (created in prepare) through skiff's client."""

    system = "skiff"

    def __init__(self, endpoints, prefix, nkeys=KEYS_PER_CLIENT, **client_kw):
        client_kw.setdefault("tls", skiff_tls())
        self.client = skiff_client.Client(list(endpoints), **client_kw)
        self.names = [f"{prefix}-{k}" for k in range(nkeys)]

    @staticmethod
    def _cm(name, value):
        return pb.ConfigMap(metadata=pb.ObjectMeta(name=name, namespace="default"),
                            data={"v": value})

    def prepare(self):
        for name in self.names:
            try:
                self.client.create(self._cm(name, payload(0)))
            except skiff_client.AlreadyExists:
                pass

    def write(self, i):
        # resourceVersion left empty: an unconditional update, like an etcd Put.
        self.client.update(self._cm(self.names[i % len(self.names)], payload(i)))

    def read(self, i):
        self.client.get("configmap", self.names[i % len(self.names)])

    @property
    def endpoint(self):
        return self.client.endpoint

    def close(self):
        self.client.close()


class EtcdWriter:
    """Puts to its own set of keys through EtcdClient."""

    system = "etcd"

    def __init__(self, endpoints, prefix, gen_dir, nkeys=KEYS_PER_CLIENT, **client_kw):
        self.client = EtcdClient(endpoints, gen_dir, **client_kw)
        self.keys = [f"/bench/{prefix}-{k}".encode() for k in range(nkeys)]

    def prepare(self):
        for key in self.keys:
            self.client.put(key, payload(0).encode())

    def write(self, i):
        self.client.put(self.keys[i % len(self.keys)], payload(i).encode())

    def read(self, i):
        self.client.get(self.keys[i % len(self.keys)])

    @property
    def endpoint(self):
        return self.client.endpoint

    def close(self):
        self.client.close()


def skiff_tls():
    """The admin credentials of the skiff cluster under test (None: --no-tls); through the
    environment so the throughput bench's spawned processes find them too."""
    pki = os.environ.get("SKIFF_BENCH_PKI")
    if not pki:
        return None
    from skiff.pki.tls import Credentials
    return Credentials.from_files(*(os.path.join(pki, f) for f in ("ca.crt", "admin.crt", "admin.key")))


def make_writer(system, endpoints, prefix, gen_dir, **client_kw):
    if system == "skiff":
        return SkiffWriter(endpoints, prefix, **client_kw)
    return EtcdWriter(endpoints, prefix, gen_dir, **client_kw)


# ============================================================ the etcd cluster

class EtcdCluster:
    """3 etcd members as local processes (own session each), tracked by Popen."""

    def __init__(self, root, base_port, members=3, binary="etcd"):
        self.root = root
        self.binary = shutil.which(binary) or binary
        self.names = [f"etcd{i + 1}" for i in range(members)]
        self.client_port = {n: base_port + i for i, n in enumerate(self.names)}
        self.peer_port = {n: base_port + members + i for i, n in enumerate(self.names)}
        self.procs: dict[str, subprocess.Popen] = {}
        self.token = f"skiff-bench-{os.getpid()}-{random.randrange(1 << 30)}"
        self.ids: dict[int, str] = {}      # member id -> name (learned from Status)
        self._admin = None

    def endpoint(self, name):
        return f"127.0.0.1:{self.client_port[name]}"

    @property
    def endpoints(self):
        return [self.endpoint(n) for n in self.names]

    def data_dir(self, name):
        return os.path.join(self.root, name, "data")

    def log_path(self, name):
        return os.path.join(self.root, "logs", f"{name}.log")

    def argv(self, name):
        cluster = ",".join(f"{n}=http://127.0.0.1:{self.peer_port[n]}" for n in self.names)
        return [self.binary, "--name", name, "--data-dir", self.data_dir(name),
                "--listen-client-urls", f"http://{self.endpoint(name)}",
                "--advertise-client-urls", f"http://{self.endpoint(name)}",
                "--listen-peer-urls", f"http://127.0.0.1:{self.peer_port[name]}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer_port[name]}",
                "--initial-cluster", cluster, "--initial-cluster-token", self.token,
                "--initial-cluster-state", "new",
                # heartbeat-interval / election-timeout: etcd's defaults (100 ms / 1000 ms).
                "--logger", "zap", "--log-outputs", "stderr"]

    def start(self, name):
        p = self.procs.get(name)
        if p is not None and p.poll() is None:
            return p.pid
        os.makedirs(os.path.dirname(self.log_path(name)), exist_ok=True)
        os.makedirs(os.path.dirname(self.data_dir(name)), exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
        with open(self.log_path(name), "ab") as logf:
            self.procs[name] = subprocess.Popen(
                self.argv(name), stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                start_new_session=True, env=env, close_fds=True)
        return self.procs[name].pid

    def start_all(self):
        for n in self.names:
            self.start(n)

    def is_running(self, name):
        p = self.procs.get(name)
        return p is not None and p.poll() is None

    def kill(self, name):
        """kill -9 of the member's process (it runs alone in its own session)."""
        p = self.procs.get(name)
        if p is None or p.poll() is not None:
            return False
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        return True

    def stop_all(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        for p in self.procs.values():
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGKILL)
                p.wait(5)
        if self._admin:
            self._admin.close()

    # ------------------------------------------------------------ status

    def admin(self, gen_dir):
        if self._admin is None:
            self._admin = EtcdClient(self.endpoints, gen_dir)
        return self._admin

    def statuses(self, gen_dir, names=None):
        out = {}
        for n in names or self.names:
            if not self.is_running(n):
                continue
            try:
                st = self.admin(gen_dir).status(self.endpoint(n), 1.0)
            except grpc.RpcError:
                continue
            out[n] = st
            self.ids[st.header.member_id] = n
        return out

    def leader(self, gen_dir, timeout_s=15.0):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            sts = self.statuses(gen_dir)
            for n, st in sts.items():
                if st.leader and st.leader == st.header.member_id:
                    return n
            time.sleep(0.05)
        raise TimeoutError("etcd: no leader")

    def wait_ready(self, gen_dir, timeout_s=30.0, catch_up=False):
        """Every running member answers and agrees on a leader; a Put commits;
        with catch_up, every member has applied the leader's commit index."""
        deadline = time.monotonic() + timeout_s
        names = [n for n in self.names if self.is_running(n)]
        last = "no answer"
        while time.monotonic() < deadline:
            sts = self.statuses(gen_dir, names)
            leaders = {st.leader for st in sts.values()}
            if len(sts) == len(names) and len(leaders) == 1 and 0 not in leaders:
                try:
                    c = self.admin(gen_dir)
                    c.put(b"/bench/health", b"ok")
                    if not catch_up:
                        return
                    lead = self.ids.get(next(iter(leaders)))
                    target = sts[lead].raftIndex if lead in sts else 0
                    while time.monotonic() < deadline:
                        sts2 = self.statuses(gen_dir, names)
                        if len(sts2) == len(names) and \
                                all(st.raftAppliedIndex >= target for st in sts2.values()):
                            return
                        time.sleep(0.05)
                except (grpc.RpcError, EtcdUnavailable) as exc:
                    last = str(exc)
            else:
                last = f"answered: {sorted(sts)}, leaders: {sorted(leaders)}"
            time.sleep(0.1)
        raise TimeoutError(f"etcd not ready after {timeout_s:.0f}s: {last}")

    def timing_settings(self):
        """heartbeat / election as the first member logged them at start-up."""
        try:
            with open(self.log_path(self.names[0]), encoding="utf-8", errors="replace") as f:
                text = f.read(200_000)
        except OSError:
            return None
        hb = re.search(r'"heartbeat-interval":"([^"]+)"', text)
        el = re.search(r'"election-timeout":"([^"]+)"', text)
        if hb and el:
            return hb.group(1), el.group(1)
        return None


# ============================================================ skiff wrappers

class SkiffSystem:
    name = "skiff"

    def __init__(self, cp):
        self.cp = cp

    @property
    def names(self):
        return self.cp.names

    @property
    def endpoints(self):
        return self.cp.endpoints

    def endpoint(self, name):
        return self.cp.api_address(name)

    def leader(self):
        return self.cp.leader(timeout_s=15.0)

    def kill(self, name):
        return self.cp.kill(name)

    def start(self, name):
        return self.cp.start(name)

    def wait_healthy(self, timeout_s=60.0):
        """All replicas answer with a leader, and every replica applied the leader's commit index."""
        self.cp.wait_ready(timeout_s, names=self.cp.names)
        deadline = time.monotonic() + timeout_s
        c = self.cp.client(call_timeout_s=2.0, failover_budget_s=2.0)
        try:
            target = None
            while time.monotonic() < deadline:
                try:
                    reps = {r.name: r for r in c.cluster_status().replicas if r.reachable}
                except skiff_client.ApiError:
                    time.sleep(0.1)
                    continue
                lead = [r for r in reps.values() if r.role == "leader"]
                if target is None and lead:
                    target = lead[0].commit_index
                if target is not None and len(reps) == len(self.cp.names) and \
                        all(r.applied_index >= target for r in reps.values()):
                    return
                time.sleep(0.05)
        finally:
            c.close()
        raise TimeoutError("skiff: a replica did not catch up")

    def log_paths(self):
        return {n: self.cp.log_path(n) for n in self.cp.names}

    def server_pids(self):
        return dict(self.cp.pids)

    def compare_replicas(self, timeout_s=30.0):
        """Each replica's ConfigMaps (name, data, resourceVersion) read from that replica
        alone, once all have applied the same index: identical on all three?"""
        self.wait_healthy(timeout_s)
        views = {}
        for n in self.cp.names:
            c = self.cp.client([self.cp.api_address(n)], call_timeout_s=10.0,
                                    failover_budget_s=5.0)
            try:
                items, rv = c.list("configmap", namespace="default")
            finally:
                c.close()
            views[n] = (rv, sorted((o.metadata.name, tuple(sorted(o.data.items())),
                                    o.metadata.resource_version) for o in items))
        first = views[self.cp.names[0]]
        same = all(v == first for v in views.values())
        return {"identical": same, "objects": len(first[1]),
                "resource_versions": {n: v[0] for n, v in views.items()},
                "differing": [n for n, v in views.items() if v != first]}


class EtcdSystem:
    name = "etcd"

    def __init__(self, cluster, gen_dir):
        self.cluster = cluster
        self.gen_dir = gen_dir

    @property
    def names(self):
        return self.cluster.names

    @property
    def endpoints(self):
        return self.cluster.endpoints

    def endpoint(self, name):
        return self.cluster.endpoint(name)

    def leader(self):
        return self.cluster.leader(self.gen_dir)

    def kill(self, name):
        return self.cluster.kill(name)

    def start(self, name):
        return self.cluster.start(name)

    def wait_healthy(self, timeout_s=60.0):
        self.cluster.wait_ready(self.gen_dir, timeout_s, catch_up=True)

    def log_paths(self):
        return {n: self.cluster.log_path(n) for n in self.cluster.names}

    def server_pids(self):
        return {n: p.pid for n, p in self.cluster.procs.items() if p.poll() is None}


# ============================================================ log watching (evidence per phase)

SKIFF_NOTABLE = re.compile(r"event=raft_state|event=propose_retry|level=(WARNING|ERROR|CRITICAL)|"
                           r"Traceback|event=journal_realigned|truncating")
ETCD_NOTABLE = re.compile(r'"level":"(warn|error|fatal|panic)"|elected leader|became leader|'
                          r'lost leader|leader changed')
# What a restarted or killed peer always causes; counted, never shown as a sample.
ROUTINE = re.compile(r"TCP streaming connection|peer became inactive|failed to reach the peer URL|"
                     r"failed to get version|prober detected unhealthy|simple token is not|"
                     r"failed to find remote peer|elected leader|lost leader|"
                     r"level=CRITICAL logger=pysyncobj.syncobj truncating")
_TS = re.compile(r"(\d{2}:\d{2}:\d{2}[.,]\d{3})")


def _ts_key(line):
    m = _TS.search(line)
    return m.group(1).replace(",", ".") if m else ""


def samples(lines, count):
    """Up to count lines, the non-routine ones first, each group in time order."""
    rare = sorted((x for x in lines if not ROUTINE.search(x)), key=_ts_key)
    routine = sorted((x for x in lines if ROUTINE.search(x)), key=_ts_key)
    return (rare + routine)[:count]


class LogMarks:
    """Remember log sizes at a phase start; collect notable new lines at its end."""

    def __init__(self, system):
        self.system = system
        self.paths = system.log_paths()
        self.pattern = SKIFF_NOTABLE if system.name == "skiff" else ETCD_NOTABLE
        self.offsets = {}

    def mark(self):
        self.offsets = {n: (os.path.getsize(p) if os.path.exists(p) else 0)
                        for n, p in self.paths.items()}

    def collect(self):
        lines = []
        for n, p in self.paths.items():
            if not os.path.exists(p):
                continue
            with open(p, "rb") as f:
                f.seek(self.offsets.get(n, 0))
                text = f.read().decode(errors="replace")
            for line in text.splitlines():
                if self.pattern.search(line):
                    lines.append(f"{n}: {line.strip()}")
        self.mark()
        return lines


def summarize_lines(lines):
    """Counts by kind of line plus a few samples."""
    kinds = {}
    for line in lines:
        m = re.search(r"event=(\w+)", line) or re.search(r'"msg":"([^"]{0,70})', line) or \
            re.search(r"level=(\w+)", line)
        key = m.group(1) if m else "other"
        key = re.sub(r"\b[0-9a-f]{16}\b", "<id>", key)
        key = re.sub(r"\s+at( term)?\s*\d*$", "", key).strip()
        if "truncating already-applied" in line:
            key = "CRITICAL truncating already-applied log entries"
        if "event=raft_state" in line:
            m2 = re.search(r"new=(\w+)", line)
            key = f"raft_state->{m2.group(1) if m2 else '?'}"
        if "event=propose_retry" in line:
            m2 = re.search(r"reason=(\S+)", line)
            key = f"propose_retry({m2.group(1) if m2 else '?'})"
        kinds[key] = kinds.get(key, 0) + 1
    return kinds


# ============================================================ 1. sequential latency

def bench_sequential(system, gen_dir, first_name, n, warmup, tag):
    idx = system.names.index(first_name)
    eps = rotated(system.endpoints, idx)
    w = make_writer(system.name, eps, f"seq-{tag}", gen_dir)
    try:
        w.prepare()
        for i in range(warmup):
            w.write(i)
        lat = []
        for i in range(n):
            t0 = time.perf_counter()
            w.write(i)
            lat.append((time.perf_counter() - t0) * 1000.0)
        served_by = w.endpoint
        # Diagnostic: the same API path without Raft (a local, non-linearizable read).
        rlat = []
        for i in range(n):
            t0 = time.perf_counter()
            w.read(i)
            rlat.append((time.perf_counter() - t0) * 1000.0)
    finally:
        w.close()
    return {"p50_ms": percentile(lat, 0.50), "p99_ms": percentile(lat, 0.99),
            "mean_ms": statistics.fmean(lat), "max_ms": max(lat), "n": n,
            "read_p50_ms": percentile(rlat, 0.50), "read_p99_ms": percentile(rlat, 0.99),
            "endpoint": served_by, "target": first_name}


# ============================================================ 2. throughput (multiprocessing)

def _tp_worker(system_name, endpoints, gen_dir, proc_idx, threads, duration_s, ready_q, go,
               start_at, result_q):
    """One client process: `threads` clients, each its own connection set."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the parent handles Ctrl-C and ends us
    if ROOT not in sys.path:
        sys.path.insert(1, ROOT)
    n = len(endpoints)
    writers = []
    try:
        for t in range(threads):
            slot = proc_idx * threads + t
            writers.append(make_writer(system_name, rotated(endpoints, slot % n),
                                       f"tp-p{proc_idx}-t{t}", gen_dir))
        preps = [threading.Thread(target=w.prepare) for w in writers]
        for th in preps:
            th.start()
        for th in preps:
            th.join()
        for w in writers:
            for i in range(5):
                w.write(i)
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        ready_q.put((proc_idx, f"{type(exc).__name__}: {exc}"))
        return
    ready_q.put((proc_idx, None))
    go.wait()
    t_start = start_at.value
    t_end = t_start + duration_s
    results = [None] * threads

    def run(t):
        w = writers[t]
        ok = 0
        errors = 0
        err_samples = []
        lat = []
        i = 0
        while time.time() < t_start:
            time.sleep(0.001)
        while True:
            t0 = time.time()
            if t0 >= t_end:
                break
            try:
                w.write(i)
                t1 = time.time()
                if t1 <= t_end:
                    ok += 1
                    lat.append((t1 - t0) * 1000.0)
            except Exception as exc:  # noqa: BLE001 - counted
                errors += 1
                if len(err_samples) < 3:
                    err_samples.append(f"{type(exc).__name__}: {str(exc)[:200]}")
            i += 1
        results[t] = {"ok": ok, "errors": errors, "err_samples": err_samples, "lat": lat,
                      "endpoint": w.endpoint}

    cpu0 = time.process_time()
    ths = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    cpu = time.process_time() - cpu0
    for w in writers:
        w.close()
    result_q.put((proc_idx, {"clients": results, "cpu_s": cpu}))


def bench_throughput(system, gen_dir, procs, threads, duration_s, registry):
    """Returns writes/s and more; server CPU is measured over the whole run phase."""
    ctx = mp.get_context("spawn")
    ready_q, result_q = ctx.Queue(), ctx.Queue()
    go = ctx.Event()
    start_at = ctx.Value("d", 0.0)
    workers = []
    for p in range(procs):
        proc = ctx.Process(target=_tp_worker, name=f"bench-{system.name}-{p}",
                           args=(system.name, system.endpoints, gen_dir, p, threads, duration_s,
                                 ready_q, go, start_at, result_q), daemon=True)
        proc.start()
        workers.append(proc)
        registry.append(proc)
    try:
        for _ in range(procs):
            idx, err = ready_q.get(timeout=120)
            if err:
                raise RuntimeError(f"throughput worker {idx} failed to start: {err}")
        pids = system.server_pids()
        cpu0 = {n: cpu_seconds(pid) for n, pid in pids.items()}
        start_at.value = time.time() + 0.3
        go.set()
        per_client = []
        client_cpu = 0.0
        for _ in range(procs):
            _, results = result_q.get(timeout=duration_s + 120)
            per_client.extend(results["clients"])
            client_cpu += results["cpu_s"]
        server_cpu = {n: cpu_seconds(pid) - cpu0[n] for n, pid in pids.items()}
        for proc in workers:
            proc.join(10)
    finally:
        for proc in workers:
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
            if proc in registry:
                registry.remove(proc)
    ok = sum(r["ok"] for r in per_client)
    lat = [x for r in per_client for x in r["lat"]]
    endpoints = {}
    for r in per_client:
        endpoints[r["endpoint"]] = endpoints.get(r["endpoint"], 0) + 1
    return {"writes_per_s": ok / duration_s, "ok": ok,
            "errors": sum(r["errors"] for r in per_client),
            "err_samples": [s for r in per_client for s in r["err_samples"]][:5],
            "p50_ms": percentile(lat, 0.5), "p90_ms": percentile(lat, 0.9),
            "p99_ms": percentile(lat, 0.99), "max_ms": max(lat) if lat else float("nan"),
            "over_100ms": sum(1 for x in lat if x > 100.0),
            "clients": procs * threads, "procs": procs, "duration_s": duration_s,
            "clients_per_endpoint": endpoints,
            "server_cpu_s": {n: round(v, 2) for n, v in server_cpu.items()},
            "server_cpu_ms_per_write": 1000.0 * sum(server_cpu.values()) / max(ok, 1),
            "client_cpu_s": round(client_cpu, 2)}


# ============================================================ 3. failover

class ContinuousWriter(threading.Thread):
    """Writes one after another; records (t_start, t_end, ok, endpoint_after, error)."""

    def __init__(self, writer):
        super().__init__(daemon=True)
        self.writer = writer
        self.records = []
        self.stop_evt = threading.Event()
        self.lock = threading.Lock()

    def run(self):
        i = 0
        while not self.stop_evt.is_set():
            t0 = time.monotonic()
            err = None
            try:
                self.writer.write(i)
            except Exception as exc:  # noqa: BLE001 - recorded
                err = f"{type(exc).__name__}: {str(exc)[:160]}"
            t1 = time.monotonic()
            with self.lock:
                self.records.append((t0, t1, err is None, self.writer.endpoint, err))
            if err:
                time.sleep(0.01)
            i += 1

    def first_success_after(self, t_kill):
        with self.lock:
            for rec in self.records:
                if rec[2] and rec[0] >= t_kill:
                    return rec
        return None


def bench_failover(system, gen_dir, rounds, etcd_call_timeout_s, settle_s=1.0, limit_s=30.0):
    out = []
    marks = LogMarks(system)
    by_ep = {system.endpoint(n): n for n in system.names}
    for r in range(rounds):
        leader = system.leader()
        idx = system.names.index(leader)
        eps = rotated(system.endpoints, idx)  # the writer talks to the leader when it dies
        kw = {} if system.name == "skiff" else {"call_timeout_s": etcd_call_timeout_s}
        w = make_writer(system.name, eps, f"fo-r{r}", gen_dir, failover_budget_s=60.0, **kw)
        retries = []
        if system.name == "etcd":
            w.client.on_retry = lambda ep, exc, t=retries: t.append(
                (time.monotonic(), ep, exc.code().name, (exc.details() or "")[:120]))
        w.prepare()
        cw = ContinuousWriter(w)
        cw.start()
        time.sleep(settle_s)
        marks.mark()
        wall_kill = time.time()
        t_kill = time.monotonic()
        system.kill(leader)
        first = None
        while time.monotonic() - t_kill < limit_s:
            first = cw.first_success_after(t_kill)
            if first:
                break
            time.sleep(0.002)
        time.sleep(0.3)
        cw.stop_evt.set()
        cw.join(60)
        with cw.lock:
            recs = list(cw.records)
        inflight = [rec for rec in recs if rec[0] < t_kill < rec[1]]
        failed = [rec for rec in recs if not rec[2] and rec[1] >= t_kill]
        w.close()
        try:
            new_leader = system.leader()
        except TimeoutError:
            new_leader = "?"
        info = {
            "round": r + 1, "killed": leader, "new_leader": new_leader,
            "kill_at": time.strftime("%H:%M:%S", time.localtime(wall_kill)) +
            f".{int((wall_kill % 1) * 1000):03d}",
            "seconds": (first[1] - t_kill) if first else float("inf"),
            "first_ok_endpoint": by_ep.get(first[3], first[3]) if first else None,
            "inflight_at_kill_s": round(inflight[0][1] - inflight[0][0], 3) if inflight else None,
            "inflight_ok": inflight[0][2] if inflight else None,
            "failed_writes": len(failed),
            "failed_samples": [f[4] for f in failed[:2]],
            "client_retries": [(round(t - t_kill, 3), ep, code, d) for t, ep, code, d in retries
                               if t >= t_kill][:6],
        }
        system.start(leader)
        system.wait_healthy(90.0)
        info["log"] = marks.collect()
        out.append(info)
        log(f"  {system.name} round {r + 1}: killed {leader} -> new leader {new_leader}, "
            f"first write ok after {info['seconds']:.3f} s (via {info['first_ok_endpoint']}), "
            f"in-flight write at kill took {info['inflight_at_kill_s']} s")
        time.sleep(0.5)
    return out


# ============================================================ output

def fmt(v, digits=2):
    if v is None or (isinstance(v, float) and v != v):
        return "n/a"
    if v == float("inf"):
        return "inf"
    return f"{v:.{digits}f}"


def ratio(a, b):
    try:
        if b == 0 or a != a or b != b or a == float("inf"):
            return float("nan")
        return a / b
    except TypeError:
        return float("nan")


def print_report(res, args, setup):
    print()
    print("## skiff control plane vs etcd (3 members each, loopback)")
    print()
    for line in setup:
        print(f"- {line}")
    print()
    rows = []
    s, e = res["skiff"], res["etcd"]

    def row(label, sv, ev, digits=2, rdigits=2):
        rows.append((label, fmt(sv, digits), fmt(ev, digits), fmt(ratio(sv, ev), rdigits)))

    row("sequential write p50, via leader (ms)", s["seq_leader"]["p50_ms"], e["seq_leader"]["p50_ms"])
    row("sequential write p99, via leader (ms)", s["seq_leader"]["p99_ms"], e["seq_leader"]["p99_ms"])
    row("sequential write p50, via follower (ms)", s["seq_follower"]["p50_ms"],
        e["seq_follower"]["p50_ms"])
    row("sequential write p99, via follower (ms)", s["seq_follower"]["p99_ms"],
        e["seq_follower"]["p99_ms"])
    st, et = s["throughput"], e["throughput"]
    conc = f"{st['clients']} clients / {st['procs']} procs, {fmt(st['duration_s'], 0)} s"
    row(f"write throughput, {conc} (writes/s)", st["writes_per_s"], et["writes_per_s"], 0)
    row("write latency under that load p50 (ms)", st["p50_ms"], et["p50_ms"])
    row("write latency under that load p99 (ms)", st["p99_ms"], et["p99_ms"])
    row("failed writes under that load (count)", float(st["errors"]), float(et["errors"]), 0)
    row("server CPU per write under that load (ms, all 3 members)",
        st["server_cpu_ms_per_write"], et["server_cpu_ms_per_write"])
    sf = [r["seconds"] for r in s["failover"]]
    ef = [r["seconds"] for r in e["failover"]]
    row(f"leader kill -9 -> first write ok, median of {len(sf)} (s)",
        statistics.median(sf), statistics.median(ef))
    row(f"leader kill -9 -> first write ok, max of {len(sf)} (s)", max(sf), max(ef))
    row("diagnostic: sequential local read p50, via leader (ms)", s["seq_leader"]["read_p50_ms"],
        e["seq_leader"]["read_p50_ms"])
    print("| metric | skiff | etcd | skiff/etcd |")
    print("|---|---:|---:|---:|")
    for label, a, b, c in rows:
        print(f"| {label} | {a} | {b} | {c} |")
    print()
    p50r = ratio(s["seq_leader"]["p50_ms"], e["seq_leader"]["p50_ms"])
    tpr = ratio(st["writes_per_s"], et["writes_per_s"])
    fmax = max(sf)
    print(f"sequential write p50 ratio (aim <= 2.0): {fmt(p50r)} "
          f"({'met' if p50r <= 2.0 else 'NOT met'})")
    print(f"throughput ratio (aim >= 1.0): {fmt(tpr)} ({'met' if tpr >= 1.0 else 'NOT met'})")
    print(f"skiff failover max (aim <= 2 s): {fmt(fmax, 3)} s "
          f"({'met' if fmax <= 2.0 else 'NOT met'})")
    for name, t in (("skiff", st), ("etcd", et)):
        print(f"- {name} write latency under load: p50 {fmt(t['p50_ms'])} / p90 {fmt(t['p90_ms'])} / "
              f"p99 {fmt(t['p99_ms'])} / max {fmt(t['max_ms'])} ms; {t['over_100ms']} of {t['ok']} "
              f"writes over 100 ms; clients per first endpoint {t['clients_per_endpoint']}")
    print(f"- load average at start {res['load_start']}, at end {res['load_end']} "
          f"(the machine is shared: other processes count too)")
    print(f"- throughput CPU seconds: skiff servers {st['server_cpu_s']}, clients "
          f"{st['client_cpu_s']}; etcd servers {et['server_cpu_s']}, clients {et['client_cpu_s']} "
          f"(over {fmt(st['duration_s'], 0)} s on {os.cpu_count()} CPUs)")
    cmp = s.get("replicas")
    if cmp:
        print(f"- skiff replicas after all phases (each read alone): "
              f"{'identical' if cmp['identical'] else 'DIFFERENT: ' + ', '.join(cmp['differing'])}"
              f" ({cmp['objects']} ConfigMaps, resourceVersion {cmp['resource_versions']})")
    print()
    print("### failover rounds")
    print()
    print("| system | round | killed at | killed | new leader | kill -> first ok write (s) | "
          "write in flight at kill (s, ok?) | failed writes | first ok via |")
    print("|---|---:|---|---|---|---:|---|---:|---|")
    for name in ("skiff", "etcd"):
        for r in res[name]["failover"]:
            inflight = "-" if r["inflight_at_kill_s"] is None else \
                f"{r['inflight_at_kill_s']} ({'ok' if r['inflight_ok'] else 'failed'})"
            print(f"| {name} | {r['round']} | {r['kill_at']} | {r['killed']} | {r['new_leader']} | "
                  f"{fmt(r['seconds'], 3)} | {inflight} | {r['failed_writes']} | "
                  f"{r['first_ok_endpoint']} |")
    print()
    print("### notable log lines per phase")
    print()
    for name in ("skiff", "etcd"):
        for phase, lines in res[name]["logs"]:
            kinds = summarize_lines(lines)
            summary = ", ".join(f"{k} x{v}" for k, v in sorted(kinds.items())) or "none"
            print(f"- {name} / {phase}: {summary}")
            for line in samples(lines, args.log_samples):
                print(f"    {line[:300]}")
    if st["err_samples"] or et["err_samples"]:
        print()
        print("### errors seen by throughput clients")
        for name, t in (("skiff", st), ("etcd", et)):
            for sample in t["err_samples"]:
                print(f"- {name}: {sample}")
    etcd_retries = [(r["round"], r["client_retries"]) for r in e["failover"] if r["client_retries"]]
    if etcd_retries:
        print()
        print("### etcd client retries after the kill (s after kill, endpoint, code, details)")
        for rnd, retries in etcd_retries:
            print(f"- round {rnd}: {retries}")
    print()


# ============================================================ main

def run(args, tmp, registry, cleanup):
    gen_dir = os.path.join(tmp, "etcd-stubs")
    compile_etcd_proto(gen_dir)
    etcd_modules(gen_dir)

    from controlplane.config import RaftTuning
    from skiff.lab.controlplane import ControlPlane

    skiff_base = free_port_block(6)
    etcd_base = free_port_block(6, avoid=set(range(skiff_base, skiff_base + 6)))
    cp = ControlPlane(os.path.join(tmp, "skiff-lab"), replicas=3, api_base_port=skiff_base,
                      raft_base_port=skiff_base + 3,   # the replicas' default raft: settings
                      tls=not args.no_tls)
    cleanup.append(("skiff control plane", cp.stop_all))
    etcd = EtcdCluster(os.path.join(tmp, "etcd"), etcd_base)
    cleanup.append(("etcd cluster", etcd.stop_all))

    log(f"temp dir {tmp}")
    log(f"starting skiff (api {cp.endpoints}) and etcd (client {etcd.endpoints})")
    cp.write_configs()
    if cp.tls:
        os.environ["SKIFF_BENCH_PKI"] = os.path.join(cp.lab_dir, "pki")
    cp.start_all()
    etcd.start_all()
    cp.wait_ready(60)
    etcd.wait_ready(gen_dir, 60)
    skiff_sys = SkiffSystem(cp)
    etcd_sys = EtcdSystem(etcd, gen_dir)
    # Both clusters stay up for the whole run: what does each cost while idle?
    idle_pids = {**{f"skiff/{n}": p for n, p in skiff_sys.server_pids().items()},
                 **{f"etcd/{n}": p for n, p in etcd_sys.server_pids().items()}}
    idle0 = {k: cpu_seconds(p) for k, p in idle_pids.items()}
    time.sleep(3.0)
    idle = {k: (cpu_seconds(p) - idle0[k]) / 3.0 for k, p in idle_pids.items()}
    idle_skiff = sum(v for k, v in idle.items() if k.startswith("skiff/"))
    idle_etcd = sum(v for k, v in idle.items() if k.startswith("etcd/"))
    timing = etcd.timing_settings()
    etcd_version = subprocess.run([etcd.binary, "--version"], capture_output=True, text=True,
                                  check=False).stdout.splitlines()[0:1]
    rt = RaftTuning()
    setup = [
        f"machine: {os.cpu_count()} CPUs, python {sys.version.split()[0]}, grpcio {grpc.__version__}; "
        f"all 6 servers and all clients share these CPUs",
        f"etcd: {etcd_version[0] if etcd_version else '?'} (Debian etcd-server), "
        f"heartbeat-interval={timing[0] if timing else '100ms (default)'}, "
        f"election-timeout={timing[1] if timing else '1000ms (default)'} (etcd defaults), "
        f"WAL fsync on (etcd always fsyncs)",
        f"skiff: RaftTuning defaults min/max election timeout {rt.min_timeout_s}/{rt.max_timeout_s} s, "
        f"heartbeat {rt.heartbeat_s} s; PySyncObj journal, no fsync",
        f"both clusters run during the whole benchmark; idle CPU before measuring: "
        f"skiff {idle_skiff * 100:.0f}% of one CPU (3 replicas), etcd {idle_etcd * 100:.0f}% (3 members)",
        f"writes: skiff = ConfigMap update (unconditional) via skiff.client.Client; "
        f"etcd = KV.Put via bench/etcd_min.proto client; value {VALUE_BYTES} bytes, "
        f"{KEYS_PER_CLIENT} keys per client",
        f"sequential: {args.writes} writes after {args.warmup} warm-up writes, one client",
        f"throughput: {args.procs * args.threads} concurrent clients ({args.procs} processes x "
        f"{args.threads} threads, one client each, spread over the 3 endpoints), "
        f"{args.duration:g} s each",
        f"failover: {args.rounds} rounds; the writer's client knows all 3 endpoints and talks "
        f"to the leader when it is killed; time = kill -> completion of the first write issued "
        f"after the kill that succeeded; etcd per-attempt timeout {args.etcd_call_timeout:g} s, "
        f"skiff client defaults ({skiff_client.CALL_TIMEOUT_S:g} s per call; the server retries "
        f"the proposal until a leader commits it)",
    ]
    for line in setup:
        log(line)

    res = {"load_start": " ".join(f"{x:.2f}" for x in os.getloadavg())}
    for system in (skiff_sys, etcd_sys):
        r = res[system.name] = {"logs": []}
        marks = LogMarks(system)
        marks.mark()
        leader = system.leader()
        follower = next(n for n in system.names if n != leader)
        log(f"{system.name}: sequential via leader {leader}")
        r["seq_leader"] = bench_sequential(system, gen_dir, leader, args.writes, args.warmup, "l")
        log(f"  p50 {r['seq_leader']['p50_ms']:.2f} ms p99 {r['seq_leader']['p99_ms']:.2f} ms "
            f"(served by {r['seq_leader']['endpoint']})")
        log(f"{system.name}: sequential via follower {follower}")
        r["seq_follower"] = bench_sequential(system, gen_dir, follower, args.writes, args.warmup, "f")
        log(f"  p50 {r['seq_follower']['p50_ms']:.2f} ms p99 {r['seq_follower']['p99_ms']:.2f} ms "
            f"(served by {r['seq_follower']['endpoint']})")
        r["logs"].append(("sequential", marks.collect()))
        log(f"{system.name}: throughput, {args.procs * args.threads} clients, {args.duration:g} s")
        r["throughput"] = bench_throughput(system, gen_dir, args.procs, args.threads,
                                           args.duration, registry)
        t = r["throughput"]
        log(f"  {t['writes_per_s']:.0f} writes/s, {t['errors']} errors, p50 {t['p50_ms']:.2f} ms "
            f"p99 {t['p99_ms']:.2f} ms, clients per endpoint {t['clients_per_endpoint']}")
        r["logs"].append(("throughput", marks.collect()))
        system.wait_healthy(60)
        log(f"{system.name}: failover, {args.rounds} rounds")
        r["failover"] = bench_failover(system, gen_dir, args.rounds, args.etcd_call_timeout)
        for fo in r["failover"]:
            r["logs"].append((f"failover round {fo['round']} (killed {fo['killed']})", fo["log"]))
        if system.name == "skiff":
            r["replicas"] = system.compare_replicas()
            log(f"skiff replicas identical: {r['replicas']['identical']} "
                f"{r['replicas']['resource_versions']}")

    res["load_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print_report(res, args, setup)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"setup": setup, "results": res}, f, indent=1, default=str)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="short run: 300 writes, 2 s throughput, 2 failover rounds")
    parser.add_argument("--writes", type=int, help="sequential writes measured (default 2000)")
    parser.add_argument("--warmup", type=int, help="warm-up writes before measuring (default 200)")
    parser.add_argument("--procs", type=int, default=4, help="client processes for throughput")
    parser.add_argument("--threads", type=int, default=4, help="clients per process for throughput")
    parser.add_argument("--duration", type=float, help="throughput seconds per system (default 5)")
    parser.add_argument("--rounds", type=int, help="failover rounds (default 5)")
    parser.add_argument("--etcd-call-timeout", type=float, default=1.0,
                        help="etcd client per-attempt timeout in the failover phase (default 1.0 s: "
                             "a Put forwarded to a dead leader is never answered by etcd 3.4 "
                             "before its 7 s request timeout, so the client must give up itself)")
    parser.add_argument("--no-tls", action="store_true",
                        help="skiff without mTLS (plaintext gRPC), to measure what TLS costs")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temp dir (data, logs) instead of removing it")
    parser.add_argument("--json", help="also write the raw results to this file")
    parser.add_argument("--log-samples", type=int, default=8,
                        help="notable log lines shown per phase (default 8)")
    args = parser.parse_args(argv)
    args.writes = args.writes or (300 if args.quick else 2000)
    args.warmup = args.warmup if args.warmup is not None else (50 if args.quick else 200)
    args.duration = args.duration or (2.0 if args.quick else 5.0)
    args.rounds = args.rounds or (2 if args.quick else 5)

    if not shutil.which("etcd"):
        print("etcd not found: run `SKIFF_WITH_BENCH=1 bash deploy/dev-setup.sh` "
              "(installs Debian's etcd-server)", file=sys.stderr)
        return 2

    def _term(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _term)
    signal.signal(signal.SIGHUP, _term)

    tmp = tempfile.mkdtemp(prefix="skiff-bench-")
    registry = []   # client processes we started
    cleanup = []    # (what, fn), run in reverse order
    rc = 0
    try:
        run(args, tmp, registry, cleanup)
    except KeyboardInterrupt:
        log("interrupted: cleaning up")
        rc = 130
    except Exception:
        import traceback
        traceback.print_exc()
        rc = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for proc in list(registry):
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
                if proc.is_alive():
                    proc.kill()
        for what, fn in reversed(cleanup):
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - keep cleaning
                log(f"cleanup of {what} failed: {exc}")
        if args.keep:
            log(f"kept {tmp} (logs: {', '.join(glob.glob(os.path.join(tmp, '*', 'logs')))})")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
