"""RBAC escalation prevention: nobody grants rights they do not hold (pure).

Kubernetes' pkg/registry/rbac (role/policybased, rolebinding/policybased and
validation.ConfirmNoEscalation), checked by the guard after a write of a role or binding
was authorized:
- writing a Role (ClusterRole) needs every permission of its rules in that namespace
  (at the cluster scope), or the `escalate` verb on roles (clusterroles);
- writing a RoleBinding (ClusterRoleBinding) needs every permission of the role it
  refers to in that namespace (at the cluster scope), or the `bind` verb on that role
  (roles/NAME or clusterroles/NAME). A binding to a role that does not exist needs `bind`
  (else whoever creates the role later would grant it through this binding).
Permissions are checked one by one (group, resource, verb, name) with the caller's own
authorization, so "*" in a rule needs "*" in the caller's rules.

check(identity, attrs, view, authorize) -> Decision: ALLOW, or DENY with Kubernetes'
text `user "bob" (groups=[...]) is attempting to grant RBAC permissions not currently
held: ...`. Members of system:masters never get here.
"""

from controlplane.apiserver.authz.attributes import Attributes
from controlplane.apiserver.authz.decision import ALLOW, DENY

GROUP = "rbac.authorization.k8s.io"
ROLES = ("roles", "clusterroles")
BINDINGS = ("rolebindings", "clusterrolebindings")
WRITES = ("create", "update", "patch")


def applies(attrs) -> bool:
    return (attrs.api_group == GROUP and attrs.verb in WRITES and not attrs.subresource
            and attrs.obj is not None and attrs.resource in ROLES + BINDINGS)


def _atoms(rule):
    for group in rule.api_groups:
        for resource in rule.resources:
            res, _, sub = resource.partition("/")
            for verb in rule.verbs:
                for name in (rule.resource_names or [""]):
                    yield group, res, sub, verb, name


def missing(identity, rules, namespace, view, authorize) -> list:
    """The (group, resource, verb, name) of rules the identity does not hold there."""
    out = []
    for rule in rules:
        for group, res, sub, verb, name in _atoms(rule):
            attrs = Attributes(verb, res, group, namespace, name, sub)
            if not authorize(identity, attrs, view).allowed:
                out.append((group, f"{res}/{sub}" if sub else res, verb, name))
    return out


def _text(identity, held_not) -> str:
    groups = " ".join(f'"{g}"' for g in identity.groups)
    lines = [f'{{APIGroups:["{g}"], Resources:["{r}"], '
             + (f'ResourceNames:["{n}"], ' if n else "") + f'Verbs:["{v}"]}}'
             for g, r, v, n in held_not[:20]]
    more = f"\n... and {len(held_not) - 20} more" if len(held_not) > 20 else ""
    return (f'user "{identity.user}" (groups=[{groups}]) is attempting to grant RBAC permissions not '
            f"currently held:\n" + "\n".join(lines) + more)


def check(identity, attrs, view, authorize):
    obj = attrs.obj
    namespace = attrs.namespace if attrs.resource in ("roles", "rolebindings") else ""
    if attrs.resource in ROLES:
        if authorize(identity, Attributes("escalate", attrs.resource, GROUP, namespace, obj.metadata.name),
                     view).allowed:
            return ALLOW
        held_not = missing(identity, obj.rules, namespace, view, authorize)
        return DENY.because(_text(identity, held_not)) if held_not else ALLOW
    ref = obj.role_ref
    role_resource = "roles" if ref.kind == "Role" else "clusterroles"
    role_ns = namespace if ref.kind == "Role" else ""
    if authorize(identity, Attributes("bind", role_resource, GROUP, role_ns, ref.name), view).allowed:
        return ALLOW
    role = view.get(ref.kind, role_ns, ref.name) if ref.kind in ("Role", "ClusterRole") else None
    if role is None:
        return DENY.because(f'{role_resource}.{GROUP} "{ref.name}" not found: binding a role that does not '
                            f'exist needs the "bind" verb on it')
    held_not = missing(identity, role.rules, namespace, view, authorize)
    return DENY.because(_text(identity, held_not)) if held_not else ALLOW
