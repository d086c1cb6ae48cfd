"""The CronJob planner: from a CronJob, its Jobs and the time, what to do. Pure.

Kubernetes' CronJob controller v2 (pkg/controller/cronjob/cronjob_controllerv2.go,
utils.go) is the model; each step below names the rule it follows:
1. history (cleanupFinishedJobs): finished Jobs beyond successfulJobsHistoryLimit
   (condition Complete) and failedJobsHistoryLimit (Failed) are deleted, each group
   separately, oldest first (by status.startTime, Jobs without one last, then name);
2. bookkeeping: a finished Job leaves status.active (event SawCompletedJob); an
   unfinished Job of ours that is not in status.active is reported (UnexpectedJob:
   the controller re-reads the CronJob once before believing it); an active
   reference whose Job is gone (confirmed by a live read, `missing`) leaves it
   (MissingJob); lastSuccessfulTime is the latest completionTime of a Complete Job;
3. nothing is started while the CronJob is being deleted, its timeZone is unknown
   (UnknownTimeZone), it is suspended, or its schedule does not parse
   (UnparseableSchedule) or never matches (InvalidSchedule);
4. the run to start (mostRecentScheduleTime): the latest scheduled time in
   (earliest, now], where earliest is lastScheduleTime, else creationTimestamp, moved
   up to now - startingDeadlineSeconds when that is later. Only the latest missed
   run starts, never a backlog. More than 100 missed times (estimated from the
   schedule's period, as Kubernetes does) add a TooManyMissedTimes warning but the
   latest run still starts (v2's rule; v1 gave up);
5. a run older than startingDeadlineSeconds is skipped (MissSchedule); a run already
   in status.active (by its Job name) or equal to lastScheduleTime is done;
6. concurrencyPolicy: Allow starts it; Forbid skips it while a Job is active
   (JobAlreadyActive); Replace deletes every active Job, then starts it;
7. the Job is NAME-<scheduled time in minutes since the epoch> (getJobName), so a
   replayed sync or a new leader asks to create the same name: AlreadyExists means
   the run was started (the controller then only records it);
8. requeue (nextScheduleTimeDuration): the next scheduled time after the latest run
   (or after now when runs were missed), minus now, plus 100 ms for clock skew.

Time zones: the schedule is evaluated in spec.timeZone, else in the controller's
local zone (skiff/api/cronschedule.py), and `now` is an aware datetime.
"""

import datetime
from dataclasses import dataclass, field

from controlplane.controllers.podutil import copy, get_condition, owner_reference, parse_rfc3339
from skiff.api import cronschedule
from skiff.api import objects_pb2 as pb
from skiff.api.kinds.cronjob import SCHEDULED_TIMESTAMP
from skiff.api.wellknown import rfc3339

TOO_MANY_MISSED = 100
NEXT_SCHEDULE_DELTA_S = 0.1
NORMAL, WARNING = "Normal", "Warning"


@dataclass
class JobDelete:
    name: str
    uid: str
    reason: str          # "history" | "replace"


@dataclass
class CronJobPlan:
    status: pb.CronJobStatus                 # the status after this sync, before a create
    delete: list = field(default_factory=list)       # JobDelete, in order
    create: pb.Job | None = None
    scheduled_time: datetime.datetime | None = None  # the run `create` starts
    events: list = field(default_factory=list)       # (type, reason, message)
    unexpected: list = field(default_factory=list)   # names of unfinished Jobs not in status.active
    requeue_s: float | None = None           # look again after this long (None: on the next change)


# ---------------------------------------------------------------- Jobs

def finished_type(job: pb.Job) -> str | None:
    """"Complete" or "Failed" once the Job has that condition True; None while it runs."""
    for ctype in ("Complete", "Failed"):
        cond = get_condition(job.status.conditions, ctype)
        if cond is not None and cond.status == "True":
            return ctype
    return None


def jobs_of(cj: pb.CronJob, jobs) -> list:
    """The Jobs whose controller reference is this CronJob (by uid: a CronJob recreated
    under the same name does not inherit its predecessor's Jobs)."""
    return [j for j in jobs if any(r.controller and r.uid == cj.metadata.uid
                                   for r in j.metadata.owner_references)]


def unseen_active(cj: pb.CronJob, jobs) -> list:
    """References in status.active whose Job is not among `jobs`: gone, or a cache behind."""
    uids = {j.metadata.uid for j in jobs}
    return [ref for ref in cj.status.active if ref.uid not in uids]


def job_name(cj: pb.CronJob, scheduled: datetime.datetime) -> str:
    return f"{cj.metadata.name}-{int(scheduled.timestamp()) // 60}"


