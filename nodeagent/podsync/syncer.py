"""The pod sync loop: informer on this node's pods -> work queue (pod uid) -> sync(uid).

sync(uid), level-triggered:
  1. desired: the pod from the informer's cache (copied), found by uid;
  2. actual: the pod's containers read from the engine by their labels;
  3. plan() (pure) -> Applier.apply() -> observe again, up to MAX_ROUNDS while the
     plan still changes something (sandbox -> init containers -> app containers
     usually settle in one sync);
  4. status: compute_status() (pure), written with update_status (compare and
     swap; on a conflict re-read and recompute) only when it differs.

A pod being deleted first waits, bounded, until its IP has left every Endpoints and
every node's proxier has had a sync interval to apply that (drain.py, when the agent
gives the syncer an EndpointsDrain); the sync returns early and the pod's key comes
back when the drop is seen or the wait ends. Then its preStop hooks and SIGTERM run.

A uid that is not in the cache is an orphan: its containers are stopped and
removed and its directory deleted - but only once the informer has synced, so a
restarted agent that has not heard from the API yet never removes anything.

Keys come from: informer events, container events from the engine (die, oom,
destroy), probe result changes, a back-off's end (add_after), and a resync of every
uid known to the cache, the engine or the data dir: at once when the cache has
synced (containers of pods deleted while the agent was away go at once), then every
resync_s (5 s). The loop is the reconcile toolkit's keyed Loop (workers: sync_workers,
8 by default); a failed sync is retried per uid after 0.5 s doubling up to 30 s. The
pods informer (this node's pods only: a field selector) comes from the agent's
InformerFactory; without one the syncer makes and runs its own.

Local ephemeral storage: a pod with an ephemeral-storage limit or a disk-backed emptyDir
sizeLimit is measured (diskusage.py) at most once per resync period, and judged
(ephemeral.py); a pod over a limit is evicted: killed at once, Failed / Evicted, an event.

Period and cost: the resync above (resync_s, 5 s: kubelet's PLEG relists every 1 s,
its pod workers resync every syncFrequency, 1 min) costs one sync per known pod: an
engine read of the pod's containers and a status computed, no API write when nothing
changed. With no pods it costs nothing (an idle agent with 10 pods takes about 0.5 %
of a core more than without: bench/README.md, idle_cost).
"""

import logging
import os
import threading
import time

from nodeagent.podsync import deadline, diskusage, ephemeral
from nodeagent.podsync import plan as planmod
from nodeagent.podsync import volumes
from nodeagent.podsync.model import MUTATING, BackoffPolicy, WaitBackoff
from nodeagent.podsync.status import compute_status
from nodeagent.runtime.container import APP, SANDBOX
from skiff import client as clientmod
from skiff.api import objects_pb2 as pb
from skiff.informer import InformerFactory
from skiff.reconcile import BACKOFF, Loop

log = logging.getLogger("skiff.agent.podsync")

MAX_ROUNDS = 8
STATUS_ATTEMPTS = 5
ENGINE_EVENTS = ("die", "oom", "destroy")


