"""The RBAC authorizer: Kubernetes' plugin/pkg/auth/authorizer/rbac in small (pure).

authorize(identity, attrs, view) -> Decision: allowed when a rule of a role bound to
the identity matches the request, else no opinion (RBAC never denies outright; with no
other authorizer allowing, the request is refused).

The bindings visited, as Kubernetes' VisitRulesFor:
- every ClusterRoleBinding whose subjects include the identity: its ClusterRole's rules,
  in every namespace and at the cluster scope;
- for a namespaced request, every RoleBinding of that namespace whose subjects include the
  identity: its Role (of that namespace) or ClusterRole, within that namespace only.
A binding to a role that does not exist grants nothing (Kubernetes records an error and
goes on).

Subjects (appliesToUser): User by name, Group by membership, ServiceAccount by the user
name system:serviceaccount:<ns>:<name>, the namespace defaulting to the RoleBinding's.

Rules (rbac/v1 helpers VerbMatches, APIGroupMatches, ResourceMatches,
ResourceNameMatches): "*" matches any verb, group and resource; a resource matches
"pods" exactly, or "pods/log" for a subresource, or "*/log"; resourceNames, when
given, must contain the request's name (so they never allow list, watch or create,
which name no object).

view: get(kind, namespace, name) and list(kind, namespace) over typed objects (the
admission ClusterView or a DictView in tests). Cost: one list of ClusterRoleBindings,
one of the namespace's RoleBindings and a get per matching binding, per call of an
identity outside system:masters (the controllers and the admin never get here).
"""

from skiff.api.identity import SA_PREFIX

from controlplane.apiserver.authz.decision import ALLOW, NO_OPINION

ALL = "*"


def applies_to(subject, identity, binding_namespace: str = "") -> bool:
    if subject.kind == "User":
        return subject.name == identity.user
    if subject.kind == "Group":
        return identity.in_group(subject.name)
    if subject.kind == "ServiceAccount":
        ns = subject.namespace or binding_namespace
        return bool(ns) and identity.user == f"{SA_PREFIX}{ns}:{subject.name}"
    return False


def verb_matches(rule, verb: str) -> bool:
    return ALL in rule.verbs or verb in rule.verbs


def group_matches(rule, group: str) -> bool:
    return ALL in rule.api_groups or group in rule.api_groups


def resource_matches(rule, combined: str, subresource: str) -> bool:
    for r in rule.resources:
        if r == ALL or r == combined:
            return True
        if subresource and r == f"*/{subresource}":
            return True
    return False


def name_matches(rule, name: str) -> bool:
    return not rule.resource_names or name in rule.resource_names


def rule_allows(rule, attrs) -> bool:
    """Does one PolicyRule allow this resource request (Kubernetes' RuleAllows)?"""
    return (verb_matches(rule, attrs.verb) and group_matches(rule, attrs.api_group)
            and resource_matches(rule, attrs.combined_resource, attrs.subresource)
            and name_matches(rule, attrs.name))


def _rules(view, ref, namespace: str):
    """The rules of the role a binding refers to (none when it is missing)."""
    if ref.kind == "ClusterRole":
        role = view.get("ClusterRole", "", ref.name)
    elif ref.kind == "Role" and namespace:
        role = view.get("Role", namespace, ref.name)
    else:
        role = None
    return list(role.rules) if role is not None else []


def authorize(identity, attrs, view):
    if not attrs.is_resource_request:
        return NO_OPINION
    for crb in view.list("ClusterRoleBinding"):
        if any(applies_to(s, identity) for s in crb.subjects):
            if any(rule_allows(r, attrs) for r in _rules(view, crb.role_ref, "")):
                return ALLOW.because(f'RBAC: allowed by ClusterRoleBinding "{crb.metadata.name}" '
                                     f'of ClusterRole "{crb.role_ref.name}"')
    if attrs.namespace:
        for rb in view.list("RoleBinding", attrs.namespace):
            if any(applies_to(s, identity, rb.metadata.namespace) for s in rb.subjects):
                if any(rule_allows(r, attrs) for r in _rules(view, rb.role_ref, rb.metadata.namespace)):
                    return ALLOW.because(f'RBAC: allowed by RoleBinding "{rb.metadata.name}/'
                                         f'{rb.metadata.namespace}" of {rb.role_ref.kind} '
                                         f'"{rb.role_ref.name}"')
    return NO_OPINION
