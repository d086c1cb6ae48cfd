"""The Node authorizer and NodeRestriction: what a node agent's identity may do (pure).

Kubernetes splits this in two: the Node authorizer (plugin/pkg/auth/authorizer/node:
a node reads only the Secrets/ConfigMaps/PVCs its pods use) and the NodeRestriction
admission plugin (a node writes only its own Node and Lease and the pods bound to it).
skiff decides both here, before any handler runs, because the guard sees the object a
write carries (attrs.obj) and the applied state (view).

For an identity with a node_name N (skiff:node:N in skiff:nodes) and these resources:

  nodes          get, list, watch: any node; create, update, patch (also nodes/status):
                 only N (a create's object must be named N), and an update keeps the
                 spec and node-restriction.kubernetes.io/ labels as stored; delete: refused
  leases         (coordination.k8s.io) in kube-node-lease named N: get, create, update,
                 patch, delete; anything else refused
  pods           get, list: any (the node's DNS lists a namespace's pods to verify pod
                 IPs: nodeagent/dns/view.py); watch: only with fieldSelector
                 spec.nodeName=N (the pod syncer's informer); delete: pods bound to N
                 (the agent removes a pod it has stopped); create refused (no mirror pods)
  pods/status    update, patch: pods bound to N (spec.nodeName as stored)
  events         get: any (the recorder bumps an existing event); create, update, patch:
                 only events whose involvedObject is Node N or a pod bound to N
  secrets,       get: only when a pod bound to N in that namespace references it
  configmaps     (volumes, projected volume sources, env valueFrom, envFrom, imagePullSecrets); nothing else
  services,      get, list, watch (the proxier, DNS and service links)
  endpoints
  serviceaccounts/token  create (TokenRequest): only bound to a pod bound to N that runs
                 as that account (the agent mounts the pod's token)
  anything else  no opinion: RBAC decides (a node has no bindings unless someone made one)

A refusal is a deny with Kubernetes-like reasons ("node 'n1' cannot update pod
default/x: the pod is bound to node 'n2'"), so RBAC cannot widen what this narrows.
Cost: a store read for a pod-scoped check; a Secret/ConfigMap get lists the namespace's
pods once (agents read them at pod start only).
"""

from controlplane.apiserver.authz.decision import ALLOW, DENY, NO_OPINION

LEASE_NAMESPACE = "kube-node-lease"
READ = ("get", "list", "watch")


def _deny(node, text):
    return DENY.because(f"node '{node}' {text}")


def authorize(identity, attrs, view):
    node = identity.node_name
    if node is None or not attrs.is_resource_request:
        return NO_OPINION
    handler = _BY_RESOURCE.get((attrs.api_group, attrs.resource))
    if handler is None:
        return NO_OPINION
    return handler(node, attrs, view)


def _nodes(node, attrs, view):
    if attrs.subresource not in ("", "status"):
        return _deny(node, f"cannot {attrs.verb} nodes/{attrs.subresource}")
    if attrs.verb in READ and not attrs.subresource:
        return ALLOW
    if attrs.verb in ("create", "update", "patch"):
        name = attrs.obj.metadata.name if attrs.obj is not None else attrs.name
        if name != node:
            return _deny(node, f"cannot modify node '{name}'")
        if attrs.verb != "create" and not attrs.subresource and attrs.obj is not None:
            return _own_node_update(node, attrs.obj, view.get("Node", "", node))
        return ALLOW
    return _deny(node, f"cannot {attrs.verb} nodes")


RESTRICTED_LABEL_PREFIX = "node-restriction.kubernetes.io/"


def _own_node_update(node, new, old):
    """NodeRestriction on a node's update of itself: its spec (taints, podCIDR,
    unschedulable) belongs to the cluster, and labels under node-restriction.kubernetes.io/
    to the administrator (Kubernetes: "is not allowed to modify taints", "... labels")."""
    if old is None:
        return ALLOW     # the handler answers NotFound
    if new.spec != old.spec:
        return _deny(node, "is not allowed to modify its spec (taints, podCIDR, unschedulable)")
    def restricted(labels):
        return {k: v for k, v in labels.items() if k.startswith(RESTRICTED_LABEL_PREFIX)}
    if restricted(new.metadata.labels) != restricted(old.metadata.labels):
        return _deny(node, f"is not allowed to modify labels with the prefix {RESTRICTED_LABEL_PREFIX}")
    return ALLOW


def _leases(node, attrs, view):
    if attrs.namespace != LEASE_NAMESPACE:
        return _deny(node, f"cannot {attrs.verb} leases in namespace '{attrs.namespace}'")
    name = attrs.obj.metadata.name if attrs.obj is not None and not attrs.name else attrs.name
    if attrs.verb in ("get", "create", "update", "patch", "delete") and name == node:
        return ALLOW
    return _deny(node, f"cannot {attrs.verb} lease '{name or '*'}' (only its own lease '{node}')")


def _bound_pod(view, namespace, name):
    return view.get("Pod", namespace, name)


def _pods(node, attrs, view):
    sub = attrs.subresource
    if sub == "" and attrs.verb in ("get", "list"):
        return ALLOW
    if sub == "" and attrs.verb == "watch":
        if selects_node(attrs.field_selector, node):
            return ALLOW
        return _deny(node, f"may watch only its own pods (fieldSelector spec.nodeName={node})")
    if (sub == "" and attrs.verb == "delete") or (sub == "status" and attrs.verb in ("update", "patch")):
        pod = _bound_pod(view, attrs.namespace, attrs.name)
        if pod is None:
            return _deny(node, f"cannot {attrs.verb} unknown pod {attrs.namespace}/{attrs.name}")
        if pod.spec.node_name != node:
            return _deny(node, f"cannot {attrs.verb} pod {attrs.namespace}/{attrs.name}: "
                               f"the pod is bound to node '{pod.spec.node_name}'")
        return ALLOW
    what = f"pods/{sub}" if sub else "pods"
    return _deny(node, f"cannot {attrs.verb} {what}")


