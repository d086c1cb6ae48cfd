"""The CronJob planner with a fake clock: which run starts, missed runs, the starting deadline,
concurrency policies, history, status bookkeeping, time zones."""

import datetime
import zoneinfo

import pytest

from controlplane.controllers.cronjob_plan import (jobs_of, job_from_template, job_name, plan_cronjob,
                                                   unseen_active, with_started)
from skiff.api import objects_pb2 as pb
from skiff.api.kinds.cronjob import SCHEDULED_TIMESTAMP

UTC = datetime.timezone.utc
CJ_UID = "cj-uid"


def t(text: str) -> datetime.datetime:
    """"00:05:30" on 2026-01-10, or a full ISO time; UTC."""
    if "T" not in text:
        text = "2026-01-10T" + text
    return datetime.datetime.fromisoformat(text).replace(tzinfo=UTC)


def ts(text: str) -> str:
    return t(text).strftime("%Y-%m-%dT%H:%M:%SZ")


def minute(text: str) -> int:
    return int(t(text).timestamp()) // 60


def cronjob(schedule="*/1 * * * *", created="00:00:30", last=None, active=(), policy="Allow", suspend=False,
            deadline=None, tz=None, succeeded=3, failed=1):
    cj = pb.CronJob(metadata=pb.ObjectMeta(name="cj", namespace="ns", uid=CJ_UID, creation_timestamp=ts(created)))
    cj.spec.schedule = schedule
    cj.spec.concurrency_policy = policy
    cj.spec.suspend = suspend
    cj.spec.successful_jobs_history_limit = succeeded
    cj.spec.failed_jobs_history_limit = failed
    if deadline is not None:
        cj.spec.starting_deadline_seconds = deadline
    if tz is not None:
        cj.spec.time_zone = tz
    cj.spec.job_template.metadata.labels["app"] = "cj"
    cj.spec.job_template.metadata.annotations["note"] = "hi"
    cj.spec.job_template.spec.backoff_limit = 2
    cj.spec.job_template.spec.template.spec.restart_policy = "Never"
    cj.spec.job_template.spec.template.spec.containers.add(name="run", image="busybox:1.36")
    if last:
        cj.status.last_schedule_time = ts(last)
    for name in active:
        cj.status.active.add(kind="Job", api_version="batch/v1", namespace="ns", name=name, uid=f"uid-{name}")
    return cj


def job(name, state=None, start=None, completed=None, owner=CJ_UID):
    j = pb.Job(metadata=pb.ObjectMeta(name=name, namespace="ns", uid=f"uid-{name}"))
    j.metadata.owner_references.add(kind="CronJob", name="cj", uid=owner, controller=True)
    if start:
        j.status.start_time = ts(start)
    if state:
        j.status.conditions.add(type=state, status="True")
    if completed:
        j.status.completion_time = ts(completed)
    return j


def reasons(plan):
    return [r for _, r, _ in plan.events]


# ---------------------------------------------------------------- which run starts, and when to look again

# (case, cronjob kwargs, now, the scheduled time of the Job created or None, requeue_s, event reasons)
RUNS = [
    ("first run at the first scheduled minute", {}, "00:01:00.2", "00:01:00", 59.9, []),
    ("nothing before the first scheduled time", {}, "00:00:45", None, 15.1, []),
    ("a run already recorded is not started twice", {"last": "00:01:00"}, "00:01:30", None, 30.1, []),
    ("a run in status.active by its Job name is done",
     {"last": "00:00:00", "active": (f"cj-{minute('00:01:00')}",)}, "00:01:10", None, 50.1, []),
    ("several missed: only the latest starts", {"last": "00:01:00"}, "00:05:30", "00:05:00", 30.1, []),
    ("startingDeadlineSeconds: a run older than it is skipped without an event",
     {"last": "00:01:00", "deadline": 10}, "00:05:30", None, 30.1, []),
    ("startingDeadlineSeconds: a run within it starts",
     {"last": "00:01:00", "deadline": 60}, "00:05:30", "00:05:00", 30.1, []),
    ("more than 100 missed: the latest still starts, with a warning",
     {"created": "2026-01-08T00:00:30"}, "00:05:30", "00:05:00", 30.1, ["TooManyMissedTimes"]),
    ("a deadline bounds the missed count: no warning",
     {"created": "2026-01-08T00:00:30", "deadline": 200}, "00:05:30", "00:05:00", 30.1, []),
    ("an irregular schedule: the walk back finds the latest run", {"schedule": "30 6-16/4 * * 1-5", "created": "2026-01-05T00:00:00"},
     "2026-01-09T11:00:00", "2026-01-09T10:30:00", 4 * 3600 - 1800 + 0.1, []),   # 25 missed
    ("@every counts from the last run", {"schedule": "@every 90s", "last": "00:01:00"}, "00:02:31",
     "00:02:30", 89.1, []),
    ("suspended: nothing, no requeue", {"suspend": True}, "00:05:00", None, None, []),
    ("unparseable schedule", {"schedule": "every minute"}, "00:05:00", None, None, ["UnparseableSchedule"]),
    ("a schedule that never matches", {"schedule": "0 0 31 2 *"}, "00:05:00", None, None, ["InvalidSchedule"]),
    ("unknown time zone", {"tz": "Mars/Olympus"}, "00:05:00", None, None, ["UnknownTimeZone"]),
]


