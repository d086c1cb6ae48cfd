"""The guard's decisions without a server (controlplane/apiserver/guard.py): authentication
order, impersonation rights, unknown methods, escalation; a fake gRPC context records aborts."""

import grpc
import pytest

from controlplane.apiserver.admission.view import DictView
from controlplane.apiserver.authz import policy
from controlplane.apiserver.guard import Guard
from skiff.api import objects_pb2 as pb
from skiff.api import service_pb2 as api
from skiff.api.identity import AUTHENTICATED, Identity

G = "rbac.authorization.k8s.io"
M = "/skiff.api.Api/"


class Aborted(Exception):
    pass


class FakeContext:
    def __init__(self, *metadata):
        self.metadata = metadata
        self.code = self.details = None

    def invocation_metadata(self):
        return self.metadata

    def auth_context(self):
        return {}   # a plaintext connection (no transport_security_type, no peer certificate)

    def abort(self, code, details):
        self.code, self.details = code, details
        raise Aborted(details)


class Tokens:
    def authenticate(self, token):
        return Identity(token[2:], (AUTHENTICATED,)) if token.startswith("t-") else None


def binding(name, role, user):
    b = pb.ClusterRoleBinding(metadata=pb.ObjectMeta(name=name),
                              role_ref=pb.RoleRef(api_group=G, kind="ClusterRole", name=role))
    b.subjects.add(kind="User", name=user, api_group=G)
    return b


def imp_role():
    r = pb.ClusterRole(metadata=pb.ObjectMeta(name="imp"))
    r.rules.add(api_groups=[""], resources=["users"], verbs=["impersonate"], resource_names=["viewer"])
    r.rules.add(api_groups=[""], resources=["groups"], verbs=["impersonate"], resource_names=["readers"])
    r.rules.add(api_groups=[""], resources=["serviceaccounts"], verbs=["impersonate"])
    return r


GUARD = Guard(DictView.of(*policy.cluster_roles(), *policy.cluster_role_bindings(), imp_role(),
                          binding("viewer", "view", "viewer"), binding("imp", "imp", "imp"),
                          binding("admins", "admin", "lead")), tokens=Tokens())
LIST_PODS = api.ListRequest(kind="Pod", namespace="dev")


def admit(method, request, *metadata):
    ctx = FakeContext(*metadata)
    try:
        return GUARD.admit(M + method, request, ctx), ctx
    except Aborted:
        return None, ctx


def token(t):
    return ("authorization", f"Bearer {t}")


def test_plaintext_is_the_admin_and_a_token_is_its_user():
    who, _ = admit("List", LIST_PODS)
    assert who.is_master
    who, _ = admit("List", LIST_PODS, token("t-viewer"))
    assert who == Identity("viewer", (AUTHENTICATED,))


def test_a_bad_token_is_unauthenticated_before_anything_else():
    who, ctx = admit("List", LIST_PODS, token("forged"))
    assert who is None and ctx.code == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("metadata, user, groups, refused", [
    ((("impersonate-user", "viewer"),), "viewer", (AUTHENTICATED,), ""),
    ((("impersonate-user", "viewer"), ("impersonate-group", "readers")), "viewer", ("readers", AUTHENTICATED), ""),
    ((("impersonate-user", "lead"),), None, None, 'users "lead" is forbidden: User "imp" cannot impersonate'),
    ((("impersonate-user", "viewer"), ("impersonate-group", "system:masters")), None, None,
     'groups "system:masters" is forbidden'),
    # a ServiceAccount's own groups come with it; any other system:serviceaccounts group does not
    ((("impersonate-user", "system:serviceaccount:ci:bot"),), "system:serviceaccount:ci:bot",
     ("system:serviceaccounts", "system:serviceaccounts:ci", AUTHENTICATED), ""),
    ((("impersonate-user", "viewer"), ("impersonate-group", "system:serviceaccounts:kube-system")), None, None,
     'groups "system:serviceaccounts:kube-system" is forbidden'),
    ((("impersonate-group", "readers"),), None, None, "without impersonating a user"),
])
def test_impersonation(metadata, user, groups, refused):
    who, ctx = admit("AccessReview", api.AccessReviewRequest(verb="get"), token("t-imp"), *metadata)
    if refused:
        assert who is None and refused in ctx.details
    else:
        assert (who.user, who.groups) == (user, groups)


def test_the_admin_may_impersonate_anyone_and_then_has_only_their_rights():
    who, ctx = admit("Create", api.WriteRequest(object=pb.Object(config_map=pb.ConfigMap(
        metadata=pb.ObjectMeta(name="x", namespace="dev")))), ("impersonate-user", "viewer"))
    assert who is None and ctx.code == grpc.StatusCode.PERMISSION_DENIED
    assert ctx.details.startswith('configmaps is forbidden: User "viewer" cannot create')


def test_an_unknown_method_is_refused_to_all_but_masters():
    who, ctx = admit("Reboot", api.ClusterStatusRequest(), token("t-viewer"))
    assert who is None and "not an API method skiff authorizes" in ctx.details
    who, _ = admit("Reboot", api.ClusterStatusRequest())
    assert who.is_master


def rolebinding(name, role, user, ns="dev"):
    b = pb.RoleBinding(metadata=pb.ObjectMeta(name=name, namespace=ns),
                       role_ref=pb.RoleRef(api_group=G, kind="ClusterRole", name=role))
    b.subjects.add(kind="User", name=user, api_group=G)
    return b


def test_escalation_is_refused_after_authorization():
    # lead holds admin everywhere (a ClusterRoleBinding): it may create RoleBindings, but
    # not grant cluster-admin through one
    rb = rolebinding("sneaky", "cluster-admin", "lead")
    who, ctx = admit("Create", api.WriteRequest(object=pb.Object(role_binding=rb)), token("t-lead"))
    assert who is None and ctx.code == grpc.StatusCode.PERMISSION_DENIED
    assert ctx.details.startswith('rolebindings.rbac.authorization.k8s.io "sneaky" is forbidden: user "lead"')
    ok = rolebinding("fine", "edit", "someone")
    who, _ = admit("Create", api.WriteRequest(object=pb.Object(role_binding=ok)), token("t-lead"))
    assert who is not None


def test_the_store_view_reads_the_applied_state():
    from controlplane.apiserver.guard import StoreView
    from controlplane.store.commands import Create
    from controlplane.store.raft import StoreConsumer
    from controlplane.store.reader import StoreReader
    from skiff.api import kinds

    consumer = StoreConsumer(100)
    for i, msg in enumerate([pb.Namespace(metadata=pb.ObjectMeta(name="default")),
                             binding("b1", "view", "viewer"),
                             pb.RoleBinding(metadata=pb.ObjectMeta(name="rb", namespace="default"),
                                            role_ref=pb.RoleRef(api_group=G, kind="ClusterRole", name="view"))]):
        assert consumer.apply(Create(f"r{i}", kinds.encode(kinds.wrap(msg)), "2024-01-01T00:00:00Z", f"u{i}"),
                              _doApply=True)[0] == "ok"
    view = StoreView(StoreReader(consumer))
    assert [b.metadata.name for b in view.list("ClusterRoleBinding")] == ["b1"]
    assert [b.metadata.name for b in view.list("RoleBinding", "default")] == ["rb"]
    assert view.list("RoleBinding", "other") == []
    assert view.get("RoleBinding", "", "rb").role_ref.name == "view"      # "" is the default namespace
    assert view.get("ClusterRoleBinding", "ignored", "b1") is not None
    assert view.get("ClusterRole", "", "missing") is None
