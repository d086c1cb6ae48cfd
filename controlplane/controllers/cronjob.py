"""The CronJob controller: creates each scheduled run's Job, keeps status and history.

sync(ns/name): read the CronJob and its namespace's Jobs from the informer caches,
confirm with a live read any status.active reference whose Job the cache lacks,
plan with the pure plan_cronjob() (cronjob_plan.py holds Kubernetes' rules), then
apply: delete Jobs beyond the history limits and, for Replace, the active ones
(uid precondition; the Job's pods follow through garbage collection); create the
run's Job; write the status (compare-and-swap) when it changed. Events as
Kubernetes' controller writes them: SuccessfulCreate, SuccessfulDelete,
SawCompletedJob, MissingJob, UnexpectedJob, JobAlreadyActive, MissSchedule,
TooManyMissedTimes, FailedCreate, FailedDelete, UnparseableSchedule, InvalidSchedule,
UnknownTimeZone.

Exactly once per scheduled time: a run's Job name is derived from its scheduled
minute, so two leaders, a replayed sync or a cache that has not seen our last status
write all ask for the same name; AlreadyExists on a Job we control means the run was
started, and only its record in status.active is (re)written.

Pacing: handlers only enqueue (a CronJob change, a change of a Job it controls);
after each sync the key comes back at the next scheduled time (+100 ms), so an idle
`*/5 * * * *` CronJob costs one cache-only sync per five minutes and no API call
unless its status changes. The resync period (RESYNC_S = 300 s) only repairs a missed event.
`clock` (an aware-datetime callable) is injectable for tests.
"""

import datetime
import logging

from controlplane.controllers.cronjob_plan import jobs_of, plan_cronjob, unseen_active, with_started
from controlplane.controllers.podutil import controller_ref, copy, key_of
from skiff import client as clientmod
from skiff.reconcile import Loop

log = logging.getLogger("skiff.controllers.cronjob")

RESYNC_S = 300.0


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


class CronJobController:
    def __init__(self, client, cronjobs, jobs, recorder, clock=utc_now, workers: int = 2):
        self.client = client
        self.cronjobs = cronjobs
        self.jobs = jobs
        self.recorder = recorder
        self.clock = clock
        self.loop = Loop("cronjob", self.sync, informers=(cronjobs, jobs), workers=workers,
                         list_keys=cronjobs.keys, resync_s=RESYNC_S)
        cronjobs.add_handler(self._enqueue, lambda old, new: self._enqueue(new), None)
        jobs.add_handler(self._job_changed, lambda old, new: self._job_changed(new), self._job_changed)

    def start(self):
        self.loop.start()

    def stop(self):
        self.loop.stop()

    # ------------------------------------------------------------ handlers (enqueue only)

    def _enqueue(self, cj):
        self.loop.enqueue(key_of(cj))

    def _job_changed(self, job):
        ref = controller_ref(job.metadata)
        if ref is not None and ref.kind == "CronJob":
            self.loop.enqueue(f"{job.metadata.namespace}/{ref.name}")

    # ------------------------------------------------------------ sync

    def sync(self, key):
        cj = self.cronjobs.get(key)
        if cj is None:
            return None
        ns = cj.metadata.namespace
        now = self.clock()
        jobs = jobs_of(cj, self.jobs.list(ns))
        plan = plan_cronjob(cj, jobs, now, self._missing(cj, jobs))
        if plan.unexpected:
            # Our own status write may not have reached the cache yet: believe a fresh read.
            try:
                cj = self.client.get("cronjobs", cj.metadata.name, ns)
            except clientmod.NotFound:
                return None
            plan = plan_cronjob(cj, jobs, now, self._missing(cj, jobs))
        for etype, reason, message in plan.events:
            self.recorder.event(cj, etype, reason, message)
        status = plan.status
        for d in plan.delete:
            self._delete(cj, d)
        if plan.create is not None:
            status = self._create(cj, plan, status)
        if status != cj.status:
            updated = copy(cj)
            updated.status.CopyFrom(status)
            try:
                self.client.update_status(updated)
            except clientmod.NotFound:
                return None
        return plan.requeue_s

    def _missing(self, cj, jobs) -> set:
        """uids of status.active references whose Job a live read confirms gone."""
        gone = set()
        for ref in unseen_active(cj, jobs):
            try:
                live = self.client.get("jobs", ref.name, cj.metadata.namespace)
            except clientmod.NotFound:
                gone.add(ref.uid)
                continue
            if live.metadata.uid != ref.uid:
                gone.add(ref.uid)
        return gone

    def _delete(self, cj, d):
        ns = cj.metadata.namespace
        try:
            self.client.delete("jobs", d.name, ns, uid=d.uid)
        except (clientmod.NotFound, clientmod.Conflict):
            return   # already gone (or replaced by another of that name: not ours)
        except clientmod.ApiError as exc:
            self.recorder.event(cj, "Warning", "FailedDelete", f"Deleted job: {exc}")
            raise
        log.info("event=job_deleted cronjob=%s/%s job=%s reason=%s", ns, cj.metadata.name, d.name, d.reason)
        self.recorder.event(cj, "Normal", "SuccessfulDelete", f"Deleted job {d.name}")

    def _create(self, cj, plan, status):
        """Create the run's Job; the status recording it. Raises on other failures (retried)."""
        ns = cj.metadata.namespace
        job = plan.create
        try:
            created = self.client.create(job)
        except clientmod.AlreadyExists:
            created = self.client.get("jobs", job.metadata.name, ns)
            ref = controller_ref(created.metadata)
            if ref is None or ref.uid != cj.metadata.uid:
                return status   # someone else's Job of that name: theirs to account for
            log.info("event=job_exists cronjob=%s/%s job=%s", ns, cj.metadata.name, job.metadata.name)
            return with_started(status, created, plan.scheduled_time)
        except clientmod.ApiError as exc:
            self.recorder.event(cj, "Warning", "FailedCreate", f"Error creating job: {exc}")
            raise
        lag_s = (self.clock() - plan.scheduled_time).total_seconds()
        log.info("event=job_created cronjob=%s/%s job=%s scheduled=%s lag_s=%.3f", ns, cj.metadata.name,
                 created.metadata.name, plan.scheduled_time.isoformat(), lag_s)
        self.recorder.event(cj, "Normal", "SuccessfulCreate", f"Created job {created.metadata.name}")
        return with_started(status, created, plan.scheduled_time)
