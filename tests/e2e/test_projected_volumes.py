"""downwardAPI and projected volumes on the real lab (1 node), through the CLI like a user:

- a pod with a downwardAPI volume reads its name, labels and limits from files, and once
  its labels change (`skiff label`) the labels file says so;
- a pod with one projected volume combining a Secret, a ConfigMap, downward fields and two
  ServiceAccount tokens reads them all with `skiff exec`; the token asked for an audience is a
  JWT signed by the cluster's key, for the pod's account, bound to the pod, with that audience
  and lifetime; the one for the API's audience authenticates as the account (WhoAmI);
- the volume is read-only in the container, and group-owned by the pod's fsGroup (a non-root
  user reads its 0440 files).
"""

import base64
import json
import os

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
import yaml

from skiff import client as clientmod
from tests.e2e.conftest import nodes_lab
from tests.helpers import wait_until

IMAGE = "skiff/busybox:latest"
NS = "skiff-projected-e2e"
AUDIENCE = "skiff-e2e-vault"


@pytest.fixture(scope="module")
def lab(request):
    with nodes_lab(request, "projected", 1) as cli:
        apply(cli, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        yield cli


def apply(lab, *docs, check=True):
    return lab.run("apply", "-f", "-", input=yaml.safe_dump_all(docs), check=check)


def pod(name, volume, mount_path, labels=None, account="", limits=None, security=None):
    container = {"name": "app", "image": IMAGE, "imagePullPolicy": "Never", "command": ["sleep", "3600"],
                 "volumeMounts": [{"name": volume["name"], "mountPath": mount_path}]}
    if limits:
        container["resources"] = {"limits": limits}
    spec = {"containers": [container], "volumes": [volume], "terminationGracePeriodSeconds": 1}
    if account:
        spec["serviceAccountName"] = account
    if security:
        spec["securityContext"] = security
    return {"apiVersion": "v1", "kind": "Pod", "spec": spec,
            "metadata": {"name": name, "namespace": NS, "labels": labels or {}}}


def running(lab, name):
    r = lab.run("get", "po", name, "-n", NS, "-o", "json", check=False)
    if r.returncode != 0:
        return False
    st = json.loads(r.stdout).get("status", {})
    return st.get("phase") == "Running" and all(
        "running" in cs.get("state", {}) for cs in st.get("containerStatuses", []))


def cat(lab, name, path):
    return lab.out("exec", name, "-n", NS, "--", "cat", path)


def test_downward_api_volume_shows_name_labels_limits_and_follows_label_changes(lab):
    volume = {"name": "podinfo", "downwardAPI": {"items": [
        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "team", "fieldRef": {"fieldPath": "metadata.labels['team']"}},
        {"path": "cpu_limit", "resourceFieldRef": {"containerName": "app", "resource": "limits.cpu",
                                                   "divisor": "1m"}},
        {"path": "mem_limit", "resourceFieldRef": {"containerName": "app", "resource": "limits.memory",
                                                   "divisor": "1Mi"}, "mode": 0o400}]}}
    apply(lab, pod("info", volume, "/etc/podinfo", labels={"app": "info", "team": "red"},
                   limits={"cpu": "500m", "memory": "48Mi"}))
    wait_until(lambda: running(lab, "info"), 90, "info running")
    assert cat(lab, "info", "/etc/podinfo/name") == "info"
    assert cat(lab, "info", "/etc/podinfo/labels") == 'app="info"\nteam="red"'
    assert cat(lab, "info", "/etc/podinfo/team") == "red"
    assert cat(lab, "info", "/etc/podinfo/cpu_limit") == "500"
    assert cat(lab, "info", "/etc/podinfo/mem_limit") == "48"
    mode = lab.out("exec", "info", "-n", NS, "--", "stat", "-L", "-c", "%a", "/etc/podinfo/mem_limit").strip()
    assert mode == "400"

    lab.out("label", "pod", "info", "-n", NS, "team=blue", "tier=web", "--overwrite")
    wait_until(lambda: cat(lab, "info", "/etc/podinfo/labels") == 'app="info"\nteam="blue"\ntier="web"', 30,
               "the labels file rewritten")
    assert cat(lab, "info", "/etc/podinfo/team") == "blue"
    assert cat(lab, "info", "/etc/podinfo/name") == "info"
    touched = lab.run("exec", "info", "-n", NS, "--", "touch", "/etc/podinfo/x", check=False)
    assert touched.returncode != 0 and "Read-only file system" in touched.stdout + touched.stderr


