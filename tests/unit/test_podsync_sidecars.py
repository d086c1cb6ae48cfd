"""Native sidecars (init containers with restartPolicy Always) in the pure pod planner and
the pure status: table tests, and whole lifecycles through the planner tests' fake engine."""

import dataclasses

import pytest

from nodeagent.podsync import sidecars
from nodeagent.podsync.plan import plan
from nodeagent.podsync.status import compute_status
from nodeagent.probes.results import ProbeResults
from nodeagent.runtime.container import APP, INIT
from tests.unit.test_podsync_plan import NOW, FakeEngine, converge, ctr, kinds_of, make_pod, sandbox


def side_pod(apps=("a",), inits=(("s1", "side"), ("i1", "init")), restart_policy="Always", startup=(),
             readiness=(), **kw):
    """A pod whose init containers are (name, "side" | "init") in order; startup/readiness:
    names of the sidecars with such a probe."""
    pod = make_pod(apps=apps, inits=[n for n, _ in inits], restart_policy=restart_policy, **kw)
    for c in pod.spec.init_containers:
        if dict(inits)[c.name] == "side":
            c.restart_policy = "Always"
        if c.name in startup:
            c.startup_probe.exec.command.append("true")
        if c.name in readiness:
            c.readiness_probe.exec.command.append("true")
    return pod


P = side_pod()                                     # sidecar s1, then init i1, then app a
PS = side_pod(startup=("s1",))                      # the same, s1 with a startup probe
PN = side_pod(restart_policy="Never")               # a Job-style pod
P2 = side_pod(inits=(("s1", "side"), ("s2", "side")))   # two sidecars, no regular init


def side(pod, name="s1", **kw):
    return ctr(pod, name, INIT, **kw)


