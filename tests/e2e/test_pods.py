"""Pods on the real lab (3 nodes, real engines, agents), through the CLI only:
shared volumes and localhost, init containers, probes, preStop, scheduling failures,
and an agent restart that adopts what runs."""

import json
import os
import shutil
import tempfile
import time

import pytest
import yaml

from tests.e2e.conftest import node_docker, nodes_lab
from tests.helpers import wait_until

IMAGE = "skiff/busybox:latest"


@pytest.fixture(scope="module")
def lab(request):
    with nodes_lab(request, "pods", 3) as cli:
        yield cli


def apply(lab, *docs):
    return lab.out("apply", "-f", "-", input=yaml.safe_dump_all(docs))


def pod(name, containers, **spec):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": containers, **spec}}


def container(name, command, **extra):
    return {"name": name, "image": IMAGE, "imagePullPolicy": "Never", "command": command, **extra}


def get_pod(lab, name) -> dict:
    return json.loads(lab.out("get", "po", name, "-o", "json"))


def phase(lab, name) -> str:
    return get_pod(lab, name).get("status", {}).get("phase", "")


def running(lab, name) -> bool:
    st = get_pod(lab, name).get("status", {})
    return st.get("phase") == "Running" and all(
        "running" in cs.get("state", {}) for cs in st.get("containerStatuses", []))


def gone(lab, name) -> bool:
    return lab.run("get", "po", name, check=False).returncode == 1


def test_nodes_registered_and_ready(lab):
    out = lab.out("get", "nodes")
    lines = out.strip().splitlines()
    assert lines[0].split()[:6] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP"]
    rows = [line.split() for line in lines[1:]]
    assert sorted(r[0] for r in rows) == ["node1", "node2", "node3"]
    assert all(r[1] == "Ready" for r in rows), out
    node = json.loads(lab.out("get", "node", "node1", "-o", "json"))
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "node1"
    assert {"cpu", "memory", "pods"} <= set(node["status"]["allocatable"])


def test_two_containers_share_an_emptydir_and_localhost(lab):
    apply(lab, pod("duo", [
        container("server", ["sh", "-c", "echo hello-from-server > /data/index.html; httpd -f -p 8080 -h /data"],
                  volumeMounts=[{"name": "shared", "mountPath": "/data"}]),
        container("client", ["sh", "-c", "sleep 3600"], volumeMounts=[{"name": "shared", "mountPath": "/shared"}]),
    ], volumes=[{"name": "shared", "emptyDir": {}}]))
    wait_until(lambda: running(lab, "duo"), 60, "pod duo running")
    assert lab.out("exec", "duo", "-c", "client", "--", "cat", "/shared/index.html") == "hello-from-server\n"
    got = wait_until(lambda: lab.out("exec", "duo", "-c", "client", "--", "sh", "-c",
                                     "printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc 127.0.0.1 8080",
                                     check=False), 20, "http over the pod's localhost")
    assert "hello-from-server" in got
    assert lab.out("exec", "duo", "-c", "client", "--", "hostname").strip() == "duo"
    hosts = lab.out("exec", "duo", "-c", "server", "--", "cat", "/etc/hosts")
    assert "duo" in hosts and "localhost" in hosts
    lab.out("delete", "po", "duo")
    wait_until(lambda: gone(lab, "duo"), 60, "pod duo deleted")


def test_init_container_output_is_read_by_the_app(lab):
    apply(lab, pod("initd", [
        container("app", ["sh", "-c", "cat /work/msg; sleep 3600"], volumeMounts=[{"name": "w", "mountPath": "/work"}]),
    ], initContainers=[
        container("prepare", ["sh", "-c", "echo prepared-by-init > /work/msg"],
                  volumeMounts=[{"name": "w", "mountPath": "/work"}]),
    ], volumes=[{"name": "w", "emptyDir": {}}]))
    wait_until(lambda: running(lab, "initd"), 60, "pod initd running")
    wait_until(lambda: "prepared-by-init" in lab.out("logs", "initd"), 20, "app log shows the init output")
    st = get_pod(lab, "initd")["status"]
    init = st["initContainerStatuses"][0]
    assert init["state"]["terminated"]["exitCode"] == 0
    conds = {c["type"]: c["status"] for c in st["conditions"]}
    assert conds.get("Initialized") == "True" and conds.get("Ready") == "True"
    lab.out("delete", "po", "initd")


def restart_count(lab, name) -> int:
    st = get_pod(lab, name).get("status", {})
    return sum(cs.get("restartCount", 0) for cs in st.get("containerStatuses", []))


def test_failing_liveness_probe_restarts_the_container(lab):
    apply(lab, pod("sick", [
        container("app", ["sh", "-c", "touch /tmp/healthy; sleep 2; rm /tmp/healthy; sleep 3600"],
                  livenessProbe={"exec": {"command": ["cat", "/tmp/healthy"]}, "initialDelaySeconds": 1,
                                 "periodSeconds": 1, "failureThreshold": 1}),
    ]))
    wait_until(lambda: restart_count(lab, "sick") >= 2, 90, "restartCount grows")
    events = lab.out("get", "events")
    assert "Unhealthy" in events and "Liveness probe failed" in events, events
    assert "Killing" in events
    lab.out("delete", "po", "sick")


def ready_column(lab, name) -> str:
    return lab.out("get", "po", name).splitlines()[1].split()[1]


