"""The reconcile toolkit (skiff.reconcile) and the informer factory: pacing with a fake clock,
backoff sequences, the keyed loop, the runner thread, leader supervision, one informer per kind."""

import math
import threading
import time

import pytest

from skiff import client as clientmod
from skiff.api import objects_pb2 as pb
from skiff.informer import WATCH_SLICE_S, Informer, InformerFactory
from skiff.reconcile import BACKOFF, BoundedFrequencyRunner, Group, LeaderSupervisor, Loop, Pacing, Quiet
from skiff.workqueue import WorkQueue
from tests.helpers import wait_until

# ---------------------------------------------------------------- backoff sequences


@pytest.mark.parametrize("base, cap, failures, delays", [
    (0.05, 30.0, 5, [0.05, 0.1, 0.2, 0.4, 0.8]),           # controllers' default
    (1.0, 10.0, 6, [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]),      # the scheduler: Kubernetes' pod backoff
    (0.5, 30.0, 8, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]),   # pod sync
])
def test_workqueue_backoff_sequence(base, cap, failures, delays):
    q = WorkQueue(base_delay_s=base, max_delay_s=cap)
    assert [q.add_rate_limited("k") for _ in range(failures)] == delays
    q.forget("k")
    assert q.failures("k") == 0 and q.add_rate_limited("k") == base


# ---------------------------------------------------------------- pacing (fake clock)

def simulate(pacing, until, requests=(), fails=(), again=None):
    """Start times of the syncs a Pacing allows up to `until`, with syncs taking no time,
    `requests` arriving at the given times and the syncs numbered in `fails` failing."""
    runs, pending, now = [], sorted(requests), 0.0
    pacing.started(0.0)
    while True:
        due = pacing.due_at()
        next_request = pending[0] if pending else math.inf
        if min(due, next_request) > until:
            return runs
        if next_request <= due:        # a request arriving at the due time is served by that sync
            now = max(now, pending.pop(0))
            pacing.request()
            continue
        now = max(now, due)
        n = len(runs)
        pacing.began(now)
        runs.append(round(now, 6))
        pacing.finished(now, ok=n not in fails, again_s=again(n) if again else None)


@pytest.mark.parametrize("name, pacing, until, requests, fails, again, runs", [
    ("periodic only", dict(min_interval_s=0.5, max_interval_s=30), 70, (), (), None, [0, 30, 60]),
    ("churn is batched by min interval", dict(min_interval_s=0.5, max_interval_s=30), 40,
     (0.1, 0.2, 0.3, 0.7, 0.75, 2.0), (), None, [0, 0.5, 1.0, 2.0, 32.0]),
    ("a request long after the last sync runs at once", dict(min_interval_s=0.5, max_interval_s=30), 20,
     (10.0,), (), None, [0, 10.0]),
    ("failures back off, success resets the period", dict(min_interval_s=0.5, max_interval_s=30,
                                                          retry_base_s=0.5, retry_max_s=30), 40,
     (), (0, 1, 2, 3), None, [0, 0.5, 1.5, 3.5, 7.5, 37.5]),
    ("retry delay is capped", dict(max_interval_s=100, retry_base_s=1, retry_max_s=2), 7,
     (), tuple(range(10)), None, [0, 1, 3, 5, 7]),
    ("constant retry (base = cap)", dict(max_interval_s=1, retry_base_s=1, retry_max_s=1), 4,
     (), (1, 2), None, [0, 1, 2, 3, 4]),
    ("a request runs before a pending retry", dict(min_interval_s=0.5, max_interval_s=30, retry_base_s=4), 40,
     (1.0,), (0,), None, [0, 1.0, 31.0]),
    ("the sync's answer overrides the period", dict(max_interval_s=30), 16, (), (), lambda n: 5, [0, 5, 10, 15]),
    ("only on request without a period", dict(min_interval_s=1), 10, (3.0, 3.5), (), None, [0, 3.0, 4.0]),
    ("not at start: first after one period", dict(max_interval_s=1, run_at_start=False), 3.5, (), (), None,
     [1, 2, 3]),
])
def test_pacing(name, pacing, until, requests, fails, again, runs):
    assert simulate(Pacing(**pacing), until, requests, fails, again) == runs, name


def test_pacing_request_during_a_sync_asks_for_another():
    p = Pacing(min_interval_s=0.5, max_interval_s=30)
    p.started(0.0)
    p.began(0.0)
    p.request()                       # arrives while the sync runs
    assert p.finished(0.2, ok=True) == pytest.approx(30.0)
    assert p.due_at() == 0.5          # still served, after min interval from the start


# ---------------------------------------------------------------- fakes

class FakeInformer:
    def __init__(self, synced=True):
        self._synced = threading.Event()
        if synced:
            self._synced.set()

    def wait_synced(self, timeout_s):
        return self._synced.wait(timeout_s)

    @property
    def synced(self):
        return self._synced.is_set()


# ---------------------------------------------------------------- the runner thread