class PodSyncer:
    def __init__(self, *, client, runtime, applier, probes, node_name: str, host_ip: str, data_dir: str,
                 policy: BackoffPolicy = BackoffPolicy(), workers: int = 8, resync_s: float = 5.0,
                 informer_client=None, informers: InformerFactory | None = None, drain=None):
        self.client = client            # status writes: give it a short failover budget
        informer_client = informer_client or client
        self.runtime = runtime
        self.applier = applier
        self.probes = probes
        self.node_name = node_name
        self.host_ip = host_ip
        self.data_dir = data_dir
        self.policy = policy
        self.workers = workers
        self.resync_s = resync_s
        self.drain = drain              # EndpointsDrain, or None: stop deleted pods at once
        self._own_informers = informers is None
        self.informers = informers if informers is not None else InformerFactory(informer_client)
        self.informer = self.informers.informer("pods", field_selector=f"spec.nodeName={node_name}")
        self.loop = Loop("podsync", self._sync_key, informers=(self.informer,), list_keys=self._all_uids,
                         workers=workers, resync_s=resync_s, resync_at_start=True,
                         base_delay_s=0.5, max_delay_s=30.0, logger=log)
        self.queue = self.loop.queue
        self._stop = threading.Event()          # the engine event stream
        self._threads: list = []
        self._last_written: dict = {}   # uid -> (resourceVersion, status) of our last status write
        self._lock = threading.Lock()
        self.syncs = 0
        self._evictions: dict = {}      # uid -> eviction message (ephemeral.py), until the pod is gone
        self._measured: dict = {}       # uid -> monotonic time of its last disk usage measurement

    # ------------------------------------------------------------ lifecycle

    def start(self) -> "PodSyncer":
        self.informer.add_handler(on_add=self._on_pod, on_update=lambda old, new: self._on_update(old, new),
                                  on_delete=self._on_pod)
        if self.drain is not None:
            self.drain.wake = self.enqueue
            self.drain.start()
        self.loop.start()
        if self._own_informers:
            self.informers.start()
        self._spawn(self._engine_events, "podsync-engine-events")
        return self

    def stop(self) -> None:
        """Stop the loops; containers keep running (the next agent adopts them)."""
        self._stop.set()
        self.loop.stop()
        if self._own_informers:
            self.informers.stop()
        self.probes.stop()

    def _spawn(self, fn, name):
        t = threading.Thread(target=fn, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    # ------------------------------------------------------------ keys

    def _on_pod(self, pod):
        self.queue.add(pod.metadata.uid)

    def _on_update(self, old, new):
        if old.metadata.uid != new.metadata.uid:
            self.queue.add(old.metadata.uid)
        self.queue.add(new.metadata.uid)

    def enqueue(self, uid: str) -> None:
        self.queue.add(uid)

    def _all_uids(self) -> set:
        uids = {p.metadata.uid for p in self.informer.list()}
        try:
            uids |= self.runtime.pod_uids()
        except Exception as exc:  # noqa: BLE001 - the engine is down; the cache still resyncs
            log.info("event=engine_unreachable error=%s", str(exc)[:200].replace(" ", "_"))
        uids |= set(volumes.pod_uids_on_disk(self.data_dir))
        return uids

    def _engine_events(self):
        """An event source (like an informer), not a loop: the engine's stream of container events."""
        for action, uid in self.runtime.events(self._stop):
            if action in ENGINE_EVENTS:
                self.queue.add(uid)

    def _sync_key(self, uid: str):
        """The Loop's sync: a failed pod sync backs off per uid; else the requeue delay (or None)."""
        after, failed = self.sync(uid)
        return BACKOFF if failed else after

    # ------------------------------------------------------------ sync

    def pod_by_uid(self, uid: str):
        for pod in self.informer.list():
            if pod.metadata.uid == uid:
                return pod
        return None

    def sync(self, uid: str):
        """One level-triggered sync of pod uid; returns (requeue after s or None, failed)."""
        self.syncs += 1
        cached = self.pod_by_uid(uid)
        if cached is None:
            return self._sync_orphan(uid)
        pod = pb.Pod()
        pod.CopyFrom(cached)
        if pod.metadata.deletion_timestamp:
            left = self._drain_left_s(pod)
            if left > 0:
                return left + 0.01, False   # woken earlier by the endpoints drop
        failed = False
        waits = []
        observed = []
        evicted = self._eviction(pod)
        for round_no in range(MAX_ROUNDS):
            observed = self.runtime.list(uid)
            if round_no == 0:
                failed |= self._adopt_network(pod, observed)
            results = self.probes.results(uid)
            actions = planmod.plan(pod, observed, time.time(), results, self.applier.backoff_state, self.policy,
                                   evicted=bool(evicted))
            waits = [a for a in actions if isinstance(a, WaitBackoff)]
            if not actions:
                break
            outcome = self.applier.apply(pod, uid, actions, observed)
            if outcome.finalized:
                self._forget(uid)
                return None, False
            if outcome.failed:
                failed = True
                observed = self.runtime.list(uid)
                break
            if not any(isinstance(a, MUTATING) for a in actions):
                break
        self.probes.sync_pod(pod, observed)
        if not pod.metadata.deletion_timestamp:
            self.applier.refresh_volumes(pod)   # downwardAPI labels, projected tokens: kept current
        waiting = {a.container: ("CrashLoopBackOff", a.message) for a in waits}
        waiting.update(self.applier.waiting_reasons(uid))
        self._write_status(pod, observed, waiting, evicted)
        # Look again when a back-off ends or the pod's activeDeadlineSeconds comes.
        left = deadline.remaining_s(pod, time.time())
        after = min([a.remaining_s for a in waits] + ([max(0.0, left)] if left is not None else []), default=None)
        return (max(0.05, after + 0.05) if after is not None else None), failed

    def _eviction(self, pod) -> str:
        """The eviction message of a pod over its ephemeral-storage limits ("" if none): a
        running pod with limits is measured at most once per resync period (the kubelet's
        eviction manager: every 10 s); once judged over, it stays evicted."""
        uid, meta = pod.metadata.uid, pod.metadata
        with self._lock:
            known = self._evictions.get(uid)
        if known:
            return known
        if pod.status.phase in planmod.TERMINAL_PHASES or meta.deletion_timestamp or not ephemeral.watched(pod):
            return ""
        now = time.monotonic()
        with self._lock:
            last = self._measured.get(uid)
            if last is not None and now - last < self.resync_s * 0.9:
                return ""
            self._measured[uid] = now
        try:
            usage = diskusage.measure(self.runtime, self.data_dir, pod)
        except Exception as exc:  # noqa: BLE001 - the engine is down: measured again next period
            log.info("event=disk_usage_failed pod=%s/%s error=%s", meta.namespace, meta.name,
                     str(exc)[:200].replace(" ", "_"))
            return ""
        message = ephemeral.judge(pod, usage)
        if not message:
            return ""
        with self._lock:
            self._evictions[uid] = message
        log.info("event=pod_evicted pod=%s/%s uid=%s reason=%s containers_b=%s volumes_b=%s message=%r",
                 meta.namespace, meta.name, uid, ephemeral.REASON, usage.containers, usage.volumes, message)
        if self.applier.recorder is not None:
            self.applier.recorder.event(pod, "Warning", ephemeral.REASON, message)
        return message

    def _drain_left_s(self, pod) -> float:
        """Seconds a deleted pod with running app containers still waits for its IP to
        leave the Endpoints before its preStop hooks and SIGTERM (drain.py); 0: go."""
        if self.drain is None:
            return 0.0
        uid, meta = pod.metadata.uid, pod.metadata
        if not any(o.running and o.kind == APP for o in self.runtime.list(uid)):
            return 0.0
        grace = meta.deletion_grace_period_seconds if meta.HasField("deletion_grace_period_seconds") \
            else planmod.pod_grace_s(pod)
        ip = self.applier.pod_ip(pod) or ""
        left, was_waiting = self.drain.remaining_s(uid, ip, grace)
        if left > 0 and not was_waiting:
            log.info("event=endpoints_drain_wait pod=%s/%s ip=%s wait_s=%.2f", meta.namespace, meta.name, ip,
                     left)
        elif left <= 0 and was_waiting:
            log.info("event=endpoints_drained pod=%s/%s ip=%s waited_s=%.2f", meta.namespace, meta.name, ip,
                     self.drain.waited_s(uid))
        return left

    def _adopt_network(self, pod, observed) -> bool:
        """A running sandbox whose network this agent has not verified yet (an agent
        restart, a crash in the middle of a setup) is checked and completed; True if that failed."""
        if pod.metadata.deletion_timestamp:
            return False
        sandboxes = sorted((o for o in observed if o.kind == SANDBOX), key=lambda o: o.attempt)
        if not sandboxes or not sandboxes[-1].running:
            return False
        try:
            self.applier.ensure_network(pod, sandboxes[-1].id)
        except Exception as exc:  # noqa: BLE001 - StartError etc.: retried with back-off
            log.info("event=pod_network_pending pod=%s/%s error=%s", pod.metadata.namespace, pod.metadata.name,
                     str(exc)[:200].replace(" ", "_"))
            return True
        return False

    def _sync_orphan(self, uid):
        if not self.informer.synced:
            return 1.0, False  # never clean up before the cache knows the API's pods
        for _ in range(MAX_ROUNDS):
            observed = self.runtime.list(uid)
            if not observed and not os.path.exists(volumes.pod_dir(self.data_dir, uid)):
                self._forget(uid)
                return None, False  # nothing left of it
            actions = planmod.plan_orphan(observed, time.time())
            outcome = self.applier.apply(None, uid, actions, observed)
            if outcome.finalized:
                log.info("event=orphan_removed uid=%s containers=%d", uid, len(observed))
                self._forget(uid)
                return None, False
            if outcome.failed:
                return None, True
        return None, True

    def _forget(self, uid):
        with self._lock:
            self._last_written.pop(uid, None)
            self._evictions.pop(uid, None)
            self._measured.pop(uid, None)
        self.probes.remove_pod(uid)
        if self.drain is not None:
            self.drain.forget(uid)

    # ------------------------------------------------------------ status

    def _status(self, pod, observed, waiting, evicted=""):
        return compute_status(pod, observed, time.time(), self.probes.results(pod.metadata.uid), waiting,
                              host_ip=self.host_ip, pod_ip=self.applier.pod_ip(pod), evicted=evicted)

    def _write_status(self, pod, observed, waiting, evicted=""):
        uid = pod.metadata.uid
        status = self._status(pod, observed, waiting, evicted)
        if status == pod.status:
            return
        with self._lock:
            last = self._last_written.get(uid)
        if last is not None and last[1] == status and _rv(pod) <= _rv_text(last[0]):
            return  # we wrote exactly this already; the cache has not caught up yet
        self.applier.flush_events(uid)
        obj = pb.Pod()
        obj.CopyFrom(pod)
        obj.status.CopyFrom(status)
        for _ in range(STATUS_ATTEMPTS):
            try:
                written = self.client.update_status(obj)
                with self._lock:
                    self._last_written[uid] = (written.metadata.resource_version, _copy_status(written.status))
                log.info("event=pod_status_written pod=%s/%s phase=%s", pod.metadata.namespace,
                         pod.metadata.name, written.status.phase)
                return
            except clientmod.Conflict:
                try:
                    fresh = self.client.get("pods", pod.metadata.name, pod.metadata.namespace)
                except clientmod.NotFound:
                    return
                if fresh.metadata.uid != uid:
                    return
                status = self._status(fresh, observed, waiting, evicted)
                if status == fresh.status:
                    return
                obj = pb.Pod()
                obj.CopyFrom(fresh)
                obj.status.CopyFrom(status)
            except clientmod.NotFound:
                return
        raise clientmod.Conflict(f"status of pod {pod.metadata.namespace}/{pod.metadata.name}: "
                                 f"still conflicting after {STATUS_ATTEMPTS} attempts")


def _copy_status(status):
    out = pb.PodStatus()
    out.CopyFrom(status)
    return out


def _rv(pod) -> int:
    return _rv_text(pod.metadata.resource_version)


def _rv_text(text) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        return 0
