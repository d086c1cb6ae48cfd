"""The Job planner: from a Job and the pods of its namespace, what to do. Pure.

The rules are Kubernetes' job controller (pkg/controller/job/job_controller.go syncJob
and manageJob, backoff_utils.go, indexed_job_utils.go):
- pods: a pod is the Job's when its controller ownerReference has the Job's uid; an
  orphan matching the selector and not being deleted is adopted. Active = not
  finished (phase Succeeded/Failed), not being deleted, not asked by us to be deleted;
  a pod being deleted counts in status.terminating, never as active, so it is replaced
  at once (podReplacementPolicy TerminatingOrFailed, Kubernetes' default);
- counting: succeeded and failed are the Job's pods present in phase Succeeded / Failed,
  Kubernetes' legacy tracking (before JobTrackingWithFinalizers, "the number of failed
  Pods is only based on Pods that are still present in the API"). skiff never deletes a
  finished pod of a running Job, and a count never goes down (max with the previous
  status: deleting a finished pod does not undo its count). Not done: Kubernetes'
  finalizer tracking (pods deleted before they finish counted as failed, active pods of
  a Job that fails counted as failed). Indexed Jobs count distinct completed indexes
  (status.completedIndexes, "1,3-5"), kept in status too;
- failure: failed > backoffLimit, or (restartPolicy OnFailure) the container restarts of
  the active pods reach backoffLimit (> 0 when backoffLimit is 0: pastBackoffLimitOnFailure)
  -> condition Failed reason BackoffLimitExceeded; activeDeadlineSeconds passed since
  status.startTime (not while suspended) -> Failed reason DeadlineExceeded. A failing
  Job's active pods are deleted; its finished pods stay (logs stay readable);
- success: completions set: succeeded >= completions (Indexed: every index) and no
  active pod left (surplus active pods are deleted); no completions (a work queue):
  some pod succeeded and none is active. Condition Complete, completionTime;
- creation: want = min(parallelism, completions - succeeded) (a work queue: parallelism
  until one succeeded, then no new pods); surplus active pods deleted worst first
  (Kubernetes' ActivePods order); missing ones created, but not before the back-off
  after failures ends: base * 2^(n-1) capped at max, n = failed pods that finished
  after the last succeeded one, counted from the last failure (newBackoffRecord and
  getRemainingTime: 10 s doubling, capped at 6 min as Kubernetes' Job documentation
  states; its controller's MaxJobPodFailureBackOff is 10 min today); Indexed: the lowest indexes
  neither completed nor held by an active pod; a second active pod of one index, or one
  with an index out of range, is deleted;
- suspend: active pods deleted, condition Suspended=True reason JobSuspended; resuming
  sets Suspended=False reason JobResumed and restarts startTime (and with it the
  activeDeadlineSeconds clock);
- ttlSecondsAfterFinished: that many seconds after the Complete or Failed condition's
  lastTransitionTime, the Job is deleted (its pods follow through garbage collection:
  Kubernetes' ttlafterfinished controller deletes with propagationPolicy Foreground).
"""

import datetime
from dataclasses import dataclass, field

from controlplane.controllers.podutil import (controller_ref, copy, get_condition, is_pod_ready,
                                              owner_reference, parse_rfc3339, set_condition)
from controlplane.controllers.replicaset_plan import deletion_order
from skiff.api import objects_pb2 as pb
from skiff.api import selectors
from skiff.api.kinds.job import (COMPLETION_INDEX_ANNOTATION, COMPLETION_INDEX_ENV, has_condition,
                                 is_indexed)
from skiff.api.selectors import validate_dns1123_label
from skiff.api.wellknown import rfc3339

BACKOFF_BASE_S = 10.0      # Kubernetes' DefaultJobPodFailureBackOff
BACKOFF_MAX_S = 360.0      # Kubernetes' MaxJobPodFailureBackOff (6 min)
BURST = 100                # pods created per sync at most (Kubernetes' MaxBatchSize is 500)


@dataclass(frozen=True)
class JobPlan:
    adopt: tuple = ()              # pod names: add our controller reference
    create: tuple = ()             # one entry per pod to create: its completion index, or None
    delete: tuple = ()             # active pod names to delete
    status: pb.JobStatus = field(default_factory=pb.JobStatus)
    events: tuple = ()             # (type, reason, message) for this sync's transitions
    delete_job: bool = False       # ttlSecondsAfterFinished has passed
    recheck_s: float | None = None  # look again then (back-off, deadline, TTL)