CASES = [
    # (name, pod, observed, probe results, expected plan)
    ("new pod: sandbox, then the sidecar first", P, [],
     {}, [("sandbox", 0), ("start", "s1", 0, 0)]),
    ("sidecar running (no startup probe): it has started, the next init container starts", P,
     [sandbox(), side(P)],
     {}, [("start", "i1", 0, 0)]),
    ("sidecar with a startup probe not yet passed: wait", PS,
     [sandbox(), side(PS)],
     {}, []),
    ("sidecar's startup probe passed: the next init container starts", PS,
     [sandbox(), side(PS)],
     {"s10": ProbeResults(startup=True)}, [("start", "i1", 0, 0)]),
    ("init done beside the running sidecar: the app starts, the sidecar is left running", P,
     [sandbox(), side(P), ctr(P, "i1", INIT, state="exited")],
     {}, [("start", "a", 0, 0)]),
    ("everything runs: nothing to do (adoption)", P,
     [sandbox(), side(P), ctr(P, "i1", INIT, state="exited"), ctr(P, "a")],
     {}, []),
    ("sidecar exited during initialization: restarted, the next init waits for it", P,
     [sandbox(), side(P, state="exited", exit_code=1)],
     {}, [("start", "s1", 1, 1)]),
    ("sidecar exited 0 beside the app: restarted (whatever the exit code)", P,
     [sandbox(), side(P, state="exited", exit_code=0), ctr(P, "i1", INIT, state="exited"), ctr(P, "a")],
     {}, [("start", "s1", 1, 1)]),
    ("sidecar exited under pod restartPolicy Never: restarted all the same", PN,
     [sandbox(), side(PN, state="exited", exit_code=1), ctr(PN, "i1", INIT, state="exited"), ctr(PN, "a")],
     {}, [("start", "s1", 1, 1)]),
    ("sidecar's liveness probe failed: killed and restarted, the app untouched", P,
     [sandbox(), side(P), ctr(P, "i1", INIT, state="exited"), ctr(P, "a")],
     {"s10": ProbeResults(liveness=False)}, [("kill", "s1", "LivenessProbe"), ("start", "s1", 1, 1)]),
    ("sidecar's spec changed: killed and restarted", P,
     [sandbox(), side(P, spec_hash="v1:0000000000000000"), ctr(P, "i1", INIT, state="exited"), ctr(P, "a")],
     {}, [("kill", "s1", "SpecChanged"), ("start", "s1", 1, 1)]),
    ("Job-style pod whose app finished: the sidecar is stopped, the sandbox after it", PN,
     [sandbox(), side(PN), ctr(PN, "i1", INIT, state="exited"), ctr(PN, "a", state="exited")],
     {}, [("kill", "s1", "PodCompleted"), ("kill", "POD", "StopSandbox")]),
    ("Job-style pod, app and sidecar stopped: the sandbox goes", PN,
     [sandbox(), side(PN, state="exited", exit_code=143), ctr(PN, "i1", INIT, state="exited"),
      ctr(PN, "a", state="exited")],
     {}, [("kill", "POD", "StopSandbox")]),
    ("two sidecars, app done: the last declared is stopped first",
     side_pod(inits=(("s1", "side"), ("s2", "side")), restart_policy="OnFailure"),
     [sandbox(), side(P2), side(P2, "s2"), ctr(P2, "a", state="exited")],
     {}, [("kill", "s2", "PodCompleted")]),
    ("a regular init container failed under Never: the running sidecar is stopped first",
     side_pod(restart_policy="Never"),
     [sandbox(), side(PN), ctr(PN, "i1", INIT, state="exited", exit_code=1)],
     {}, [("kill", "s1", "PodFailed"), ("kill", "POD", "StopSandbox")]),
    ("app liveness failure under Never: the app is killed; the sidecar waits for it", PN,
     [sandbox(), side(PN), ctr(PN, "i1", INIT, state="exited"), ctr(PN, "a")],
     {"a0": ProbeResults(liveness=False)}, [("kill", "a", "LivenessProbe")]),
    ("terminal pod: the sidecar (the only thing left) goes with the sandbox",
     side_pod(phase="Succeeded"),
     [sandbox(), side(P), ctr(P, "i1", INIT, state="exited"), ctr(P, "a", state="exited")],
     {}, [("kill", "s1", "PodCompleted"), ("kill", "POD", "StopSandbox")]),
    ("deleted: the app first, with its preStop, the sidecar not yet",
     side_pod(deleting_since=NOW - 1, deletion_grace=30),
     [sandbox(), side(P), ctr(P, "i1", INIT, state="exited"), ctr(P, "a")],
     {}, [("kill", "a", "Deleting")]),
    ("deleted, the app exited: the sidecar, with the sandbox after it",
     side_pod(deleting_since=NOW - 1, deletion_grace=30),
     [sandbox(), side(P), ctr(P, "i1", INIT, state="exited"), ctr(P, "a", state="exited")],
     {}, [("kill", "s1", "Deleting"), ("kill", "POD", "StopSandbox")]),
    ("deleted with two sidecars left: the last declared first, the sandbox stays",
     side_pod(inits=(("s1", "side"), ("s2", "side")), deleting_since=NOW - 1, deletion_grace=30),
     [sandbox(), side(P2), side(P2, "s2"), ctr(P2, "a", state="exited")],
     {}, [("kill", "s2", "Deleting")]),
    ("sandbox died: everything is killed, a new sandbox starts with the sidecar", P,
     [sandbox(state="exited"), side(P), ctr(P, "i1", INIT, state="exited"), ctr(P, "a")],
     {}, [("kill", "s1", "SandboxChanged"), ("kill", "a", "SandboxChanged"), ("sandbox", 1),
          ("start", "s1", 1, 1)]),
]


@pytest.mark.parametrize("name,pod,observed,probes,expected", CASES, ids=[c[0] for c in CASES])
def test_plan_table(name, pod, observed, probes, expected):
    assert kinds_of(plan(pod, observed, NOW, probes, {})) == expected