def test_projected_volume_combines_secret_configmap_fields_and_tokens(lab):
    apply(lab,
          {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot", "namespace": NS}},
          {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": NS},
           "data": {"password": base64.b64encode(b"s3cret").decode()}},
          {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app", "namespace": NS},
           "data": {"color": "blue"}})
    volume = {"name": "bundle", "projected": {"defaultMode": 0o440, "sources": [
        {"secret": {"name": "db", "items": [{"key": "password", "path": "db/password"}]}},
        {"configMap": {"name": "app"}},
        {"downwardAPI": {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                                   {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
        {"serviceAccountToken": {"audience": AUDIENCE, "expirationSeconds": 600, "path": "vault-token"}},
        {"serviceAccountToken": {"path": "api-token"}}]}}
    # A non-root user reads the 0440 files through the pod's fsGroup, which owns them.
    apply(lab, pod("bundle", volume, "/var/run/bundle", labels={"app": "bundle"}, account="robot",
                   security={"runAsUser": 1000, "fsGroup": 2000}))
    wait_until(lambda: running(lab, "bundle"), 90, "bundle running")

    listing = lab.out("exec", "bundle", "-n", NS, "--", "ls", "/var/run/bundle").split()
    assert sorted(listing) == ["api-token", "color", "db", "labels", "name", "vault-token"]
    assert cat(lab, "bundle", "/var/run/bundle/db/password") == "s3cret"
    assert cat(lab, "bundle", "/var/run/bundle/color") == "blue"
    assert cat(lab, "bundle", "/var/run/bundle/name") == "bundle"
    assert cat(lab, "bundle", "/var/run/bundle/labels") == 'app="bundle"'
    mode = lab.out("exec", "bundle", "-n", NS, "--", "stat", "-L", "-c", "%a %g", "/var/run/bundle/color").strip()
    assert mode == "440 2000"

    uid = json.loads(lab.out("get", "po", "bundle", "-n", NS, "-o", "json"))["metadata"]["uid"]
    token = cat(lab, "bundle", "/var/run/bundle/vault-token")
    with open(os.path.join(lab.lab_dir, "sa.key"), "rb") as f:
        public = serialization.load_pem_private_key(f.read(), password=None).public_key()
    claims = jwt.decode(token, public, algorithms=["ES256"], audience=AUDIENCE)
    assert claims["sub"] == f"system:serviceaccount:{NS}:robot"
    assert claims["aud"] == [AUDIENCE]
    assert claims["kubernetes.io"]["pod"] == {"name": "bundle", "uid": uid}
    assert claims["exp"] - claims["iat"] == 600

    client = clientmod.Client.from_config(config_path=lab.config)
    try:
        with pytest.raises(clientmod.ApiError):
            client.whoami(token)           # for the vault, not for the API
        user, _ = client.whoami(cat(lab, "bundle", "/var/run/bundle/api-token"))
        assert user == f"system:serviceaccount:{NS}:robot"
    finally:
        client.close()
    touched = lab.run("exec", "bundle", "-n", NS, "--", "touch", "/var/run/bundle/x", check=False)
    assert touched.returncode != 0 and "Read-only file system" in touched.stdout + touched.stderr


def test_a_missing_secret_keeps_the_pod_waiting_with_kubelets_message(lab):
    volume = {"name": "bundle", "projected": {"sources": [{"secret": {"name": "absent"}}]}}
    apply(lab, pod("lost", volume, "/var/run/bundle"))

    def failed_mount():
        r = lab.run("describe", "po", "lost", "-n", NS, check=False)
        return 'secret "absent" not found' in r.stdout
    wait_until(failed_mount, 60, "a FailedMount naming the secret")
    assert not running(lab, "lost")
