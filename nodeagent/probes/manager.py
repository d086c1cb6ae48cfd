"""Probe workers: one thread per (running container, probe type), like kubelet's prober.

- startup: until it succeeds, liveness and readiness are not run; after
  failureThreshold consecutive failures its result is False (the planner kills
  and restarts the container); once True it stops;
- liveness: result None until it fails failureThreshold times in a row, then
  False and the worker stops (the container is restarted; its successor gets a
  new worker);
- readiness: False until successThreshold consecutive successes, then True,
  back to False after failureThreshold consecutive failures;
- the first probe runs initialDelaySeconds after the container started, then
  one every periodSeconds, each bounded by timeoutSeconds;
- every failed probe records a Warning event Unhealthy "<Type> probe failed: ...";
- when a result changes, on_change(pod uid) is called (it enqueues the pod).

Results are keyed by container id, so a restarted container never inherits its
predecessor's results.

The workers are per-container timers, not reconcile loops, and do not use the
reconcile toolkit on purpose: each one has its own phase (initialDelaySeconds from
the container's start), period and thresholds, lives exactly as long as its
container, and reports through on_change into the pod sync loop, which is where
the reconciling happens. A shared runner would only add a queue between a timer
and its one probe.

Period and cost: each worker runs every periodSeconds of its probe (the pod's
choice; Kubernetes' default 10 s) and costs one probe (an exec, a TCP connect, an
HTTP GET or a gRPC health check in the pod's network namespace) per period; a pod
without probes has none. grpc probes call pod_ip(pod) (the agent's view of the pod's
IP, read at every probe: it is known only once the sandbox's network is set up).
"""

import logging
import threading
import time

from nodeagent.probes import handlers
from nodeagent.probes.results import ProbeResults
from nodeagent.runtime.container import APP, INIT, SANDBOX
from skiff.api.wellknown import is_sidecar

log = logging.getLogger("skiff.agent.probes")

TYPES = ("startup", "liveness", "readiness")


class ProbeManager:
    def __init__(self, runtime, recorder=None, on_change=None, pod_ip=None):
        self.runtime = runtime
        self.pod_ip = pod_ip or (lambda pod: pod.status.pod_ip)
        self.recorder = recorder
        self.on_change = on_change or (lambda uid: None)
        self._lock = threading.Lock()
        self._workers: dict = {}    # (container id, type) -> _Worker
        self._results: dict = {}    # container id -> {type: bool|None}
        self._pod_of: dict = {}     # container id -> pod uid

    # ------------------------------------------------------------ results

    def results(self, uid: str) -> dict:
        """{container id: ProbeResults} for one pod."""
        with self._lock:
            return {cid: ProbeResults(**r) for cid, r in self._results.items() if self._pod_of.get(cid) == uid}

    def _get(self, cid, probe_type):
        with self._lock:
            return self._results.get(cid, {}).get(probe_type)

    def _set(self, cid, probe_type, value) -> bool:
        with self._lock:
            r = self._results.get(cid)
            if r is None:
                return False  # the worker was stopped meanwhile
            if r.get(probe_type) == value:
                return False
            r[probe_type] = value
            return True

    # ------------------------------------------------------------ workers

    def sync_pod(self, pod, observed) -> None:
        """Run exactly the workers the pod's running app containers and sidecars (init
        containers with restartPolicy Always, which alone of init containers have probes) need."""
        uid = pod.metadata.uid
        specs = {(APP, c.name): c for c in pod.spec.containers}
        specs.update({(INIT, c.name): c for c in pod.spec.init_containers if is_sidecar(c)})
        sandboxes = sorted((o for o in observed if o.kind == SANDBOX and o.pod_uid == uid),
                           key=lambda o: o.attempt)
        sandbox = sandboxes[-1] if sandboxes and sandboxes[-1].running else None
        wanted = {}
        if sandbox is not None and not pod.metadata.deletion_timestamp:
            for o in observed:
                spec = specs.get((o.kind, o.container))
                if o.pod_uid != uid or not o.running or spec is None \
                        or o.sandbox_id != sandbox.id:
                    continue
                for t in TYPES:
                    if spec.HasField(f"{t}_probe"):
                        wanted[(o.id, t)] = (pod, spec, o, sandbox.pid)
        to_start = []
        with self._lock:
            for key in [k for k, w in self._workers.items() if w.uid == uid and k not in wanted]:
                self._workers.pop(key).stop()
            for cid in [c for c, u in self._pod_of.items() if u == uid and not any(k[0] == c for k in wanted)]:
                self._results.pop(cid, None)
                self._pod_of.pop(cid, None)
            for key, (p, spec, o, pid) in wanted.items():
                if key in self._workers:
                    continue
                cid, t = key
                if cid not in self._results:
                    self._results[cid] = {"liveness": None, "readiness": None, "startup": None}
                    if spec.HasField("readiness_probe"):
                        self._results[cid]["readiness"] = False
                    self._pod_of[cid] = uid
                worker = _Worker(self, p, spec, o, pid, t)
                self._workers[key] = worker
                to_start.append(worker)
        for w in to_start:
            w.start()

    def remove_pod(self, uid: str) -> None:
        with self._lock:
            for key in [k for k, w in self._workers.items() if w.uid == uid]:
                self._workers.pop(key).stop()
            for cid in [c for c, u in self._pod_of.items() if u == uid]:
                self._results.pop(cid, None)
                self._pod_of.pop(cid, None)

    def stop(self) -> None:
        with self._lock:
            for w in self._workers.values():
                w.stop()
            self._workers.clear()


