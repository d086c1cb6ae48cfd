"""Table tests of the pure pod planner (nodeagent/podsync/plan.py), plus whole lifecycles
driven through a fake engine that applies the planner's actions."""

import dataclasses

import pytest

from nodeagent.podsync import spechash
from nodeagent.probes.results import ProbeResults
from nodeagent.podsync.model import (
    BackoffEntry, BackoffPolicy, CreateSandbox, FinalizePod, KillContainer, RemoveContainer, StartContainer, WaitBackoff, backoff_key)
from nodeagent.runtime.container import APP, INIT, SANDBOX, Observed
from nodeagent.podsync.plan import plan, plan_orphan, termination_grace_s
from nodeagent.runtime.timeutil import rfc3339
from skiff.api import objects_pb2 as pb

UID = "0123456789abcdef"
NOW = 1_700_000_000.0


def make_pod(apps=("a",), inits=(), restart_policy="Always", grace=30, deleting_since=None,
             deletion_grace=None, phase="", image="skiff/busybox:latest"):
    pod = pb.Pod(api_version="v1", kind="Pod")
    pod.metadata.name = "p"
    pod.metadata.namespace = "ns"
    pod.metadata.uid = UID
    pod.spec.restart_policy = restart_policy
    pod.spec.termination_grace_period_seconds = grace
    pod.spec.node_name = "node1"
    for name in inits:
        pod.spec.init_containers.add(name=name, image=image, image_pull_policy="IfNotPresent")
    for name in apps:
        pod.spec.containers.add(name=name, image=image, image_pull_policy="IfNotPresent")
    if deleting_since is not None:
        pod.metadata.deletion_timestamp = rfc3339(deleting_since)
        if deletion_grace is not None:
            pod.metadata.deletion_grace_period_seconds = deletion_grace
    pod.status.phase = phase
    return pod


def spec_of(pod, name):
    for c in list(pod.spec.init_containers) + list(pod.spec.containers):
        if c.name == name:
            return c
    raise KeyError(name)


def sandbox(cid="sb0", attempt=0, state="running", pod=None):
    h = spechash.sandbox_hash(pod or make_pod())
    return Observed(id=cid, pod_uid=UID, container="POD", kind=SANDBOX, attempt=attempt, state=state,
                    spec_hash=h, started_at=NOW - 100, finished_at=NOW - 50 if state == "exited" else 0.0)


def ctr(pod, name, kind=APP, cid=None, attempt=0, restarts=None, state="running", exit_code=0,
        finished_at=None, sb="sb0", spec_hash=None):
    exited = state == "exited"
    return Observed(
        id=cid or f"{name}{attempt}", pod_uid=UID, container=name, kind=kind, attempt=attempt,
        restart_count=attempt if restarts is None else restarts,
        spec_hash=spec_hash if spec_hash is not None else spechash.container_hash(spec_of(pod, name)),
        state=state, exit_code=exit_code, started_at=NOW - 60 + attempt,
        finished_at=(finished_at if finished_at is not None else NOW - 30 + attempt) if exited else 0.0,
        sandbox_id=sb)


def kinds_of(actions):
    """A compact, comparable rendering of a plan."""
    out = []
    for a in actions:
        if isinstance(a, CreateSandbox):
            out.append(("sandbox", a.attempt))
        elif isinstance(a, StartContainer):
            out.append(("start", a.container, a.attempt, a.restart_count))
        elif isinstance(a, KillContainer):
            out.append(("kill", a.container, a.reason))
        elif isinstance(a, RemoveContainer):
            out.append(("remove", a.container_id))
        elif isinstance(a, WaitBackoff):
            out.append(("backoff", a.container))
        elif isinstance(a, FinalizePod):
            out.append(("finalize", a.delete_from_api))
    return out


POD2 = make_pod(apps=("a", "b"))
PODI = make_pod(apps=("a",), inits=("i1", "i2"))


def _p(restart_policy):
    return make_pod(apps=("a",), restart_policy=restart_policy)


