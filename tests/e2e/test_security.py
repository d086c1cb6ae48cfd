"""The security checks of issue 10 end to end on the real lab (3 replicas, 2 nodes with their
engines and agents, TLS on as in every lab), driven through the CLI like a user and through
the client library where a user would write a program:

- a client certificate from a foreign CA (claiming to be the admin) fails the handshake (no
  certificate at all: test_pki_cli.py);
- `skiff config create-user bob` + a RoleBinding to ClusterRole `view`: bob lists pods in that
  namespace only, `skiff create`/`delete` as bob are refused with Kubernetes' text naming the
  user, verb and resource, `skiff auth can-i` answers accordingly (also `--as bob`);
- an agent's certificate (<lab>/join/<node>/node.crt|key) cannot update another node's Node or
  Lease, nor read a Secret no pod on its node uses, but renews its own Lease and reads the
  Secret its pod uses;
- a Secret's value is in no replica's data directory (journal and dump, gzip or not);
- a pod's ServiceAccount token authenticates as system:serviceaccount:NS:default and lists
  pods only once a view RoleBinding for that account exists. The API port requires a client
  certificate, so the bearer-token caller goes through a replica's join port
  (tls.joinAddress: TLS without a client certificate, every call but Join needs a token).
"""

import base64
import json
import os
import re
import uuid

import grpc
import pytest
import yaml

from skiff import client as clientmod
from skiff import clientconfig
from skiff.api import kinds
from skiff.api import service_pb2 as api
from skiff.api import service_pb2_grpc as api_grpc
from skiff.pki import authority, certs
from skiff.pki.tls import Credentials
from skiff.satoken import MOUNT_PATH
from tests.e2e.conftest import Cli, nodes_lab
from tests.helpers import files_holding, wait_until

IMAGE = "skiff/busybox:latest"
NS = "sec-e2e"
SECRET_VALUE = f"skiff-e2e-secret-{uuid.uuid4().hex}"
CONTROL_VALUE = f"skiff-e2e-clear-{uuid.uuid4().hex}"     # a ConfigMap's: stored in clear


@pytest.fixture(scope="module")
def lab(request):
    with nodes_lab(request, "security", 2) as cli:
        cli.out("apply", "-f", "-", input=yaml.safe_dump_all([
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "used", "namespace": NS},
             "stringData": {"password": SECRET_VALUE}},
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "unused", "namespace": NS},
             "stringData": {"password": "not-for-nodes"}},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "control", "namespace": NS},
             "data": {"v": CONTROL_VALUE}}]))
        wait_until(lambda: cli.run("get", "sa", "default", "-n", NS, check=False).returncode == 0, 30,
                   f"{NS}/default ServiceAccount")
        cli.out("apply", "-f", "-", input=yaml.safe_dump(sleeper("app", secret="used")))
        wait_until(lambda: running(cli, "app"), 120, "pod app running")
        yield cli


def sleeper(name, secret=""):
    container = {"name": "app", "image": IMAGE, "imagePullPolicy": "Never", "command": ["sleep", "3600"]}
    if secret:
        container["env"] = [{"name": "PASSWORD",
                             "valueFrom": {"secretKeyRef": {"name": secret, "key": "password"}}}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS},
            "spec": {"containers": [container], "terminationGracePeriodSeconds": 1}}


def pod_json(lab, name):
    r = lab.run("get", "po", name, "-n", NS, "-o", "json", check=False)
    return json.loads(r.stdout) if r.returncode == 0 else None


def running(lab, name):
    pod = pod_json(lab, name)
    st = (pod or {}).get("status", {})
    return st.get("phase") == "Running" and all(
        "running" in cs.get("state", {}) for cs in st.get("containerStatuses", []))


def view_binding(name, subject):
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": NS},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [subject]}


def context_config(lab, path, name) -> Cli:
    """A CLI whose config is the lab's with context `name` current (kubectl --context)."""
    doc = clientconfig.load(lab.config)
    doc["currentContext"] = name
    clientconfig.save(path, doc)
    return Cli(lab.lab_dir, path)


