"""The rbac.authorization.k8s.io group: Role, ClusterRole, RoleBinding, ClusterRoleBinding.

Roles hold rules (verbs on resources of API groups, optionally only some names);
bindings grant a role to subjects (users, groups, service accounts). The API server's
RBAC authorizer (controlplane/apiserver/authz/rbac.py) reads them on every call a
non-admin makes. Permissions only add; a binding to a role that does not exist (yet)
grants nothing and is not an error, as in Kubernetes.

Validation follows Kubernetes' pkg/apis/rbac/validation: names are path segments (so
`system:auth-delegator` is a valid ClusterRole name), a rule needs verbs, apiGroups and
resources (non-resource URLs do not exist in skiff: its API is gRPC, see unsupported.py),
a roleRef is immutable, a RoleBinding may name a Role or ClusterRole, a
ClusterRoleBinding only a ClusterRole, a ServiceAccount subject in a ClusterRoleBinding
needs its namespace. Defaults: roleRef.apiGroup and a User/Group subject's apiGroup
default to rbac.authorization.k8s.io (SetDefaults_Subject).

`get` prints as kubectl: roles and clusterroles NAME, CREATED AT; bindings NAME, ROLE
(Kind/name), AGE and with -o wide USERS, GROUPS, SERVICEACCOUNTS.
"""

import re

from skiff.api import objects_pb2 as pb
from skiff.api.display import format_rows
from skiff.api.kinds.registry import Kind, register
from skiff.api.selectors import validate_dns1123_subdomain
from skiff.api.validation import enum, forbidden, immutable, invalid, required

GROUP = "rbac.authorization.k8s.io"
API_VERSION = f"{GROUP}/v1"
SUBJECT_KINDS = ("ServiceAccount", "User", "Group")
_RBAC_NAME = re.compile(r"[A-Za-z0-9][-A-Za-z0-9.:@]*")


def validate_path_segment_name(name: str):
    """RBAC object names: Kubernetes' path.IsValidPathSegmentName allows anything but "."
    and ".." and names without "/" or "%" (so `system:auth-delegator` is valid). skiff
    keeps to letters, digits and "-.:@" on top (a name is also a CLI word and part of a
    store key); names Kubernetes' bootstrap and the manifests in use are all of that form.
    Error detail or None."""
    if name in (".", ".."):
        return f'may not be "{name}"'
    for bad in ("/", "%"):
        if bad in name:
            return f'may not contain "{bad}"'
    if not _RBAC_NAME.fullmatch(name):
        return "must consist of letters, digits and '-', '.', ':' or '@'"
    return None


# ---------------------------------------------------------------- admission

def _default_subjects(subjects) -> None:
    for s in subjects:
        if not s.api_group and s.kind in ("User", "Group"):
            s.api_group = GROUP


def _default_binding(binding) -> None:
    if not binding.role_ref.api_group:
        binding.role_ref.api_group = GROUP
    _default_subjects(binding.subjects)


def _validate_rules(rules, errs) -> None:
    for i, rule in enumerate(rules):
        path = f"rules[{i}]"
        if not rule.verbs:
            required(errs, f"{path}.verbs", "verbs must contain at least one value")
        if not rule.api_groups:
            required(errs, f"{path}.apiGroups", "resource rules must supply at least one api group")
        if not rule.resources:
            required(errs, f"{path}.resources", "resource rules must supply at least one resource")


def _validate_role(role, errs) -> None:
    _validate_rules(role.rules, errs)


def _validate_role_ref(ref, allowed_kinds, errs) -> None:
    if ref.api_group != GROUP:
        enum(errs, "roleRef.apiGroup", ref.api_group, (GROUP,))
    enum(errs, "roleRef.kind", ref.kind, allowed_kinds)
    if not ref.name:
        required(errs, "roleRef.name")
    else:
        problem = validate_path_segment_name(ref.name)
        if problem:
            invalid(errs, "roleRef.name", ref.name, problem)


def _validate_subjects(subjects, cluster: bool, errs) -> None:
    for i, s in enumerate(subjects):
        path = f"subjects[{i}]"
        if not s.name:
            required(errs, f"{path}.name")
        if s.kind == "ServiceAccount":
            if s.api_group:
                enum(errs, f"{path}.apiGroup", s.api_group, ("",))
            if s.name:
                problem = validate_dns1123_subdomain(s.name)
                if problem:
                    invalid(errs, f"{path}.name", s.name, problem)
            if cluster and not s.namespace:
                required(errs, f"{path}.namespace")
        elif s.kind in ("User", "Group"):
            if s.api_group != GROUP:
                enum(errs, f"{path}.apiGroup", s.api_group, (GROUP,))
            if s.namespace:
                forbidden(errs, f"{path}.namespace", f"a {s.kind} subject has no namespace")
        else:
            enum(errs, f"{path}.kind", s.kind, SUBJECT_KINDS)


