"""The Job controller on a real 3-replica control plane (loopback), no agents.

The test plays the node agent's part that matters to the Job controller: it writes the
pods' status (phase Succeeded / Failed, the container's terminated state with its
finishedAt), as an agent does when a container exits. The replicas run with a 2 s Job
back-off base (controllers: jobBackoffBaseS), so retries come quickly.
"""

import datetime
import time

import pytest

from skiff import client as clientmod
from skiff.api import objects_pb2 as pb
from skiff.lab.controlplane import ControlPlane
from tests.helpers import free_port_block, remove, scratch_namespace, temp_dir, wait_until
from tests.integration.conftest import dump_logs

CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
INDEX = "batch.kubernetes.io/job-completion-index"


@pytest.fixture(scope="module")
def cluster(request):
    base = free_port_block(6)
    cp = ControlPlane(temp_dir("test_controllers_job"), replicas=3, api_base_port=base, raft_base_port=base + 3,
                      watch_history=2000, controllers={"jobBackoffBaseS": 2})
    cp.write_configs()
    cp.start_all()
    try:
        cp.wait_ready(60)
        yield cp
        if request.session.testsfailed:
            dump_logs(cp)
    finally:
        cp.stop_all()
        remove(cp.lab_dir)


@pytest.fixture
def client(cluster):
    c = cluster.client()
    yield c
    c.close()


@pytest.fixture
def ns(client):
    with scratch_namespace(client, "skiff-job") as name:
        yield name


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def a_job(name, ns, completions=1, parallelism=1, backoff=6, **spec):
    job = pb.Job(metadata=pb.ObjectMeta(name=name, namespace=ns))
    if completions is not None:
        job.spec.completions = completions
    job.spec.parallelism = parallelism
    job.spec.backoff_limit = backoff
    for field, value in spec.items():
        setattr(job.spec, field, value)
    job.spec.template.spec.restart_policy = "Never"
    job.spec.template.spec.containers.add(name="main", image="skiff/busybox:latest", command=["true"])
    return job


def pods_of(client, ns, job):
    pods, _ = client.list("pods", ns, label_selector=f"{CONTROLLER_UID}={job.metadata.uid}")
    return pods


def running(pods):
    return [p for p in pods if p.status.phase not in ("Succeeded", "Failed") and not p.metadata.deletion_timestamp]


def finish(client, pod, phase):
    """What an agent writes when the pod's only container exits (0: Succeeded, 1: Failed)."""
    for _ in range(50):
        fresh = client.get("pods", pod.metadata.name, pod.metadata.namespace)
        fresh.status.phase = phase
        del fresh.status.container_statuses[:]
        cs = fresh.status.container_statuses.add(name="main", restart_count=0)
        cs.state.terminated.exit_code = 0 if phase == "Succeeded" else 1
        cs.state.terminated.finished_at = now_rfc3339()
        try:
            return client.update_status(fresh)
        except clientmod.Conflict:
            time.sleep(0.02)
    raise AssertionError("status write kept conflicting")


def wait_running(client, ns, job, count, timeout_s=15):
    def done():
        pods = running(pods_of(client, ns, job))
        return pods if len(pods) == count else None
    return wait_until(done, timeout_s, f"{count} running pods of job {job.metadata.name}")


def condition(job, ctype):
    return next(((c.status, c.reason) for c in job.status.conditions if c.type == ctype), None)


def wait_condition(client, ns, name, ctype, reason, timeout_s=20):
    return wait_until(lambda: (lambda j: j if condition(j, ctype) == ("True", reason) else None)(
        client.get("jobs", name, ns)), timeout_s, f"job {name}: {ctype} {reason}")


def reasons(client, ns, name):
    return [e.reason for e in client.list("events", ns)[0] if e.involved_object.name == name
            for _ in range(max(1, e.count))]


# ---------------------------------------------------------------- tests

def test_completions_with_parallelism_then_complete(client, ns):
    job = client.create(a_job("pi", ns, completions=3, parallelism=2))
    assert dict(job.spec.selector.match_labels) == {CONTROLLER_UID: job.metadata.uid}
    first = wait_running(client, ns, job, 2)
    for p in first:
        assert p.metadata.labels["job-name"] == "pi" and p.metadata.labels["controller-uid"] == job.metadata.uid
        assert p.metadata.owner_references[0].kind == "Job"
    finish(client, first[0], "Succeeded")
    finish(client, first[1], "Succeeded")
    [last] = wait_running(client, ns, job, 1)   # never more than the completions left
    assert len(pods_of(client, ns, job)) == 3
    finish(client, last, "Succeeded")
    done = wait_condition(client, ns, "pi", "Complete", "CompletionsReached")
    assert (done.status.succeeded, done.status.failed, done.status.active) == (3, 0, 0)
    assert done.status.start_time and done.status.completion_time
    wait_until(lambda: reasons(client, ns, "pi").count("SuccessfulCreate") == 3 and "Completed" in
               reasons(client, ns, "pi"), 10, "SuccessfulCreate x3 and Completed events")
    assert len(pods_of(client, ns, job)) == 3, "finished pods stay (their logs stay readable)"