def job_from_template(cj: pb.CronJob, scheduled: datetime.datetime, zone) -> pb.Job:
    """getJobFromTemplate2: the template's labels, annotations and spec, the deterministic
    name, a controller reference, and the scheduled time (RFC 3339 in the CronJob's zone)."""
    tmpl = cj.spec.job_template
    job = pb.Job(api_version="batch/v1", kind="Job",
                 metadata=pb.ObjectMeta(name=job_name(cj, scheduled), namespace=cj.metadata.namespace,
                                        labels=dict(tmpl.metadata.labels),
                                        annotations=dict(tmpl.metadata.annotations)))
    job.metadata.annotations[SCHEDULED_TIMESTAMP] = _go_rfc3339(scheduled.astimezone(zone))
    job.metadata.owner_references.append(owner_reference(cj, "CronJob", "batch/v1"))
    job.spec.CopyFrom(tmpl.spec)
    return job


def job_reference(job: pb.Job) -> pb.ObjectReference:
    return pb.ObjectReference(kind="Job", api_version="batch/v1", namespace=job.metadata.namespace,
                              name=job.metadata.name, uid=job.metadata.uid,
                              resource_version=job.metadata.resource_version)


def with_started(status: pb.CronJobStatus, job: pb.Job, scheduled: datetime.datetime) -> pb.CronJobStatus:
    """A copy of status recording the run `job` started for `scheduled`."""
    out = copy(status)
    if not any(r.uid == job.metadata.uid for r in out.active):
        out.active.append(job_reference(job))
    out.last_schedule_time = rfc3339(scheduled)
    return out


def _go_rfc3339(t: datetime.datetime) -> str:
    """Go's time.RFC3339: 2024-05-01T09:00:00+02:00, "Z" for a zero offset."""
    text = t.replace(microsecond=0).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _start_order(job: pb.Job):
    started = parse_rfc3339(job.status.start_time)
    return (started is None, started or datetime.datetime.min.replace(tzinfo=datetime.timezone.utc),
            job.metadata.name)


def _drop_active(status: pb.CronJobStatus, uid: str) -> bool:
    keep = [r for r in status.active if r.uid != uid]
    if len(keep) == len(status.active):
        return False
    del status.active[:]
    status.active.extend(keep)
    return True


# ---------------------------------------------------------------- schedule arithmetic

def most_recent_schedule_time(cj: pb.CronJob, now, sched, include_deadline: bool):
    """mostRecentScheduleTime: (earliest, latest scheduled time in (earliest, now] or None,
    number of missed times, estimated). ValueError when the schedule never matches or two
    consecutive times are less than a second apart."""
    earliest = (parse_rfc3339(cj.status.last_schedule_time) or parse_rfc3339(cj.metadata.creation_timestamp)
                or now)
    if include_deadline and cj.spec.HasField("starting_deadline_seconds"):
        deadline = now - datetime.timedelta(seconds=cj.spec.starting_deadline_seconds)
        earliest = max(earliest, deadline)
    t1 = sched.next(earliest)
    if now < t1:
        return earliest, None, 0
    t2 = sched.next(t1)
    if now < t2:
        return earliest, t1, 1
    period_s = round((t2 - t1).total_seconds())
    if period_s < 1:
        raise ValueError("time difference between two schedules is less than 1 second")
    # Kubernetes' estimate: how many periods fit between t1 and now; then walk the
    # schedule from two periods before the estimated latest run (irregular schedules).
    missed = int((now - t1).total_seconds()) // period_s + 1
    latest = None
    t = sched.next(t1 + datetime.timedelta(seconds=(missed - 2) * period_s))
    while t <= now:
        latest = t
        t = sched.next(t)
    return earliest, latest, missed


def next_requeue_s(cj: pb.CronJob, now, sched) -> float:
    """nextScheduleTimeDuration: seconds until the next run after the latest one (after now
    when runs were missed or the schedule is broken), plus 100 ms."""
    try:
        earliest, latest, missed = most_recent_schedule_time(cj, now, sched, include_deadline=False)
        base = latest or (earliest if missed == 0 else now)
        nxt = sched.next(base)
    except ValueError:
        try:
            nxt = sched.next(now)
        except ValueError:
            return None
    return max(0.0, (nxt - now).total_seconds()) + NEXT_SCHEDULE_DELTA_S


# ---------------------------------------------------------------- the plan

