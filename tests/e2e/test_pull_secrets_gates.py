"""Issue 11's small pod and Service fields on the real lab (one node), through the CLI:

- imagePullSecrets: a registry that REQUIRES basic auth (tests/registry.py) runs in node1's
  network namespace on 127.0.0.1:5000 (an address the node's engine reaches and, being
  loopback, pulls from over plain HTTP). With a dockerconfigjson Secret (listed by the pod,
  or by its ServiceAccount) the pod's image is pulled and runs, and the registry saw the
  Secret's credentials; without one the pull fails with the registry's refusal; a listed
  Secret that does not exist is a Warning event, not a failure;
- schedulingGates: a gated pod stays Pending (PodScheduled=False SchedulingGated, shown in
  `get pods`), a gate cannot be added, and re-applying it without the gate gets it scheduled
  and running;
- Service ipFamilyPolicy / ipFamilies: the defaults a single-stack IPv4 cluster gives, in
  `get -o yaml`, and RequireDualStack refused.
"""

import base64
import json
import os
import subprocess
import sys

import pytest
import yaml

from skiff.lab import images
from tests import registry
from tests.e2e.conftest import nodes_lab
from tests.helpers import remove, temp_dir, wait_until

REGISTRY = "127.0.0.1:5000"
REPO = "skiff/private"
USER, PASSWORD = "skiff-puller", "s3cret-pull"
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
TAGS = ("with-secret", "no-secret", "from-account")


@pytest.fixture(scope="module")
def lab(request):
    with nodes_lab(request, "pullgates", 1) as cli:
        yield cli


@pytest.fixture(scope="module")
def reg(lab):
    """The registry, inside node1's network namespace; killed by pid and removed at the end."""
    root = temp_dir("registry")
    proc = None
    stderr = open(os.path.join(root, "stderr"), "w")
    try:
        archive = images.busybox_archive()
        for tag in TAGS:   # one image per tag (its own config), so every test pulls afresh
            registry.prepare_image(archive, os.path.join(root, "image"), REPO, tag, {"SKIFF_PULLED_TAG": tag})
        log, ready = os.path.join(root, "requests.jsonl"), os.path.join(root, "ready")
        netns = lab.plan.node("node1").netns_path
        proc = subprocess.Popen(
            ["nsenter", f"--net={netns}", sys.executable, registry.__file__, "--dir", os.path.join(root, "image"),
             "--port", "5000", "--user", USER, "--password", PASSWORD, "--log", log, "--ready", ready],
            stdout=subprocess.DEVNULL, stderr=stderr)
        wait_until(lambda: os.path.exists(ready) or proc.poll() is not None, 20, "the registry listening")
        assert proc.poll() is None, open(os.path.join(root, "stderr")).read()
        yield log
    finally:
        if proc is not None:
            proc.kill()
            proc.wait(10)
        stderr.close()
        remove(root)


def apply(lab, *docs, check=True):
    return lab.run("apply", "-f", "-", input=yaml.safe_dump_all(docs), check=check)


def get(lab, kind, name) -> dict:
    return json.loads(lab.out("get", kind, name, "-o", "json"))


def requests_seen(log) -> list:
    if not os.path.exists(log):
        return []
    with open(log, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def pull_secret(name="regcred"):
    config = {"auths": {REGISTRY: {"auth": base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}}}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "type": "kubernetes.io/dockerconfigjson", "stringData": {".dockerconfigjson": json.dumps(config)}}


def private_pod(name, tag, **spec):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "app", "image": f"{REGISTRY}/{REPO}:{tag}",
                                     "command": ["sh", "-c", "echo pulled-tag=$SKIFF_PULLED_TAG; sleep 3600"]}],
                     "terminationGracePeriodSeconds": 0, **spec}}


def running(lab, name) -> bool:
    st = get(lab, "po", name).get("status", {})
    return st.get("phase") == "Running" and all("running" in cs.get("state", {})
                                                 for cs in st.get("containerStatuses", []))


def waiting(lab, name) -> dict:
    for cs in get(lab, "po", name).get("status", {}).get("containerStatuses", []):
        w = cs.get("state", {}).get("waiting", {})
        if w.get("reason") in ("ErrImagePull", "ImagePullBackOff"):
            return w
    return {}


def manifest_requests(log, tag) -> list:
    return [r for r in requests_seen(log) if r["path"] == f"/v2/{REPO}/manifests/{tag}"]


# ---------------------------------------------------------------- imagePullSecrets

def test_the_pod_pulls_with_its_secret_and_a_missing_one_is_only_a_warning(lab, reg):
    apply(lab, pull_secret(), private_pod("private", "with-secret",
                                          imagePullSecrets=[{"name": "not-there"}, {"name": "regcred"}]))
    wait_until(lambda: running(lab, "private"), 90, "pod private running")
    assert wait_until(lambda: lab.out("logs", "private"), 20, "its log") == "pulled-tag=with-secret\n"
    seen = manifest_requests(reg, "with-secret")
    assert seen and all(r["authorization"] == BASIC for r in seen if r["status"] == 200), seen
    assert any(r["status"] == 200 for r in seen)
    events = lab.out("get", "events")
    assert "FailedToRetrieveImagePullSecret" in events
    assert "Unable to retrieve some image pull secrets (not-there); attempting to pull the image may not " \
           "succeed." in events