def test_runner_waits_for_informers_then_runs_on_request_and_periodically():
    inf, calls = FakeInformer(synced=False), []
    runner = BoundedFrequencyRunner("t", lambda: calls.append(time.monotonic()), min_interval_s=0.0,
                                    max_interval_s=0.2, informers=(inf,)).start()
    try:
        runner.run()
        time.sleep(0.3)
        assert calls == []                                   # nothing before the cache is complete
        inf._synced.set()
        wait_until(lambda: len(calls) >= 3, 5, "start-up sync and periodic syncs")
        before = len(calls)
        runner.run()
        wait_until(lambda: len(calls) > before, 5, "a requested sync")
    finally:
        runner.stop(join_s=2.0)
    done = len(calls)
    time.sleep(0.3)
    assert len(calls) == done                                # stopped means stopped


def test_runner_retries_failures_with_backoff_and_survives_bugs():
    attempts = []

    def sync():
        attempts.append(time.monotonic())
        if len(attempts) <= 3:
            raise RuntimeError("boom") if len(attempts) != 2 else clientmod.Unavailable("down")
        return None

    runner = BoundedFrequencyRunner("t", sync, retry_base_s=0.05, retry_max_s=1.0).start()
    try:
        wait_until(lambda: len(attempts) >= 4, 5, "three retries then success")
        gaps = [b - a for a, b in zip(attempts, attempts[1:4])]
        assert gaps[0] >= 0.045 and gaps[1] >= 0.095 and gaps[2] >= 0.195      # 0.05, 0.1, 0.2
        assert runner.pacing.failures == 0
    finally:
        runner.stop(join_s=2.0)
    time.sleep(0.1)
    assert len(attempts) == 4                                # no period: only on request


def test_runner_quiet_is_neither_logged_nor_retried(caplog):
    calls = []

    def sync():
        calls.append(1)
        raise Quiet()

    runner = BoundedFrequencyRunner("t", sync, retry_base_s=0.01).start()
    try:
        wait_until(lambda: calls, 2, "the sync")
        time.sleep(0.1)
        assert len(calls) == 1 and "sync_failed" not in caplog.text
    finally:
        runner.stop(join_s=2.0)


# ---------------------------------------------------------------- the keyed loop

def test_loop_backoff_then_success_then_requeue_after():
    seen, lock = [], threading.Lock()
    answers = {"a": [BACKOFF, BACKOFF, 0.05, None]}

    def sync(key):
        with lock:
            seen.append((key, time.monotonic()))
            return answers[key].pop(0)

    loop = Loop("t", sync, informers=(FakeInformer(),), base_delay_s=0.05, max_delay_s=1.0).start()
    try:
        loop.enqueue("a")
        wait_until(lambda: len(seen) == 4, 5, "two backoffs, a requeue and a final sync")
        times = [t for _, t in seen]
        assert times[1] - times[0] >= 0.045 and times[2] - times[1] >= 0.095    # 0.05 then 0.1
        assert loop.queue.failures("a") == 0                                  # forgotten after success
    finally:
        loop.stop()


def test_loop_exceptions_back_off_and_quiet_drops_the_key():
    calls = []

    def sync(key):
        calls.append(key)
        if key == "bug" and calls.count("bug") < 3:
            raise RuntimeError("bug")
        if key == "quiet":
            raise Quiet()
        return None

    loop = Loop("t", sync, informers=(FakeInformer(),), base_delay_s=0.01).start()
    try:
        loop.enqueue("bug")
        loop.enqueue("quiet")
        wait_until(lambda: calls.count("bug") == 3, 5, "the failing key retried until it works")
        time.sleep(0.1)
        assert calls.count("quiet") == 1 and loop.queue.failures("quiet") == 0
    finally:
        loop.stop()


def test_loop_waits_for_informers_and_resyncs_at_start():
    inf, seen = FakeInformer(synced=False), []
    loop = Loop("t", lambda key: seen.append(key), informers=(inf,), list_keys=lambda: ["x", "y"],
                resync_s=60, resync_at_start=True).start()
    try:
        loop.enqueue("early")
        time.sleep(0.3)
        assert seen == []
        inf._synced.set()
        wait_until(lambda: set(seen) == {"early", "x", "y"}, 5, "queued key and the start-up resync")
    finally:
        loop.stop()


# ---------------------------------------------------------------- leader supervision

class Member:
    def __init__(self, name, log):
        self.name, self.log = name, log

    def start(self):
        self.log.append(f"start {self.name}")

    def stop(self):
        self.log.append(f"stop {self.name}")


def test_leader_supervisor_over_a_callable_and_a_group():
    leading, log = threading.Event(), []
    sup = LeaderSupervisor(leading.is_set, lambda: Group(Member("a", log), None, Member("b", log)),
                           period_s=0.01).start()
    try:
        time.sleep(0.05)
        assert log == [] and not sup.leading
        leading.set()
        wait_until(lambda: log == ["start a", "start b"], 2, "the group started in order")
        leading.clear()
        wait_until(lambda: log[2:] == ["stop b", "stop a"], 2, "stopped in reverse order")
        leading.set()
        wait_until(lambda: len(log) == 6, 2, "a fresh group for the next term")
        assert sup.terms == 2
    finally:
        sup.stop()
    assert log[-2:] == ["stop b", "stop a"]