def plan_cronjob(cj: pb.CronJob, jobs, now: datetime.datetime, missing=frozenset(),
                 local_zone=None) -> CronJobPlan:
    """jobs: this CronJob's Jobs (jobs_of); missing: uids of status.active references
    confirmed gone by a live read; local_zone: the zone when spec.timeZone is unset
    (default: this process's)."""
    plan = CronJobPlan(status=copy(cj.status))
    status, events = plan.status, plan.events
    _prune_history(cj, jobs, plan)
    _bookkeeping(cj, jobs, missing, plan)
    spec = cj.spec
    if cj.metadata.deletion_timestamp:
        return plan
    try:
        zone = cronschedule.load_zone(spec.time_zone) if spec.HasField("time_zone") else (
            local_zone or cronschedule.local_zone())
    except ValueError as exc:
        events.append((WARNING, "UnknownTimeZone", f'invalid timeZone: "{spec.time_zone}": {exc}'))
        return plan
    if spec.suspend:
        return plan
    try:
        sched = cronschedule.parse(spec.schedule, zone)
    except ValueError as exc:
        events.append((WARNING, "UnparseableSchedule", f'unparseable schedule: "{spec.schedule}" : {exc}'))
        return plan
    view = copy(cj)
    view.status.CopyFrom(status)
    try:
        _, scheduled, missed = most_recent_schedule_time(view, now, sched, include_deadline=True)
    except ValueError as exc:
        events.append((WARNING, "InvalidSchedule", f"invalid schedule: {spec.schedule} : {exc}"))
        return plan
    if scheduled is not None and missed > TOO_MANY_MISSED:
        events.append((WARNING, "TooManyMissedTimes", "too many missed start times. Set or decrease "
                       ".spec.startingDeadlineSeconds or check clock skew"))
    plan.requeue_s = next_requeue_s(view, now, sched)
    if scheduled is None:
        return plan
    if spec.HasField("starting_deadline_seconds") and (
            scheduled + datetime.timedelta(seconds=spec.starting_deadline_seconds) < now):
        events.append((WARNING, "MissSchedule", "Missed scheduled time to start a job: "
                       + scheduled.astimezone(datetime.timezone.utc).strftime("%a, %d %b %Y %H:%M:%S %z")))
        return plan
    name = job_name(cj, scheduled)
    if any(r.name == name for r in status.active) or status.last_schedule_time == rfc3339(scheduled):
        return plan
    if spec.concurrency_policy == "Forbid" and status.active:
        events.append((NORMAL, "JobAlreadyActive",
                       "Not starting job because prior execution is running and concurrency policy is Forbid"))
        return plan
    if spec.concurrency_policy == "Replace":
        for ref in list(status.active):
            plan.delete.append(JobDelete(ref.name, ref.uid, "replace"))
            _drop_active(status, ref.uid)
    plan.create = job_from_template(cj, scheduled, zone)
    plan.scheduled_time = scheduled
    after = copy(view)
    after.status.last_schedule_time = rfc3339(scheduled)
    plan.requeue_s = next_requeue_s(after, now, sched)
    return plan


def _prune_history(cj, jobs, plan) -> None:
    for limit, ctype in ((cj.spec.successful_jobs_history_limit, "Complete"),
                         (cj.spec.failed_jobs_history_limit, "Failed")):
        done = sorted((j for j in jobs if finished_type(j) == ctype), key=_start_order)
        for job in done[:max(0, len(done) - limit)]:
            plan.delete.append(JobDelete(job.metadata.name, job.metadata.uid, "history"))
            _drop_active(plan.status, job.metadata.uid)


def _bookkeeping(cj, jobs, missing, plan) -> None:
    status, events = plan.status, plan.events
    for job in jobs:
        name, uid = job.metadata.name, job.metadata.uid
        done = finished_type(job)
        listed = any(r.uid == uid for r in cj.status.active)
        if not listed and done is None:
            plan.unexpected.append(name)
            events.append((WARNING, "UnexpectedJob", f"Saw a job that the controller did not create or forgot: {name}"))
        elif listed and done is not None and _drop_active(status, uid):
            events.append((NORMAL, "SawCompletedJob", f"Saw completed job: {name}, condition: {done}"))
        if done == "Complete" and job.status.completion_time:
            last = parse_rfc3339(status.last_successful_time)
            completed = parse_rfc3339(job.status.completion_time)
            if completed is not None and (last is None or completed > last):
                status.last_successful_time = job.status.completion_time
    for ref in list(status.active):
        if ref.uid in missing and _drop_active(status, ref.uid):
            events.append((NORMAL, "MissingJob", f"Active job went missing: {ref.name}"))