class _Worker:
    def __init__(self, manager, pod, spec, observed, netns_pid, probe_type):
        self.manager = manager
        self.pod = pod
        self.uid = pod.metadata.uid
        self.spec = spec
        self.cid = observed.id
        self.started_at = observed.started_at
        self.netns_pid = netns_pid
        self.type = probe_type
        self.probe = getattr(spec, f"{probe_type}_probe")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"probe-{probe_type}-{spec.name}-{self.cid[:8]}")

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()

    def _run(self):
        try:
            self._loop()
        except Exception:  # noqa: BLE001 - a probe bug must not kill the agent
            log.exception("event=probe_worker_failed container=%s type=%s", self.cid[:12], self.type)

    def _loop(self):
        p = self.probe
        period = max(1, p.period_seconds or 10)
        timeout = max(1, p.timeout_seconds or 1)
        success_threshold = max(1, p.success_threshold or 1)
        failure_threshold = max(1, p.failure_threshold or 3)
        first = (self.started_at or time.time()) + p.initial_delay_seconds
        if self._stop.wait(max(0.0, first - time.time())):
            return
        successes = failures = 0
        has_startup = self.spec.HasField("startup_probe")
        while not self._stop.is_set():
            tick = time.monotonic()
            if self.type != "startup" and has_startup and self.manager._get(self.cid, "startup") is not True:
                self._stop.wait(min(period, 1.0))
                continue
            pod_ip = self.manager.pod_ip(self.pod) if p.HasField("grpc") else ""
            ok, message = handlers.run_handler(p, self.manager.runtime, self.spec, self.cid,
                                               self.netns_pid, float(timeout), pod_ip=pod_ip)
            if self._stop.is_set():
                return
            if ok:
                successes, failures = successes + 1, 0
            else:
                successes, failures = 0, failures + 1
                self._event(message)
            value = None
            if ok and successes >= success_threshold:
                value = True
            elif not ok and failures >= failure_threshold:
                value = False
            if value is not None:
                if self.manager._set(self.cid, self.type, value):
                    log.info("event=probe_result pod=%s/%s container=%s type=%s result=%s",
                             self.pod.metadata.namespace, self.pod.metadata.name, self.spec.name, self.type, value)
                    self.manager.on_change(self.uid)
            if value is False and self.type in ("liveness", "startup"):
                return  # the container is restarted; a new worker probes its successor
            if value is True and self.type == "startup":
                return
            self._stop.wait(max(0.0, period - (time.monotonic() - tick)))

    def _event(self, message):
        recorder = self.manager.recorder
        if recorder is None:
            return
        text = (message or "").strip()
        if len(text) > 500:
            text = text[:500] + "..."
        recorder.event(self.pod, "Warning", "Unhealthy", f"{self.type.capitalize()} probe failed: {text}")
