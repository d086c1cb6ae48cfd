"""The built-in ClusterRoles (and the one built-in binding), as Kubernetes' bootstrap policy.

plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go, without aggregation (admin
and edit list their rules in full here):
- cluster-admin: every verb on every resource (with a ClusterRoleBinding, cluster-admin,
  to the group system:masters, as Kubernetes has it);
- view: read (get, list, watch) most namespaced objects, not Secrets, roles or bindings;
- edit: view, plus write those objects and read/write Secrets, exec, evict; not roles,
  bindings or the namespace itself;
- admin: edit, plus roles and rolebindings within a namespace (granted with a
  RoleBinding), and local access reviews.
Resources skiff does not serve yet (persistentvolumeclaims, ingresses, ...) are kept so
that the roles mean what Kubernetes' do once they arrive.

Kept by the leader's bootstrap (controlplane/bootstrap.py: ensure_rbac_defaults): a
missing role is created, one whose rules were changed is put back, unless its annotation
rbac.authorization.kubernetes.io/autoupdate is "false" (Kubernetes' auto-reconciliation).
"""

from skiff.api import objects_pb2 as pb
from skiff.api.identity import MASTERS

BOOTSTRAP_LABEL = ("kubernetes.io/bootstrapping", "rbac-defaults")
AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"
RBAC_GROUP = "rbac.authorization.k8s.io"

READ = ("get", "list", "watch")
WRITE = ("create", "delete", "deletecollection", "patch", "update")


def _rule(groups, resources, verbs, names=()):
    return pb.PolicyRule(api_groups=list(groups), resources=list(resources), verbs=list(verbs),
                         resource_names=list(names))


def _view_rules():
    return [
        _rule([""], ["configmaps", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status",
                     "pods", "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts",
                     "services", "services/status"], READ),
        _rule([""], ["bindings", "events", "limitranges", "namespaces/status", "pods/log", "pods/status",
                     "replicationcontrollers/status", "resourcequotas", "resourcequotas/status"], READ),
        _rule([""], ["namespaces"], READ),
        _rule(["discovery.k8s.io"], ["endpointslices"], READ),
        _rule(["apps"], ["controllerrevisions", "daemonsets", "daemonsets/status", "deployments",
                         "deployments/scale", "deployments/status", "replicasets", "replicasets/scale",
                         "replicasets/status", "statefulsets", "statefulsets/scale", "statefulsets/status"], READ),
        _rule(["autoscaling"], ["horizontalpodautoscalers", "horizontalpodautoscalers/status"], READ),
        _rule(["batch"], ["cronjobs", "cronjobs/status", "jobs", "jobs/status"], READ),
        _rule(["policy"], ["poddisruptionbudgets", "poddisruptionbudgets/status"], READ),
        _rule(["networking.k8s.io"], ["ingresses", "ingresses/status", "networkpolicies"], READ),
    ]


def _edit_rules():
    return [
        _rule([""], ["pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets",
                     "services/proxy"], READ),
        _rule([""], ["serviceaccounts"], ["impersonate"]),
        _rule([""], ["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"], WRITE),
        _rule([""], ["pods/eviction"], ["create"]),
        _rule([""], ["configmaps", "events", "persistentvolumeclaims", "replicationcontrollers",
                     "replicationcontrollers/scale", "secrets", "serviceaccounts", "services",
                     "services/proxy"], WRITE),
        _rule([""], ["serviceaccounts/token"], ["create"]),
        _rule(["apps"], ["daemonsets", "deployments", "deployments/rollback", "deployments/scale",
                         "replicasets", "replicasets/scale", "statefulsets", "statefulsets/scale"], WRITE),
        _rule(["autoscaling"], ["horizontalpodautoscalers"], WRITE),
        _rule(["batch"], ["cronjobs", "jobs"], WRITE),
        _rule(["networking.k8s.io"], ["ingresses", "networkpolicies"], WRITE),
        _rule(["policy"], ["poddisruptionbudgets"], WRITE),
        _rule(["discovery.k8s.io"], ["endpointslices"], WRITE),
    ] + _view_rules()


def _admin_rules():
    return [
        _rule(["authorization.k8s.io"], ["localsubjectaccessreviews"], ["create"]),
        _rule([RBAC_GROUP], ["rolebindings", "roles"], WRITE + READ),
    ] + _edit_rules()


def _cluster_role(name, rules) -> pb.ClusterRole:
    role = pb.ClusterRole(api_version=f"{RBAC_GROUP}/v1", kind="ClusterRole",
                          metadata=pb.ObjectMeta(name=name, labels=dict([BOOTSTRAP_LABEL]),
                                                 annotations={AUTOUPDATE: "true"}))
    role.rules.extend(rules)
    return role


def cluster_roles() -> list:
    return [
        _cluster_role("cluster-admin", [_rule(["*"], ["*"], ["*"])]),
        _cluster_role("admin", _admin_rules()),
        _cluster_role("edit", _edit_rules()),
        _cluster_role("view", _view_rules()),
    ]


def cluster_role_bindings() -> list:
    crb = pb.ClusterRoleBinding(
        api_version=f"{RBAC_GROUP}/v1", kind="ClusterRoleBinding",
        metadata=pb.ObjectMeta(name="cluster-admin", labels=dict([BOOTSTRAP_LABEL]),
                               annotations={AUTOUPDATE: "true"}),
        role_ref=pb.RoleRef(api_group=RBAC_GROUP, kind="ClusterRole", name="cluster-admin"))
    crb.subjects.add(kind="Group", api_group=RBAC_GROUP, name=MASTERS)
    return [crb]


def needs_update(stored, desired) -> bool:
    """Reconcile as Kubernetes' `auth reconcile` on start: put the rules (a binding's
    subjects) back unless the object opted out with autoupdate "false"."""
    if stored.metadata.annotations.get(AUTOUPDATE) == "false":
        return False
    if isinstance(desired, pb.ClusterRole):
        return list(stored.rules) != list(desired.rules)
    return list(stored.subjects) != list(desired.subjects)   # a roleRef never changes


def reconciled(stored, desired):
    """A copy of the stored built-in with the desired rules (a binding: subjects) put back."""
    fixed = type(stored)()
    fixed.CopyFrom(stored)
    if isinstance(desired, pb.ClusterRole):
        del fixed.rules[:]
        fixed.rules.extend(desired.rules)
    else:
        del fixed.subjects[:]
        fixed.subjects.extend(desired.subjects)
    return fixed
