"""CronJobs on the real lab (one node, a real engine and agent), through the CLI only:
a `*/1 * * * *` CronJob runs at least twice, each run a Job named after its minute whose
pod really runs; finished Jobs beyond successfulJobsHistoryLimit / failedJobsHistoryLimit
are deleted (a succeeding and a failing CronJob side by side, on the same minutes);
`skiff get cronjobs` has kubectl's columns; deleting a CronJob deletes its Jobs;
`skiff create job NAME --from=cronjob/CJ` makes a Job from the (suspended) CronJob's
template, owned by it as kubectl makes it, that runs to Complete.
About three minutes after the lab is up: the runs wait for real minute boundaries.
"""

import json

import pytest
import yaml

from tests.e2e.conftest import nodes_lab
from tests.helpers import wait_until

IMAGE = "skiff/busybox:latest"
NS = "cron"


@pytest.fixture(scope="module")
def lab(request):
    with nodes_lab(request, "cronjob", 1) as cli:
        cli.out("apply", "-f", "-", input=yaml.safe_dump({"apiVersion": "v1", "kind": "Namespace",
                                                           "metadata": {"name": NS}}))
        yield cli


def cronjob(name, command, succeeded=1, failed=1, suspend=False):
    return {
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name, "namespace": NS},
        "spec": {"schedule": "*/1 * * * *", "suspend": suspend, "successfulJobsHistoryLimit": succeeded,
                 "failedJobsHistoryLimit": failed,
                 "jobTemplate": {"metadata": {"labels": {"cron": name}},
                                 "spec": {"backoffLimit": 0, "template": {"spec": {
                                     "restartPolicy": "Never",
                                     "containers": [{"name": "run", "image": IMAGE, "imagePullPolicy": "Never",
                                                     "command": ["sh", "-c", command]}]}}}}},
    }


def jobs(lab, name) -> dict:
    items = json.loads(lab.out("get", "jobs", "-n", NS, "-l", f"cron={name}", "-o", "json"))["items"]
    return {j["metadata"]["name"]: j for j in items}


def finished(job) -> str:
    for c in job.get("status", {}).get("conditions", []):
        if c["type"] in ("Complete", "Failed") and c["status"] == "True":
            return c["type"]
    return ""


def events(lab, reason) -> list:
    items = json.loads(lab.out("get", "events", "-n", NS, "-o", "json"))["items"]
    return [e for e in items if e.get("reason") == reason]


def test_get_cronjobs_has_kubectls_columns(lab):
    lab.out("apply", "-f", "-", input=yaml.safe_dump_all([cronjob("ok", "echo ran-ok"),
                                                           cronjob("bad", "echo ran-bad; exit 3")]))
    lines = lab.out("get", "cronjobs", "-n", NS).strip().splitlines()
    assert lines[0].split() == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "AGE"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert rows["ok"].split()[1:9] == ["*/1", "*", "*", "*", "*", "<none>", "False", "0"]
    assert "cronjob.batch/ok" in lab.out("get", "cj", "ok", "-n", NS, "-o", "name")


def test_runs_every_minute_and_history_limits_prune(lab):
    seen = {"ok": {}, "bad": {}}   # name -> how it finished, for every Job ever listed

    def runs_done():
        for cj in seen:
            for name, job in jobs(lab, cj).items():
                if finished(job):
                    seen[cj][name] = finished(job)
        return all(len(v) >= 2 for v in seen.values())
    wait_until(runs_done, 200, "two finished runs of each CronJob", interval_s=1.0)
    assert set(seen["ok"].values()) == {"Complete"} and set(seen["bad"].values()) == {"Failed"}, seen
    minutes = sorted(int(n.rsplit("-", 1)[1]) for n in seen["ok"])
    assert len(set(minutes)) == len(minutes)         # one Job per scheduled minute

    # Limits 1 and 1: only the newest finished Job of each CronJob stays
    def pruned():
        return all(len([j for j in jobs(lab, cj).values() if finished(j)]) == 1 for cj in seen)
    wait_until(pruned, 30, "older finished Jobs deleted by the history limits", interval_s=1.0)
    deleted = {e["message"] for e in events(lab, "SuccessfulDelete")
               if e["involvedObject"]["kind"] == "CronJob"}
    oldest_ok, oldest_bad = min(seen["ok"]), min(seen["bad"])
    assert {f"Deleted job {oldest_ok}", f"Deleted job {oldest_bad}"} <= deleted, deleted

    # The Job's pod really ran its command
    newest = max(jobs(lab, "ok"))
    assert "ran-ok" in lab.out("logs", f"job/{newest}", "-n", NS)

    row = next(line for line in lab.out("get", "cj", "ok", "-n", NS).splitlines()[1:])
    assert row.split()[9] != "<none>"                 # LAST SCHEDULE (the schedule is five words)
    cj = json.loads(lab.out("get", "cj", "ok", "-n", NS, "-o", "json"))
    assert cj["status"]["lastSuccessfulTime"] and cj["status"]["lastScheduleTime"]


def test_deleting_a_cronjob_deletes_its_jobs(lab):
    assert jobs(lab, "ok")
    lab.out("delete", "cronjob", "ok", "-n", NS)
    wait_until(lambda: not jobs(lab, "ok"), 30, "the CronJob's Jobs garbage-collected", interval_s=1.0)
    assert jobs(lab, "bad")                          # the other CronJob's are untouched


def test_create_job_from_a_cronjob_runs_it_now_owned_by_the_cronjob(lab):
    # suspended: the only Job of this CronJob is the one made by hand
    lab.out("apply", "-f", "-", input=yaml.safe_dump(cronjob("manual", "echo ran-manual", suspend=True)))
    cj = json.loads(lab.out("get", "cj", "manual", "-n", NS, "-o", "json"))
    out = lab.out("create", "job", "manual-now", "--from=cronjob/manual", "-n", NS)
    assert out.strip() == "job.batch/manual-now created"

    job = json.loads(lab.out("get", "job", "manual-now", "-n", NS, "-o", "json"))
    meta = job["metadata"]
    # as kubectl's createJobFromCronJob: the template's labels, the manual annotation,
    # the CronJob as controller owner
    assert meta["labels"]["cron"] == "manual", meta
    assert meta["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual", meta
    assert [(r["kind"], r["name"], r["uid"], r.get("controller"), r.get("blockOwnerDeletion"))
            for r in meta["ownerReferences"]] == [("CronJob", "manual", cj["metadata"]["uid"], True, True)], meta
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert (container["image"], container["command"]) == (IMAGE, ["sh", "-c", "echo ran-manual"])

    done = wait_until(lambda: finished(json.loads(lab.out("get", "job", "manual-now", "-n", NS, "-o", "json"))),
                      120, "the Job made from the CronJob finished", interval_s=1.0)
    assert done == "Complete"
    assert "ran-manual" in lab.out("logs", "job/manual-now", "-n", NS)
    assert list(jobs(lab, "manual")) == ["manual-now"]          # suspended: nothing scheduled beside it

    # owned for real: deleting the CronJob takes the Job with it
    lab.out("delete", "cronjob", "manual", "-n", NS)
    wait_until(lambda: not jobs(lab, "manual"), 30, "the manual Job garbage-collected", interval_s=1.0)
