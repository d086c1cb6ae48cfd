"""Table tests of the pure pod status computation (nodeagent/podsync/status.py)."""

import pytest

from nodeagent.probes.results import ProbeResults
from nodeagent.runtime.container import INIT
from nodeagent.podsync.status import compute_status, qos_class
from nodeagent.runtime.timeutil import rfc3339
from skiff.api import objects_pb2 as pb
from tests.unit.test_podsync_plan import NOW, UID, ctr, make_pod, sandbox


def status_of(pod, observed, probes=None, waiting=None, now=NOW):
    return compute_status(pod, observed, now, probes or {}, waiting or {}, host_ip="10.0.0.5")


def cond(status, ctype):
    for c in status.conditions:
        if c.type == ctype:
            return c
    raise KeyError(ctype)


def state_of(cs):
    for name in ("waiting", "running", "terminated"):
        if cs.state.HasField(name):
            return name, getattr(cs.state, name)
    return None, None


PODI = make_pod(apps=("a",), inits=("i1", "i2"))


@pytest.mark.parametrize("name,pod,observed,waiting,phase,states", [
    ("nothing yet", make_pod(apps=("a", "b")), [], {},
     "Pending", {"a": ("waiting", "ContainerCreating"), "b": ("waiting", "ContainerCreating")}),
    ("init running", PODI, [sandbox(), ctr(PODI, "i1", INIT)], {},
     "Pending", {"i1": ("running", ""), "i2": ("waiting", "PodInitializing"), "a": ("waiting", "PodInitializing")}),
    ("init crash-looping", PODI, [sandbox(), ctr(PODI, "i1", INIT, state="exited", exit_code=2)],
     {"i1": ("CrashLoopBackOff", "back-off 10s restarting failed container=i1 pod=p_ns(x)")},
     "Pending", {"i1": ("waiting", "CrashLoopBackOff"), "a": ("waiting", "PodInitializing")}),
    ("init failed under Never", make_pod(inits=("i1",), restart_policy="Never"),
     [sandbox(state="exited"), ctr(PODI, "i1", INIT, state="exited", exit_code=2)], {},
     "Failed", {"i1": ("terminated", "Error")}),
    ("running", make_pod(apps=("a", "b")), [sandbox(), ctr(PODI, "a"), ctr(make_pod(apps=("b",)), "b")], {},
     "Running", {"a": ("running", ""), "b": ("running", "")}),
    ("crash loop under Always is Running", make_pod(), [sandbox(), ctr(PODI, "a", state="exited", exit_code=1)],
     {"a": ("CrashLoopBackOff", "back-off")}, "Running", {"a": ("waiting", "CrashLoopBackOff")}),
    ("all exited 0 under Never: Succeeded", make_pod(restart_policy="Never"),
     [sandbox(state="exited"), ctr(PODI, "a", state="exited", exit_code=0)], {},
     "Succeeded", {"a": ("terminated", "Completed")}),
    ("one failed under Never: Failed", make_pod(apps=("a", "b"), restart_policy="Never"),
     [sandbox(state="exited"), ctr(PODI, "a", state="exited", exit_code=0),
      ctr(make_pod(apps=("b",)), "b", state="exited", exit_code=3)], {},
     "Failed", {"a": ("terminated", "Completed"), "b": ("terminated", "Error")}),
    ("all succeeded under OnFailure: Succeeded", make_pod(restart_policy="OnFailure"),
     [sandbox(state="exited"), ctr(PODI, "a", state="exited", exit_code=0)], {},
     "Succeeded", {"a": ("terminated", "Completed")}),
    ("image never pulled", make_pod(), [sandbox()],
     {"a": ("ErrImageNeverPull", 'Container image "x" is not present with pull policy of Never')},
     "Pending", {"a": ("waiting", "ErrImageNeverPull")}),
    ("a terminal phase stays", make_pod(phase="Failed"), [sandbox(), ctr(PODI, "a")], {},
     "Failed", {"a": ("running", "")}),
])
def test_status_table(name, pod, observed, waiting, phase, states):
    st = status_of(pod, observed, waiting=waiting)
    assert st.phase == phase
    got = {}
    for cs in list(st.init_container_statuses) + list(st.container_statuses):
        kind, s = state_of(cs)
        got[cs.name] = (kind, getattr(s, "reason", "") if kind != "running" else "")
    assert {k: got[k] for k in states} == states
    assert st.host_ip == "10.0.0.5"


def test_running_container_status_fields():
    pod = make_pod()
    prev = ctr(pod, "a", attempt=0, state="exited", exit_code=1, finished_at=NOW - 20)
    cur = ctr(pod, "a", attempt=1)
    cur = cur.__class__(**{**cur.__dict__, "image_id": "sha256:abc"})
    st = status_of(pod, [sandbox(), prev, cur])
    (cs,) = st.container_statuses
    assert cs.container_id == f"docker://{cur.id}"
    assert cs.image == "skiff/busybox:latest" and cs.image_id == "docker://sha256:abc"
    assert cs.restart_count == 1
    assert cs.state.running.started_at == rfc3339(cur.started_at)
    t = cs.last_state.terminated
    assert (t.exit_code, t.reason, t.container_id) == (1, "Error", f"docker://{prev.id}")
    assert t.finished_at == rfc3339(NOW - 20)
    assert cs.ready and cs.started
    assert cond(st, "Ready").status == "True" and cond(st, "ContainersReady").status == "True"
    assert cond(st, "Initialized").status == "True"
    assert cond(st, "PodScheduled").status == "True"
    assert st.start_time == rfc3339(NOW)
    assert st.qos_class == "BestEffort"