def test_sidecar_kills_run_their_pre_stop_hook_and_get_what_is_left_of_the_grace_period():
    pod = side_pod(deleting_since=NOW - 12, deletion_grace=20)
    obs = [sandbox(), side(P), ctr(P, "i1", INIT, state="exited"), ctr(P, "a", state="exited")]
    kill = plan(pod, obs, NOW, {}, {})[0]
    assert (kill.container, kill.pre_stop, kill.grace_s) == ("s1", True, pytest.approx(8))


def test_a_crash_looping_sidecar_backs_off():
    engine, state = FakeEngine(), {}
    converge(engine, P, NOW, state)
    assert sorted(o.container for o in engine.containers if o.running) == ["POD", "i1", "s1"]
    engine.exit(engine.running("i1")[0].id, 0, NOW + 1)
    converge(engine, P, NOW + 1, state)
    for t in (2, 3):
        engine.exit(engine.running("s1")[0].id, 1, NOW + t)
        last = converge(engine, P, NOW + t, state)
    assert kinds_of(last) == [("backoff", "s1")]          # the second crash waits (10 s)
    assert engine.running("a") and not engine.running("s1")


@pytest.mark.parametrize("order", [("s1", "s2"), ("s2", "s1")])
def test_stop_order_is_apps_then_sidecars_last_declared_first(order):
    pod = side_pod(inits=tuple((n, "side") for n in order) + (("i1", "init"),))
    obs = [sandbox(), ctr(pod, "s1", INIT), ctr(pod, "s2", INIT), ctr(pod, "i1", INIT, state="exited"),
           ctr(pod, "a")]
    running = [o for o in obs if o.running]
    steps = []
    while running:
        group, with_sandbox = sidecars.stop_order(pod, running)
        steps.append(sorted(o.container for o in group) + (["POD"] if with_sandbox else []))
        gone = {o.id for o in group} | ({o.id for o in running if o.kind == "sandbox"} if with_sandbox else set())
        running = [o for o in running if o.id not in gone]
    assert steps == [["a"], [order[1]], [order[0], "POD"]]


def test_lifecycle_job_pod_with_a_sidecar_completes_then_deletion_finalizes():
    engine, state = FakeEngine(), {}
    converge(engine, PN, NOW, state)
    engine.exit(engine.running("i1")[0].id, 0, NOW + 1)
    converge(engine, PN, NOW + 1, state)
    assert sorted(o.container for o in engine.containers if o.running) == ["POD", "a", "s1"]
    engine.exit(engine.running("a")[0].id, 0, NOW + 2)
    converge(engine, PN, NOW + 2, state)
    assert [o.container for o in engine.containers if o.running] == []
    status = compute_status(PN, engine.containers, NOW + 2)
    assert status.phase == "Succeeded"
    deleting = side_pod(restart_policy="Never", deleting_since=NOW + 3)
    converge(engine, deleting, NOW + 3, state)
    assert engine.finalized is True


# ------------------------------------------------------------------ status


def _status(pod, observed, probes=None):
    return compute_status(pod, observed, NOW, probes or {})


def _cond(status, ctype):
    return next((c.status, c.reason, c.message) for c in status.conditions if c.type == ctype)


def test_status_sidecar_running_not_started_keeps_the_pod_initializing():
    st = _status(PS, [sandbox(), side(PS)])
    s1 = st.init_container_statuses[0]
    assert (s1.name, s1.state.HasField("running"), s1.started, s1.ready) == ("s1", True, False, False)
    assert st.phase == "Pending"
    assert _cond(st, "Initialized") == ("False", "ContainersNotInitialized",
                                        "containers with incomplete status: [s1 i1]")


def test_status_started_sidecar_and_completed_init_make_the_pod_initialized():
    obs = [sandbox(), side(PS), ctr(PS, "i1", INIT, state="exited")]
    st = _status(PS, obs, {"s10": ProbeResults(startup=True)})
    assert _cond(st, "Initialized")[0] == "True"
    assert st.init_container_statuses[0].started and st.init_container_statuses[0].ready