def admin_context(lab) -> dict:
    doc = clientconfig.load(lab.config)
    return clientconfig.current(doc, lab.config)


def replica_configs(lab) -> list[dict]:
    out = []
    for name in sorted(os.listdir(lab.lab_dir)):
        path = os.path.join(lab.lab_dir, name, "config.yaml")
        if name.startswith("cp") and os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                out.append(yaml.safe_load(f))
    assert len(out) == 3, out
    return out


# ------------------------------------------------------------ transport


def test_a_certificate_from_a_foreign_ca_fails_the_handshake(lab, tmp_path):
    foreign = authority.Authority(str(tmp_path / "foreign-pki"))
    foreign.create()
    key = certs.new_key_pem()
    # It claims to be the administrator: only the CA that signed it makes it worthless.
    cert = foreign.sign(certs.load_key(key).public_key(), **authority.admin_identity())
    ctx = admin_context(lab)
    ca = base64.b64decode(ctx["certificateAuthorityData"])
    doc = {"currentContext": "forged", "contexts": [clientconfig.context_doc(
        "forged", ctx["servers"], user="skiff:admin", ca=ca, cert=cert, key=key)]}
    path = str(tmp_path / "config")
    clientconfig.save(path, doc)
    forged = Cli(lab.lab_dir, path)
    r = forged.run("get", "po", "-A", check=False, timeout=90)   # the client tries every replica for 20 s
    assert r.returncode != 0, r.stdout
    assert "no control-plane replica answered" in r.stderr, r.stderr
    # The same certificate through the client library: never an answer, whatever the replica.
    c = clientmod.Client(ctx["servers"], tls=Credentials(ca=ca, cert=cert, key=key),
                         call_timeout_s=3, failover_budget_s=5)
    try:
        with pytest.raises(clientmod.Unavailable):
            c.list("Pod", namespace=NS)
    finally:
        c.close()
    # The control: the lab's own admin credentials on the same servers answer.
    assert "app" in lab.out("get", "po", "-n", NS)


# ------------------------------------------------------------ RBAC for a user


def test_a_view_user_reads_but_cannot_write(lab, tmp_path):
    out = lab.out("config", "create-user", "bob")
    assert out.startswith('user "bob": certificate issued'), out
    bob = context_config(lab, str(tmp_path / "bob-config"), re.search(r'context "([^"]+)"', out)[1])
    # No binding yet: bob is authenticated, and may do nothing.
    r = bob.run("get", "po", "-n", NS, check=False)
    assert r.returncode != 0
    assert ('Error from server (Forbidden): pods is forbidden: User "bob" cannot list resource "pods" '
            f'in API group "" in the namespace "{NS}"') in r.stderr, r.stderr
    assert bob.run("auth", "can-i", "list", "pods", "-n", NS, check=False).returncode == 1

    lab.out("apply", "-f", "-", input=yaml.safe_dump(view_binding("bob-view", {"kind": "User", "name": "bob"})))
    wait_until(lambda: bob.run("get", "po", "-n", NS, check=False).returncode == 0, 30,
               "bob lists pods once bound to view")
    assert "app" in bob.out("get", "po", "-n", NS)
    # Only in that namespace.
    r = bob.run("get", "po", "-n", "default", check=False)
    assert r.returncode != 0 and 'User "bob" cannot list resource "pods"' in r.stderr, r.stderr

    r = bob.run("create", "-f", "-", input=yaml.safe_dump(sleeper("bobs")), check=False)
    assert r.returncode != 0
    assert "Forbidden" in r.stderr and ('User "bob" cannot create resource "pods" in API group "" '
                                        f'in the namespace "{NS}"') in r.stderr, r.stderr
    assert pod_json(lab, "bobs") is None
    r = bob.run("delete", "po", "app", "-n", NS, check=False)
    assert r.returncode != 0
    assert (f'Error from server (Forbidden): pods "app" is forbidden: User "bob" cannot delete resource '
            f'"pods" in API group "" in the namespace "{NS}"') in r.stderr, r.stderr
    assert running(lab, "app")
    # view does not read Secrets.
    r = bob.run("get", "secret", "used", "-n", NS, check=False)
    assert r.returncode != 0 and 'User "bob" cannot get resource "secrets"' in r.stderr, r.stderr

    # skiff auth can-i, as bob ...
    assert bob.out("auth", "can-i", "list", "pods", "-n", NS).strip() == "yes"
    assert bob.out("auth", "can-i", "get", "pods/app", "-n", NS).strip() == "yes"
    for argv in (("create", "pods", "-n", NS), ("delete", "pods", "-n", NS), ("list", "pods", "-n", "default"),
                 ("get", "secrets", "-n", NS)):
        r = bob.run("auth", "can-i", *argv, check=False)
        assert (r.returncode, r.stdout.split()[:1]) == (1, ["no"]), (argv, r.stdout, r.stderr)
    # ... and as the admin impersonating bob.
    assert lab.out("auth", "can-i", "list", "pods", "-n", NS, "--as", "bob").strip() == "yes"
    r = lab.run("auth", "can-i", "create", "pods", "-n", NS, "--as", "bob", check=False)
    assert (r.returncode, r.stdout.split()[:1]) == (1, ["no"]), r.stdout
    assert lab.out("auth", "can-i", "create", "pods", "-n", NS).strip() == "yes"     # the admin itself
    # bob may not impersonate anybody.
    r = bob.run("auth", "can-i", "list", "pods", "-n", NS, "--as", "skiff:admin", check=False)
    assert r.returncode != 0 and "impersonate" in r.stderr, r.stderr


