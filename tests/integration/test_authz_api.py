"""RBAC through the real API: a single in-process replica (a real Raft store and gRPC server)
served with a test-only TokenAuthenticator, so callers are told apart by bearer tokens while
the API has no TLS. Users: `viewer` (bound to the built-in view ClusterRole), `dev-editor`
(edit in namespace dev), `nobody` (no binding), `impersonator` (may impersonate viewer);
a call without a token is the plaintext admin, as everywhere before TLS."""

import grpc
import pytest

from controlplane.apiserver.service import serve
from controlplane.bootstrap import Bootstrapper
from controlplane.config import ControlPlaneConfig
from controlplane.store.store import Store
from skiff import client as clientmod
from skiff.api import kinds
from skiff.api import objects_pb2 as pb
from skiff.api import service_pb2 as api
from skiff.api import service_pb2_grpc as api_grpc
from skiff.api.identity import AUTHENTICATED, Identity, node_identity
from skiff.cli import main as cli
from tests.helpers import free_port_block, remove, temp_dir, wait_until

G = "rbac.authorization.k8s.io"


class StaticTokens:
    """Test-only: token -> Identity (Kubernetes' --token-auth-file in small)."""

    USERS = {"t-viewer": "viewer", "t-editor": "dev-editor", "t-nobody": "nobody", "t-imp": "impersonator",
             "t-admin": "dev-admin"}

    def authenticate(self, token):
        if token.startswith("t-node-"):
            return node_identity(token[len("t-node-"):])
        user = self.USERS.get(token)
        return None if user is None else Identity(user, (AUTHENTICATED,))


@pytest.fixture(scope="module")
def api_server():
    base = free_port_block(2)
    data = temp_dir("authz")
    cfg = ControlPlaneConfig(name="cp1", data_dir=data, api_address=f"127.0.0.1:{base}",
                             raft_address=f"127.0.0.1:{base + 1}", raft_password="test")
    store = Store(cfg)
    server = serve(store, cfg, max_workers=16, tokens=StaticTokens())
    boot = Bootstrapper(store, cfg).start()
    admin = clientmod.Client([cfg.api_address])
    try:
        wait_until(lambda: _exists(admin, "clusterrole", "view") and _exists(admin, "namespace", "default"),
                   30, "bootstrap made the built-in roles")
        _setup(admin)
        yield cfg.api_address
    finally:
        admin.close()
        boot.stop()
        server.stop(grace=0.5).wait()
        store.close()
        remove(data)


def _exists(c, kind, name):
    try:
        c.get(kind, name, "")
        return True
    except clientmod.ApiError:
        return False


def _binding(kind, name, ns, role_kind, role, user):
    msg = kinds.BY_NAME[kind].message(metadata=pb.ObjectMeta(name=name, namespace=ns),
                                      role_ref=pb.RoleRef(api_group=G, kind=role_kind, name=role))
    msg.subjects.add(kind="User", name=user)
    return msg


def _setup(admin):
    admin.create(pb.Namespace(metadata=pb.ObjectMeta(name="dev")))
    admin.create(_binding("ClusterRoleBinding", "viewer-view", "", "ClusterRole", "view", "viewer"))
    admin.create(_binding("RoleBinding", "editor", "dev", "ClusterRole", "edit", "dev-editor"))
    admin.create(_binding("RoleBinding", "dev-admin", "dev", "ClusterRole", "admin", "dev-admin"))
    imp = pb.ClusterRole(metadata=pb.ObjectMeta(name="impersonate-viewer"))
    imp.rules.add(api_groups=[""], resources=["users"], verbs=["impersonate"], resource_names=["viewer"])
    admin.create(imp)
    admin.create(_binding("ClusterRoleBinding", "impersonator", "", "ClusterRole", "impersonate-viewer",
                          "impersonator"))
    admin.create(pb.ConfigMap(metadata=pb.ObjectMeta(name="settings", namespace="dev"), data={"a": "1"}))


@pytest.fixture
def stub(api_server):
    channel = grpc.insecure_channel(api_server)
    yield api_grpc.ApiStub(channel)
    channel.close()


def bearer(token, *extra):
    return (("authorization", f"Bearer {token}"),) + tuple(extra)


