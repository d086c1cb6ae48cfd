"""spec.activeDeadlineSeconds on the node (kubelet's activeDeadlineHandler): the pure
deadline, the planner stopping the pod, the status saying Failed / DeadlineExceeded."""

import pytest

from nodeagent.podsync import deadline
from nodeagent.podsync.plan import plan
from nodeagent.podsync.status import compute_status
from nodeagent.runtime.timeutil import rfc3339
from tests.unit.test_podsync_plan import NOW, POD2, ctr, kinds_of, make_pod, sandbox


def pod_with(deadline_s=None, started_ago=None, phase="", restart_policy="Never"):
    pod = make_pod(apps=("a", "b"), restart_policy=restart_policy, phase=phase)
    if deadline_s is not None:
        pod.spec.active_deadline_seconds = deadline_s
    if started_ago is not None:
        pod.status.start_time = rfc3339(NOW - started_ago)
    return pod


@pytest.mark.parametrize("name,pod,expected", [
    ("no deadline", pod_with(None, 100), None),
    ("not started yet", pod_with(30, None), None),
    ("finished pods are never judged", pod_with(30, 100, phase="Succeeded"), None),
    ("10 s left", pod_with(30, 20), 10.0),
    ("passed", pod_with(30, 45), -15.0),
    ("exactly at the deadline", pod_with(30, 30), 0.0),
])
def test_remaining(name, pod, expected):
    assert deadline.remaining_s(pod, NOW) == expected
    assert deadline.passed(pod, NOW) == (expected is not None and expected <= 0)


def running(pod):
    return [sandbox(pod=pod), ctr(pod, "a"), ctr(POD2, "b")]


def test_plan_stops_every_container_of_a_pod_past_its_deadline():
    pod = pod_with(30, 45, restart_policy="Always")
    assert kinds_of(plan(pod, running(pod), NOW)) == [
        ("kill", "a", "DeadlineExceeded"), ("kill", "b", "DeadlineExceeded"), ("kill", "POD", "StopSandbox")]


def test_plan_leaves_a_pod_before_its_deadline_alone():
    pod = pod_with(30, 20, restart_policy="Always")
    assert plan(pod, running(pod), NOW) == []


def test_status_is_failed_deadline_exceeded_past_the_deadline():
    pod = pod_with(30, 45, restart_policy="Always")
    status = compute_status(pod, running(pod), NOW)
    assert (status.phase, status.reason, status.message) == (
        "Failed", "DeadlineExceeded", "Pod was active on the node longer than the specified deadline")
    before = compute_status(pod_with(30, 20, restart_policy="Always"), running(pod), NOW)
    assert (before.phase, before.reason) == ("Running", "")


def test_a_finished_pod_keeps_its_phase_past_the_deadline():
    pod = pod_with(30, 45, phase="Succeeded")
    assert compute_status(pod, [], NOW).phase == "Succeeded"