# ------------------------------------------------------------ node authorization


def node_client(lab, node) -> clientmod.Client:
    d = os.path.join(lab.lab_dir, "join", node)
    tls = Credentials.from_files(os.path.join(d, "ca.crt"), os.path.join(d, "node.crt"),
                                 os.path.join(d, "node.key"))
    assert certs.subject(tls.cert) == (f"skiff:node:{node}", ("skiff:nodes",))
    return clientmod.Client(admin_context(lab)["servers"], tls=tls)


def test_an_agent_certificate_is_confined_to_its_node(lab):
    here = pod_json(lab, "app")["spec"]["nodeName"]
    other = next(n for n in ("node1", "node2") if n != here)
    admin = clientmod.Client.from_config(config_path=lab.config)
    agent, stranger = node_client(lab, here), node_client(lab, other)
    try:
        user, groups = agent.whoami()
        assert (user, sorted(groups)) == (f"skiff:node:{here}", ["skiff:nodes", "system:authenticated"])
        # Another node's Node (spec or status) and Lease: refused.
        theirs = admin.get("Node", other)
        theirs.metadata.labels["e2e"] = "forged"
        with pytest.raises(clientmod.Forbidden, match=f"node '{here}' cannot modify node '{other}'"):
            agent.update(theirs)
        with pytest.raises(clientmod.Forbidden, match=f"node '{here}' cannot modify node '{other}'"):
            agent.update_status(theirs)
        their_lease = admin.get("Lease", other, namespace="kube-node-lease")
        with pytest.raises(clientmod.Forbidden, match=f"only its own lease '{here}'"):
            agent.update(their_lease)
        assert "e2e" not in admin.get("Node", other).metadata.labels
        # Its own Lease: renewed like the agent does it (a conflict with the agent's own
        # renewal in between is retried on the fresh object).
        mine = {}

        def renewed():
            lease = agent.get("Lease", here, namespace="kube-node-lease")
            try:
                mine["rv"] = agent.update(lease).metadata.resource_version
            except clientmod.Conflict:
                return False
            return True
        wait_until(renewed, 30, f"node {here} updates its own Lease")
        assert mine["rv"]
        # Secrets: the one its pod uses, and no other; the other node not even that one.
        assert agent.get("Secret", "used", namespace=NS).data["password"] == SECRET_VALUE.encode()
        with pytest.raises(clientmod.Forbidden, match="no relationship found between node"):
            agent.get("Secret", "unused", namespace=NS)
        with pytest.raises(clientmod.Forbidden, match=f"node '{other}'"):
            stranger.get("Secret", "used", namespace=NS)
        with pytest.raises(clientmod.Forbidden):
            agent.list("Secret", namespace=NS)
    finally:
        for c in (admin, agent, stranger):
            c.close()