CASES = [
    # (name, pod, observed, probe results, expected)
    ("new pod: sandbox then every app container", POD2, [],
     {}, [("sandbox", 0), ("start", "a", 0, 0), ("start", "b", 0, 0)]),
    ("new pod with init containers: sandbox then the first init only", PODI, [],
     {}, [("sandbox", 0), ("start", "i1", 0, 0)]),
    ("init running: wait", PODI, [sandbox(), ctr(PODI, "i1", INIT)],
     {}, []),
    ("init 1 done: start init 2", PODI,
     [sandbox(), ctr(PODI, "i1", INIT, state="exited")],
     {}, [("start", "i2", 0, 0)]),
    ("all init done: start the apps", PODI,
     [sandbox(), ctr(PODI, "i1", INIT, state="exited"), ctr(PODI, "i2", INIT, state="exited")],
     {}, [("start", "a", 0, 0)]),
    ("init failed, Always: restart it (first restart has no back-off)", PODI,
     [sandbox(), ctr(PODI, "i1", INIT, state="exited", exit_code=1)],
     {}, [("start", "i1", 1, 1)]),
    ("init failed, Never: the pod fails, its sandbox is stopped",
     make_pod(inits=("i1",), restart_policy="Never"),
     [sandbox(), ctr(make_pod(inits=("i1",)), "i1", INIT, state="exited", exit_code=1)],
     {}, [("kill", "POD", "StopSandbox")]),
    ("init done in an older sandbox does not count in a new one", PODI,
     [sandbox("sb0", 0, "exited"), sandbox("sb1", 1),
      ctr(PODI, "i1", INIT, state="exited", sb="sb0"), ctr(PODI, "i2", INIT, state="exited", sb="sb0")],
     {}, [("start", "i1", 1, 1), ("remove", "sb0")]),
    ("adoption: everything runs with the right hash -> nothing to do", POD2,
     [sandbox(), ctr(POD2, "a"), ctr(POD2, "b")],
     {}, []),
    ("adoption with init containers done and apps running -> nothing", PODI,
     [sandbox(), ctr(PODI, "i1", INIT, state="exited"), ctr(PODI, "i2", INIT, state="exited"), ctr(PODI, "a")],
     {}, []),
    ("spec hash changed: kill and restart", POD2,
     [sandbox(), ctr(POD2, "a", spec_hash="v1:0000000000000000"), ctr(POD2, "b")],
     {}, [("kill", "a", "SpecChanged"), ("start", "a", 1, 1)]),
    ("a hash of another version is not a change", POD2,
     [sandbox(), ctr(POD2, "a", spec_hash="v0:whatever"), ctr(POD2, "b")],
     {}, []),
    ("liveness failed, Always: kill and restart", POD2,
     [sandbox(), ctr(POD2, "a"), ctr(POD2, "b")],
     {"a0": ProbeResults(liveness=False)}, [("kill", "a", "LivenessProbe"), ("start", "a", 1, 1)]),
    ("liveness failed, Never: kill, no restart, the pod is done", _p("Never"),
     [sandbox(), ctr(_p("Never"), "a")],
     {"a0": ProbeResults(liveness=False)}, [("kill", "a", "LivenessProbe"), ("kill", "POD", "StopSandbox")]),
    ("startup probe failed: kill and restart", POD2,
     [sandbox(), ctr(POD2, "a"), ctr(POD2, "b")],
     {"b0": ProbeResults(startup=False)}, [("kill", "b", "StartupProbe"), ("start", "b", 1, 1)]),
    ("readiness failure never kills", POD2,
     [sandbox(), ctr(POD2, "a"), ctr(POD2, "b")],
     {"a0": ProbeResults(readiness=False)}, []),
    ("exited 1, Always: restart", _p("Always"),
     [sandbox(), ctr(_p("Always"), "a", state="exited", exit_code=1)],
     {}, [("start", "a", 1, 1)]),
    ("exited 0, Always: restart", _p("Always"),
     [sandbox(), ctr(_p("Always"), "a", state="exited", exit_code=0)],
     {}, [("start", "a", 1, 1)]),
    ("exited 1, OnFailure: restart", _p("OnFailure"),
     [sandbox(), ctr(_p("OnFailure"), "a", state="exited", exit_code=1)],
     {}, [("start", "a", 1, 1)]),
    ("exited 0, OnFailure: done, sandbox stopped", _p("OnFailure"),
     [sandbox(), ctr(_p("OnFailure"), "a", state="exited", exit_code=0)],
     {}, [("kill", "POD", "StopSandbox")]),
    ("exited 1, Never: done, sandbox stopped", _p("Never"),
     [sandbox(), ctr(_p("Never"), "a", state="exited", exit_code=1)],
     {}, [("kill", "POD", "StopSandbox")]),
    ("one of two exited under Never: keep the pod running", make_pod(apps=("a", "b"), restart_policy="Never"),
     [sandbox(), ctr(POD2, "a", state="exited", exit_code=0), ctr(POD2, "b")],
     {}, []),
    ("sandbox died: kill the apps, new sandbox (attempt 1), start the apps again", POD2,
     [sandbox(state="exited"), ctr(POD2, "a"), ctr(POD2, "b", state="exited", exit_code=137)],
     {}, [("kill", "a", "SandboxChanged"), ("sandbox", 1), ("start", "a", 1, 1), ("start", "b", 1, 1)]),
    ("sandbox died, pod with init containers: init runs again from the first", PODI,
     [sandbox(state="exited"), ctr(PODI, "i1", INIT, state="exited"), ctr(PODI, "i2", INIT, state="exited"),
      ctr(PODI, "a")],
     {}, [("kill", "a", "SandboxChanged"), ("sandbox", 1), ("start", "i1", 1, 1)]),
    ("sandbox died, Never, containers already ran: no new sandbox", _p("Never"),
     [sandbox(state="exited"), ctr(_p("Never"), "a", state="exited")],
     {}, []),
    ("sandbox died, OnFailure, all succeeded: nothing to start, no sandbox", _p("OnFailure"),
     [sandbox(state="exited"), ctr(_p("OnFailure"), "a", state="exited", exit_code=0)],
     {}, []),
    ("a container running in an old sandbox is killed and started in the current one", POD2,
     [sandbox("sb0", 0, "exited"), sandbox("sb1", 1), ctr(POD2, "a", sb="sb0"), ctr(POD2, "b", sb="sb1")],
     {}, [("kill", "a", "SandboxChanged"), ("start", "a", 1, 1), ("remove", "sb0")]),
    ("created but never started: remove it, start a new attempt, same restart count", POD2,
     [sandbox(), ctr(POD2, "a", state="created", restarts=2, attempt=2), ctr(POD2, "b")],
     {}, [("start", "a", 3, 2)]),
    ("terminal pod: stop what still runs, start nothing", make_pod(phase="Succeeded"),
     [sandbox(), ctr(make_pod(), "a")],
     {}, [("kill", "a", "PodCompleted"), ("kill", "POD", "StopSandbox")]),
    ("GC: keep the latest two instances of a container", POD2,
     [sandbox(), ctr(POD2, "b"),
      ctr(POD2, "a", attempt=0, state="exited", exit_code=1), ctr(POD2, "a", attempt=1, state="exited", exit_code=1),
      ctr(POD2, "a", attempt=2, state="exited", exit_code=1), ctr(POD2, "a", attempt=3)],
     {}, [("remove", "a1"), ("remove", "a0")]),
    ("GC: old dead sandboxes go, the latest stays", POD2,
     [sandbox("sb0", 0, "exited"), sandbox("sb1", 1, "exited"), sandbox("sb2", 2),
      ctr(POD2, "a", sb="sb2"), ctr(POD2, "b", sb="sb2")],
     {}, [("remove", "sb1"), ("remove", "sb0")]),
]


