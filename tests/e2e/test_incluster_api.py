"""A pod calls the API through kubernetes.default.svc with its mounted ServiceAccount, on the
real lab (3 replicas with TLS, a node with its engine and agent), driven through the CLI.

The pod runs skiff/python:latest (skiff/lab/pyimage.py: the host's interpreter, skiff and its
client packages; loaded with `skiff lab load`) and `python3 -m skiff.cli.main` in it with no
config file: the in-cluster config (KUBERNETES_SERVICE_HOST/PORT, the mounted token, ca.crt
and namespace; skiff/clientconfig.py). It checks that:

- kubernetes.default.svc resolves in the pod to the Service's ClusterIP, and the replicas'
  certificate verifies under that name and that address;
- without a binding the pod's account is refused with Kubernetes' text naming the identity,
  the verb and the resource; with a `view` RoleBinding it lists the pods of its namespace
  (its own namespace by default), and still may not write;
- a pod with automountServiceAccountToken: false has no credentials and no in-cluster config.
"""

import json
import os

import pytest
import yaml

from skiff.lab import pyimage
from tests.e2e.conftest import nodes_lab
from tests.helpers import remove, temp_dir, wait_until

NS = "incluster-e2e"
ACCOUNT = f"system:serviceaccount:{NS}:default"
SKIFF = ["python3", "-m", "skiff.cli.main"]


@pytest.fixture(scope="module")
def lab(request):
    with nodes_lab(request, "incluster", 1) as cli:
        tmp = temp_dir("incluster-image")
        try:
            archive = pyimage.write_python_archive(os.path.join(tmp, "skiff-python.tar"))
            cli.run("lab", "load", archive, timeout=300)
        finally:
            remove(tmp)
        cli.out("apply", "-f", "-", input=yaml.safe_dump_all([
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
            client_pod("client"), client_pod("nocreds", automount=False)]))
        for name in ("client", "nocreds"):
            wait_until(lambda: running(cli, name), 120, f"pod {name} running")
        yield cli


def client_pod(name, automount=None):
    spec = {"containers": [{"name": "c", "image": pyimage.PYTHON_IMAGE, "imagePullPolicy": "Never",
                            "command": ["sleep", "3600"]}],
            "terminationGracePeriodSeconds": 1}
    if automount is not None:
        spec["automountServiceAccountToken"] = automount
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS}, "spec": spec}


def running(lab, name):
    r = lab.run("get", "po", name, "-n", NS, "-o", "json", check=False)
    st = json.loads(r.stdout).get("status", {}) if r.returncode == 0 else {}
    return st.get("phase") == "Running" and all(
        "running" in cs.get("state", {}) for cs in st.get("containerStatuses", []))


def in_pod(lab, pod, *argv, timeout=90):
    """Run argv in the pod (skiff exec); the CompletedProcess."""
    return lab.run("exec", pod, "-n", NS, "--", *argv, check=False, timeout=timeout)


def test_the_api_service_name_resolves_in_the_pod(lab):
    api_ip = json.loads(lab.out("get", "svc", "kubernetes", "-n", "default", "-o", "json"))["spec"]["clusterIP"]
    code = "import socket; print(socket.gethostbyname('kubernetes.default.svc'))"
    r = in_pod(lab, "client", "python3", "-c", code)
    assert r.returncode == 0 and r.stdout.strip() == api_ip, r.stdout + r.stderr
    env = in_pod(lab, "client", "env").stdout
    assert f"KUBERNETES_SERVICE_HOST={api_ip}" in env and "KUBERNETES_SERVICE_PORT=443" in env


def test_the_pods_account_is_refused_without_a_binding_and_lists_with_view(lab):
    r = in_pod(lab, "client", *SKIFF, "get", "pods")
    assert r.returncode != 0
    assert (f'Error from server (Forbidden): pods is forbidden: User "{ACCOUNT}" cannot list resource "pods" '
            f'in API group "" in the namespace "{NS}"') in r.stderr, r.stdout + r.stderr
    # authenticated as the account (not UNAUTHENTICATED): the token and the CA work
    assert "Unauthorized" not in r.stderr

    lab.out("apply", "-f", "-", input=yaml.safe_dump({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "default-view", "namespace": NS},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": NS}]}))
    listed = {}

    def lists():
        r = in_pod(lab, "client", *SKIFF, "get", "pods")
        listed["r"] = r
        return r.returncode == 0
    wait_until(lists, 60, "the pod lists pods once its account is bound to view")
    names = [line.split()[0] for line in listed["r"].stdout.splitlines()[1:]]
    assert sorted(names) == ["client", "nocreds"], listed["r"].stdout
    # by the Service's DNS name too: the certificate's SANs hold kubernetes.default.svc
    r = in_pod(lab, "client", *SKIFF, "--server", "kubernetes.default.svc:443", "get", "pods", "client")
    assert r.returncode == 0 and "client" in r.stdout, r.stdout + r.stderr
    # view reads, it does not write, and only in its namespace
    r = in_pod(lab, "client", *SKIFF, "delete", "pod", "nocreds")
    assert r.returncode != 0 and f'User "{ACCOUNT}" cannot delete resource "pods"' in r.stderr, r.stderr
    r = in_pod(lab, "client", *SKIFF, "get", "pods", "-n", "default")
    assert r.returncode != 0 and 'in the namespace "default"' in r.stderr, r.stderr
    assert running(lab, "nocreds")


def test_a_pod_without_mounted_credentials_has_no_in_cluster_config(lab):
    r = in_pod(lab, "nocreds", *SKIFF, "get", "pods")
    assert r.returncode != 0 and "no control plane configured" in r.stderr, r.stdout + r.stderr
