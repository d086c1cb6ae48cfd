"""grpc probes on the real lab, through the CLI: a real grpc.health.v1 server in a pod
(skiff/grpc-health, built from the host's Python and loaded with `skiff lab load`), whose
status the tests flip with `skiff exec ... echo NOT_SERVING > /tmp/health-status`.

- readiness: the pod is Ready and its IP a ready address of its Service's Endpoints only
  while the named service is SERVING; NOT_SERVING takes it out (event "Readiness probe
  failed: service unhealthy (responded with "NOT_SERVING")") and SERVING brings it back;
- liveness: NOT_SERVING restarts the container (restartCount grows; the new container
  starts SERVING again, so it stays up);
- startup: while the server is NOT_SERVING the pod is not Ready and nothing is
  restarted; SERVING passes it and readiness takes over; a startup probe on a port
  nothing listens on restarts the container, with Kubernetes' message naming the pod's
  IP and port (the agent dials the pod's IP from inside the pod's namespace).
One 1-node lab for the module.
"""

import json
import os

import pytest
import yaml

from skiff.lab import grpcimage
from tests.e2e.conftest import nodes_lab
from tests.helpers import remove, temp_dir, wait_until

NS = "grpc-e2e"
PORT = 9000


@pytest.fixture(scope="module")
def lab(request):
    with nodes_lab(request, "grpcprobes", 1) as cli:
        scratch = temp_dir("grpcprobes-img")   # the archive is ~90 MB: gone once loaded
        try:
            cli.run("lab", "load", grpcimage.write_archive(os.path.join(scratch, "grpc-health.tar")), timeout=300)
        finally:
            remove(scratch)
        apply(cli, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        yield cli


def apply(lab, *docs):
    return lab.out("apply", "-f", "-", input=yaml.safe_dump_all(docs))


def grpc_pod(name, labels=None, env=None, **probes):
    container = {"name": "app", "image": grpcimage.TAG, "imagePullPolicy": "Never",
                 "ports": [{"name": "grpc", "containerPort": PORT}],
                 "env": [{"name": k, "value": v} for k, v in (env or {}).items()], **probes}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "labels": labels or {}},
            "spec": {"containers": [container], "terminationGracePeriodSeconds": 2}}


def probe(port=PORT, service=None, **timing):
    action = {"port": port}
    if service is not None:
        action["service"] = service
    return {"grpc": action, "periodSeconds": 1, **timing}


def get_pod(lab, name) -> dict:
    return json.loads(lab.out("get", "po", name, "-n", NS, "-o", "json"))


def container_status(lab, name) -> dict:
    statuses = get_pod(lab, name).get("status", {}).get("containerStatuses", [])
    return statuses[0] if statuses else {}


def ready(lab, name) -> bool:
    conds = {c["type"]: c["status"] for c in get_pod(lab, name).get("status", {}).get("conditions", [])}
    return conds.get("Ready") == "True"


def running(lab, name) -> bool:
    return "running" in container_status(lab, name).get("state", {})


def set_status(lab, name, status):
    lab.out("exec", name, "-n", NS, "--", "sh", "-c", f"echo {status} > /tmp/health-status")


def endpoint_ips(lab, service) -> tuple:
    """(ready IPs, not-ready IPs) of the Service's Endpoints."""
    r = lab.run("get", "endpoints", service, "-n", NS, "-o", "json", check=False)
    if r.returncode != 0:
        return (), ()
    ready_ips, not_ready = [], []
    for subset in json.loads(r.stdout).get("subsets", []):
        ready_ips += [a["ip"] for a in subset.get("addresses", [])]
        not_ready += [a["ip"] for a in subset.get("notReadyAddresses", [])]
    return tuple(sorted(ready_ips)), tuple(sorted(not_ready))


def events(lab) -> str:
    return lab.out("get", "events", "-n", NS)


