"""The RBAC authorizer and the authorization chain (controlplane/apiserver/authz): pure tables
over (identity, attributes, view), and Kubernetes' refusal text."""

import pytest

from controlplane.apiserver import authz
from controlplane.apiserver.admission.view import DictView
from controlplane.apiserver.authz import policy, rbac
from controlplane.apiserver.authz.attributes import Attributes
from skiff.api import objects_pb2 as pb
from skiff.api.identity import (PLAINTEXT_ADMIN, Identity, controlplane_identity, node_identity,
                                serviceaccount_identity)

G = "rbac.authorization.k8s.io"
ALICE = Identity("alice", ("devs", "system:authenticated"))
BOB = Identity("bob", ("system:authenticated",))
CI = serviceaccount_identity("ci", "deployer")


def rule(groups, resources, verbs, names=()):
    return pb.PolicyRule(api_groups=groups, resources=resources, verbs=verbs, resource_names=list(names))


def cluster_role(name, *rules):
    return pb.ClusterRole(metadata=pb.ObjectMeta(name=name), rules=list(rules))


def role(ns, name, *rules):
    return pb.Role(metadata=pb.ObjectMeta(name=name, namespace=ns), rules=list(rules))


def subject(kind, name, ns=""):
    return pb.Subject(kind=kind, name=name, namespace=ns, api_group="" if kind == "ServiceAccount" else G)


def crb(name, role_name, *subjects):
    return pb.ClusterRoleBinding(metadata=pb.ObjectMeta(name=name), subjects=list(subjects),
                                 role_ref=pb.RoleRef(api_group=G, kind="ClusterRole", name=role_name))


def rb(ns, name, ref_kind, role_name, *subjects):
    return pb.RoleBinding(metadata=pb.ObjectMeta(name=name, namespace=ns), subjects=list(subjects),
                          role_ref=pb.RoleRef(api_group=G, kind=ref_kind, name=role_name))


VIEW = DictView.of(
    *policy.cluster_roles(), *policy.cluster_role_bindings(),
    # alice views the whole cluster; the group devs edits in dev
    crb("alice-view", "view", subject("User", "alice")),
    rb("dev", "devs-edit", "ClusterRole", "edit", subject("Group", "devs")),
    # bob may read one configmap in dev, and logs of every pod there ("*/log")
    role("dev", "one-cm", rule([""], ["configmaps"], ["get"], ["settings"])),
    rb("dev", "bob-cm", "Role", "one-cm", subject("User", "bob")),
    role("dev", "logs", rule([""], ["*/log"], ["get"])),
    rb("dev", "bob-logs", "Role", "logs", subject("User", "bob")),
    # the deployer SA (namespace defaulted from the RoleBinding) deploys in ci
    role("ci", "deployer", rule(["apps"], ["deployments"], ["*"])),
    rb("ci", "deployer", "Role", "deployer", subject("ServiceAccount", "deployer")),
    # a binding to a role that does not exist grants nothing
    rb("dev", "dangling", "Role", "nope", subject("User", "bob")),
    # a Role of another namespace is not reachable through a RoleBinding here
    role("prod", "everything", rule(["*"], ["*"], ["*"])),
    rb("dev", "cross", "Role", "everything", subject("User", "bob")),
)


def A(verb, resource, ns="", name="", group="", sub=""):
    return Attributes(verb, resource, group, ns, name, sub)


CASES = [
    # system:masters: no authorizer asked (the admin, the controllers, plaintext callers)
    (PLAINTEXT_ADMIN, A("delete", "nodes", name="n1"), True),
    (controlplane_identity("cp1"), A("create", "secrets", "kube-system"), True),
    # the view ClusterRole through a ClusterRoleBinding: reads everywhere, no writes, no secrets
    (ALICE, A("list", "pods", "prod"), True),
    (ALICE, A("list", "pods"), True),                                   # all namespaces
    (ALICE, A("watch", "deployments", "prod", group="apps"), True),
    (ALICE, A("get", "pods", "prod", "web", sub="log"), True),
    (ALICE, A("create", "pods", "prod"), False),
    (ALICE, A("get", "secrets", "prod", "s"), False),
    (ALICE, A("list", "roles", "prod", group=G), False),
    (ALICE, A("create", "pods", "prod", "web", sub="exec"), False),
    # edit in dev through the group, via a RoleBinding to a ClusterRole: only in dev
    (ALICE, A("create", "deployments", "dev", group="apps"), True),
    (ALICE, A("create", "pods", "dev", "web", sub="exec"), True),
    (ALICE, A("create", "pods", "dev", "web", sub="eviction"), True),
    (ALICE, A("get", "secrets", "dev", "s"), True),
    (ALICE, A("delete", "deployments", "prod", "web", group="apps"), False),
    (ALICE, A("create", "rolebindings", "dev", group=G), False),        # edit cannot grant
    (ALICE, A("update", "namespaces", name="dev"), False),
    # resourceNames: only the named object, never a list
    (BOB, A("get", "configmaps", "dev", "settings"), True),
    (BOB, A("get", "configmaps", "dev", "other"), False),
    (BOB, A("list", "configmaps", "dev"), False),
    (BOB, A("get", "configmaps", "prod", "settings"), False),
    # "*/log" matches the log subresource of any resource, not the resource itself
    (BOB, A("get", "pods", "dev", "web", sub="log"), True),
    (BOB, A("get", "pods", "dev", "web"), False),
    (BOB, A("get", "pods", "dev", "web", sub="status"), False),
    # a ServiceAccount subject, its namespace from the RoleBinding
    (CI, A("patch", "deployments", "ci", "api", group="apps"), True),
    (CI, A("patch", "deployments", "ci", "api", group="extensions"), False),
    (serviceaccount_identity("dev", "deployer"), A("patch", "deployments", "ci", "api", group="apps"), False),
    (CI, A("get", "pods", "ci", "x"), False),
    # nobody bound: nothing
    (Identity("eve", ("system:authenticated",)), A("get", "pods", "dev", "x"), False),
    # non-resource requests and own access reviews: every authenticated identity
    (BOB, Attributes("get", path="/clusterstatus"), True),
    (BOB, A("create", "selfsubjectaccessreviews", group="authorization.k8s.io"), True),
]


