"""Jobs on the real lab (3 nodes, real engines, agents), through the CLI only: completions
with parallelism, backoffLimit, Indexed Jobs, ttlSecondsAfterFinished, `skiff create job`,
`skiff logs job/NAME`, and a pod's own activeDeadlineSeconds. The lab's Job back-off is
Kubernetes' (10 s, doubling), so the failing Job takes about 15 s."""

import json

import pytest
import yaml

from tests.e2e.conftest import nodes_lab
from tests.helpers import wait_until

IMAGE = "skiff/busybox:latest"
INDEX = "batch.kubernetes.io/job-completion-index"


@pytest.fixture(scope="module")
def lab(request):
    with nodes_lab(request, "job", 3) as cli:
        yield cli


def apply(lab, *docs):
    return lab.out("apply", "-f", "-", input=yaml.safe_dump_all(docs))


def job(name, command, **spec):
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {**spec, "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": IMAGE, "imagePullPolicy": "Never",
                                "command": ["sh", "-c", command]}]}}}}


def get_json(lab, *what) -> dict:
    return json.loads(lab.out("get", *what, "-o", "json"))


def condition(obj, ctype):
    return next(((c["status"], c.get("reason", "")) for c in obj.get("status", {}).get("conditions", [])
                 if c["type"] == ctype), None)


def wait_job(lab, name, ctype, reason, timeout_s=90):
    def done():
        j = get_json(lab, "job", name)
        return j if condition(j, ctype) == ("True", reason) else None
    return wait_until(done, timeout_s, f"job {name}: {ctype} {reason}", interval_s=0.5)


def pods_of(lab, name) -> list:
    return get_json(lab, "pods", "-l", f"job-name={name}")["items"]


def gone(lab, *what) -> bool:
    return lab.run("get", *what, check=False).returncode == 1


def test_create_job_runs_and_logs_job_reads_it(lab):
    out = lab.out("create", "job", "hello", "--image", IMAGE, "--", "sh", "-c", "echo hello from a job")
    assert out.strip() == "job.batch/hello created"
    wait_job(lab, "hello", "Complete", "CompletionsReached")
    assert lab.out("logs", "job/hello").strip() == "hello from a job"
    header, row = lab.out("get", "jobs", "hello").strip().splitlines()
    assert header.split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert row.split()[:3] == ["hello", "Complete", "1/1"]
    wide = lab.out("get", "jobs", "hello", "-o", "wide").splitlines()[0].split()
    assert wide[-3:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    tables = lab.out("get", "all").split("\n\n")
    assert any(t.split()[:4] == ["NAME", "STATUS", "COMPLETIONS", "DURATION"] and "\nhello " in t for t in tables)


def test_completions_three_parallelism_two(lab):
    apply(lab, job("batch3", "sleep 1; echo done", completions=3, parallelism=2))
    done = wait_job(lab, "batch3", "Complete", "CompletionsReached")
    st = done["status"]
    assert (st["succeeded"], st.get("failed", 0), st.get("active", 0)) == (3, 0, 0)
    assert st["startTime"] and st["completionTime"]
    pods = pods_of(lab, "batch3")
    assert len(pods) == 3 and {p["status"]["phase"] for p in pods} == {"Succeeded"}
    events = lab.out("describe", "job", "batch3")
    assert "SuccessfulCreate" in events and "Completed" in events


def test_failing_job_hits_backoff_limit(lab):
    apply(lab, job("flaky", "echo failing; exit 1", backoffLimit=1))
    failed = wait_job(lab, "flaky", "Failed", "BackoffLimitExceeded", timeout_s=120)
    assert failed["status"]["failed"] == 2
    assert "completionTime" not in failed["status"]
    pods = pods_of(lab, "flaky")
    assert len(pods) == 2 and {p["status"]["phase"] for p in pods} == {"Failed"}
    row = lab.out("get", "job", "flaky").strip().splitlines()[1].split()
    assert row[1:3] == ["Failed", "0/1"]
    assert "BackoffLimitExceeded" in lab.out("describe", "job", "flaky")


def test_indexed_job_pods_see_their_index(lab):
    apply(lab, job("idx", "echo index=$JOB_COMPLETION_INDEX", completions=3, parallelism=3,
                   completionMode="Indexed"))
    done = wait_job(lab, "idx", "Complete", "CompletionsReached")
    assert done["status"]["completedIndexes"] == "0-2"
    for p in pods_of(lab, "idx"):
        index = p["metadata"]["annotations"][INDEX]
        assert p["metadata"]["name"].startswith(f"idx-{index}-")
        assert lab.out("logs", p["metadata"]["name"]).strip() == f"index={index}"


def test_a_pod_with_active_deadline_is_killed(lab):
    apply(lab, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "deadline"},
                "spec": {"activeDeadlineSeconds": 3, "restartPolicy": "Always",
                         "containers": [{"name": "main", "image": IMAGE, "imagePullPolicy": "Never",
                                         "command": ["sleep", "600"]}]}})

    def failed():
        st = get_json(lab, "pod", "deadline").get("status", {})
        return st if st.get("phase") == "Failed" else None
    st = wait_until(failed, 60, "pod deadline Failed", interval_s=0.5)
    assert st["reason"] == "DeadlineExceeded"
    assert st["message"] == "Pod was active on the node longer than the specified deadline"
    wait_until(lambda: all("terminated" in cs["state"] for cs in
                           get_json(lab, "pod", "deadline")["status"]["containerStatuses"]), 30,
               "its container stopped", interval_s=0.5)


def test_ttl_seconds_after_finished_deletes_job_and_pods(lab):
    apply(lab, job("brief", "true", ttlSecondsAfterFinished=3))
    wait_until(lambda: gone(lab, "job", "brief"), 90, "job brief deleted after its TTL", interval_s=0.5)
    wait_until(lambda: not pods_of(lab, "brief"), 60, "its pods collected", interval_s=0.5)