@pytest.mark.parametrize("case,kw,now,scheduled,requeue_s,events", RUNS, ids=[r[0] for r in RUNS])
def test_which_run_starts(case, kw, now, scheduled, requeue_s, events):
    cj = cronjob(**kw)
    plan = plan_cronjob(cj, [], t(now), local_zone=UTC)
    if scheduled is None:
        assert plan.create is None and plan.scheduled_time is None
    else:
        assert plan.scheduled_time == t(scheduled)
        assert plan.create.metadata.name == f"cj-{minute(scheduled)}"
    if requeue_s is None:
        assert plan.requeue_s is None
    else:
        assert plan.requeue_s == pytest.approx(requeue_s, abs=1e-6)
    assert reasons(plan) == events


def test_requeue_is_the_next_scheduled_time_not_a_poll():
    plan = plan_cronjob(cronjob(schedule="0 * * * *", created="00:00:30"), [], t("00:10:00"), local_zone=UTC)
    assert plan.create is None and plan.requeue_s == pytest.approx(50 * 60 + 0.1)


# ---------------------------------------------------------------- concurrency policies

RUNNING = "cj-100"


@pytest.mark.parametrize("policy,creates,deletes,active_after,events", [
    ("Allow", True, [], [RUNNING], []),
    ("Forbid", False, [], [RUNNING], ["JobAlreadyActive"]),
    ("Replace", True, [(RUNNING, "replace")], [], []),
])
def test_concurrency_policy_with_a_run_still_active(policy, creates, deletes, active_after, events):
    cj = cronjob(policy=policy, last="00:01:00", active=(RUNNING,))
    plan = plan_cronjob(cj, [job(RUNNING, start="00:01:01")], t("00:02:00.1"), local_zone=UTC)
    assert (plan.create is not None) == creates
    assert [(d.name, d.reason) for d in plan.delete] == deletes
    assert [r.name for r in plan.status.active] == active_after
    assert reasons(plan) == events
    assert plan.requeue_s == pytest.approx(60.0, abs=0.01)


def test_forbid_starts_once_the_active_run_finished():
    cj = cronjob(policy="Forbid", last="00:01:00", active=(RUNNING,))
    plan = plan_cronjob(cj, [job(RUNNING, "Complete", "00:01:01", "00:01:30")], t("00:02:00.1"), local_zone=UTC)
    assert plan.create is not None and plan.status.active == []
    assert reasons(plan) == ["SawCompletedJob"]


# ---------------------------------------------------------------- history and bookkeeping

def test_history_limits_prune_oldest_first_each_kind_on_its_own():
    jobs = [job("s1", "Complete", "00:01:00"), job("s4", "Complete", "00:04:00"), job("s2", "Complete", "00:02:00"),
            job("s3", "Complete", "00:03:00"), job("s0", "Complete"),      # no startTime: sorts last
            job("f1", "Failed", "00:01:00"), job("f2", "Failed", "00:02:00"),
            job("r5", None, "00:05:00")]                                   # running: never pruned
    cj = cronjob(last="00:05:00", active=("r5",), succeeded=2, failed=1)
    plan = plan_cronjob(cj, jobs, t("00:05:10"), local_zone=UTC)
    assert [(d.name, d.reason) for d in plan.delete] == [("s1", "history"), ("s2", "history"),
                                                         ("s3", "history"), ("f1", "history")]
    assert [r.name for r in plan.status.active] == ["r5"]


def test_zero_limits_keep_no_finished_job():
    jobs = [job("s1", "Complete", "00:01:00"), job("f1", "Failed", "00:02:00")]
    plan = plan_cronjob(cronjob(last="00:02:00", succeeded=0, failed=0), jobs, t("00:02:10"), local_zone=UTC)
    assert sorted(d.name for d in plan.delete) == ["f1", "s1"]


def test_completed_active_job_leaves_active_and_sets_last_successful_time():
    cj = cronjob(last="00:03:00", active=("a", "b"))
    jobs = [job("a", "Complete", "00:02:00", "00:02:40"), job("b", "Failed", "00:03:00"),
            job("old", "Complete", "00:01:00", "00:01:30")]
    plan = plan_cronjob(cj, jobs, t("00:03:10"), local_zone=UTC)
    assert plan.status.active == []
    assert plan.status.last_successful_time == ts("00:02:40")
    assert sorted(m for _, r, m in plan.events if r == "SawCompletedJob") == [
        "Saw completed job: a, condition: Complete", "Saw completed job: b, condition: Failed"]