@pytest.mark.parametrize("identity, attrs, allowed", CASES,
                         ids=[f"{c[0].user}-{c[1].verb}-{c[1].combined_resource or c[1].path}-{i}"
                              for i, c in enumerate(CASES)])
def test_authorize(identity, attrs, allowed):
    assert authz.authorize(identity, attrs, VIEW).allowed is allowed


def test_rbac_never_denies_outright():
    decision = rbac.authorize(BOB, A("delete", "nodes", name="n1"), VIEW)
    assert not decision.allowed and not decision.denied


def test_the_admin_role_grants_roles_in_its_namespace_only():
    view = DictView.of(*policy.cluster_roles(), rb("team", "lead", "ClusterRole", "admin", subject("User", "bob")))
    assert authz.authorize(BOB, A("create", "rolebindings", "team", group=G), view).allowed
    assert authz.authorize(BOB, A("delete", "roles", "team", "r", group=G), view).allowed
    assert not authz.authorize(BOB, A("create", "clusterrolebindings", group=G), view).allowed
    assert not authz.authorize(BOB, A("create", "rolebindings", "other", group=G), view).allowed


def test_cluster_admin_bound_to_a_user_allows_everything():
    view = DictView.of(*policy.cluster_roles(), crb("root", "cluster-admin", subject("User", "bob")))
    assert authz.authorize(BOB, A("deletecollection", "widgets", "x", group="example.com"), view).allowed
    assert authz.authorize(BOB, A("create", "nodes", sub="proxy", name="n1"), view).allowed


@pytest.mark.parametrize("attrs, reason, text", [
    (A("list", "pods", "default"), "",
     'pods is forbidden: User "bob" cannot list resource "pods" in API group "" in the namespace "default"'),
    (A("get", "secrets", "dev", "db"), "",
     'secrets "db" is forbidden: User "bob" cannot get resource "secrets" in API group "" in the namespace "dev"'),
    (A("create", "deployments", "dev", group="apps"), "",
     'deployments.apps is forbidden: User "bob" cannot create resource "deployments" in API group "apps" '
     'in the namespace "dev"'),
    (A("list", "nodes"), "",
     'nodes is forbidden: User "bob" cannot list resource "nodes" in API group "" at the cluster scope'),
    (A("create", "pods", "dev", "web", sub="exec"), "",
     'pods "web" is forbidden: User "bob" cannot create resource "pods/exec" in API group "" '
     'in the namespace "dev"'),
    (A("update", "nodes", name="n2"), "node 'n1' cannot modify node 'n2'",
     'nodes "n2" is forbidden: User "bob" cannot update resource "nodes" in API group "" at the cluster scope: '
     "node 'n1' cannot modify node 'n2'"),
])
def test_forbidden_message_is_kubernetes(attrs, reason, text):
    assert authz.forbidden_message(BOB, attrs, reason) == text


def test_node_identities_go_to_the_node_authorizer_first():
    # even a cluster-admin binding for the node group cannot widen what NodeRestriction denies
    view = DictView.of(*policy.cluster_roles(), crb("nodes", "cluster-admin", subject("Group", "skiff:nodes")))
    n1 = node_identity("n1")
    decision = authz.authorize(n1, A("update", "nodes", name="n2"), view)
    assert decision.denied and "cannot modify node 'n2'" in decision.reason
    # what the node authorizer has no opinion on goes to RBAC
    assert authz.authorize(n1, A("list", "deployments", group="apps"), view).allowed
