"""The CronJob controller on a real 3-replica control plane (loopback), on the real clock.

A `*/1 * * * *` CronJob: each scheduled minute gets exactly one Job, named after that
minute, recorded in status.active and lastScheduleTime; a finished Job leaves active
(its status is written here, as the Job controller would write it, so this module does
not depend on the Job controller); finished Jobs beyond the history limit are deleted;
a leader killed at the scheduled minute never yields two Jobs for one time; deleting the
CronJob deletes its Jobs (garbage collection). About two and a half minutes: runs wait
for real minute boundaries.
"""

import datetime
import time

import pytest

from skiff import client as clientmod
from skiff.api import objects_pb2 as pb
from tests.helpers import scratch_namespace, wait_until

ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
UTC = datetime.timezone.utc


@pytest.fixture
def ns(client):
    with scratch_namespace(client, "skiff-cj") as name:
        yield name


def cronjob(name, ns, succeeded=1, policy="Allow"):
    cj = pb.CronJob(api_version="batch/v1", kind="CronJob", metadata=pb.ObjectMeta(name=name, namespace=ns))
    cj.spec.schedule = "*/1 * * * *"
    cj.spec.concurrency_policy = policy
    cj.spec.successful_jobs_history_limit = succeeded
    cj.spec.job_template.metadata.labels["app"] = name
    tspec = cj.spec.job_template.spec.template.spec
    tspec.restart_policy = "Never"
    tspec.containers.add(name="run", image="busybox:1.36", command=["true"])
    return cj


def jobs_of(client, ns):
    return {j.metadata.name: j for j in client.list("jobs", ns)[0]}


def minute_of(name) -> int:
    return int(name.rsplit("-", 1)[1])


def rfc3339(t: datetime.datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def complete(client, ns, name):
    """Write what the Job controller writes when a Job succeeds."""
    for _ in range(50):
        j = client.get("jobs", name, ns)
        now = rfc3339(datetime.datetime.now(UTC))
        j.status.start_time = j.status.start_time or now
        j.status.completion_time = now
        j.status.succeeded = 1
        j.status.conditions.add(type="Complete", status="True", reason="CompletionsReached",
                                last_transition_time=now)
        try:
            return client.update_status(j)
        except clientmod.Conflict:
            time.sleep(0.02)
    raise AssertionError(f"could not complete job {name}")


def events(client, ns, reason):
    """The CronJobs' events with that reason (the Job controller writes SuccessfulCreate too)."""
    return [e for e in client.list("events", ns)[0] if e.reason == reason and e.involved_object.kind == "CronJob"]


def wait_for_wall_clock(epoch_s: float, what: str):
    """Wait until the wall clock reaches epoch_s (schedules are wall-clock times)."""
    wait_until(lambda: time.time() >= epoch_s, max(1.0, epoch_s - time.time() + 5), what, interval_s=0.005)


def test_runs_each_minute_once_through_a_leader_kill_and_prunes_history(cluster, client, ns):
    client.create(cronjob("tick", ns, succeeded=1))

    # --- the first run: at the next minute boundary
    first = wait_until(lambda: list(jobs_of(client, ns)), 75, "the first scheduled Job")[0]
    m1 = minute_of(first)
    job = client.get("jobs", first, ns)
    assert job.metadata.annotations[ANNOTATION] == rfc3339(datetime.datetime.fromtimestamp(m1 * 60, UTC))
    (ref,) = job.metadata.owner_references
    assert (ref.kind, ref.name, ref.controller) == ("CronJob", "tick", True)
    assert job.metadata.labels["app"] == "tick"

    def recorded(name, minute):
        cj = client.get("cronjobs", "tick", ns)
        return ([r.name for r in cj.status.active] == [name]
                and cj.status.last_schedule_time == rfc3339(datetime.datetime.fromtimestamp(minute * 60, UTC)))
    wait_until(lambda: recorded(first, m1), 10, "the first run recorded in status")
    assert [e.message for e in events(client, ns, "SuccessfulCreate")] == [f"Created job {first}"]

    complete(client, ns, first)
    wait_until(lambda: not client.get("cronjobs", "tick", ns).status.active, 10, "the finished run leaving active")
    assert client.get("cronjobs", "tick", ns).status.last_successful_time
    assert events(client, ns, "SawCompletedJob")

    # --- the second run: kill the leader right at its scheduled minute
    m2 = m1 + 1
    victim = cluster.leader()
    wait_for_wall_clock(m2 * 60 + 0.12, "the second scheduled minute")
    cluster.kill(victim)
    try:
        second = f"tick-{m2}"
        print(f"\nleader {victim} killed {time.time() - m2 * 60:.2f}s after the scheduled minute")
        wait_until(lambda: recorded(second, m2), 30, "the second run started and recorded by the new leader")
        assert cluster.leader() != victim
        names = sorted(jobs_of(client, ns))
        assert names == [first, second], names
        by_time = [j.metadata.annotations[ANNOTATION] for j in jobs_of(client, ns).values()]
        assert len(by_time) == len(set(by_time)), f"two Jobs for one scheduled time: {by_time}"

        # --- history: successfulJobsHistoryLimit 1 keeps only the newest finished run
        complete(client, ns, second)
        wait_until(lambda: first not in jobs_of(client, ns), 10, "the older finished Job pruned")
        assert second in jobs_of(client, ns)
        wait_until(lambda: any(e.message == f"Deleted job {first}" for e in events(client, ns, "SuccessfulDelete")),
                   10, "the SuccessfulDelete event")
    finally:
        cluster.start(victim)
        cluster.wait_ready(60)


def test_suspended_cronjob_starts_nothing_and_deleting_it_deletes_its_jobs(client, ns):
    cj = cronjob("held", ns)
    cj.spec.suspend = True
    client.create(cj)
    # A Job the CronJob owns (as if started before it was suspended)
    owner = client.get("cronjobs", "held", ns)
    job = pb.Job(api_version="batch/v1", kind="Job", metadata=pb.ObjectMeta(name="held-1", namespace=ns))
    job.metadata.owner_references.add(api_version="batch/v1", kind="CronJob", name="held",
                                      uid=owner.metadata.uid, controller=True)
    job.spec.CopyFrom(owner.spec.job_template.spec)
    client.create(job)
    # Not in status.active and unfinished: the controller says so (and starts nothing, suspended)
    wait_until(lambda: events(client, ns, "UnexpectedJob"), 10, "the UnexpectedJob warning")
    assert sorted(jobs_of(client, ns)) == ["held-1"]

    client.delete("cronjobs", "held", ns)
    wait_until(lambda: not jobs_of(client, ns), 15, "the CronJob's Job garbage-collected")