def test_missing_and_unseen_active_jobs():
    cj = cronjob(last="00:03:00", active=("gone", "lagging"))
    assert [r.name for r in unseen_active(cj, [])] == ["gone", "lagging"]
    plan = plan_cronjob(cj, [], t("00:03:10"), missing={"uid-gone"}, local_zone=UTC)
    assert [r.name for r in plan.status.active] == ["lagging"]      # the cache lags; a live read found it
    assert [(r, m) for _, r, m in plan.events] == [("MissingJob", "Active job went missing: gone")]


def test_unfinished_job_not_in_active_is_unexpected():
    plan = plan_cronjob(cronjob(last="00:03:00"), [job("stray", None, "00:03:00")], t("00:03:10"), local_zone=UTC)
    assert plan.unexpected == ["stray"] and reasons(plan) == ["UnexpectedJob"]
    assert plan.status.active == []


def test_jobs_of_is_by_controller_uid():
    mine, other = job("a"), job("b", owner="someone-else")
    assert jobs_of(cronjob(), [mine, other]) == [mine]


def test_a_deleting_cronjob_only_keeps_its_books():
    cj = cronjob(active=("a",))
    cj.metadata.deletion_timestamp = ts("00:04:00")
    plan = plan_cronjob(cj, [job("a", "Complete", "00:01:00", "00:01:10")], t("00:05:00"), local_zone=UTC)
    assert plan.create is None and plan.status.active == [] and plan.requeue_s is None


# ---------------------------------------------------------------- the Job and the recorded run

def test_job_from_template():
    cj = cronjob()
    j = job_from_template(cj, t("00:05:00"), UTC)
    assert j.metadata.name == f"cj-{minute('00:05:00')}" == job_name(cj, t("00:05:00"))
    assert j.metadata.namespace == "ns"
    assert dict(j.metadata.labels) == {"app": "cj"}
    assert dict(j.metadata.annotations) == {"note": "hi", SCHEDULED_TIMESTAMP: "2026-01-10T00:05:00Z"}
    (ref,) = j.metadata.owner_references
    assert (ref.kind, ref.api_version, ref.name, ref.uid, ref.controller) == ("CronJob", "batch/v1", "cj", CJ_UID, True)
    assert j.spec == cj.spec.job_template.spec


def test_with_started_records_the_run_once():
    created = job("cj-1")
    created.metadata.resource_version = "42"
    status = with_started(pb.CronJobStatus(), created, t("00:05:00"))
    status = with_started(status, created, t("00:05:00"))
    assert [(r.name, r.uid, r.resource_version, r.kind) for r in status.active] == [("cj-1", "uid-cj-1", "42", "Job")]
    assert status.last_schedule_time == ts("00:05:00")


# ---------------------------------------------------------------- time zones

def test_time_zone_decides_when_and_the_annotation_says_so():
    cj = cronjob(schedule="0 9 * * *", created="2026-01-09T12:00:00", tz="Europe/Paris")
    early = plan_cronjob(cj, [], t("07:59:00"), local_zone=UTC)
    assert early.create is None and early.requeue_s == pytest.approx(60.1)
    plan = plan_cronjob(cj, [], t("08:00:00.5"), local_zone=UTC)      # 09:00 in Paris
    assert plan.scheduled_time == t("08:00:00")
    assert plan.create.metadata.annotations[SCHEDULED_TIMESTAMP] == "2026-01-10T09:00:00+01:00"


def test_unset_time_zone_is_the_controllers_local_zone():
    cj = cronjob(schedule="0 9 * * *", created="2026-01-09T12:00:00")
    plan = plan_cronjob(cj, [], t("00:00:01"), local_zone=zoneinfo.ZoneInfo("Asia/Tokyo"))   # 09:00 JST
    assert plan.scheduled_time == t("00:00:00")


def test_dst_fall_back_gives_two_distinct_runs():
    cj = cronjob(schedule="30 2 * * *", created="2026-10-24T22:00:00", tz="Europe/Paris")
    first = plan_cronjob(cj, [], t("2026-10-25T00:30:01"), local_zone=UTC)
    cj.status.last_schedule_time = ts("2026-10-25T00:30:00")
    second = plan_cronjob(cj, [], t("2026-10-25T01:30:01"), local_zone=UTC)
    assert first.create.metadata.name != second.create.metadata.name
    assert [p.create.metadata.annotations[SCHEDULED_TIMESTAMP] for p in (first, second)] == [
        "2026-10-25T02:30:00+02:00", "2026-10-25T02:30:00+01:00"]