@pytest.mark.parametrize("name,pod,observed,probes,expected", CASES, ids=[c[0] for c in CASES])
def test_plan_table(name, pod, observed, probes, expected):
    before = pb.Pod()
    before.CopyFrom(pod)
    assert kinds_of(plan(pod, observed, NOW, probes, {}, BackoffPolicy())) == expected
    assert pod == before  # the planner never mutates its input


def test_kill_for_liveness_runs_pre_stop_with_the_pod_grace_period():
    pod = make_pod(grace=12)
    actions = plan(pod, [sandbox(), ctr(pod, "a")], NOW, {"a0": ProbeResults(liveness=False)}, {})
    kill = actions[0]
    assert isinstance(kill, KillContainer) and kill.pre_stop and kill.grace_s == 12
    assert kill.message == "Container a failed liveness probe, will be restarted"


# ------------------------------------------------------------------ back-off


def test_back_off_sequence_doubles_and_caps():
    pod = _p("Always")
    policy = BackoffPolicy(base_s=10, cap_s=40)
    key = backoff_key(UID, "a", spechash.container_hash(spec_of(pod, "a")))
    state = {}
    delays = []
    finished = NOW
    restarted = NOW
    for attempt in range(6):
        dead = ctr(pod, "a", attempt=attempt, state="exited", exit_code=1, finished_at=finished)
        obs = [sandbox(), dead]
        actions = plan(pod, obs, finished + 0.5, {}, state, policy)
        if attempt == 0:
            assert kinds_of(actions) == [("start", "a", 1, 1)]  # the first restart is immediate
        else:
            (wait,) = actions
            assert isinstance(wait, WaitBackoff)
            assert wait.delay_s == delays[-1]
            assert wait.remaining_s == pytest.approx(delays[-1] - 0.5)
            assert wait.message == (f"back-off {int(delays[-1])}s restarting failed container=a "
                                    f"pod=p_ns({UID})")
            # once the delay has passed, the restart comes with the next, doubled entry
            restarted = finished + wait.delay_s + 0.01
            actions = plan(pod, obs, restarted, {}, state, policy)
        (start,) = [a for a in actions if isinstance(a, StartContainer)]
        assert start.backoff_key == key
        state[key] = start.backoff_next
        delays.append(start.backoff_next.delay_s)
        finished = max(finished, restarted) + 1  # crashes again a second after its restart
    assert delays == [10, 20, 40, 40, 40, 40]