def test_readiness_probe_flips_ready(lab):
    apply(lab, pod("flip", [
        container("app", ["sh", "-c", "sleep 3600"],
                  readinessProbe={"exec": {"command": ["test", "-f", "/tmp/ready"]}, "periodSeconds": 1}),
    ]))
    wait_until(lambda: phase(lab, "flip") == "Running", 60, "pod flip running")
    assert ready_column(lab, "flip") == "0/1"
    lab.out("exec", "flip", "--", "touch", "/tmp/ready")
    wait_until(lambda: ready_column(lab, "flip") == "1/1", 20, "ready after the file appears")
    conds = {c["type"]: c["status"] for c in get_pod(lab, "flip")["status"]["conditions"]}
    assert conds["Ready"] == "True" and conds["ContainersReady"] == "True"
    lab.out("exec", "flip", "--", "rm", "/tmp/ready")
    wait_until(lambda: ready_column(lab, "flip") == "0/1", 20, "not ready after the file goes")
    lab.out("delete", "po", "flip")


def test_prestop_hook_runs_before_sigterm(lab):
    shared = tempfile.mkdtemp(prefix="skiff-e2e-prestop-")
    try:
        apply(lab, pod("polite", [
            container("app", ["sh", "-c", "trap 'echo sigterm >> /log/order; exit 0' TERM; "
                                          "while true; do sleep 0.2; done"],
                      lifecycle={"preStop": {"exec": {"command": ["sh", "-c", "echo prestop >> /log/order"]}}},
                      volumeMounts=[{"name": "log", "mountPath": "/log"}]),
        ], volumes=[{"name": "log", "hostPath": {"path": shared}}], terminationGracePeriodSeconds=20))
        wait_until(lambda: running(lab, "polite"), 60, "pod polite running")
        lab.out("delete", "po", "polite")
        wait_until(lambda: gone(lab, "polite"), 60, "pod polite gone")
        with open(os.path.join(shared, "order")) as f:
            assert f.read().split() == ["prestop", "sigterm"]
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def test_a_pod_that_fits_nowhere_says_why(lab):
    apply(lab, pod("huge", [container("app", ["sleep", "3600"], resources={"requests": {"cpu": "500"}})]))
    msg = "0/3 nodes are available: 3 Insufficient cpu."
    wait_until(lambda: msg in lab.out("describe", "po", "huge"), 30, "FailedScheduling reason in describe")
    assert "FailedScheduling" in lab.out("get", "events")
    assert lab.out("get", "po", "huge").splitlines()[1].split()[2] == "Pending"
    lab.out("delete", "po", "huge")


def test_agent_restart_adopts_running_containers(lab):
    docs = [pod(f"keep{i}", [container("app", ["sleep", "3600"])], nodeSelector={"kubernetes.io/hostname": "node1"})
            for i in range(10)]
    apply(lab, *docs)
    wait_until(lambda: all(running(lab, f"keep{i}") for i in range(10)), 120, "10 pods running on node1")

    def ids():
        out = {}
        for i in range(10):
            for cs in get_pod(lab, f"keep{i}")["status"]["containerStatuses"]:
                out[(i, cs["name"])] = (cs["containerID"], cs.get("restartCount", 0))
        return out

    engine = node_docker(lab, "node1")

    def containers_of_keep_pods():
        return sorted(c.id for c in engine.containers.list(all=True)
                      if c.labels.get("io.skiff.pod.name", "").startswith("keep"))

    before_ids = ids()
    before_containers = containers_of_keep_pods()
    assert len(before_containers) == 20  # a pause and an app container per pod
    lab.out("chaos", "kill-agent", "node1")
    lab.out("chaos", "start-agent", "node1")
    # Let the restarted agent resync, then prove it changed nothing.
    wait_until(lambda: "Ready" in lab.out("get", "node", "node1"), 60, "node1 Ready again")
    wait_until(lambda: all(running(lab, f"keep{i}") for i in range(10)), 60, "pods still running")
    time.sleep(5)  # give a misbehaving agent time to create duplicates before we count
    assert ids() == before_ids, "container IDs or restart counts changed after an agent restart"
    assert containers_of_keep_pods() == before_containers, "containers created or removed"
    lab.out("delete", "po", *[f"keep{i}" for i in range(10)])


def test_scale_cordon_drain_uncordon(lab):
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "dr"},
              "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "dr"}},
                       "template": {"metadata": {"labels": {"app": "dr"}},
                                    "spec": {"terminationGracePeriodSeconds": 1,
                                             "containers": [container("app", ["sleep", "3600"])]}}}}
    apply(lab, deploy)

    def placement():
        items = json.loads(lab.out("get", "po", "-l", "app=dr", "-o", "json"))["items"]
        live = [p for p in items if not p["metadata"].get("deletionTimestamp")]
        return {p["metadata"]["name"]: (p["spec"].get("nodeName"), p.get("status", {}).get("phase")) for p in live}

    def all_running(n, avoid=None):
        pl = placement()
        return len(pl) == n and all(ph == "Running" and node != avoid for node, ph in pl.values())

    assert lab.out("scale", "deploy", "dr", "--replicas", "5") == "deployment.apps/dr scaled\n"
    wait_until(lambda: all_running(5), 90, "5 replicas running after scale up")
    assert "node3" in lab.out("cordon", "node3")
    assert "SchedulingDisabled" in lab.out("get", "nodes")
    out = lab.out("drain", "node3", "--timeout", "90")
    assert "node/node3 drained" in out
    wait_until(lambda: all_running(5, avoid="node3"), 90, "replicas moved off the drained node")
    lab.out("scale", "deploy/dr", "--replicas", "6")
    wait_until(lambda: all_running(6, avoid="node3"), 90, "a cordoned node gets no new pods")
    lab.out("uncordon", "node3")
    assert "SchedulingDisabled" not in lab.out("get", "nodes")
    lab.out("scale", "deploy", "dr", "--replicas", "1")
    wait_until(lambda: all_running(1), 90, "scaled down to 1")
    lab.out("delete", "deploy", "dr")
