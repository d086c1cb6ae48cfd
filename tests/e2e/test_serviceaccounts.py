"""ServiceAccounts on the real lab (3 replicas, a node with its engine and agent), through
the CLI like a user, and the API for the token check:

- every namespace has its `default` account (`skiff get sa`);
- a pod running as an account finds token, ca.crt and namespace at
  /var/run/secrets/kubernetes.io/serviceaccount, read-only; the token authenticates as
  system:serviceaccount:NS:NAME (WhoAmI, Kubernetes' SelfSubjectReview), and no longer
  once the pod is deleted;
- an account with automountServiceAccountToken: false gives its pods no credentials;
- a pod naming an account that does not exist is refused.
"""

import json

import pytest
import yaml

from skiff import client as clientmod
from skiff.satoken import MOUNT_PATH
from tests.e2e.conftest import nodes_lab
from tests.helpers import wait_until

IMAGE = "skiff/busybox:latest"
NS = "sa-e2e"


@pytest.fixture(scope="module")
def lab(request):
    with nodes_lab(request, "serviceaccounts", 1) as cli:
        yield cli


def apply(lab, *docs, check=True):
    return lab.run("apply", "-f", "-", input=yaml.safe_dump_all(docs), check=check)


def sleeper(name, account=""):
    spec = {"containers": [{"name": "app", "image": IMAGE, "imagePullPolicy": "Never",
                            "command": ["sleep", "3600"]}], "terminationGracePeriodSeconds": 1}
    if account:
        spec["serviceAccountName"] = account
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS}, "spec": spec}


def account(name, **fields):
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": NS}, **fields}


def running(lab, name):
    r = lab.run("get", "po", name, "-n", NS, "-o", "json", check=False)
    if r.returncode != 0:
        return False
    st = json.loads(r.stdout).get("status", {})
    return st.get("phase") == "Running" and all(
        "running" in cs.get("state", {}) for cs in st.get("containerStatuses", []))


def test_every_namespace_has_a_default_account(lab):
    apply(lab, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    for ns in ("default", "kube-system", NS):
        wait_until(lambda: lab.run("get", "sa", "default", "-n", ns, check=False).returncode == 0, 30,
                   f"{ns}/default")
    lines = lab.out("get", "sa", "default", "-n", NS).splitlines()
    assert lines[0].split() == ["NAME", "SECRETS", "AGE"] and lines[1].split()[:2] == ["default", "0"]


def test_a_pods_credentials_authenticate_as_its_account(lab):
    apply(lab, account("robot"), sleeper("robot-pod", "robot"))
    wait_until(lambda: running(lab, "robot-pod"), 90, "robot-pod running")
    files = lab.out("exec", "robot-pod", "-n", NS, "--", "ls", MOUNT_PATH).split()
    assert sorted(files) == ["ca.crt", "namespace", "token"]
    assert lab.out("exec", "robot-pod", "-n", NS, "--", "cat", f"{MOUNT_PATH}/namespace") == NS
    touched = lab.run("exec", "robot-pod", "-n", NS, "--", "touch", f"{MOUNT_PATH}/x", check=False)
    assert touched.returncode != 0 and "Read-only file system" in touched.stdout + touched.stderr
    token = lab.out("exec", "robot-pod", "-n", NS, "--", "cat", f"{MOUNT_PATH}/token")
    client = clientmod.Client.from_config(config_path=lab.config)
    try:
        user, groups = client.whoami(token)
        assert user == f"system:serviceaccount:{NS}:robot"
        assert sorted(groups) == ["system:authenticated", "system:serviceaccounts", f"system:serviceaccounts:{NS}"]
        lab.out("delete", "po", "robot-pod", "-n", NS)

        def refused():
            try:
                client.whoami(token)
            except clientmod.ApiError as exc:
                return "invalid bearer token" in str(exc)
            return False
        wait_until(refused, 60, "the deleted pod's token refused")
    finally:
        client.close()


def test_an_account_that_opts_out_mounts_nothing(lab):
    apply(lab, account("quiet", automountServiceAccountToken=False), sleeper("quiet-pod", "quiet"))
    wait_until(lambda: running(lab, "quiet-pod"), 90, "quiet-pod running")
    r = lab.run("exec", "quiet-pod", "-n", NS, "--", "ls", MOUNT_PATH, check=False)
    assert r.returncode != 0


def test_a_pod_naming_a_missing_account_is_refused(lab):
    r = apply(lab, sleeper("lost", "nobody"), check=False)
    assert r.returncode != 0
    assert f'error looking up service account {NS}/nobody: serviceaccount "nobody" not found' in r.stderr
