"""The Job controller: runs each Job's pods to completion, through the API.

sync(ns/name): read the Job and its namespace's pods from the informer caches, plan
with the pure plan_job() (job_plan.py states Kubernetes' rules it follows), then
apply idempotently: adopt orphans (pod updates), create pods from the template
(generateName; expectations keep a burst of syncs from creating twice), delete pods
(graceful, with a uid precondition), write the status through the status subresource
only when it changed, record the events of the plan's transitions (Completed,
BackoffLimitExceeded, DeadlineExceeded, Suspended, Resumed) and per pod
(SuccessfulCreate, SuccessfulDelete), and delete a Job whose ttlSecondsAfterFinished
passed (its pods follow through garbage collection).

Timers (back-off after failures, activeDeadlineSeconds, the TTL) are the plan's
recheck_s: the key is enqueued again then, so no timer thread exists. The resync
period is the toolkit's 30 s: an idle cost of one cache walk over the Jobs' keys and,
per Job, one pass over its namespace's cached pods (no API call unless something
changed).
"""

import logging

from controlplane.controllers.expectations import Expectations
from controlplane.controllers.job_plan import BACKOFF_BASE_S, BACKOFF_MAX_S, plan_job, pod_for
from controlplane.controllers.podutil import controller_ref, copy, key_of, owner_reference
from skiff import client as clientmod
from skiff.reconcile import Loop

log = logging.getLogger("skiff.controllers.job")


class JobController:
    def __init__(self, client, jobs, pods, recorder, workers: int = 2,
                 backoff_base_s: float = BACKOFF_BASE_S, backoff_max_s: float = BACKOFF_MAX_S):
        self.client = client
        self.jobs = jobs
        self.pods = pods
        self.recorder = recorder
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.expectations = Expectations()
        self.loop = Loop("job", self.sync, informers=(jobs, pods), workers=workers, list_keys=jobs.keys)
        jobs.add_handler(self._job_changed, lambda old, new: self._job_changed(new), self._job_deleted)
        pods.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)

    def start(self):
        self.loop.start()

    def stop(self):
        self.loop.stop()

    # ------------------------------------------------------------ handlers (enqueue only)

    def _job_changed(self, job):
        self.loop.enqueue(key_of(job))

    def _job_deleted(self, job):
        self.expectations.forget(key_of(job))

    @staticmethod
    def _owner_key(pod):
        ref = controller_ref(pod.metadata)
        if ref is None or ref.kind != "Job":
            return None
        return f"{pod.metadata.namespace}/{ref.name}"

    def _pod_added(self, pod):
        key = self._owner_key(pod)
        if key is not None:
            self.loop.enqueue(key)

    def _pod_updated(self, old, new):
        for key in {self._owner_key(old), self._owner_key(new)} - {None}:
            self.loop.enqueue(key)

    def _pod_deleted(self, pod):
        key = self._owner_key(pod)
        if key is not None:
            self.expectations.observed_deleted(key, pod.metadata.name)
            self.loop.enqueue(key)

    # ------------------------------------------------------------ sync

    def sync(self, key):
        job = self.jobs.get(key)
        if job is None or job.metadata.deletion_timestamp:
            self.expectations.forget(key)
            return None
        ns = job.metadata.namespace
        pods = self.pods.list(ns)
        pending_creates, pending_deletes = self.expectations.pending(key, pods)
        plan = plan_job(job, pods, pending_creates=pending_creates, pending_deletes=pending_deletes,
                        backoff_base_s=self.backoff_base_s, backoff_max_s=self.backoff_max_s)
        if plan.delete_job:
            self._delete_job(job)
            return None
        by_name = {p.metadata.name: p for p in pods}
        for name in plan.adopt:
            adopted = copy(by_name[name])
            adopted.metadata.owner_references.append(owner_reference(job, "Job", "batch/v1"))
            try:
                self.client.update(adopted)
            except (clientmod.NotFound, clientmod.Conflict):
                continue
            log.info("event=pod_adopted job=%s pod=%s", key, name)
        for name in plan.delete:
            pod = by_name[name]
            self.expectations.deleting(key, pod.metadata.uid)
            try:
                self.client.delete("pods", name, ns, uid=pod.metadata.uid)
            except (clientmod.NotFound, clientmod.Conflict):
                continue
            log.info("event=pod_deleted job=%s pod=%s", key, name)
            self.recorder.event(job, "Normal", "SuccessfulDelete", f"Deleted pod: {name}")
        for index in plan.create:
            created = self.client.create(pod_for(job, index))
            self.expectations.created(key, created.metadata.name)
            log.info("event=pod_created job=%s pod=%s index=%s", key, created.metadata.name,
                     "" if index is None else index)
            self.recorder.event(job, "Normal", "SuccessfulCreate", f"Created pod: {created.metadata.name}")
        if plan.status != job.status:
            updated = copy(job)
            updated.status.CopyFrom(plan.status)
            try:
                self.client.update_status(updated)
            except clientmod.NotFound:
                return None
        # Events after the status write: a Conflict above retries the sync, which
        # plans the same transition again; recording first would record it twice.
        for event_type, reason, message in plan.events:
            log.info("event=job_%s job=%s", reason.lower(), key)
            self.recorder.event(job, event_type, reason, message)
        return plan.recheck_s

    def _delete_job(self, job):
        """ttlSecondsAfterFinished: delete the Job (uid precondition: never a newer one of
        the same name); garbage collection removes its pods."""
        try:
            self.client.delete("jobs", job.metadata.name, job.metadata.namespace, uid=job.metadata.uid)
        except (clientmod.NotFound, clientmod.Conflict):
            return
        log.info("event=job_ttl_deleted job=%s", key_of(job))