def cm(name, ns="dev"):
    return pb.ConfigMap(metadata=pb.ObjectMeta(name=name, namespace=ns), data={"k": "v"})


def test_a_viewer_lists_but_cannot_create(stub):
    resp = stub.List(api.ListRequest(kind="ConfigMap", namespace="dev"), metadata=bearer("t-viewer"))
    assert [kinds.unwrap(e)[1].metadata.name for e in resp.items] == ["settings"]
    stub.Get(api.GetRequest(ref=api.ObjectRef(kind="ConfigMap", namespace="dev", name="settings")),
             metadata=bearer("t-viewer"))
    with pytest.raises(grpc.RpcError) as exc:
        stub.Create(api.WriteRequest(object=kinds.wrap(cm("mine"))), metadata=bearer("t-viewer"))
    assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert exc.value.details() == ('configmaps is forbidden: User "viewer" cannot create resource "configmaps" '
                                   'in API group "" in the namespace "dev"')
    with pytest.raises(grpc.RpcError) as exc:
        stub.Get(api.GetRequest(ref=api.ObjectRef(kind="Secret", namespace="dev", name="db")),
                 metadata=bearer("t-viewer"))
    assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert 'secrets "db" is forbidden: User "viewer" cannot get resource "secrets"' in exc.value.details()


def test_nothing_is_stored_when_refused(stub):
    with pytest.raises(grpc.RpcError):
        stub.Apply(api.WriteRequest(object=kinds.wrap(cm("sneaky"))), metadata=bearer("t-nobody"))
    with pytest.raises(grpc.RpcError) as exc:
        stub.Get(api.GetRequest(ref=api.ObjectRef(kind="ConfigMap", namespace="dev", name="sneaky")))
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND


def test_an_editor_writes_in_its_namespace_only(stub):
    stub.Create(api.WriteRequest(object=kinds.wrap(cm("edited"))), metadata=bearer("t-editor"))
    stub.Delete(api.DeleteRequest(ref=api.ObjectRef(kind="ConfigMap", namespace="dev", name="edited")),
                metadata=bearer("t-editor"))
    with pytest.raises(grpc.RpcError) as exc:
        stub.Create(api.WriteRequest(object=kinds.wrap(cm("edited", "default"))), metadata=bearer("t-editor"))
    assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert 'in the namespace "default"' in exc.value.details()
    with pytest.raises(grpc.RpcError) as exc:   # edit cannot grant: no rolebindings
        stub.Create(api.WriteRequest(object=kinds.wrap(_binding("RoleBinding", "x", "dev", "ClusterRole", "admin",
                                                                "dev-editor"))), metadata=bearer("t-editor"))
    assert 'cannot create resource "rolebindings" in API group "rbac.authorization.k8s.io"' in exc.value.details()


def test_a_namespace_admin_grants_only_what_it_holds(stub):
    view = _binding("RoleBinding", "viewer-in-dev", "dev", "ClusterRole", "view", "nobody")
    stub.Create(api.WriteRequest(object=kinds.wrap(view)), metadata=bearer("t-admin"))
    root = _binding("RoleBinding", "root-in-dev", "dev", "ClusterRole", "cluster-admin", "nobody")
    with pytest.raises(grpc.RpcError) as exc:
        stub.Create(api.WriteRequest(object=kinds.wrap(root)), metadata=bearer("t-admin"))
    assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert exc.value.details().startswith(
        'rolebindings.rbac.authorization.k8s.io "root-in-dev" is forbidden: user "dev-admin" '
        '(groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:')
    # the new binding works at once: nobody may now read in dev
    assert review(stub, "t-nobody", verb="list", resource="pods", namespace="dev").allowed
    stub.Delete(api.DeleteRequest(ref=api.ObjectRef(kind="RoleBinding", namespace="dev", name="viewer-in-dev")),
                metadata=bearer("t-admin"))
    assert not review(stub, "t-nobody", verb="list", resource="pods", namespace="dev").allowed


def test_watch_is_refused_before_any_event(stub):
    with pytest.raises(grpc.RpcError) as exc:
        next(iter(stub.Watch(api.WatchRequest(kind="Pod"), metadata=bearer("t-nobody"), timeout=5)))
    assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert 'User "nobody" cannot watch resource "pods" in API group "" at the cluster scope' in exc.value.details()


