"""RBAC escalation prevention (controlplane/apiserver/authz/escalation.py): nobody grants
rights they do not hold, unless they have `escalate` (roles) or `bind` (bindings)."""

import pytest

from controlplane.apiserver import authz
from controlplane.apiserver.admission.view import DictView
from controlplane.apiserver.authz import escalation, policy
from controlplane.apiserver.authz.attributes import Attributes
from skiff.api import objects_pb2 as pb
from skiff.api.identity import Identity

G = "rbac.authorization.k8s.io"
LEAD = Identity("lead", ("system:authenticated",))       # admin in team
BINDER = Identity("binder", ("system:authenticated",))   # may bind the view ClusterRole anywhere
ESC = Identity("esc", ("system:authenticated",))         # may escalate roles in team


def rule(groups, resources, verbs, names=()):
    return pb.PolicyRule(api_groups=groups, resources=resources, verbs=verbs, resource_names=list(names))


def rb(ns, name, ref_kind, role_name, user):
    b = pb.RoleBinding(metadata=pb.ObjectMeta(name=name, namespace=ns),
                       role_ref=pb.RoleRef(api_group=G, kind=ref_kind, name=role_name))
    b.subjects.add(kind="User", name=user, api_group=G)
    return b


def crb(name, role_name, user):
    b = pb.ClusterRoleBinding(metadata=pb.ObjectMeta(name=name),
                              role_ref=pb.RoleRef(api_group=G, kind="ClusterRole", name=role_name))
    b.subjects.add(kind="User", name=user, api_group=G)
    return b


def cluster_role(name, *rules):
    return pb.ClusterRole(metadata=pb.ObjectMeta(name=name), rules=list(rules))


def role(ns, name, *rules):
    return pb.Role(metadata=pb.ObjectMeta(name=name, namespace=ns), rules=list(rules))


VIEW = DictView.of(
    *policy.cluster_roles(),
    rb("team", "lead-admin", "ClusterRole", "admin", "lead"),
    cluster_role("bind-view", rule([G], ["clusterroles"], ["bind"], ["view"]),
                 rule([G], ["rolebindings", "clusterrolebindings"], ["create"])),
    crb("binder", "bind-view", "binder"),
    cluster_role("escalate-team", rule([G], ["roles"], ["escalate", "create"])),
    rb("team", "esc", "ClusterRole", "escalate-team", "esc"),
)


def write(identity, obj, ns=""):
    resource = {pb.Role: "roles", pb.ClusterRole: "clusterroles", pb.RoleBinding: "rolebindings",
                pb.ClusterRoleBinding: "clusterrolebindings"}[type(obj)]
    attrs = Attributes("create", resource, G, ns, "", obj=obj)
    assert escalation.applies(attrs)
    return escalation.check(identity, attrs, VIEW, authz.authorize)


@pytest.mark.parametrize("identity, obj, ns, allowed", [
    # a namespace admin hands out what it holds there
    (LEAD, rb("team", "x", "ClusterRole", "edit", "bob"), "team", True),
    (LEAD, rb("team", "x", "ClusterRole", "view", "bob"), "team", True),
    (LEAD, rb("team", "x", "ClusterRole", "admin", "bob"), "team", True),
    (LEAD, role("team", "r", rule([""], ["pods"], ["get", "list"]), rule([""], ["secrets"], ["get"], ["db"])),
     "team", True),
    # ... but not cluster-admin, not in another namespace, not rules it lacks
    (LEAD, rb("team", "x", "ClusterRole", "cluster-admin", "bob"), "team", False),
    (LEAD, rb("other", "x", "ClusterRole", "view", "bob"), "other", False),
    (LEAD, role("team", "r", rule([""], ["nodes"], ["get"])), "team", False),
    (LEAD, role("team", "r", rule([""], ["pods"], ["*"])), "team", False),     # "*" needs "*"
    (LEAD, crb("x", "view", "bob"), "", False),
    # a binding to a role that does not exist needs bind
    (LEAD, rb("team", "x", "Role", "later", "bob"), "team", False),
    # bind: may bind exactly the named role, whatever its rules, wherever
    (BINDER, crb("x", "view", "bob"), "", True),
    (BINDER, rb("any", "x", "ClusterRole", "view", "bob"), "any", True),
    (BINDER, crb("x", "edit", "bob"), "", False),
    # escalate: may write any role in its namespace
    (ESC, role("team", "r", rule(["*"], ["*"], ["*"])), "team", True),
    (ESC, role("other", "r", rule([""], ["pods"], ["get"])), "other", False),
])
def test_no_escalation(identity, obj, ns, allowed):
    assert write(identity, obj, ns).allowed is allowed


def test_the_refusal_lists_what_is_not_held():
    d = write(LEAD, role("team", "r", rule([""], ["nodes"], ["get", "list"]), rule([""], ["pods"], ["get"])), "team")
    assert d.denied
    assert d.reason == ('user "lead" (groups=["system:authenticated"]) is attempting to grant RBAC permissions '
                        'not currently held:\n{APIGroups:[""], Resources:["nodes"], Verbs:["get"]}\n'
                        '{APIGroups:[""], Resources:["nodes"], Verbs:["list"]}')
    attrs = Attributes("create", "roles", G, "team", "", obj=role("team", "r"))
    assert authz.escalation_message(attrs, "why") == 'roles.rbac.authorization.k8s.io "r" is forbidden: why'


def test_only_writes_of_roles_and_bindings_are_checked():
    assert not escalation.applies(Attributes("get", "roles", G, "team", "r"))
    assert not escalation.applies(Attributes("create", "pods", "", "team", obj=pb.Pod()))
    assert not escalation.applies(Attributes("delete", "rolebindings", G, "team", "x"))
