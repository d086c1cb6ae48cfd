"""A per-pod timeline for the lab benchmarks: where a pod's start goes, from the API's side
(a watch) and the agent's (its key=value log lines).

PodTimeline watches pods (one label selector) and records, in wall-clock seconds (the agents
log wall-clock times), the first moment each pod is seen: created, bound (spec.nodeName set),
Running (every container running). agent_marks() reads an agent log for the lines the agent
writes while it starts a pod:

  sandbox_started      the pause container created and started (pod=NS/NAME)
  network_set_up       veth, IP, routes in the pause's netns (uid=...: mapped to the pod)
  container_started    an app container created and started (pod=NS/NAME, the first one)
  status_running       the status write that carried phase Running (pod=NS/NAME)

stage_table() turns both into the median / p90 / max of each step over a set of pods, each
step measured from the one before it (bound -> sandbox_started includes the informer's
delivery to the agent, the sync queue and the pause container's create + start).
"""

import datetime
import re
import statistics
import threading
import time

from labkit import running

_LINE = re.compile(r"^time=(\S+ \S+) level=\S+ logger=\S+ (.*)$")
_KV = re.compile(r"(\w+)=(\S+)")

STAGES = ("created", "bound", "sandbox_started", "network_set_up", "container_started", "status_running",
          "running_seen")


class PodTimeline:
    """Watch pods matching label_selector from resource version rv; times are time.time().

    It also keeps the latest version of every live pod (`pods`, seeded from `items`: the list
    rv came from) and the time each one was deleted (`deleted`), and calls on_event(self, now)
    after every event with the lock held, so a benchmark can note milestones the moment they
    happen without listing pods over and over (a list of 60+ pods every 50 ms costs the
    control plane CPU that the engines being measured need)."""

    def __init__(self, c, rv, label_selector, namespace="default", items=(), on_event=None):
        self.marks: dict = {}   # pod name -> {stage: wall time}
        self.uids: dict = {}    # uid -> pod name
        self.nodes: dict = {}   # pod name -> node name
        self.pods: dict = {p.metadata.name: p for p in items}   # live pods, latest version
        self.deleted: dict = {}   # pod name -> wall time of its DELETED event
        self.on_event = on_event
        self.lock = threading.Condition()
        self._stop = False
        self.thread = threading.Thread(target=self._run, args=(c, rv, label_selector, namespace), daemon=True)
        self.thread.start()

    def _run(self, c, rv, selector, namespace):
        for typ, p, _ in c.watch("pods", namespace=namespace, label_selector=selector, resource_version=rv):
            if self._stop:
                return
            now = time.time()
            name = p.metadata.name
            with self.lock:
                if typ == "DELETED":
                    self.pods.pop(name, None)
                    self.deleted.setdefault(name, now)
                else:
                    self.pods[name] = p
                    m = self.marks.setdefault(name, {})
                    self.uids[p.metadata.uid] = name
                    m.setdefault("created", now)
                    if p.spec.node_name:
                        m.setdefault("bound", now)
                        self.nodes[name] = p.spec.node_name
                    if running(p):
                        m.setdefault("running_seen", now)
                if self.on_event is not None:
                    self.on_event(self, now)
                self.lock.notify_all()

    def wait_for(self, pred, timeout_s: float) -> None:
        """Block until pred(self) (called with the lock held) is true; TimeoutError after timeout_s."""
        deadline = time.monotonic() + timeout_s
        with self.lock:
            while not pred(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("the pods did not get there in time")
                self.lock.wait(min(left, 0.5))

    def stop(self):
        self._stop = True

    def settle(self, timeout_s: float) -> None:
        """Give the watch up to timeout_s to deliver the Running every live pod has reached."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if all("running_seen" in self.marks.get(n, {}) for n in self.pods):
                    return
            time.sleep(0.05)

    def add_agent_log(self, path, since: float) -> None:
        """Merge the agent's marks for the pods this timeline knows (lines from `since` on)."""
        for name, stage, t in agent_marks(path, since, self.uids):
            with self.lock:
                if name in self.marks:
                    self.marks[name].setdefault(stage, t)


def _wall(stamp: str) -> float:
    # logging's asctime: local time, "2026-12-07 20:13:39,123"
    return datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def agent_marks(path, since: float, uids: dict):
    """Yield (pod name, stage, wall time) from one agent log."""
    try:
        f = open(path, encoding="utf-8", errors="replace")
    except OSError:
        return
    with f:
        for line in f:
            m = _LINE.match(line)
            if not m:
                continue
            kv = dict(_KV.findall(m.group(2)))
            event = kv.get("event", "")
            stage = {"sandbox_started": "sandbox_started", "pod_network_set_up": "network_set_up",
                     "container_started": "container_started"}.get(event)
            if event == "pod_status_written" and kv.get("phase") == "Running":
                stage = "status_running"
            if stage is None:
                continue
            t = _wall(m.group(1))
            if t < since:
                continue
            if stage == "network_set_up":
                name = uids.get(kv.get("uid", ""))
            else:
                name = kv.get("pod", "").split("/", 1)[-1]
            if name:
                yield name, stage, t


def stage_table(marks: dict, names, t0: float) -> list:
    """Rows (step, n, median, p90, max) in seconds for the given pods: each stage against the
    previous stage the pod has, and each stage's absolute time from t0."""
    rows = []
    for i, stage in enumerate(STAGES):
        steps, absolute = [], []
        for n in names:
            m = marks.get(n, {})
            if stage not in m:
                continue
            absolute.append(m[stage] - t0)
            prev = next((m[s] for s in reversed(STAGES[:i]) if s in m), None)
            if prev is not None:
                steps.append(m[stage] - prev)
        if absolute:
            rows.append((stage, len(absolute), _q(absolute, 50), _q(absolute, 90), max(absolute),
                         _q(steps, 50) if steps else float("nan"), _q(steps, 90) if steps else float("nan"),
                         max(steps) if steps else float("nan")))
    return rows


def format_table(rows, title) -> str:
    out = [f"\n{title}", "| stage | pods | at p50 / p90 / max (s) | step from previous p50 / p90 / max (s) |",
           "|---|---:|---:|---:|"]
    for stage, n, a50, a90, amax, s50, s90, smax in rows:
        out.append(f"| {stage} | {n} | {a50:.2f} / {a90:.2f} / {amax:.2f} | {s50:.2f} / {s90:.2f} / {smax:.2f} |")
    return "\n".join(out)


def _q(values, q):
    values = sorted(values)
    if not values:
        return float("nan")
    if q == 50:
        return statistics.median(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]