# ---------------------------------------------------------------- helpers

def selector_of(job) -> selectors.Selector:
    return selectors.from_label_selector(job.spec.selector)


def is_finished(job: pb.Job) -> bool:
    return has_condition(job, "Complete") or has_condition(job, "Failed")


def pod_index(pod: pb.Pod):
    """The completion index of an Indexed Job's pod (its annotation), or None."""
    text = pod.metadata.annotations.get(COMPLETION_INDEX_ANNOTATION, "")
    return int(text) if text.isdigit() else None


def finish_time(pod: pb.Pod) -> datetime.datetime | None:
    """When a finished pod finished: its containers' latest finishedAt (getFinishedTime)."""
    times = [parse_rfc3339(c.state.terminated.finished_at) for c in pod.status.container_statuses
             if c.state.HasField("terminated")]
    times = [t for t in times if t is not None]
    if times:
        return max(times)
    cond = get_condition(pod.status.conditions, "Ready")
    when = parse_rfc3339(cond.last_transition_time) if cond is not None else None
    return when or parse_rfc3339(pod.metadata.creation_timestamp)


def backoff_remaining_s(succeeded, failed, now, base_s: float, max_s: float) -> float:
    """Seconds left before the next pod may be created after failures (0: now).

    n = failed pods that finished after the last succeeded pod finished; the delay is
    base * 2^(n-1), capped at max_s, counted from the last failure."""
    last_success = max((t for t in map(finish_time, succeeded) if t is not None), default=None)
    recent = [t for t in map(finish_time, failed)
              if t is not None and (last_success is None or t > last_success)]
    if not recent:
        return 0.0
    delay = min(base_s * (2 ** (len(recent) - 1)), max_s)
    left = delay - (now - max(recent)).total_seconds()
    return max(0.0, left)


def format_indexes(indexes) -> str:
    """Sorted ranges: {0,1,2,5,7,8} -> "0-2,5,7-8" (status.completedIndexes)."""
    out, run = [], []
    for i in sorted(set(indexes)):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            out.append(_range_text(run))
        run = [i]
    if run:
        out.append(_range_text(run))
    return ",".join(out)


def _range_text(run) -> str:
    return str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}"


def parse_indexes(text: str, completions: int) -> set:
    """The inverse of format_indexes, keeping indexes < completions; bad parts are skipped."""
    out = set()
    for part in filter(None, text.split(",")):
        lo, _, hi = part.partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            continue
        out.update(i for i in range(int(lo), int(hi or lo) + 1) if i < completions)
    return out


def _restarts(pod: pb.Pod) -> int:
    return sum(c.restart_count for c in list(pod.status.container_statuses) + list(pod.status.init_container_statuses))


def past_backoff_limit_on_failure(job: pb.Job, active) -> bool:
    """restartPolicy OnFailure: container restarts of the active pods count toward the limit."""
    if job.spec.template.spec.restart_policy != "OnFailure":
        return False
    restarts = sum(_restarts(p) for p in active if p.status.phase in ("", "Pending", "Running"))
    limit = job.spec.backoff_limit
    return restarts > 0 if limit == 0 else restarts >= limit


def past_active_deadline(job: pb.Job, now) -> float | None:
    """Seconds until activeDeadlineSeconds passes (<= 0: passed); None when it does not apply."""
    if not job.spec.HasField("active_deadline_seconds") or job.spec.suspend:
        return None
    start = parse_rfc3339(job.status.start_time)
    if start is None:
        return None
    return job.spec.active_deadline_seconds - (now - start).total_seconds()


# ---------------------------------------------------------------- the planner