def test_readiness_probe_gates_ready():
    pod = make_pod()
    pod.spec.containers[0].readiness_probe.exec.command.append("true")
    obs = [sandbox(), ctr(pod, "a")]
    st = status_of(pod, obs, probes={})
    assert not st.container_statuses[0].ready
    ready = cond(st, "Ready")
    assert (ready.status, ready.reason, ready.message) == \
        ("False", "ContainersNotReady", "containers with unready status: [a]")
    st2 = status_of(pod, obs, probes={"a0": ProbeResults(readiness=True)})
    assert st2.container_statuses[0].ready and cond(st2, "Ready").status == "True"


def test_startup_probe_gates_started_and_ready():
    pod = make_pod()
    pod.spec.containers[0].startup_probe.exec.command.append("true")
    obs = [sandbox(), ctr(pod, "a")]
    cs = status_of(pod, obs).container_statuses[0]
    assert not cs.started and not cs.ready
    cs = status_of(pod, obs, probes={"a0": ProbeResults(startup=True)}).container_statuses[0]
    assert cs.started and cs.ready


def test_initialized_condition_names_incomplete_init_containers():
    st = status_of(PODI, [sandbox(), ctr(PODI, "i1", INIT, state="exited")])
    c = cond(st, "Initialized")
    assert (c.status, c.reason, c.message) == ("False", "ContainersNotInitialized",
                                               "containers with incomplete status: [i2]")
    assert st.init_container_statuses[0].ready and not st.init_container_statuses[1].ready


def test_status_is_stable_and_keeps_transition_times():
    pod = make_pod()
    obs = [sandbox(), ctr(pod, "a")]
    first = status_of(pod, obs, now=NOW)
    pod.status.CopyFrom(first)
    again = status_of(pod, obs, now=NOW + 500)
    assert again == first  # nothing changed -> nothing to write
    pod.spec.containers[0].readiness_probe.exec.command.append("true")
    flipped = status_of(pod, obs, probes={"a0": ProbeResults(readiness=False)}, now=NOW + 600)
    assert cond(flipped, "Ready").last_transition_time == rfc3339(NOW + 600)
    assert cond(flipped, "Initialized").last_transition_time == rfc3339(NOW)
    assert flipped.start_time == rfc3339(NOW)


def test_other_conditions_and_pod_scheduled_are_kept():
    pod = make_pod()
    pod.status.conditions.add(type="PodScheduled", status="True", last_transition_time="2020-01-01T00:00:00Z")
    pod.status.conditions.add(type="DisruptionTarget", status="True", reason="Preempted")
    st = status_of(pod, [sandbox(), ctr(pod, "a")])
    assert cond(st, "PodScheduled").last_transition_time == "2020-01-01T00:00:00Z"
    assert cond(st, "DisruptionTarget").reason == "Preempted"
    assert [c.type for c in st.conditions][:3] == ["Initialized", "Ready", "ContainersReady"]


def test_terminal_pod_conditions_say_pod_completed():
    pod = make_pod(restart_policy="Never")
    st = status_of(pod, [sandbox(state="exited"), ctr(pod, "a", state="exited")])
    assert st.phase == "Succeeded"
    assert (cond(st, "Ready").status, cond(st, "Ready").reason) == ("False", "PodCompleted")


def test_oom_killed_reason():
    pod = make_pod(restart_policy="Never")
    dead = ctr(pod, "a", state="exited", exit_code=137)
    dead = dead.__class__(**{**dead.__dict__, "oom_killed": True})
    st = status_of(pod, [sandbox(), dead])
    assert st.container_statuses[0].state.terminated.reason == "OOMKilled"


@pytest.mark.parametrize("resources,expected", [
    ([{}], "BestEffort"),
    ([{"limits": {"cpu": "1", "memory": "64Mi"}}], "Guaranteed"),
    ([{"limits": {"cpu": "1", "memory": "64Mi"}, "requests": {"cpu": "1000m", "memory": "64Mi"}}], "Guaranteed"),
    ([{"limits": {"cpu": "1", "memory": "64Mi"}, "requests": {"cpu": "500m"}}], "Burstable"),
    ([{"limits": {"cpu": "1", "memory": "64Mi"}}, {}], "Burstable"),
    ([{"requests": {"memory": "64Mi"}}], "Burstable"),
])
def test_qos_class(resources, expected):
    spec = pb.PodSpec()
    for i, r in enumerate(resources):
        c = spec.containers.add(name=f"c{i}", image="x")
        c.resources.limits.update(r.get("limits", {}))
        c.resources.requests.update(r.get("requests", {}))
    assert qos_class(spec) == expected


def test_foreign_pod_containers_are_ignored():
    pod = make_pod()
    other = ctr(pod, "a")
    other = other.__class__(**{**other.__dict__, "pod_uid": "someone-else"})
    st = status_of(pod, [other])
    assert st.container_statuses[0].state.waiting.reason == "ContainerCreating"
    assert UID != "someone-else"