def test_failures_back_off_then_backoff_limit_exceeded(client, ns):
    job = client.create(a_job("flaky", ns, backoff=1))
    [p1] = wait_running(client, ns, job, 1)
    finish(client, p1, "Failed")
    t0 = time.monotonic()
    [p2] = wait_running(client, ns, job, 1)
    # 2 s from the failure's finishedAt, which has whole seconds: at least 1 s from now.
    assert time.monotonic() - t0 >= 0.9, "the replacement waited for the back-off"
    finish(client, p2, "Failed")
    failed = wait_condition(client, ns, "flaky", "Failed", "BackoffLimitExceeded")
    assert (failed.status.failed, failed.status.succeeded, failed.status.active) == (2, 0, 0)
    assert not failed.status.completion_time
    wait_until(lambda: "BackoffLimitExceeded" in reasons(client, ns, "flaky"), 10, "the event")
    time.sleep(1.5)   # a settle window: a failed Job must not create pods
    assert len(pods_of(client, ns, job)) == 2


def test_indexed_job_pods_carry_their_index(client, ns):
    job = client.create(a_job("idx", ns, completions=3, parallelism=3, completion_mode="Indexed"))
    pods = wait_running(client, ns, job, 3)
    by_index = {int(p.metadata.annotations[INDEX]): p for p in pods}
    assert sorted(by_index) == [0, 1, 2]
    for i, p in by_index.items():
        assert p.metadata.name.startswith(f"idx-{i}-")
        env = {e.name: e.value_from.field_ref.field_path for e in p.spec.containers[0].env}
        assert env == {"JOB_COMPLETION_INDEX": f"metadata.annotations['{INDEX}']"}
    finish(client, by_index[2], "Succeeded")
    finish(client, by_index[0], "Succeeded")
    wait_until(lambda: client.get("jobs", "idx", ns).status.completed_indexes == "0,2", 10, "completedIndexes 0,2")
    finish(client, by_index[1], "Succeeded")
    done = wait_condition(client, ns, "idx", "Complete", "CompletionsReached")
    assert (done.status.completed_indexes, done.status.succeeded) == ("0-2", 3)


def test_active_deadline_fails_the_job_and_deletes_its_pods(client, ns):
    job = client.create(a_job("slow", ns, active_deadline_seconds=2))
    wait_running(client, ns, job, 1)
    failed = wait_condition(client, ns, "slow", "Failed", "DeadlineExceeded", timeout_s=15)
    assert failed.status.active == 0
    wait_until(lambda: all(p.metadata.deletion_timestamp for p in pods_of(client, ns, job)), 10,
               "the active pod deleted")


def test_suspend_deletes_pods_and_resume_starts_again(client, ns):
    job = client.create(a_job("later", ns, completions=2, parallelism=2))
    wait_running(client, ns, job, 2)
    job = client.get("jobs", "later", ns)
    job.spec.suspend = True
    client.update(job)
    suspended = wait_condition(client, ns, "later", "Suspended", "JobSuspended")
    assert suspended.status.active == 0
    wait_until(lambda: not running(pods_of(client, ns, job)), 10, "no running pods while suspended")
    job = client.get("jobs", "later", ns)
    job.spec.suspend = False
    client.update(job)
    wait_until(lambda: condition(client.get("jobs", "later", ns), "Suspended") == ("False", "JobResumed"), 10,
               "resumed")
    wait_running(client, ns, job, 2)


def test_ttl_after_finished_deletes_the_job_and_its_pods(client, ns):
    job = client.create(a_job("brief", ns, ttl_seconds_after_finished=1))
    [p] = wait_running(client, ns, job, 1)
    finish(client, p, "Succeeded")
    wait_condition(client, ns, "brief", "Complete", "CompletionsReached")

    def gone():
        try:
            client.get("jobs", "brief", ns)
            return False
        except clientmod.NotFound:
            return True
    wait_until(gone, 15, "the Job deleted after its TTL")
    wait_until(lambda: not pods_of(client, ns, job), 15, "its pods collected")


def test_a_selector_without_manual_selector_is_refused(client, ns):
    job = a_job("mine", ns)
    job.spec.selector.match_labels["app"] = "mine"
    job.spec.template.metadata.labels["app"] = "mine"
    with pytest.raises(clientmod.Invalid, match="not auto-generated"):
        client.create(job)
