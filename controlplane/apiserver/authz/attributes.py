"""The request attributes of an API call: what the authorizers decide on.

Kubernetes' authorizer.Attributes in small (pure; table-tested in
tests/unit/test_authz_attributes.py). Each RPC of the Api service maps to the verb and
resource the equivalent Kubernetes REST call has:

  Create            create  <plural>          (no name: a create names a collection, as
                                               in Kubernetes, so resourceNames never match)
  Create(eviction)  create  pods/eviction     (POST pods/NAME/eviction)
  Update            update  <plural>          (PUT); subresource "status": update <plural>/status;
                    "binding": create pods/binding (POST pods/NAME/binding)
  Apply             patch   <plural> when the object exists, else create (server-side
                                               apply creates what is missing)
  Get / List / Watch / Delete   get / list / watch / delete <plural>
  PodLogs           get     pods/log
  PodExec           create  pods/exec
  LoadImage         create  nodes/proxy       (a call to the node's agent, as kubelet API
                                               calls are nodes/proxy in Kubernetes)
  ClusterStatus     get     non-resource path /clusterstatus (every authenticated identity,
                                               as /healthz and /version in Kubernetes)
  AccessReview      create  selfsubjectaccessreviews.authorization.k8s.io (every
                                               authenticated identity: system:basic-user)
  WhoAmI            create  selfsubjectreviews.authentication.k8s.io (every
                                               authenticated identity)
  CreateToken       create  serviceaccounts/token (TokenRequest; the object is the request,
                                               for the Node authorizer's pod check)

The namespace of a namespaced kind defaults to "default" as the handlers default it; a
List/Watch with namespace "" asks across all namespaces (Kubernetes: cluster scope).
"""

from dataclasses import dataclass, field

from skiff.api import kinds

SERVICE = "/skiff.api.Api/"
AUTHZ_GROUP = "authorization.k8s.io"
AUTHN_GROUP = "authentication.k8s.io"
# What every authenticated identity may ask about itself (system:basic-user in Kubernetes).
SELF_REVIEWS = ((AUTHZ_GROUP, "selfsubjectaccessreviews"), (AUTHN_GROUP, "selfsubjectreviews"))


@dataclass(frozen=True)
class Attributes:
    verb: str
    resource: str = ""          # plural: pods; "" for a non-resource request
    api_group: str = ""         # "" (core), apps, batch, ...
    namespace: str = ""
    name: str = ""
    subresource: str = ""
    path: str = ""              # a non-resource request's path
    field_selector: str = ""    # List/Watch: NodeRestriction reads spec.nodeName here
    obj: object = field(default=None, compare=False, repr=False)  # the typed object a write carries

    @property
    def is_resource_request(self) -> bool:
        return bool(self.resource)

    @property
    def combined_resource(self) -> str:
        """pods, pods/status: what RBAC rules' resources match against."""
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def _kind(word):
    try:
        return kinds.lookup(word)
    except KeyError:
        return None


def _for_word(word, verb, namespace, name) -> Attributes:
    """Attributes for a kind the caller named by a word (ObjectRef.kind); a word the
    registry does not know keeps the word as resource (the handler then answers that the
    server doesn't have it, to whoever may ask)."""
    kind = _kind(word)
    if kind is None:
        return Attributes(verb, word.lower(), "", namespace, name)
    ns = (namespace or "default") if kind.namespaced else ""
    return Attributes(verb, kind.plural, kind.group, ns, name)


def _for_object(verb, msg, subresource="", with_name=True) -> Attributes:
    kind = kinds.of_message(msg)
    ns = (msg.metadata.namespace or "default") if kind.namespaced else ""
    return Attributes(verb, kind.plural, kind.group, ns, msg.metadata.name if with_name else "",
                      subresource, obj=msg)


def _envelope(env):
    which = env.WhichOneof("object")
    return None if which is None else getattr(env, which)


def of_request(method: str, request, exists=None) -> Attributes | None:
    """The attributes of a call to method (the full gRPC name, /skiff.api.Api/Get) with
    its (first) request message; exists(kind_name, namespace, name) -> bool tells Apply
    whether it creates. None for a method this module does not know (refused)."""
    rpc = method[len(SERVICE):] if method.startswith(SERVICE) else method
    if rpc == "Create":
        if request.object.WhichOneof("object") == "eviction":
            ev = request.object.eviction
            return Attributes("create", "pods", "", ev.metadata.namespace or "default", ev.metadata.name,
                              "eviction", obj=ev)
        msg = _envelope(request.object)
        if msg is None:
            return Attributes("create", "", path="/")    # an empty envelope: the handler refuses it
        return _for_object("create", msg, with_name=False)
    if rpc == "Update":
        msg = _envelope(request.object)
        if msg is None:
            return Attributes("update", "", path="/")
        if request.subresource == "binding":
            return _for_object("create", msg, "binding")
        return _for_object("update", msg, request.subresource)
    if rpc == "Apply":
        msg = _envelope(request.object)
        if msg is None:
            return Attributes("patch", "", path="/")
        kind = kinds.of_message(msg)
        ns = (msg.metadata.namespace or "default") if kind.namespaced else ""
        there = exists is not None and exists(kind.name, ns, msg.metadata.name)
        return _for_object("patch", msg) if there else _for_object("create", msg, with_name=False)
    if rpc == "Get":
        return _for_word(request.ref.kind, "get", request.ref.namespace, request.ref.name)
    if rpc == "Delete":
        return _for_word(request.ref.kind, "delete", request.ref.namespace, request.ref.name)
    if rpc in ("List", "Watch"):
        # namespace "" stays "": a list across every namespace (Kubernetes: cluster scope).
        kind = _kind(request.kind)
        if kind is None:
            return Attributes(rpc.lower(), request.kind.lower(), "", request.namespace,
                              field_selector=request.field_selector)
        return Attributes(rpc.lower(), kind.plural, kind.group, request.namespace if kind.namespaced else "",
                          field_selector=request.field_selector)
    if rpc == "PodLogs":
        return Attributes("get", "pods", "", request.namespace or "default", request.pod, "log")
    if rpc == "PodExec":
        start = request.start
        return Attributes("create", "pods", "", start.namespace or "default", start.pod, "exec")
    if rpc == "LoadImage":
        return Attributes("create", "nodes", "", "", request.node, "proxy")
    if rpc == "ClusterStatus":
        return Attributes("get", path="/clusterstatus")
    if rpc == "AccessReview":
        return Attributes("create", "selfsubjectaccessreviews", AUTHZ_GROUP)
    if rpc == "WhoAmI":
        return Attributes("create", "selfsubjectreviews", AUTHN_GROUP)
    if rpc == "CreateToken":
        return Attributes("create", "serviceaccounts", "", request.namespace or "default",
                          request.service_account, "token", obj=request)
    return None


def of_review(request) -> Attributes:
    """The attributes an AccessReviewRequest asks about (its ResourceAttributes)."""
    return Attributes(request.verb, request.resource, request.group, request.namespace, request.name,
                      request.subresource)
