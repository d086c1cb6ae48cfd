"""Native sidecars (init containers with restartPolicy: Always) on the real lab, through the
CLI only: started in order before the next init container and the app (a startup probe
gates them), kept running beside the app and restarted when they exit, their readiness
counting for the pod's, stopped after the app container when the pod is deleted, and a
Job whose pod has a sidecar completing when its app container exits."""

import json
import os
import shutil
import tempfile

import pytest
import yaml

from tests.e2e.conftest import nodes_lab
from tests.helpers import wait_until

IMAGE = "skiff/busybox:latest"
# A shell that exits at once on SIGTERM (PID 1 ignores it otherwise) while it idles.
IDLE = "trap 'exit 0' TERM; while true; do sleep 1 & wait; done"


@pytest.fixture(scope="module")
def lab(request):
    with nodes_lab(request, "sidecars", 1) as cli:
        yield cli


@pytest.fixture
def host_dir():
    """A directory of the host the pods see as a hostPath (the lab's nodes share the host's
    filesystem), removed afterwards."""
    path = tempfile.mkdtemp(prefix="skiff-e2e-sidecar-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def apply(lab, *docs):
    return lab.out("apply", "-f", "-", input=yaml.safe_dump_all(docs))


def container(name, command, **extra):
    return {"name": name, "image": IMAGE, "imagePullPolicy": "Never", "command": ["sh", "-c", command], **extra}


def sidecar(name, command, **extra):
    return container(name, command, restartPolicy="Always", **extra)


def pod(name, containers, init, **spec):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": containers, "initContainers": init, **spec}}


def get_pod(lab, name) -> dict:
    return json.loads(lab.out("get", "po", name, "-o", "json"))


def statuses(p, field) -> dict:
    return {cs["name"]: cs for cs in p.get("status", {}).get(field, [])}


def condition(p, ctype) -> str:
    return next((c["status"] for c in p.get("status", {}).get("conditions", []) if c["type"] == ctype), "")


def gone(lab, *what) -> bool:
    return lab.run("get", *what, check=False).returncode == 1


def ready_column(lab, name) -> str:
    return lab.out("get", "po", name).splitlines()[1].split()[1]


SHARED = [{"name": "shared", "mountPath": "/shared"}]


def test_sidecar_starts_before_the_next_init_container_and_the_app_and_its_readiness_counts(lab):
    # The sidecar writes a file, and is "started" only once its startup probe sees it; the
    # init container after it and the app read it: they could not if they had run first.
    apply(lab, pod("ordered", [
        container("app", "cat /shared/from-sidecar; " + IDLE, volumeMounts=SHARED),
    ], [
        sidecar("side", "sleep 1; echo written-by-sidecar > /shared/from-sidecar; " + IDLE, volumeMounts=SHARED,
                startupProbe={"exec": {"command": ["test", "-f", "/shared/from-sidecar"]}, "periodSeconds": 1,
                              "failureThreshold": 30},
                readinessProbe={"exec": {"command": ["test", "-f", "/tmp/ready"]}, "periodSeconds": 1}),
        container("check", "cp /shared/from-sidecar /shared/seen-by-init", volumeMounts=SHARED),
    ], volumes=[{"name": "shared", "emptyDir": {}}], terminationGracePeriodSeconds=5))

    def app_running():
        p = get_pod(lab, "ordered")
        return p if "running" in statuses(p, "containerStatuses").get("app", {}).get("state", {}) else None
    p = wait_until(app_running, 90, "app of pod ordered running")
    assert p["status"]["phase"] == "Running"
    inits = statuses(p, "initContainerStatuses")
    assert list(inits) == ["side", "check"]
    assert "running" in inits["side"]["state"] and inits["side"]["started"] is True
    assert inits["check"]["state"]["terminated"]["exitCode"] == 0
    assert condition(p, "Initialized") == "True"
    wait_until(lambda: "written-by-sidecar" in lab.out("logs", "ordered", "-c", "app"), 20, "the app read the file")
    assert lab.out("exec", "ordered", "-c", "app", "--", "cat", "/shared/seen-by-init") == "written-by-sidecar\n"

    # The sidecar's readiness counts: not ready until its file exists.
    assert ready_column(lab, "ordered") == "1/2"
    p = get_pod(lab, "ordered")
    assert condition(p, "Ready") == "False" and statuses(p, "initContainerStatuses")["side"]["ready"] is False
    ready_msg = next(c for c in p["status"]["conditions"] if c["type"] == "Ready").get("message", "")
    assert ready_msg == "containers with unready status: [side]"
    lab.out("exec", "ordered", "-c", "side", "--", "touch", "/tmp/ready")
    wait_until(lambda: ready_column(lab, "ordered") == "2/2", 20, "the pod ready once its sidecar is")
    assert condition(get_pod(lab, "ordered"), "Ready") == "True"
    page = lab.out("describe", "po", "ordered")
    assert "Init Containers:\n  side:" in page and "Restart Policy:" in page
    lab.out("delete", "po", "ordered")
    wait_until(lambda: gone(lab, "po", "ordered"), 60, "pod ordered gone")


def test_a_sidecar_that_exits_is_restarted_while_the_app_keeps_running(lab):
    # The sidecar exits (code 1) once, 2 s after it started; the pod's restartPolicy is Never,
    # which does not apply to sidecars.
    apply(lab, pod("flaky", [
        container("app", IDLE),
    ], [
        sidecar("side", "if [ -f /shared/once ]; then " + IDLE + "; fi; touch /shared/once; sleep 2; exit 1",
                volumeMounts=SHARED),
    ], volumes=[{"name": "shared", "emptyDir": {}}], restartPolicy="Never", terminationGracePeriodSeconds=5))

    def app_status():
        return statuses(get_pod(lab, "flaky"), "containerStatuses").get("app", {})
    wait_until(lambda: "running" in app_status().get("state", {}), 90, "app of pod flaky running")
    app_before = app_status()

    def side_restarted():
        side = statuses(get_pod(lab, "flaky"), "initContainerStatuses")["side"]
        return side if side.get("restartCount", 0) == 1 and "running" in side["state"] else None
    side = wait_until(side_restarted, 60, "the sidecar restarted and running again")
    assert side["lastState"]["terminated"]["exitCode"] == 1
    app_after = app_status()
    assert app_after["containerID"] == app_before["containerID"]
    assert app_after.get("restartCount", 0) == 0 and "running" in app_after["state"]
    p = get_pod(lab, "flaky")
    assert p["status"]["phase"] == "Running"
    assert lab.out("get", "po", "flaky").splitlines()[1].split()[3] == "1"   # RESTARTS counts the sidecar's
    lab.out("delete", "po", "flaky")
    wait_until(lambda: gone(lab, "po", "flaky"), 60, "pod flaky gone")


def uptime(path) -> float:
    with open(path) as f:
        return float(f.read().split()[0])


def test_deleting_the_pod_stops_the_app_before_its_sidecars(lab, host_dir):
    # Each container records (in the host's /proc/uptime clock) when it got SIGTERM; the app
    # takes 1 s to exit. The sidecars must be told only after the app has exited, the
    # last declared first.
    def on_term(name, linger_s):
        return (f"trap 'cat /proc/uptime > /rec/{name}-term; sleep {linger_s}; cat /proc/uptime > /rec/{name}-exit; "
                "exit 0' TERM; while true; do sleep 1 & wait; done")
    rec = [{"name": "rec", "mountPath": "/rec"}]
    apply(lab, pod("ordered-stop", [
        container("app", on_term("app", 1), volumeMounts=rec),
    ], [
        sidecar("first", on_term("first", 0.5), volumeMounts=rec),
        sidecar("second", on_term("second", 0.5), volumeMounts=rec),
    ], volumes=[{"name": "rec", "hostPath": {"path": host_dir}}], terminationGracePeriodSeconds=20))

    def all_running():
        p = get_pod(lab, "ordered-stop")
        every = list(statuses(p, "initContainerStatuses").values()) + list(statuses(p, "containerStatuses").values())
        return len(every) == 3 and all("running" in cs["state"] for cs in every)
    wait_until(all_running, 90, "pod ordered-stop running with both sidecars")
    lab.out("delete", "po", "ordered-stop")
    wait_until(lambda: gone(lab, "po", "ordered-stop"), 60, "pod ordered-stop gone")
    t = {f"{n}-{w}": uptime(os.path.join(host_dir, f"{n}-{w}"))
         for n in ("app", "first", "second") for w in ("term", "exit")}
    assert t["app-exit"] - t["app-term"] >= 0.9
    assert t["second-term"] >= t["app-exit"], t
    assert t["first-term"] >= t["second-exit"], t


def test_a_job_whose_pod_has_a_sidecar_completes_when_its_app_exits(lab):
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "with-sidecar"},
           "spec": {"backoffLimit": 0, "template": {"spec": {
               "restartPolicy": "Never", "terminationGracePeriodSeconds": 10,
               "initContainers": [sidecar("logger", "echo sidecar-up > /shared/up; " + IDLE, volumeMounts=SHARED,
                                          startupProbe={"exec": {"command": ["test", "-f", "/shared/up"]},
                                                        "periodSeconds": 1})],
               "containers": [container("main", "cat /shared/up; sleep 1; echo job-done", volumeMounts=SHARED)],
               "volumes": [{"name": "shared", "emptyDir": {}}]}}}}
    apply(lab, job)

    def complete():
        j = json.loads(lab.out("get", "job", "with-sidecar", "-o", "json"))
        return j if any(c["type"] == "Complete" and c["status"] == "True"
                        for c in j.get("status", {}).get("conditions", [])) else None
    j = wait_until(complete, 90, "job with-sidecar Complete")
    assert j["status"]["succeeded"] == 1 and j["status"].get("failed", 0) == 0
    (p,) = json.loads(lab.out("get", "pods", "-l", "job-name=with-sidecar", "-o", "json"))["items"]
    assert p["status"]["phase"] == "Succeeded"
    assert statuses(p, "containerStatuses")["main"]["state"]["terminated"]["exitCode"] == 0
    assert lab.out("logs", p["metadata"]["name"], "-c", "main").split() == ["sidecar-up", "job-done"]

    def sidecar_stopped():
        q = get_pod(lab, p["metadata"]["name"])
        return "terminated" in statuses(q, "initContainerStatuses")["logger"]["state"]
    wait_until(sidecar_stopped, 30, "the job pod's sidecar stopped")
    lab.out("delete", "job", "with-sidecar")


def test_restart_policy_is_refused_where_kubernetes_refuses_it(lab):
    r = lab.run("apply", "-f", "-", check=False, input=yaml.safe_dump(pod("bad", [
        container("app", IDLE, restartPolicy="Always"),
    ], [
        container("init", "true", restartPolicy="OnFailure"),
    ])))
    assert r.returncode != 0
    assert "spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers" in r.stderr
    assert ('spec.initContainers[0].restartPolicy: Unsupported value: "OnFailure": supported values: "Always"'
            in r.stderr)
    assert gone(lab, "po", "bad")