# ------------------------------------------------------------ Secrets at rest


def test_no_replica_stores_a_secret_in_clear(lab):
    value = SECRET_VALUE.encode()
    control = CONTROL_VALUE.encode()
    # Every replica has applied both writes (a linearizable read), and the grep sees the control.
    admin = clientmod.Client.from_config(config_path=lab.config)
    try:
        assert admin.get("Secret", "used", namespace=NS, linearizable=True).data["password"] == value
    finally:
        admin.close()
    dirs = [cfg["dataDir"] for cfg in replica_configs(lab)]
    wait_until(lambda: len(files_holding(dirs, [control], lab.lab_dir)[control]) >= 3, 30,
               "the ConfigMap's value in every replica's data directory")
    needles = [value, base64.b64encode(value)]
    found = files_holding(dirs, needles, lab.lab_dir)
    assert found == {n: [] for n in needles}


# ------------------------------------------------------------ ServiceAccount tokens


def bearer_list_pods(join_address: str, ca: bytes, token: str):
    """List pods in NS as the bearer of `token` (the join port: no client certificate)."""
    ch = grpc.secure_channel(join_address, grpc.ssl_channel_credentials(ca))
    try:
        stub = api_grpc.ApiStub(ch)
        meta = [("authorization", f"Bearer {token}")]
        who = stub.WhoAmI(api.WhoAmIRequest(), timeout=10, metadata=meta)
        resp = stub.List(api.ListRequest(kind="Pod", namespace=NS), timeout=10, metadata=meta)
        return who.username, [kinds.unwrap(e)[1].metadata.name for e in resp.items]
    finally:
        ch.close()


def test_a_pods_token_lists_pods_only_with_a_view_binding(lab):
    token = lab.out("exec", "app", "-n", NS, "--", "cat", f"{MOUNT_PATH}/token").strip()
    assert token.count(".") == 2, token[:40]
    ca = base64.b64decode(admin_context(lab)["certificateAuthorityData"])
    join = replica_configs(lab)[0]["tls"]["joinAddress"]
    account = f"system:serviceaccount:{NS}:default"
    # No binding: authenticated as the pod's account, and refused.
    with pytest.raises(grpc.RpcError) as err:
        bearer_list_pods(join, ca, token)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert (f'pods is forbidden: User "{account}" cannot list resource "pods" in API group "" '
            f'in the namespace "{NS}"') in err.value.details()
    # A made-up token is not even authenticated.
    with pytest.raises(grpc.RpcError) as err:
        bearer_list_pods(join, ca, token[:-4] + "AAAA")
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED

    lab.out("apply", "-f", "-", input=yaml.safe_dump(view_binding(
        "default-view", {"kind": "ServiceAccount", "name": "default", "namespace": NS})))
    listed = {}

    def lists():
        try:
            listed["who"], listed["pods"] = bearer_list_pods(join, ca, token)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.PERMISSION_DENIED:
                raise
            return False
        return True
    wait_until(lists, 30, "the account lists pods once bound to view")
    assert listed == {"who": account, "pods": ["app"]}
    # The binding is in NS only.
    r = lab.run("auth", "can-i", "list", "pods", "-n", "default", "--as", account, check=False)
    assert r.returncode == 1, r.stdout
    assert lab.out("auth", "can-i", "list", "pods", "-n", NS, "--as", account).strip() == "yes"