def test_readiness_gates_ready_and_endpoints(lab):
    apply(lab, grpc_pod("ready", labels={"app": "grpc-ready"}, env={"SERVICES": "skiff.Echo"},
                        readinessProbe=probe(service="skiff.Echo", failureThreshold=1)),
          {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "grpc-ready", "namespace": NS},
           "spec": {"selector": {"app": "grpc-ready"}, "ports": [{"port": PORT, "targetPort": "grpc"}]}})
    wait_until(lambda: ready(lab, "ready"), 90, "pod ready: the grpc readiness probe passes")
    ip = get_pod(lab, "ready")["status"]["podIP"]
    wait_until(lambda: endpoint_ips(lab, "grpc-ready") == ((ip,), ()), 30, "the pod a ready endpoint")
    assert "Readiness:          grpc <pod>:9000 skiff.Echo delay=0s timeout=1s period=1s" in \
        lab.out("describe", "pod", "ready", "-n", NS)

    set_status(lab, "ready", "NOT_SERVING")
    wait_until(lambda: not ready(lab, "ready"), 30, "pod not ready once NOT_SERVING")
    wait_until(lambda: endpoint_ips(lab, "grpc-ready") == ((), (ip,)), 30, "the pod a not-ready endpoint")
    assert 'Readiness probe failed: service unhealthy (responded with "NOT_SERVING")' in events(lab)
    assert running(lab, "ready") and container_status(lab, "ready").get("restartCount", 0) == 0

    set_status(lab, "ready", "SERVING")
    wait_until(lambda: ready(lab, "ready"), 30, "pod ready again once SERVING")
    wait_until(lambda: endpoint_ips(lab, "grpc-ready") == ((ip,), ()), 30, "the pod a ready endpoint again")
    lab.out("delete", "svc", "grpc-ready", "-n", NS)
    lab.out("delete", "po", "ready", "-n", NS)


def test_liveness_failure_restarts_the_container(lab):
    apply(lab, grpc_pod("live", livenessProbe=probe(failureThreshold=2)))
    wait_until(lambda: running(lab, "live"), 90, "pod live running")
    first_id = container_status(lab, "live")["containerID"]
    set_status(lab, "live", "NOT_SERVING")
    wait_until(lambda: container_status(lab, "live").get("restartCount", 0) >= 1, 60, "restartCount grows")
    ev = events(lab)
    assert 'Liveness probe failed: service unhealthy (responded with "NOT_SERVING")' in ev, ev
    assert "Killing" in ev
    # The new container starts SERVING (its /tmp is fresh): it runs on, no further restart.
    wait_until(lambda: running(lab, "live"), 60, "the restarted container running")
    cs = container_status(lab, "live")
    assert cs["containerID"] != first_id and cs["restartCount"] == 1
    lab.out("delete", "po", "live", "-n", NS)


def test_startup_probe_holds_readiness_until_serving(lab):
    apply(lab, grpc_pod("starting", env={"INITIAL_STATUS": "NOT_SERVING"},
                        startupProbe=probe(failureThreshold=60), readinessProbe=probe()))
    wait_until(lambda: running(lab, "starting"), 90, "pod starting running")
    wait_until(lambda: 'Startup probe failed: service unhealthy (responded with "NOT_SERVING")' in events(lab),
               30, "a failed startup probe event")
    assert not ready(lab, "starting")
    assert not container_status(lab, "starting").get("started", False)
    set_status(lab, "starting", "SERVING")
    wait_until(lambda: ready(lab, "starting"), 30, "ready once the startup probe passes")
    cs = container_status(lab, "starting")
    assert cs.get("started") is True and cs.get("restartCount", 0) == 0
    lab.out("delete", "po", "starting", "-n", NS)


def test_startup_probe_on_a_closed_port_restarts_with_the_pod_ip(lab):
    apply(lab, grpc_pod("closed", startupProbe=probe(port=9001, failureThreshold=2)))
    wait_until(lambda: container_status(lab, "closed").get("restartCount", 0) >= 1, 90, "restartCount grows")
    ip = get_pod(lab, "closed")["status"]["podIP"]
    ev = events(lab)
    assert f'Startup probe failed: timeout: failed to connect service "{ip}:9001" within 1s' in ev, ev
    lab.out("delete", "po", "closed", "-n", NS)