def _events(node, attrs, view):
    if attrs.verb == "get":
        return ALLOW
    if attrs.verb not in ("create", "update", "patch") or attrs.obj is None:
        return _deny(node, f"cannot {attrs.verb} events")
    ref = attrs.obj.involved_object
    if ref.kind == "Node" and ref.name == node:
        return ALLOW
    if ref.kind == "Pod":
        pod = _bound_pod(view, ref.namespace or attrs.namespace, ref.name)
        if pod is not None and pod.spec.node_name == node:
            return ALLOW
    return _deny(node, f"cannot {attrs.verb} an event about {ref.kind} "
                       f"{(ref.namespace + '/') if ref.namespace else ''}{ref.name}: "
                       f"not this node or a pod bound to it")


def _referenced(resource):
    def check(node, attrs, view):
        what = resource[:-1]
        if attrs.verb != "get" or attrs.subresource:
            return _deny(node, f"cannot {attrs.verb} {resource} (only get those its pods use)")
        for pod in view.list("Pod", attrs.namespace):
            if pod.spec.node_name == node and attrs.name in pod_references(pod.spec)[resource]:
                return ALLOW
        return _deny(node, f"cannot get {what} {attrs.namespace}/{attrs.name}: "
                           f"no relationship found between node '{node}' and this object")
    return check


def _read_only(node, attrs, view):
    if attrs.verb in READ and not attrs.subresource:
        return ALLOW
    return _deny(node, f"cannot {attrs.verb} {attrs.combined_resource}")


def _service_account_token(node, attrs, view):
    """Kubernetes' Node authorizer: a node may request a token for a ServiceAccount only
    bound to a pod that is bound to it and runs as that account."""
    if attrs.subresource != "token" or attrs.verb != "create":
        return _deny(node, f"cannot {attrs.verb} {attrs.combined_resource}")
    pod_name = getattr(attrs.obj, "bound_pod_name", "") if attrs.obj is not None else ""
    if not pod_name:
        return _deny(node, f"cannot request a token for serviceaccount {attrs.namespace}/{attrs.name} "
                           f"not bound to a pod")
    pod = _bound_pod(view, attrs.namespace, pod_name)
    if pod is None or pod.spec.node_name != node:
        return _deny(node, f"cannot request a token bound to pod {attrs.namespace}/{pod_name}: "
                           f"not a pod bound to this node")
    if (pod.spec.service_account_name or "default") != attrs.name:
        return _deny(node, f"cannot request a token for serviceaccount {attrs.namespace}/{attrs.name}: "
                           f"pod {pod_name} runs as {pod.spec.service_account_name or 'default'}")
    return ALLOW


_BY_RESOURCE = {
    ("", "nodes"): _nodes,
    ("coordination.k8s.io", "leases"): _leases,
    ("", "pods"): _pods,
    ("", "events"): _events,
    ("", "secrets"): _referenced("secrets"),
    ("", "configmaps"): _referenced("configmaps"),
    ("", "services"): _read_only,
    ("", "endpoints"): _read_only,
    ("", "serviceaccounts"): _service_account_token,
}


def selects_node(field_selector: str, node: str) -> bool:
    """Does the selector require spec.nodeName=node (among its terms)?"""
    for term in (field_selector or "").split(","):
        key, eq, value = term.strip().partition("==") if "==" in term else term.strip().partition("=")
        if eq and not key.endswith("!") and key.strip() == "spec.nodeName" and value.strip() == node:
            return True
    return False


# The message types that name a Secret or ConfigMap of the pod's namespace, and the field
# holding the name: found wherever they sit in a pod spec (volumes, env, envFrom, projected
# volumes), so a new place to reference one needs no change here.
_REFS = {
    "skiff.api.SecretVolumeSource": ("secrets", "secret_name"),
    "skiff.api.SecretKeySelector": ("secrets", "name"),
    "skiff.api.SecretEnvSource": ("secrets", "name"),
    "skiff.api.SecretProjection": ("secrets", "name"),
    "skiff.api.ConfigMapVolumeSource": ("configmaps", "name"),
    "skiff.api.ConfigMapKeySelector": ("configmaps", "name"),
    "skiff.api.ConfigMapEnvSource": ("configmaps", "name"),
    "skiff.api.ConfigMapProjection": ("configmaps", "name"),
}


def pod_references(spec) -> dict:
    """{"secrets": names, "configmaps": names} a pod spec uses (imagePullSecrets too)."""
    out = {"secrets": set(), "configmaps": set()}
    _walk(spec, out)
    if "image_pull_secrets" in spec.DESCRIPTOR.fields_by_name:
        out["secrets"].update(r.name for r in spec.image_pull_secrets)
    return out


def _walk(msg, out) -> None:
    ref = _REFS.get(msg.DESCRIPTOR.full_name)
    if ref is not None:
        name = getattr(msg, ref[1])
        if name:
            out[ref[0]].add(name)
    for fd, value in msg.ListFields():
        if fd.message_type is None or fd.message_type.GetOptions().map_entry:
            continue
        for item in (value if fd.is_repeated else (value,)):
            _walk(item, out)
