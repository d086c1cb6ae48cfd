"""What the lab benchmarks share: starting a lab of their own and always removing it, watching
pods become Running, the raw Docker floor (pause + app pairs started through the Docker API on
the lab's own engines), and CPU/memory read from /proc.

Invariants:
- a LabSession's lab has a random `skiff-xxxx` prefix and a free subnet, lives in a temporary
  directory named `skiff-bench-*`, and is removed by `skiff lab down` on exit, on an exception,
  on Ctrl-C and on SIGTERM (install_sigterm turns SIGTERM into KeyboardInterrupt); on an
  exception its logs/ are first copied to /tmp/skiff-bench-logs-<name>-<time>;
- raw containers are named `skiff-bench-raw-*` and are removed by the same helper that
  started them (remove_raw), never by a broad filter outside this prefix.
"""

import concurrent.futures
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from skiff.lab import images  # noqa: E402
from skiff.lab.lab import Lab  # noqa: E402
from skiff.lab.netlab import pick_free_prefix_and_subnet  # noqa: E402

SKIFF = [sys.executable, "-m", "skiff.cli.main"]
RAW_PREFIX = "skiff-bench-raw-"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def load_avg() -> str:
    return " / ".join(f"{v:.2f}" for v in os.getloadavg())


def install_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so every `finally` (lab down) runs."""
    def on_term(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_term)


# ------------------------------------------------------------------ the lab

class LabSession:
    """One lab for one benchmark run: `up()` it, use `lab_dir`/`env`/`client()`, and leave the
    `with` block to have it removed (unless keep=True)."""

    def __init__(self, name: str, keep: bool = False):
        self.name = name
        self.root = tempfile.mkdtemp(prefix=f"skiff-bench-{name}-")
        self.lab_dir = os.path.join(self.root, "lab")
        self.config = os.path.join(self.root, "config")
        # The CLI (and through it every lab process) runs the skiff this bench imports.
        self.env = dict(os.environ, SKIFF_CONFIG=self.config,
                        PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
        self.prefix, self.subnet = pick_free_prefix_and_subnet()
        self.keep = keep
        self.lab = Lab(self.lab_dir)
        self.up_output = ""

    def __enter__(self):
        return self

    def up(self, nodes: int, timeout_s: float | None = None, extra_args=()) -> float:
        """`skiff lab up --nodes N` (its own prefix and subnet, then extra_args); returns the
        wall time in s."""
        argv = SKIFF + ["lab", "up", "--nodes", str(nodes), "--lab-dir", self.lab_dir,
                        "--prefix", self.prefix, "--subnet", self.subnet, *extra_args]
        if timeout_s is not None:
            argv += ["--timeout", str(timeout_s)]
        t = time.monotonic()
        r = subprocess.run(argv, env=self.env, capture_output=True, text=True)
        took = time.monotonic() - t
        self.up_output = r.stdout + r.stderr
        if r.returncode != 0:
            raise RuntimeError(f"skiff lab up --nodes {nodes} failed rc={r.returncode}:\n"
                               f"{self.up_output[-3000:]}")
        return took

    def up_phases(self) -> str:
        """The `phases :` line of `lab up`'s summary ("" if absent)."""
        m = re.search(r"phases\s*:\s*(.*)", self.up_output)
        return m.group(1).strip() if m else ""

    def state(self) -> dict:
        return self.lab.load() or {}

    def plan(self):
        return self.lab.plan(self.state())

    def client(self, **kw):
        from skiff import client as clientmod
        return clientmod.Client.from_config(config_path=self.config, **kw)

    def engines(self, timeout_s: float = 60.0) -> dict:
        """{node name: docker.DockerClient} of the lab's engines."""
        import docker
        plan = self.plan()
        return {m.name: docker.DockerClient(base_url=plan.node_paths(m.name).docker_host, timeout=timeout_s)
                for m in plan.nodes}

    def save_logs(self, tag: str) -> str:
        dst = f"/tmp/skiff-bench-logs-{tag}-{time.strftime('%Y%m%d-%H%M%S')}"
        shutil.copytree(os.path.join(self.lab_dir, "logs"), dst, dirs_exist_ok=True)
        return dst

    def down(self) -> None:
        if self.keep:
            log(f"lab kept: {self.lab_dir} (skiff lab down --lab-dir {self.lab_dir})")
            return
        subprocess.run(SKIFF + ["lab", "down", "--lab-dir", self.lab_dir], env=self.env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.root, ignore_errors=True)

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and os.path.isdir(os.path.join(self.lab_dir, "logs")):
            try:   # before `lab down` removes them
                log(f"lab logs copied to {self.save_logs(self.name)}")
            except OSError as err:
                log(f"copying the lab logs: {err}")
        self.down()
        return False


