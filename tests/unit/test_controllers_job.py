"""The Job planner (controlplane/controllers/job_plan.py): table-driven scenarios of
Kubernetes' job controller rules, and the pods it makes."""

import datetime

import pytest

from controlplane.controllers.job_plan import (backoff_remaining_s, format_indexes, parse_indexes, plan_job,
                                               pod_for)
from skiff.api import objects_pb2 as pb
from skiff.api.wellknown import rfc3339

NOW = datetime.datetime(2024, 5, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
UID = "job-uid"
LABELS = {"batch.kubernetes.io/controller-uid": UID, "job-name": "pi"}


def ago(s: float) -> str:
    return rfc3339(NOW - datetime.timedelta(seconds=s))


def job(completions=1, parallelism=1, backoff=6, mode="NonIndexed", suspend=False, deadline=None,
        ttl=None, restart="Never", started=None, conditions=(), succeeded=0, failed=0, completed_indexes=""):
    j = pb.Job(metadata=pb.ObjectMeta(name="pi", namespace="default", uid=UID))
    if completions is not None:
        j.spec.completions = completions
    j.spec.parallelism = parallelism
    j.spec.backoff_limit = backoff
    j.spec.completion_mode = mode
    j.spec.suspend = suspend
    if deadline is not None:
        j.spec.active_deadline_seconds = deadline
    if ttl is not None:
        j.spec.ttl_seconds_after_finished = ttl
    j.spec.selector.match_labels["batch.kubernetes.io/controller-uid"] = UID
    j.spec.template.metadata.labels.update(LABELS)
    j.spec.template.spec.restart_policy = restart
    j.spec.template.spec.containers.add(name="pi", image="busybox")
    if started is not None:
        j.status.start_time = ago(started)
    for ctype, status, since in conditions:
        j.status.conditions.add(type=ctype, status=status, last_transition_time=ago(since))
    j.status.succeeded, j.status.failed = succeeded, failed
    j.status.completed_indexes = completed_indexes
    return j


def pod(name, phase="Running", finished=None, index=None, deleting=False, ready=False, restarts=0, owner=UID):
    p = pb.Pod(metadata=pb.ObjectMeta(name=name, namespace="default", uid=f"uid-{name}", labels=dict(LABELS),
                                      creation_timestamp=ago(600)))
    if owner:
        p.metadata.owner_references.add(api_version="batch/v1", kind="Job", name="pi", uid=owner, controller=True)
    if index is not None:
        p.metadata.annotations["batch.kubernetes.io/job-completion-index"] = str(index)
    p.status.phase = phase
    cs = p.status.container_statuses.add(name="pi", restart_count=restarts)
    if finished is not None:
        cs.state.terminated.finished_at = ago(finished)
        cs.state.terminated.exit_code = 0 if phase == "Succeeded" else 1
    if ready:
        p.status.conditions.add(type="Ready", status="True", last_transition_time=ago(60))
    if deleting:
        p.metadata.deletion_timestamp = ago(1)
    return p


def cond(plan, ctype):
    for c in plan.status.conditions:
        if c.type == ctype:
            return (c.status, c.reason)
    return None


# (id, job, pods, kwargs, create, delete, (active, succeeded, failed), finished condition or None, event reasons)
CASES = [
    ("new Job: parallelism pods, startTime set", job(3, 2), [], {}, (None, None), (), (0, 0, 0), None, ()),
    ("never more than the remaining completions", job(3, 2, started=5),
     [pod("a", "Succeeded", 3), pod("b", "Succeeded", 2)], {}, (None,), (), (0, 2, 0), None, ()),
    ("running pods count; pending creates too", job(3, 2, started=5), [pod("a")], {"pending_creates": 1},
     (), (), (1, 0, 0), None, ()),
    ("completions reached: Complete", job(2, 2, started=5),
     [pod("a", "Succeeded", 3), pod("b", "Succeeded", 2)], {}, (), (), (0, 2, 0),
     ("Complete", "True", "CompletionsReached"), ("Completed",)),
    ("completions reached: surplus active pod deleted, then Complete", job(1, 2, started=5),
     [pod("a", "Succeeded", 3), pod("b")], {}, (), ("b",), (0, 1, 0),
     ("Complete", "True", "CompletionsReached"), ("Completed",)),
    ("work queue: nothing new once one succeeded; not complete while one runs", job(None, 3, started=5),
     [pod("a", "Succeeded", 3), pod("b")], {}, (), (), (1, 1, 0), None, ()),
    ("work queue: complete once one succeeded and none runs", job(None, 3, started=5),
     [pod("a", "Succeeded", 3), pod("b", "Succeeded", 1)], {}, (), (), (0, 2, 0),
     ("Complete", "True", "CompletionsReached"), ("Completed",)),
    ("a failure waits for the back-off (10 s from the failure)", job(1, 1, started=30),
     [pod("a", "Failed", 4)], {}, (), (), (0, 0, 1), None, ()),
    ("back-off over: replaced", job(1, 1, started=30),
     [pod("a", "Failed", 11)], {}, (None,), (), (0, 0, 1), None, ()),
    ("back-off doubles: 2 failures wait 20 s", job(1, 1, started=60),
     [pod("a", "Failed", 40), pod("b", "Failed", 15)], {}, (), (), (0, 0, 2), None, ()),
    ("failed > backoffLimit: Failed BackoffLimitExceeded, active pods deleted", job(2, 2, backoff=1, started=60),
     [pod("a", "Failed", 40), pod("b", "Failed", 15), pod("c")], {}, (), ("c",), (0, 0, 2),
     ("Failed", "True", "BackoffLimitExceeded"), ("BackoffLimitExceeded",)),
    ("failed == backoffLimit: not yet", job(1, 1, backoff=2, started=100),
     [pod("a", "Failed", 80), pod("b", "Failed", 50)], {}, (None,), (), (0, 0, 2), None, ()),
    ("OnFailure: container restarts reach backoffLimit", job(1, 1, backoff=2, restart="OnFailure", started=60),
     [pod("a", restarts=2)], {}, (), ("a",), (0, 0, 0), ("Failed", "True", "BackoffLimitExceeded"),
     ("BackoffLimitExceeded",)),
    ("OnFailure: fewer restarts go on", job(1, 1, backoff=3, restart="OnFailure", started=60),
     [pod("a", restarts=2)], {}, (), (), (1, 0, 0), None, ()),
    ("activeDeadlineSeconds passed: Failed DeadlineExceeded", job(1, 1, deadline=30, started=31),
     [pod("a")], {}, (), ("a",), (0, 0, 0), ("Failed", "True", "DeadlineExceeded"), ("DeadlineExceeded",)),
    ("suspended: active pods deleted, Suspended", job(2, 2, suspend=True, started=5), [pod("a"), pod("b")], {},
     (), ("a", "b"), (0, 0, 0), None, ("Suspended",)),
    ("suspended Job ignores its deadline", job(1, 1, suspend=True, deadline=10, started=100), [], {},
     (), (), (0, 0, 0), None, ("Suspended",)),
    ("resumed: pods again", job(1, 1, conditions=[("Suspended", "True", 50)]), [], {}, (None,), (), (0, 0, 0),
     None, ("Resumed",)),
    ("terminating pods are replaced and counted as terminating", job(1, 1, started=5),
     [pod("a", deleting=True)], {}, (None,), (), (0, 0, 0), None, ()),
    ("counts never go down when a finished pod is deleted", job(3, 1, started=5, succeeded=2, failed=1),
     [pod("a", "Succeeded", 3)], {}, (None,), (), (0, 2, 1), None, ()),
    ("other Jobs' pods are not ours", job(1, 1, started=5), [pod("x", owner="other")], {}, (None,), (), (0, 0, 0),
     None, ()),
    ("Indexed: the lowest free indexes", job(4, 2, mode="Indexed", started=5),
     [pod("a", "Succeeded", 3, index=0), pod("b", index=1)], {}, (2,), (), (1, 1, 0), None, ()),
    ("Indexed: a second pod of an index is deleted, then the free index is taken",
     job(3, 3, mode="Indexed", started=5),
     [pod("a", index=0, ready=True), pod("b", index=0)], {}, (1, 2), ("b",), (1, 0, 0), None, ()),
    ("Indexed: complete when every index succeeded", job(2, 2, mode="Indexed", started=5),
     [pod("a", "Succeeded", 3, index=1), pod("b", "Succeeded", 2, index=0)], {}, (), (), (0, 2, 0),
     ("Complete", "True", "CompletionsReached"), ("Completed",)),
]


@pytest.mark.parametrize("name,j,pods,kw,create,delete,counts,finished,events", CASES, ids=[c[0] for c in CASES])
def test_plan_table(name, j, pods, kw, create, delete, counts, finished, events):
    plan = plan_job(j, pods, now=NOW, **kw)
    assert plan.create == create
    assert plan.delete == delete
    assert (plan.status.active, plan.status.succeeded, plan.status.failed) == counts
    if finished is None:
        assert cond(plan, "Complete") is None and cond(plan, "Failed") is None
    else:
        ctype, status, reason = finished
        assert cond(plan, ctype) == (status, reason)
    assert tuple(e[1] for e in plan.events) == events
    assert plan.status.start_time, "a running or suspended-once Job has a start time"


def test_complete_sets_completion_time_and_failed_does_not():
    done = plan_job(job(1, 1, started=5), [pod("a", "Succeeded", 3)], now=NOW)
    assert done.status.completion_time == rfc3339(NOW)
    failed = plan_job(job(1, 1, deadline=5, started=10), [pod("a")], now=NOW)
    assert failed.status.completion_time == ""
    assert failed.events[0][0] == "Warning"


def test_back_off_wait_is_the_recheck():
    plan = plan_job(job(1, 1, started=30), [pod("a", "Failed", 4)], now=NOW)
    assert plan.recheck_s == pytest.approx(6.05)
    quick = plan_job(job(1, 1, started=30), [pod("a", "Failed", 4)], now=NOW, backoff_base_s=2)
    assert quick.create == (None,)


@pytest.mark.parametrize("failed_ago,succeeded_ago,expected", [
    ((), (), 0.0),
    ((4,), (), 6.0),              # 10 s from the failure
    ((50, 30), (), 0.0),          # 20 s from the last failure, 30 s ago
    ((50, 10, 5), (), 35.0),      # 3 failures: 40 s
    ((50, 10), (20,), 0.0),       # a success resets the count: 1 failure after it, 10 s, passed
    ((50, 3), (20,), 7.0),
])
def test_backoff_remaining(failed_ago, succeeded_ago, expected):
    failed = [pod(f"f{i}", "Failed", t) for i, t in enumerate(failed_ago)]
    succeeded = [pod(f"s{i}", "Succeeded", t) for i, t in enumerate(succeeded_ago)]
    assert backoff_remaining_s(succeeded, failed, NOW, 10.0, 360.0) == pytest.approx(expected)


def test_backoff_is_capped():
    failed = [pod(f"f{i}", "Failed", 1) for i in range(12)]
    assert backoff_remaining_s([], failed, NOW, 10.0, 360.0) == pytest.approx(359.0)


def test_deadline_recheck_and_ttl():
    running = plan_job(job(1, 1, deadline=30, started=10), [pod("a")], now=NOW)
    assert running.recheck_s == pytest.approx(20.05)
    fresh = [("Complete", "True", 5)]
    assert plan_job(job(1, 1, ttl=30, conditions=fresh, started=50), [], now=NOW).recheck_s == pytest.approx(25)
    old = [("Complete", "True", 31)]
    assert plan_job(job(1, 1, ttl=30, conditions=old, started=50), [], now=NOW).delete_job
    assert not plan_job(job(1, 1, conditions=old, started=50), [], now=NOW).delete_job


def test_finished_job_leaves_its_finished_pods_and_makes_no_new_ones():
    j = job(2, 1, conditions=[("Failed", "True", 5)], started=50, failed=7)
    plan = plan_job(j, [pod("a", "Failed", 10), pod("b", "Succeeded", 20)], now=NOW)
    assert (plan.create, plan.delete, plan.events) == ((), (), ())
    assert plan.status.failed == 7


def test_indexes_as_ranges():
    assert format_indexes({0, 1, 2, 5, 7, 8}) == "0-2,5,7-8"
    assert format_indexes(set()) == ""
    assert parse_indexes("0-2,5,7-8", 8) == {0, 1, 2, 5, 7}
    assert parse_indexes("x,3", 8) == {3}
    plan = plan_job(job(4, 1, mode="Indexed", started=5, completed_indexes="3"),
                    [pod("a", "Succeeded", 3, index=0)], now=NOW)
    assert plan.status.completed_indexes == "0,3"
    assert plan.status.succeeded == 2


def test_pods_of_an_indexed_job():
    j = job(3, 1, mode="Indexed")
    p = pod_for(j, 2)
    assert p.metadata.generate_name == "pi-2-"
    assert p.metadata.annotations["batch.kubernetes.io/job-completion-index"] == "2"
    assert p.metadata.labels["batch.kubernetes.io/job-completion-index"] == "2"
    assert p.spec.hostname == "pi-2"
    [env] = p.spec.containers[0].env
    assert (env.name, env.value_from.field_ref.field_path) == (
        "JOB_COMPLETION_INDEX", "metadata.annotations['batch.kubernetes.io/job-completion-index']")
    [ref] = p.metadata.owner_references
    assert (ref.kind, ref.uid, ref.controller) == ("Job", UID, True)
    plain = pod_for(job(), None)
    assert plain.metadata.generate_name == "pi-" and not plain.spec.containers[0].env
    assert not plain.spec.hostname
    assert j.spec.template.spec.containers[0].env == [], "the template is not touched"