def test_back_off_is_forgotten_after_a_long_healthy_run():
    pod = _p("Always")
    policy = BackoffPolicy(base_s=10, cap_s=40)
    key = backoff_key(UID, "a", spechash.container_hash(spec_of(pod, "a")))
    state = {key: BackoffEntry(delay_s=40, last_update=NOW)}
    dead = ctr(pod, "a", attempt=5, state="exited", exit_code=1, finished_at=NOW + 81)  # > 2 * cap later
    (start,) = [a for a in plan(pod, [sandbox(), dead], NOW + 82, {}, state, policy)
                if isinstance(a, StartContainer)]
    assert start.backoff_next == BackoffEntry(delay_s=10, last_update=NOW + 81)


def test_go_duration_in_back_off_messages():
    from nodeagent.runtime.timeutil import go_duration
    assert [go_duration(s) for s in (10, 20, 80, 300, 0.2, 1.5, 3600)] == \
        ["10s", "20s", "1m20s", "5m0s", "200ms", "1.5s", "1h0m0s"]


# ------------------------------------------------------------------ termination


def test_deletion_stops_apps_with_pre_stop_then_sandbox_then_finalizes():
    pod = make_pod(apps=("a", "b"), grace=30, deleting_since=NOW - 10, deletion_grace=30)
    obs = [sandbox(), ctr(pod, "a"), ctr(pod, "b", state="exited")]
    actions = plan(pod, obs, NOW, {}, {})
    assert kinds_of(actions) == [("kill", "a", "Deleting"), ("kill", "POD", "StopSandbox")]
    assert actions[0].pre_stop and actions[0].grace_s == pytest.approx(20)
    assert actions[0].message == "Stopping container a"
    stopped = [dataclasses.replace(o, state="exited") for o in obs]
    assert kinds_of(plan(pod, stopped, NOW, {}, {})) == [("finalize", True)]


def test_deletion_of_a_pod_that_never_started_finalizes_at_once():
    pod = make_pod(deleting_since=NOW)
    assert kinds_of(plan(pod, [], NOW, {}, {})) == [("finalize", True)]


@pytest.mark.parametrize("since,grace,expected", [
    (NOW, 30, 30.0),          # just deleted: the whole grace period
    (NOW - 10, 30, 20.0),     # what is left of it
    (NOW - 300, 30, 2.0),     # long past (agent was down): kubelet's minimum of 2 s
    (NOW, 0, 0.0),            # grace 0: kill at once
])
def test_termination_grace(since, grace, expected):
    pod = make_pod(deleting_since=since, deletion_grace=grace)
    assert termination_grace_s(pod, NOW) == expected


def test_orphans_are_stopped_then_removed_without_touching_the_api():
    pod = make_pod()
    obs = [sandbox(), ctr(pod, "a")]
    assert kinds_of(plan_orphan(obs, NOW)) == [("kill", "a", "Orphaned"), ("kill", "POD", "StopSandbox")]
    stopped = [dataclasses.replace(o, state="exited") for o in obs]
    assert kinds_of(plan_orphan(stopped, NOW)) == [("finalize", False)]


# ------------------------------------------------------------------ a fake engine


class FakeEngine:
    """Applies actions to a list of Observed, like the Docker applier would."""

    def __init__(self):
        self.containers: list = []
        self.seq = 0
        self.created = 0
        self.finalized = None

    def apply(self, pod, actions, now):
        for a in actions:
            if isinstance(a, CreateSandbox):
                self.seq += 1
                self.containers.append(Observed(id=f"sb-{self.seq}", pod_uid=UID, container="POD", kind=SANDBOX,
                                                attempt=a.attempt, started_at=now,
                                                spec_hash=spechash.sandbox_hash(pod)))
            elif isinstance(a, StartContainer):
                if a.remove_id:
                    self.containers = [o for o in self.containers if o.id != a.remove_id]
                sb = [o for o in self.containers if o.kind == SANDBOX and o.running][-1]
                self.seq += 1
                self.created += 1
                self.containers.append(Observed(
                    id=f"{a.container}-{self.seq}", pod_uid=UID, container=a.container, kind=a.kind,
                    attempt=a.attempt, restart_count=a.restart_count, started_at=now, sandbox_id=sb.id,
                    spec_hash=spechash.container_hash(spec_of(pod, a.container))))
            elif isinstance(a, KillContainer):
                self.exit(a.container_id, 137, now)
            elif isinstance(a, RemoveContainer):
                self.containers = [o for o in self.containers if o.id != a.container_id]
            elif isinstance(a, FinalizePod):
                self.containers = []
                self.finalized = a.delete_from_api

    def exit(self, cid, code, now):
        self.containers = [dataclasses.replace(o, state="exited", exit_code=code, finished_at=now)
                           if o.id == cid else o for o in self.containers]

    def running(self, name):
        return [o for o in self.containers if o.container == name and o.running]


