"""Authorization: may this identity make this request? (pure: identity, attributes, view)

The chain, as kube-apiserver's `--authorization-mode=Node,RBAC` with its built-ins:
1. system:masters may do anything (Kubernetes' privileged group: no authorizer asked);
2. non-resource requests (ClusterStatus) and reviews of oneself (AccessReview, WhoAmI):
   every authenticated identity (system:discovery, system:basic-user);
3. the Node authorizer + NodeRestriction (node.py) for agents' identities;
4. RBAC (rbac.py).
The first allow or deny wins; a request nobody allows is refused.

forbidden_message() writes Kubernetes' refusal text (apiserver's responsewriters
forbiddenMessage + NewForbidden): `pods "x" is forbidden: User "bob" cannot get resource
"pods" in API group "" in the namespace "default"`.

Modules: attributes.py (RPC -> Attributes), decision.py, rbac.py, node.py, escalation.py
(nobody grants what they do not hold), policy.py (the built-in ClusterRoles the leader's
bootstrap keeps).
"""

from controlplane.apiserver.authz import node, rbac
from controlplane.apiserver.authz.attributes import SELF_REVIEWS
from controlplane.apiserver.authz.decision import ALLOW, DENY, NO_OPINION, Decision  # noqa: F401


def authorize(identity, attrs, view) -> Decision:
    if identity.is_master:
        return ALLOW.because("member of system:masters")
    if not attrs.is_resource_request:
        return ALLOW.because("non-resource request")
    if (attrs.api_group, attrs.resource) in SELF_REVIEWS:
        return ALLOW.because("anyone may review their own identity and access")
    for authorizer in (node.authorize, rbac.authorize):
        decision = authorizer(identity, attrs, view)
        if decision.decided:
            return decision
    return NO_OPINION


def escalation_message(attrs, reason: str) -> str:
    """Kubernetes' text for a role or binding granting more than its writer holds."""
    name = attrs.name or attrs.obj.metadata.name
    return f'{attrs.resource}.{attrs.api_group} "{name}" is forbidden: {reason}'


def forbidden_message(identity, attrs, reason: str = "") -> str:
    """Kubernetes' text for a refused request (reason appended as the apiserver does)."""
    if not attrs.is_resource_request:
        text = f'User "{identity.user}" cannot {attrs.verb} path "{attrs.path}"'
        return f"forbidden: {text}" + (f": {reason}" if reason else "")
    resource = attrs.combined_resource
    if attrs.namespace:
        where = f'in the namespace "{attrs.namespace}"'
    else:
        where = "at the cluster scope"
    text = (f'User "{identity.user}" cannot {attrs.verb} resource "{resource}" in API group '
            f'"{attrs.api_group}" {where}')
    qualified = f"{attrs.resource}.{attrs.api_group}" if attrs.api_group else attrs.resource
    subject = f'{qualified} "{attrs.name}"' if attrs.name else qualified
    return f"{subject} is forbidden: {text}" + (f": {reason}" if reason else "")