def plan_job(job: pb.Job, pods, *, now: datetime.datetime | None = None, pending_creates: int = 0,
             pending_deletes=frozenset(), backoff_base_s: float = BACKOFF_BASE_S,
             backoff_max_s: float = BACKOFF_MAX_S, burst: int = BURST) -> JobPlan:
    """pods: the pods of job's namespace (the cache); pending_creates: pods created but not
    in the cache yet; pending_deletes: uids we asked to delete."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    stamp = rfc3339(now)
    owned, adopt = _claim(job, pods)
    spec = job.spec
    active = [p for p in owned if _is_active(p) and p.metadata.uid not in pending_deletes]
    succeeded = [p for p in owned if p.status.phase == "Succeeded"]
    failed = [p for p in owned if p.status.phase == "Failed"]
    terminating = [p for p in owned if p.metadata.deletion_timestamp and p.status.phase not in ("Succeeded", "Failed")]

    status = copy(job.status)
    status.ClearField("uncounted_terminated_pods")
    status.failed = max(job.status.failed, len(failed))
    completions = spec.completions if spec.HasField("completions") else None
    if is_indexed(job):
        done = parse_indexes(job.status.completed_indexes, completions or 0)
        done.update(i for i in map(pod_index, succeeded) if i is not None and i < (completions or 0))
        status.completed_indexes = format_indexes(done)
        status.succeeded = max(job.status.succeeded, len(done))
    else:
        done = set()
        status.succeeded = max(job.status.succeeded, len(succeeded))
    status.terminating = len(terminating)
    events = []

    if is_finished(job):
        # Finished: nothing more runs; leftover active pods of a failed Job go.
        delete = tuple(p.metadata.name for p in active) if has_condition(job, "Failed") else ()
        status.active = len(active) - len(delete)
        status.ready = sum(1 for p in active if is_pod_ready(p)) if not delete else 0
        ttl_left = _ttl_left(job, now)
        return JobPlan(adopt=adopt, delete=delete, status=status,
                       delete_job=ttl_left is not None and ttl_left <= 0,
                       recheck_s=ttl_left if ttl_left is not None and ttl_left > 0 else None)

    recheck = []
    delete: list = []
    create: list = []
    # Suspension and resumption (startTime restarts on resume).
    if spec.suspend:
        if set_condition(status.conditions, "Suspended", "True", "JobSuspended", "Job suspended", stamp):
            events.append(("Normal", "Suspended", "Job suspended"))
        delete.extend(p.metadata.name for p in active)
    else:
        cond = get_condition(status.conditions, "Suspended")
        if cond is not None and cond.status == "True":
            set_condition(status.conditions, "Suspended", "False", "JobResumed", "Job resumed", stamp)
            events.append(("Normal", "Resumed", "Job resumed"))
            status.start_time = stamp
        if not status.start_time:
            status.start_time = stamp

    finished = None   # (condition type, reason, message)
    job_now = copy(job)
    job_now.status.start_time = status.start_time
    deadline_left = past_active_deadline(job_now, now)
    if status.failed > spec.backoff_limit or past_backoff_limit_on_failure(job, active):
        finished = ("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
    elif deadline_left is not None and deadline_left <= 0:
        finished = ("Failed", "DeadlineExceeded", "Job was active longer than specified deadline")
    elif deadline_left is not None:
        recheck.append(deadline_left)

    if finished is None and not spec.suspend:
        delete_more, create, wait_s = _manage(job, active, done, succeeded, failed, status.succeeded,
                                              pending_creates, now, backoff_base_s, backoff_max_s, burst)
        delete.extend(delete_more)
        if wait_s:
            recheck.append(wait_s)
        remaining_active = len(active) - len(delete_more) + pending_creates + len(create)
        if completions is None:
            complete = status.succeeded > 0 and remaining_active == 0
        else:
            complete = status.succeeded >= completions and remaining_active == 0
        if complete:
            finished = ("Complete", "CompletionsReached", "Reached expected number of succeeded pods")
    if finished is not None:
        ctype, reason, message = finished
        if ctype == "Failed":
            delete = [p.metadata.name for p in active]
            create = []
            events.append(("Warning", reason, message))
        else:
            status.completion_time = stamp
            events.append(("Normal", "Completed", "Job completed"))
        set_condition(status.conditions, ctype, "True", reason, message, stamp)
        ttl_left = _ttl_left_from(job, now, now)
        if ttl_left is not None:
            recheck.append(max(ttl_left, 0.05))

    gone = set(delete)
    status.active = sum(1 for p in active if p.metadata.name not in gone)
    status.ready = sum(1 for p in active if p.metadata.name not in gone and is_pod_ready(p))
    return JobPlan(adopt=adopt, create=tuple(create), delete=tuple(dict.fromkeys(delete)), status=status,
                   events=tuple(events), recheck_s=min(recheck) + 0.05 if recheck else None)


def _manage(job, active, done, succeeded, failed, n_succeeded, pending_creates, now, base_s, max_s, burst):
    """manageJob: (names to delete, indexes to create, seconds to wait before creating)."""
    spec = job.spec
    parallelism = spec.parallelism
    completions = spec.completions if spec.HasField("completions") else None
    delete = []
    if is_indexed(job):
        by_index: dict = {}
        for p in deletion_order(active)[::-1]:          # best first: the keeper of an index
            i = pod_index(p)
            if i is None or i >= completions or i in done or i in by_index:
                delete.append(p.metadata.name)
            else:
                by_index[i] = p
        keep = [p for p in active if p.metadata.name not in set(delete)]
        want = min(parallelism, completions - len(done))
    else:
        keep = list(active)
        if completions is None:
            want = len(keep) + pending_creates if n_succeeded > 0 else parallelism
        else:
            want = max(0, min(parallelism, completions - n_succeeded))
    have = len(keep) + pending_creates
    if have > want:
        surplus = have - want
        delete.extend(p.metadata.name for p in deletion_order(keep)[:surplus])
        return delete, [], 0.0
    missing = min(want - have, burst)
    if missing <= 0:
        return delete, [], 0.0
    wait_s = backoff_remaining_s(succeeded, failed, now, base_s, max_s)
    if wait_s > 0:
        return delete, [], wait_s
    if is_indexed(job):
        held = {pod_index(p) for p in keep}
        free = [i for i in range(completions) if i not in done and i not in held]
        return delete, free[:missing], 0.0
    return delete, [None] * missing, 0.0


def _is_active(pod: pb.Pod) -> bool:
    return not pod.metadata.deletion_timestamp and pod.status.phase not in ("Succeeded", "Failed")


def _claim(job, pods):
    """(owned pods, names of orphans to adopt): ours by controller reference, or orphans
    that match the selector (Kubernetes' ClaimPods; the generated selector makes these rare)."""
    try:
        selector = selector_of(job)
    except ValueError:
        selector = None
    owned, adopt = [], []
    for pod in pods:
        if pod.metadata.namespace != job.metadata.namespace:
            continue
        ref = controller_ref(pod.metadata)
        if ref is not None:
            if ref.uid == job.metadata.uid:
                owned.append(pod)
        elif (selector is not None and not selector.empty and selector.matches(pod.metadata.labels)
              and not pod.metadata.deletion_timestamp):
            owned.append(pod)
            adopt.append(pod.metadata.name)
    return owned, tuple(adopt)


def _finished_at(job: pb.Job):
    for ctype in ("Complete", "Failed"):
        cond = get_condition(job.status.conditions, ctype)
        if cond is not None and cond.status == "True":
            return parse_rfc3339(cond.last_transition_time)
    return None


def _ttl_left(job: pb.Job, now):
    return _ttl_left_from(job, _finished_at(job), now)


def _ttl_left_from(job: pb.Job, finished_at, now):
    """Seconds until ttlSecondsAfterFinished passes; None without a TTL or finish time."""
    if not job.spec.HasField("ttl_seconds_after_finished") or finished_at is None:
        return None
    return job.spec.ttl_seconds_after_finished - (now - finished_at).total_seconds()


# ---------------------------------------------------------------- pods

def pod_for(job: pb.Job, index) -> pb.Pod:
    """A new pod of job: generateName JOB- (Indexed: JOB-INDEX- with the index in the
    annotation and label batch.kubernetes.io/job-completion-index, env
    JOB_COMPLETION_INDEX from that annotation, hostname JOB-INDEX), the template's
    labels, annotations and spec, and a controller reference to the Job."""
    tmpl = job.spec.template
    name = job.metadata.name
    prefix = f"{name}-" if index is None else f"{name}-{index}-"
    pod = pb.Pod(metadata=pb.ObjectMeta(generate_name=prefix, namespace=job.metadata.namespace,
                                        labels=dict(tmpl.metadata.labels),
                                        annotations=dict(tmpl.metadata.annotations)))
    pod.metadata.owner_references.append(owner_reference(job, "Job", "batch/v1"))
    pod.spec.CopyFrom(tmpl.spec)
    if index is not None:
        pod.metadata.annotations[COMPLETION_INDEX_ANNOTATION] = str(index)
        pod.metadata.labels[COMPLETION_INDEX_ANNOTATION] = str(index)
        hostname = f"{name}-{index}"
        if not pod.spec.hostname and validate_dns1123_label(hostname) is None:
            pod.spec.hostname = hostname
        for c in list(pod.spec.init_containers) + list(pod.spec.containers):
            if any(e.name == COMPLETION_INDEX_ENV for e in c.env):
                continue
            env = c.env.add(name=COMPLETION_INDEX_ENV)
            env.value_from.field_ref.api_version = "v1"
            env.value_from.field_ref.field_path = f"metadata.annotations['{COMPLETION_INDEX_ANNOTATION}']"
    return pod