def _validate_role_binding(b, errs) -> None:
    _validate_role_ref(b.role_ref, ("Role", "ClusterRole"), errs)
    _validate_subjects(b.subjects, False, errs)


def _validate_cluster_role_binding(b, errs) -> None:
    _validate_role_ref(b.role_ref, ("ClusterRole",), errs)
    _validate_subjects(b.subjects, True, errs)


def _validate_binding_update(new, old, errs) -> None:
    """Kubernetes: "cannot change roleRef" (a binding's grant never changes in place)."""
    if old.role_ref != new.role_ref:
        immutable(errs, "roleRef", f"{new.role_ref.kind}/{new.role_ref.name}")


# ---------------------------------------------------------------- presentation

def _created_table(items, all_namespaces=False, headers=True, now=None) -> str:
    """kubectl's roles/clusterroles table: NAME, CREATED AT (the timestamp, not an age)."""
    namespaced = bool(items) and isinstance(items[0], pb.Role)
    ns = all_namespaces and namespaced
    rows = [(["NAMESPACE"] if ns else []) + ["NAME", "CREATED AT"]] if headers else []
    for r in items:
        rows.append(([r.metadata.namespace] if ns else []) + [r.metadata.name, r.metadata.creation_timestamp])
    return format_rows(rows)


def _role_row(r):
    return [r.metadata.creation_timestamp], []


def subjects_text(subjects, binding_namespace: str = "") -> tuple:
    """(users, groups, service accounts) as kubectl's wide columns print them."""
    users = [s.name for s in subjects if s.kind == "User"]
    groups = [s.name for s in subjects if s.kind == "Group"]
    sas = [f"{s.namespace or binding_namespace}/{s.name}" for s in subjects if s.kind == "ServiceAccount"]
    return ", ".join(users), ", ".join(groups), ", ".join(sas)


def _binding_row(b):
    role = f"{b.role_ref.kind}/{b.role_ref.name}" if b.role_ref.name else ""
    return [role], list(subjects_text(b.subjects, b.metadata.namespace))


def _describe_role(role) -> str:
    rows = [["Resources", "Non-Resource URLs", "Resource Names", "Verbs"],
            ["---------", "-----------------", "--------------", "-----"]]
    for rule in role.rules:
        for group in rule.api_groups or [""]:
            for res in rule.resources:
                name = f"{res}.{group}" if group else res
                rows.append([name, "[]", f"[{' '.join(rule.resource_names)}]", f"[{' '.join(rule.verbs)}]"])
    return "PolicyRule:\n" + "\n".join("  " + line for line in format_rows(rows).splitlines())


def _describe_binding(b) -> str:
    lines = ["Role:", f"  Kind:  {b.role_ref.kind}", f"  Name:  {b.role_ref.name}", "Subjects:"]
    rows = [["Kind", "Name", "Namespace"], ["----", "----", "---------"]]
    rows += [[s.kind, s.name, s.namespace] for s in b.subjects]
    lines += ["  " + line for line in format_rows(rows).splitlines()]
    return "\n".join(lines)


ROLE = register(Kind(
    "Role", API_VERSION, "roles", (), True, pb.Role, "role", False,
    validate=_validate_role, name_rule=validate_path_segment_name,
    columns=("CREATED AT", "AGE"), row=_role_row, table=_created_table, describe=_describe_role,
))

CLUSTER_ROLE = register(Kind(
    "ClusterRole", API_VERSION, "clusterroles", (), False, pb.ClusterRole, "cluster_role", False,
    validate=_validate_role, name_rule=validate_path_segment_name,
    columns=("CREATED AT", "AGE"), row=_role_row, table=_created_table, describe=_describe_role,
))

ROLE_BINDING = register(Kind(
    "RoleBinding", API_VERSION, "rolebindings", (), True, pb.RoleBinding, "role_binding", False,
    defaults=_default_binding, validate=_validate_role_binding, validate_update=_validate_binding_update,
    name_rule=validate_path_segment_name,
    columns=("ROLE", "AGE"), wide_columns=("USERS", "GROUPS", "SERVICEACCOUNTS"), row=_binding_row,
    describe=_describe_binding,
))

CLUSTER_ROLE_BINDING = register(Kind(
    "ClusterRoleBinding", API_VERSION, "clusterrolebindings", (), False, pb.ClusterRoleBinding,
    "cluster_role_binding", False,
    defaults=_default_binding, validate=_validate_cluster_role_binding,
    validate_update=_validate_binding_update, name_rule=validate_path_segment_name,
    columns=("ROLE", "AGE"), wide_columns=("USERS", "GROUPS", "SERVICEACCOUNTS"), row=_binding_row,
    describe=_describe_binding,
))