def test_leader_supervisor_treats_a_failing_predicate_as_not_leading():
    log = []

    def leads():
        raise RuntimeError("store closed")

    sup = LeaderSupervisor(leads, lambda: Member("a", log), period_s=0.01).start()
    time.sleep(0.05)
    sup.stop()
    assert log == [] and sup.terms == 0


# ---------------------------------------------------------------- informer factory

class FakeClient:
    def __init__(self, items):
        self.items = items
        self.lists = []

    def list(self, kind, namespace="", label_selector="", field_selector=""):
        self.lists.append((kind, field_selector))
        return list(self.items.get(kind, [])), "1"

    def watch(self, kind, **kwargs):
        time.sleep(0.02)
        return iter(())


def _svc(name):
    return pb.Service(metadata=pb.ObjectMeta(name=name, namespace="default", resource_version="1"))


def test_factory_returns_one_informer_per_kind():
    factory = InformerFactory(FakeClient({}))
    svc = factory.informer("services")
    assert factory.informer("services") is svc
    assert factory.informer("svc") is svc and factory.informer("Service") is svc    # aliases: one kind
    pods = factory.informer("pods", field_selector="spec.nodeName=n1")
    assert factory.informer("pods", field_selector="spec.nodeName=n1") is pods
    with pytest.raises(ValueError, match="one informer per kind per process"):
        factory.informer("pods")                 # the same kind with another selector
    assert len(factory.informers()) == 2


def test_factory_starts_and_syncs_all_and_replays_the_cache_to_late_handlers():
    client = FakeClient({"services": [_svc("a"), _svc("b")], "endpoints": []})
    factory = InformerFactory(client)
    svc = factory.informer("services")
    early = []
    svc.add_handler(on_add=lambda o: early.append(o.metadata.name))
    factory.start()
    try:
        assert factory.wait_synced(5)
        late_kind = factory.informer("endpoints")            # made after start(): started at once
        assert late_kind.wait_synced(5) and factory.synced
        assert sorted(early) == ["a", "b"]
        late = []
        svc.add_handler(on_add=lambda o: late.append(o.metadata.name))
        assert sorted(late) == ["a", "b"]                    # a late handler sees the cache as adds
        assert sorted({k for k, _ in client.lists}) == ["endpoints", "services"]
    finally:
        factory.stop()


class _BlockingCall:
    """A watch stream that yields nothing until cancelled (like a quiet gRPC stream)."""

    def __init__(self):
        self.cancelled = threading.Event()

    def cancel(self):
        self.cancelled.set()


class BlockingWatchClient(FakeClient):
    def __init__(self):
        super().__init__({})
        self.calls = []
        self.timeouts = []

    def watch(self, kind, on_stream=None, timeout_s=None, **kwargs):
        call = _BlockingCall()
        self.calls.append(call)
        self.timeouts.append(timeout_s)
        on_stream(call)
        call.cancelled.wait(timeout_s)   # a slice that ends early only when cancelled
        return iter(())


def test_informer_stop_cancels_its_open_watch_instead_of_waiting_for_the_slice():
    client = BlockingWatchClient()
    inf = Informer(client, "services").start()
    assert inf.wait_synced(5)
    deadline = time.monotonic() + 5
    while not client.calls and time.monotonic() < deadline:
        time.sleep(0.01)
    assert client.timeouts == [WATCH_SLICE_S]
    t = time.monotonic()
    inf.stop()
    inf._thread.join(5)
    assert not inf._thread.is_alive() and time.monotonic() - t < 1.0
    assert client.calls[-1].cancelled.is_set() and len(client.calls) == 1


# ---------------------------------------------------------------- the agent's loops share informers

def test_agent_loops_share_one_informer_per_kind(tmp_path):
    from nodeagent.dns.server import NodeDns
    from nodeagent.network.manager import NetworkManager
    from nodeagent.podsync.syncer import PodSyncer
    from nodeagent.proxy.proxier import Proxier

    factory = InformerFactory(FakeClient({}))
    network = NetworkManager(client=None, node_name="n1", address="10.0.0.1", data_dir=str(tmp_path),
                             informers=factory)
    proxier = Proxier(None, "n1", announce=False, informers=factory)
    dns = NodeDns(None, network, informers=factory)
    syncer = PodSyncer(client=None, runtime=None, applier=None, probes=None, node_name="n1", host_ip="",
                       data_dir=str(tmp_path), informers=factory)
    assert proxier.nodes is network.nodes
    assert dns.view.services is proxier.services and dns.view.endpoints_inf is proxier.endpoints
    assert syncer.informer.field_selector == "spec.nodeName=n1"
    kinds = sorted((inf.kind, inf.field_selector) for inf in factory.informers())
    # DNS does not watch every pod: the only pods informer is the syncer's, this node's pods.
    assert kinds == [("endpoints", ""), ("nodes", ""), ("pods", "spec.nodeName=n1"), ("services", "")]