def test_a_bad_token_is_unauthenticated(stub):
    with pytest.raises(grpc.RpcError) as exc:
        stub.List(api.ListRequest(kind="Pod"), metadata=bearer("forged"))
    assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_plaintext_callers_stay_admin(stub):
    """Until TLS: nothing existing changes."""
    stub.List(api.ListRequest(kind="Secret"))
    stub.ClusterStatus(api.ClusterStatusRequest(local_only=True))


def review(stub, token, *extra, **attrs):
    return stub.AccessReview(api.AccessReviewRequest(**attrs), metadata=bearer(token, *extra))


def test_access_review_answers_for_the_caller(stub):
    assert review(stub, "t-viewer", verb="list", resource="pods", namespace="dev").allowed
    assert not review(stub, "t-viewer", verb="create", resource="pods", namespace="dev").allowed
    r = review(stub, "t-editor", verb="create", group="apps", resource="deployments", namespace="dev")
    assert r.allowed and r.user == "dev-editor"
    assert not review(stub, "t-nobody", verb="get", resource="pods", namespace="dev").allowed
    assert stub.AccessReview(api.AccessReviewRequest(verb="delete", resource="nodes")).allowed   # admin


def test_impersonation_needs_the_right(stub):
    as_viewer = ("impersonate-user", "viewer")
    r = review(stub, "t-imp", as_viewer, verb="list", resource="pods", namespace="dev")
    assert r.allowed and r.user == "viewer"
    with pytest.raises(grpc.RpcError) as exc:
        review(stub, "t-imp", ("impersonate-user", "dev-editor"), verb="list", resource="pods")
    assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert exc.value.details() == ('users "dev-editor" is forbidden: User "impersonator" cannot impersonate '
                                   'resource "users" in API group "" at the cluster scope')
    with pytest.raises(grpc.RpcError):   # a group needs its own right
        review(stub, "t-imp", as_viewer, ("impersonate-group", "system:masters"), verb="list", resource="pods")


def test_cli_can_i(api_server, capsys):
    """`skiff auth can-i` as the (plaintext) admin and --as a user: yes/no and exit codes 0/1."""
    assert cli.main(["auth", "can-i", "delete", "nodes", "-s", api_server]) == 0
    assert capsys.readouterr().out.strip() == "yes"
    assert cli.main(["auth", "can-i", "list", "pods", "-n", "dev", "--as", "viewer", "-s", api_server]) == 0
    assert capsys.readouterr().out.strip() == "yes"
    assert cli.main(["auth", "can-i", "create", "deployments", "-n", "dev", "--as", "viewer", "-s", api_server]) == 1
    assert capsys.readouterr().out.strip() == "no"
    assert cli.main(["auth", "can-i", "get", "configmap/settings", "-n", "dev", "--as", "nobody",
                     "-s", api_server]) == 1
    assert capsys.readouterr().out.strip() == "no"
    assert cli.main(["auth", "can-i", "create", "deploy", "-n", "dev", "--as", "dev-editor",
                     "-s", api_server]) == 0
    assert capsys.readouterr().out.strip() == "yes"


def _node(name):
    n = pb.Node(metadata=pb.ObjectMeta(name=name))
    n.status.conditions.add(type="Ready", status="True")
    return n


def _denied(call, *args, **kw):
    with pytest.raises(grpc.RpcError) as exc:
        result = call(*args, **kw)
        if hasattr(result, "__next__"):
            next(result)
    assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED, exc.value.details()
    return exc.value.details()