def converge(engine, pod, now, state, policy=BackoffPolicy(), probes=None):
    """Plan and apply until the plan is empty or only waits; returns the last plan."""
    for _ in range(10):
        actions = plan(pod, engine.containers, now, probes or {}, state, policy)
        for a in actions:
            if isinstance(a, StartContainer) and a.backoff_next is not None:
                state[a.backoff_key] = a.backoff_next
        engine.apply(pod, actions, now)
        if engine.finalized is not None or all(isinstance(a, WaitBackoff) for a in actions):
            return actions
    raise AssertionError("plan did not settle")


def test_lifecycle_init_order_then_apps_then_adoption():
    pod = make_pod(apps=("a", "b"), inits=("i1", "i2"))
    engine, state, now = FakeEngine(), {}, NOW
    converge(engine, pod, now, state)
    assert [o.container for o in engine.containers] == ["POD", "i1"]
    engine.exit(engine.running("i1")[0].id, 0, now + 1)
    converge(engine, pod, now + 1, state)
    assert [o.container for o in engine.containers] == ["POD", "i1", "i2"]
    engine.exit(engine.running("i2")[0].id, 0, now + 2)
    converge(engine, pod, now + 2, state)
    assert sorted(o.container for o in engine.containers if o.running) == ["POD", "a", "b"]
    created = engine.created
    # An agent restart sees the same engine: nothing is created again.
    assert plan(pod, engine.containers, now + 100, {}, {}) == []
    assert engine.created == created


def test_lifecycle_crash_loop_restart_count_grows_with_back_off():
    pod = _p("Always")
    policy = BackoffPolicy(base_s=1, cap_s=8)
    engine, state, now = FakeEngine(), {}, NOW
    converge(engine, pod, now, state, policy)
    waits = []
    for _ in range(5):
        now += 0.1
        engine.exit(engine.running("a")[0].id, 1, now)
        last = converge(engine, pod, now, state, policy)
        if last and isinstance(last[0], WaitBackoff):
            waits.append(last[0].delay_s)
            now += last[0].remaining_s + 0.01
            converge(engine, pod, now, state, policy)
    assert waits == [1, 2, 4, 8]
    assert engine.running("a")[0].restart_count == 5
    assert len([o for o in engine.containers if o.container == "a"]) == 2  # GC keeps two


def test_lifecycle_deletion_then_finalize():
    pod = make_pod(apps=("a",))
    engine, state = FakeEngine(), {}
    converge(engine, pod, NOW, state)
    deleting = make_pod(apps=("a",), deleting_since=NOW + 5)
    converge(engine, deleting, NOW + 5, state)
    assert engine.finalized is True and engine.containers == []


def test_liveness_kill_back_off_is_judged_by_the_previous_dead_instance():
    """kubelet: restarting a container killed now waits only if its predecessor died recently."""
    pod = _p("Always")
    key = backoff_key(UID, "a", spechash.container_hash(spec_of(pod, "a")))
    state = {key: BackoffEntry(delay_s=10, last_update=NOW - 40)}
    failing = {"a1": ProbeResults(liveness=False)}
    old_death = [sandbox(), ctr(pod, "a", attempt=0, state="exited", finished_at=NOW - 40), ctr(pod, "a", attempt=1)]
    assert kinds_of(plan(pod, old_death, NOW, failing, state)) == [("kill", "a", "LivenessProbe"),
                                                                   ("start", "a", 2, 2)]
    recent = [sandbox(), ctr(pod, "a", attempt=0, state="exited", finished_at=NOW - 4), ctr(pod, "a", attempt=1)]
    state = {key: BackoffEntry(delay_s=10, last_update=NOW - 20)}
    assert kinds_of(plan(pod, recent, NOW, failing, state)) == [("kill", "a", "LivenessProbe"), ("backoff", "a")]