# ------------------------------------------------------------------ pods

def running(p) -> bool:
    """All of the pod's containers run (phase Running and a running state for each)."""
    return p.status.phase == "Running" and len(p.status.container_statuses) == len(p.spec.containers) \
        and all(cs.state.HasField("running") for cs in p.status.container_statuses)


class RunningWatcher:
    """One watch on pods (a namespace, or all with namespace=""); records the first moment each
    pod is seen Running (`seen`) and the monotonic time of the last pod event (`last_event`)."""

    def __init__(self, c, rv, namespace="default"):
        self.seen = {}
        self.last_event = time.monotonic()
        self.cond = threading.Condition()
        self._stop = False
        self.thread = threading.Thread(target=self._run, args=(c, rv, namespace), daemon=True)
        self.thread.start()

    def _run(self, c, rv, namespace):
        for typ, p, _ in c.watch("pods", namespace=namespace, resource_version=rv):
            if self._stop:
                return
            with self.cond:
                self.last_event = time.monotonic()
                if typ != "DELETED" and running(p):
                    self.seen.setdefault(p.metadata.name, time.monotonic())
                self.cond.notify_all()

    def stop(self):
        self._stop = True

    def wait(self, names, timeout_s):
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while not all(n in self.seen for n in names):
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = [n for n in names if n not in self.seen]
                    raise TimeoutError(f"not Running in time: {missing[:5]} ({len(missing)})")
                self.cond.wait(left)

    def quiet_for(self) -> float:
        with self.cond:
            return time.monotonic() - self.last_event


# ------------------------------------------------------------------ the raw Docker floor

def start_raw_pair(engine, i) -> None:
    """A pause container and an app container joined to it, as the agent starts a pod."""
    pause = engine.containers.run(images.PAUSE_IMAGE, detach=True, network_mode="none",
                                  ipc_mode="shareable", hostname=f"raw{i}", name=f"{RAW_PREFIX}pause-{i}")
    engine.containers.run(images.BUSYBOX_IMAGE, ["sleep", "3600"], detach=True,
                          network_mode=f"container:{pause.id}", ipc_mode=f"container:{pause.id}",
                          name=f"{RAW_PREFIX}app-{i}")


def remove_raw(engines) -> None:
    """Force-remove this module's raw containers, the engines in parallel (one at a time each)."""
    def one_engine(eng):
        for c in eng.containers.list(all=True, filters={"name": RAW_PREFIX}):
            c.remove(force=True)
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(engines))) as pool:
        for f in [pool.submit(one_engine, eng) for eng in engines]:
            f.result()


def raw_floor_parallel(engines, per_engine: int, workers_per_engine: int) -> float:
    """Start per_engine pairs on every engine at once, at most workers_per_engine at a time per
    engine (the agent's sync workers); returns the seconds until every pair was started.
    The containers are left running (remove_raw)."""
    def one_engine(k, eng):
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers_per_engine) as pool:
            for f in [pool.submit(start_raw_pair, eng, k * per_engine + j) for j in range(per_engine)]:
                f.result()
    t = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(engines)) as pool:
        for f in [pool.submit(one_engine, k, eng) for k, eng in enumerate(engines)]:
            f.result()
    return time.monotonic() - t


# ------------------------------------------------------------------ /proc

def rss_mib(pid) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _stat_fields(pid: int):
    with open(f"/proc/{pid}/stat", "rb") as f:
        return f.read().rsplit(b") ", 1)[1].split()


def process_table() -> dict[int, tuple[int, int]]:
    """{pid: (ppid, ticks)}: ticks = utime + stime + cutime + cstime (own CPU and that of
    children it has waited for: an agent's iptables-save runs end up there)."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            f = _stat_fields(int(entry))
            out[int(entry)] = (int(f[1]), int(f[11]) + int(f[12]) + int(f[13]) + int(f[14]))
        except (OSError, IndexError, ValueError):
            continue
    return out


def tree_ticks(root: int, table) -> int:
    """CPU ticks of root and every live descendant (see process_table); 0 if root is gone."""
    if root not in table:
        return 0
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    total, todo, seen = 0, [root], set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += table[pid][1]
        todo.extend(children.get(pid, ()))
    return total


def machine_busy_ticks() -> tuple[int, int]:
    """(busy, total) ticks of all CPUs from /proc/stat (busy = total - idle - iowait)."""
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:]]
    total = sum(vals[:8])   # guest time is already in user/nice
    return total - vals[3] - vals[4], total