def test_a_node_identity_does_what_an_agent_does_and_no_more(stub):
    """The agent's calls (nodeagent/: register, status, lease, its pods, events, what its
    pods use) with a node identity; another node's objects are refused."""
    n1, n2 = bearer("t-node-n1"), bearer("t-node-n2")
    stub.Create(api.WriteRequest(object=kinds.wrap(_node("n1"))), metadata=n1)
    stub.Create(api.WriteRequest(object=kinds.wrap(_node("n2"))), metadata=n2)
    node = kinds.unwrap(stub.Get(api.GetRequest(ref=api.ObjectRef(kind="Node", name="n1")), metadata=n1))[1]
    stub.Update(api.WriteRequest(object=kinds.wrap(node), subresource="status"), metadata=n1)
    lease = pb.Lease(metadata=pb.ObjectMeta(name="n1", namespace="kube-node-lease"))
    lease.spec.holder_identity = "n1"
    stub.Create(api.WriteRequest(object=kinds.wrap(lease)), metadata=n1)
    # a pod bound to n1 using a secret; the agent reads it, updates the status, records an event
    stub.Create(api.WriteRequest(object=kinds.wrap(pb.Secret(
        metadata=pb.ObjectMeta(name="db", namespace="dev"), data={"p": b"x"}))))
    stub.Create(api.WriteRequest(object=kinds.wrap(pb.Secret(
        metadata=pb.ObjectMeta(name="unused", namespace="dev"), data={"p": b"y"}))))
    pod = pb.Pod(metadata=pb.ObjectMeta(name="web", namespace="dev"))
    pod.spec.containers.add(name="c", image="busybox")
    pod.spec.volumes.add(name="s").secret.secret_name = "db"
    stub.Create(api.WriteRequest(object=kinds.wrap(pod)))
    pod.spec.node_name = "n1"
    stub.Update(api.WriteRequest(object=kinds.wrap(pod), subresource="binding"))
    events = stub.Watch(api.WatchRequest(kind="Pod", field_selector="spec.nodeName=n1"), metadata=n1, timeout=5)
    assert next(iter(events)).object.pod.metadata.name == "web"
    events.cancel()
    stub.Get(api.GetRequest(ref=api.ObjectRef(kind="Secret", namespace="dev", name="db")), metadata=n1)
    got = kinds.unwrap(stub.Get(api.GetRequest(ref=api.ObjectRef(kind="Pod", namespace="dev", name="web")),
                                metadata=n1))[1]
    got.status.phase = "Running"
    stub.Update(api.WriteRequest(object=kinds.wrap(got), subresource="status"), metadata=n1)
    ev = pb.Event(metadata=pb.ObjectMeta(name="web.1", namespace="dev"), type="Normal", reason="Started")
    ev.involved_object.kind, ev.involved_object.name, ev.involved_object.namespace = "Pod", "web", "dev"
    stub.Create(api.WriteRequest(object=kinds.wrap(ev)), metadata=n1)
    stub.List(api.ListRequest(kind="Service"), metadata=n1)
    stub.List(api.ListRequest(kind="Pod", namespace="dev"), metadata=n1)

    # n2 may not touch n1's node, lease, pod, secrets or events; n1 may not read an unused secret
    node = kinds.unwrap(stub.Get(api.GetRequest(ref=api.ObjectRef(kind="Node", name="n1")), metadata=n2))[1]
    node.metadata.labels["stolen"] = "yes"
    assert _denied(stub.Update, api.WriteRequest(object=kinds.wrap(node)), metadata=n2) == (
        'nodes "n1" is forbidden: User "skiff:node:n2" cannot update resource "nodes" in API group "" '
        "at the cluster scope: node 'n2' cannot modify node 'n1'")
    _denied(stub.Update, api.WriteRequest(object=kinds.wrap(node), subresource="status"), metadata=n2)
    _denied(stub.Update, api.WriteRequest(object=kinds.wrap(got), subresource="status"), metadata=n2)
    _denied(stub.Delete, api.DeleteRequest(ref=api.ObjectRef(kind="Pod", namespace="dev", name="web")), metadata=n2)
    _denied(stub.Get, api.GetRequest(ref=api.ObjectRef(kind="Secret", namespace="dev", name="db")), metadata=n2)
    _denied(stub.Get, api.GetRequest(ref=api.ObjectRef(kind="Secret", namespace="dev", name="unused")), metadata=n1)
    _denied(stub.Create, api.WriteRequest(object=kinds.wrap(ev)), metadata=n2)
    _denied(stub.Watch, api.WatchRequest(kind="Pod"), metadata=n2, timeout=5)
    _denied(stub.Create, api.WriteRequest(object=kinds.wrap(pb.Lease(
        metadata=pb.ObjectMeta(name="n1", namespace="kube-node-lease")))), metadata=n2)
    # the pod's own node deletes it once stopped
    stub.Delete(api.DeleteRequest(ref=api.ObjectRef(kind="Pod", namespace="dev", name="web"), grace_period_seconds=0),
                metadata=n1)