def test_status_sidecar_readiness_counts_for_ready():
    pod = side_pod(readiness=("s1",))
    obs = [sandbox(), side(pod), ctr(pod, "i1", INIT, state="exited"), ctr(pod, "a")]
    st = _status(pod, obs, {"s10": ProbeResults(readiness=False)})
    assert st.phase == "Running"
    assert _cond(st, "Ready") == ("False", "ContainersNotReady", "containers with unready status: [s1]")
    assert _cond(st, "ContainersReady")[0] == "False"
    st = _status(pod, obs, {"s10": ProbeResults(readiness=True)})
    assert _cond(st, "Ready")[0] == "True"


def test_status_sidecar_restart_count_and_last_state():
    obs = [sandbox(), side(P, attempt=0, state="exited", exit_code=1), side(P, attempt=1),
           ctr(P, "i1", INIT, state="exited"), ctr(P, "a")]
    s1 = _status(P, obs).init_container_statuses[0]
    assert s1.restart_count == 1 and s1.state.HasField("running")
    assert s1.last_state.terminated.exit_code == 1


@pytest.mark.parametrize("app_exit,phase", [(0, "Succeeded"), (1, "Failed")])
def test_status_job_pod_phase_ignores_the_sidecar(app_exit, phase):
    # Still running or stopped with SIGTERM's code: the sidecar never decides the phase.
    for side_state in ({}, {"state": "exited", "exit_code": 143}):
        obs = [sandbox(), side(PN, **side_state), ctr(PN, "i1", INIT, state="exited"),
               ctr(PN, "a", state="exited", exit_code=app_exit)]
        assert _status(PN, obs).phase == phase


def test_status_sidecar_crashing_after_initialization_keeps_the_pod_initialized():
    obs = [sandbox(), side(P, state="exited", exit_code=1), ctr(P, "i1", INIT, state="exited"), ctr(P, "a")]
    st = _status(P, obs)
    assert st.phase == "Running" and _cond(st, "Initialized")[0] == "True"
    assert _cond(st, "Ready")[0] == "False"


def test_observed_is_sidecar_needs_the_pod():
    o = side(P)
    assert sidecars.observed_is_sidecar(P, o)
    assert not sidecars.observed_is_sidecar(None, o)
    assert not sidecars.observed_is_sidecar(P, dataclasses.replace(o, container="i1"))
    assert not sidecars.observed_is_sidecar(P, dataclasses.replace(o, kind=APP))


def test_the_docs_example_is_valid_and_admitted():
    import os
    import re

    import yaml

    from skiff.api import unsupported
    from tests.unit.test_validation import decoded, errors_of

    path = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "pods.md")
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(re.search(r"```yaml\n(.*?)```", f.read(), re.S).group(1))
    assert errors_of(doc) == []
    kind, msg = decoded(doc, True)
    assert unsupported.check(kind, msg) == []
    assert [c.name for c in msg.spec.init_containers if sidecars.is_sidecar(c)] == ["log-shipper"]


def test_probe_workers_run_for_sidecars_not_for_regular_init_containers():
    from nodeagent.probes.manager import ProbeManager

    pod = side_pod(readiness=("s1", "i1"))   # i1's probe: validation refuses it; the agent ignores it too
    for c in pod.spec.init_containers:
        c.readiness_probe.initial_delay_seconds = 3600   # a worker waits; no probe runs here
    obs = [dataclasses.replace(sandbox(), pid=1), dataclasses.replace(side(pod), started_at=NOW),
           ctr(pod, "i1", INIT)]
    manager = ProbeManager(runtime=None)
    try:
        manager.sync_pod(pod, obs)
        assert sorted(manager._workers) == [("s10", "readiness")]
        assert manager.results(pod.metadata.uid) == {"s10": ProbeResults(readiness=False)}
    finally:
        manager.stop()