def test_without_credentials_the_pull_fails_with_the_registrys_refusal(lab, reg):
    apply(lab, private_pod("anonymous", "no-secret"))
    w = wait_until(lambda: waiting(lab, "anonymous"), 90, "anonymous pod waiting on its image")
    assert w["reason"] in ("ErrImagePull", "ImagePullBackOff")
    message = w.get("message", "")
    assert f"{REGISTRY}/{REPO}:no-secret" in message
    assert "no basic auth credentials" in message, message     # the engine's words for the registry's 401
    assert not any(r["status"] == 200 for r in manifest_requests(reg, "no-secret"))
    # Then the kubelet's back-off (10 s, doubling): the registry's refusal stays in the message.
    w = wait_until(lambda: (lambda w: w.get("reason") == "ImagePullBackOff" and w)(waiting(lab, "anonymous")),
                   60, "ImagePullBackOff after the failed pull")
    assert w["message"].startswith(f'Back-off pulling image "{REGISTRY}/{REPO}:no-secret": ErrImagePull: ')
    assert "no basic auth credentials" in w["message"]
    assert lab.out("get", "pods", "anonymous").splitlines()[1].split()[2] in ("ImagePullBackOff", "ErrImagePull")


def test_a_service_accounts_pull_secrets_reach_its_pods(lab, reg):
    apply(lab, pull_secret(), {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "puller"},
                               "imagePullSecrets": [{"name": "regcred"}]})
    apply(lab, private_pod("via-account", "from-account", serviceAccountName="puller"))
    assert [r["name"] for r in get(lab, "po", "via-account")["spec"]["imagePullSecrets"]] == ["regcred"]
    wait_until(lambda: running(lab, "via-account"), 90, "pod via-account running")
    assert any(r["status"] == 200 and r["authorization"] == BASIC for r in manifest_requests(reg, "from-account"))


def test_registry_secrets_are_validated(lab):
    bad = pull_secret("broken")
    bad["stringData"] = {".dockerconfigjson": "{not json"}
    r = apply(lab, bad, check=False)
    assert r.returncode != 0
    assert 'data[.dockerconfigjson]: Invalid value: "<secret contents redacted>"' in r.stderr
    assert "{not json" not in r.stderr + r.stdout


# ---------------------------------------------------------------- schedulingGates

def gated(gates):
    doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "gated"},
           "spec": {"containers": [{"name": "app", "image": "skiff/busybox:latest", "imagePullPolicy": "Never",
                                    "command": ["sleep", "3600"]}],
                    "terminationGracePeriodSeconds": 0}}
    if gates:
        doc["spec"]["schedulingGates"] = [{"name": g} for g in gates]
    return doc


def scheduled_condition(lab, name) -> dict:
    for c in get(lab, "po", name).get("status", {}).get("conditions", []):
        if c["type"] == "PodScheduled":
            return c
    return {}


def test_a_gated_pod_waits_until_its_last_gate_is_removed(lab):
    apply(lab, gated(["example.com/quota", "example.com/approval"]))
    cond = wait_until(lambda: scheduled_condition(lab, "gated").get("reason") == "SchedulingGated"
                      and scheduled_condition(lab, "gated"), 30, "PodScheduled=False SchedulingGated")
    assert cond["status"] == "False"
    assert cond["message"] == "Scheduling is blocked due to non-empty scheduling gates"
    row = lab.out("get", "pods", "gated").splitlines()[1].split()
    assert row[2] == "SchedulingGated", row
    r = apply(lab, gated(["example.com/quota", "example.com/approval", "example.com/new"]), check=False)
    assert r.returncode != 0
    assert "spec.schedulingGates: Forbidden: only deletion is allowed, but found new scheduling gate " \
           "'example.com/new'" in r.stderr
    apply(lab, gated(["example.com/approval"]))          # one gate left: still not scheduled
    pod = get(lab, "po", "gated")
    assert [g["name"] for g in pod["spec"]["schedulingGates"]] == ["example.com/approval"]
    assert not pod["spec"].get("nodeName")
    apply(lab, gated([]))                                 # the last one removed
    wait_until(lambda: running(lab, "gated"), 60, "the ungated pod running")
    assert get(lab, "po", "gated")["spec"]["nodeName"] == "node1"
    assert scheduled_condition(lab, "gated")["status"] == "True"
    assert lab.out("get", "pods", "gated").splitlines()[1].split()[2] == "Running"


# ---------------------------------------------------------------- Service IP families

def test_services_get_single_stack_ipv4_families(lab):
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
           "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}
    apply(lab, svc)
    spec = yaml.safe_load(lab.out("get", "svc", "web", "-o", "yaml"))["spec"]
    assert (spec["ipFamilyPolicy"], spec["ipFamilies"]) == ("SingleStack", ["IPv4"])
    prefer = dict(svc, metadata={"name": "prefer"}, spec=dict(svc["spec"], ipFamilyPolicy="PreferDualStack"))
    apply(lab, prefer)
    spec = yaml.safe_load(lab.out("get", "svc", "prefer", "-o", "yaml"))["spec"]
    assert (spec["ipFamilyPolicy"], spec["ipFamilies"]) == ("PreferDualStack", ["IPv4"])
    require = dict(svc, metadata={"name": "require"}, spec=dict(svc["spec"], ipFamilyPolicy="RequireDualStack"))
    r = apply(lab, require, check=False)
    assert r.returncode != 0
    assert 'spec.ipFamilyPolicy: Invalid value: "RequireDualStack": this cluster is not configured for ' \
           'dual-stack services' in r.stderr
