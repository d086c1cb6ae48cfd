"""The Node authorizer + NodeRestriction (controlplane/apiserver/authz/node.py): a table of what
an agent's identity may do, covering every call the node agent makes (nodeagent/)."""

import pytest

from controlplane.apiserver.admission.view import DictView
from controlplane.apiserver.authz import node as nodeauthz
from controlplane.apiserver.authz.attributes import Attributes
from skiff.api import objects_pb2 as pb
from skiff.api.identity import Identity, node_identity

N1 = node_identity("n1")
LEASE_NS = "kube-node-lease"
CO = "coordination.k8s.io"


def pod(name, node, ns="dev", secret=None, cm=None, env_secret=None, envfrom_cm=None):
    p = pb.Pod(metadata=pb.ObjectMeta(name=name, namespace=ns))
    p.spec.node_name = node
    c = p.spec.containers.add(name="c", image="busybox")
    if secret:
        p.spec.volumes.add(name="s").secret.secret_name = secret
    if cm:
        p.spec.volumes.add(name="c").config_map.name = cm
    if env_secret:
        c.env.add(name="E").value_from.secret_key_ref.name = env_secret
    if envfrom_cm:
        c.env_from.add().config_map_ref.name = envfrom_cm
    return p


def stored_node(name):
    n = pb.Node(metadata=pb.ObjectMeta(name=name, labels={"node-restriction.kubernetes.io/zone": "a"}))
    n.spec.pod_cidr = "10.244.1.0/24"
    return n


def changed(name, change):
    n = stored_node(name)
    change(n)
    return n


VIEW = DictView.of(
    stored_node("n1"),
    pod("mine", "n1", secret="tls", cm="app-config", env_secret="db-password", envfrom_cm="env"),
    pod("theirs", "n2", secret="other-secret", cm="other-config"),
    pod("pending", ""),
)


def A(verb, resource, ns="", name="", sub="", group="", obj=None, fs=""):
    return Attributes(verb, resource, group, ns, name, sub, field_selector=fs, obj=obj)


def node_obj(name):
    return pb.Node(metadata=pb.ObjectMeta(name=name))


def lease(name):
    return pb.Lease(metadata=pb.ObjectMeta(name=name, namespace=LEASE_NS))


def event(kind, name, ns=""):
    e = pb.Event(metadata=pb.ObjectMeta(name="e", namespace=ns or "default"))
    e.involved_object.kind, e.involved_object.name, e.involved_object.namespace = kind, name, ns
    return e


ALLOW, DENY, NONE = "allow", "deny", "none"

CASES = [
    # its own Node (nodeagent/node.py: get, create, update labels, update status; network annotations)
    (A("get", "nodes", name="n1"), ALLOW),
    (A("create", "nodes", obj=node_obj("n1")), ALLOW),
    (A("update", "nodes", name="n1", obj=changed("n1", lambda n: n.metadata.labels.update(role="edge"))), ALLOW),
    (A("update", "nodes", name="n1", obj=changed("n1", lambda n: n.metadata.annotations.update(a="b"))), ALLOW),
    # NodeRestriction: the spec and the restricted labels stay as stored
    (A("update", "nodes", name="n1", obj=changed("n1", lambda n: n.spec.taints.add(key="k", effect="NoSchedule"))),
     DENY),
    (A("update", "nodes", name="n1", obj=changed("n1", lambda n: setattr(n.spec, "pod_cidr", "10.244.9.0/24"))),
     DENY),
    (A("update", "nodes", name="n1", obj=changed("n1", lambda n: n.metadata.labels.pop(
        "node-restriction.kubernetes.io/zone"))), DENY),
    (A("update", "nodes", name="n1", sub="status", obj=node_obj("n1")), ALLOW),
    (A("create", "nodes", obj=node_obj("n2")), DENY),
    (A("update", "nodes", name="n2", obj=node_obj("n2")), DENY),
    (A("update", "nodes", name="n2", sub="status", obj=node_obj("n2")), DENY),
    (A("delete", "nodes", name="n1"), DENY),
    (A("delete", "nodes", name="n2"), DENY),
    # every node is readable (the proxier, the network's routes)
    (A("list", "nodes"), ALLOW),
    (A("watch", "nodes"), ALLOW),
    (A("get", "nodes", name="n2"), ALLOW),
    (A("create", "nodes", name="n1", sub="proxy"), DENY),
    # its own Lease in kube-node-lease, nobody else's
    (A("get", "leases", LEASE_NS, "n1", group=CO), ALLOW),
    (A("create", "leases", LEASE_NS, group=CO, obj=lease("n1")), ALLOW),
    (A("update", "leases", LEASE_NS, "n1", group=CO, obj=lease("n1")), ALLOW),
    (A("create", "leases", LEASE_NS, group=CO, obj=lease("n2")), DENY),
    (A("update", "leases", LEASE_NS, "n2", group=CO, obj=lease("n2")), DENY),
    (A("list", "leases", LEASE_NS, group=CO), DENY),
    (A("get", "leases", "kube-system", "n1", group=CO), DENY),
    # pods: its own watch (the syncer's informer), lists for DNS, gets
    (A("watch", "pods", fs="spec.nodeName=n1"), ALLOW),
    (A("watch", "pods", fs="status.phase=Running, spec.nodeName==n1"), ALLOW),
    (A("watch", "pods"), DENY),
    (A("watch", "pods", fs="spec.nodeName=n2"), DENY),
    (A("watch", "pods", fs="spec.nodeName!=n1"), DENY),
    (A("list", "pods", "dev"), ALLOW),
    (A("get", "pods", "dev", "theirs"), ALLOW),
    # pod status and deletion: only pods bound to it
    (A("update", "pods", "dev", "mine", "status"), ALLOW),
    (A("update", "pods", "dev", "theirs", "status"), DENY),
    (A("update", "pods", "dev", "pending", "status"), DENY),
    (A("update", "pods", "dev", "gone", "status"), DENY),
    (A("delete", "pods", "dev", "mine"), ALLOW),
    (A("delete", "pods", "dev", "theirs"), DENY),
    (A("create", "pods", "dev"), DENY),
    (A("update", "pods", "dev", "mine"), DENY),       # the spec is the user's
    (A("create", "pods", "dev", "mine", "eviction"), DENY),
    (A("create", "pods", "dev", "mine", "exec"), DENY),
    # events about itself and its pods (nodeagent's EventRecorder gets, creates, updates)
    (A("get", "events", "dev", "e"), ALLOW),
    (A("create", "events", "default", obj=event("Node", "n1")), ALLOW),
    (A("create", "events", "dev", obj=event("Pod", "mine", "dev")), ALLOW),
    (A("update", "events", "dev", "e", obj=event("Pod", "mine", "dev")), ALLOW),
    (A("create", "events", "dev", obj=event("Pod", "theirs", "dev")), DENY),
    (A("create", "events", "default", obj=event("Node", "n2")), DENY),
    (A("create", "events", "dev", obj=event("Deployment", "web", "dev")), DENY),
    (A("delete", "events", "dev", "e"), DENY),
    (A("list", "events", "dev"), DENY),
    # secrets and configmaps: only those its pods use, only get
    (A("get", "secrets", "dev", "tls"), ALLOW),
    (A("get", "secrets", "dev", "db-password"), ALLOW),
    (A("get", "configmaps", "dev", "app-config"), ALLOW),
    (A("get", "configmaps", "dev", "env"), ALLOW),
    (A("get", "secrets", "dev", "other-secret"), DENY),
    (A("get", "configmaps", "dev", "other-config"), DENY),
    (A("get", "secrets", "prod", "tls"), DENY),          # the same name in another namespace
    (A("get", "configmaps", "dev", "tls"), DENY),        # a secret's name is not a configmap's
    (A("list", "secrets", "dev"), DENY),
    (A("watch", "configmaps"), DENY),
    (A("update", "secrets", "dev", "tls"), DENY),
    # services and endpoints: read (proxier, DNS, service links, the drain's endpoints)
    (A("list", "services"), ALLOW),
    (A("watch", "endpoints"), ALLOW),
    (A("get", "services", "default", "kubernetes"), ALLOW),
    (A("update", "endpoints", "dev", "web"), DENY),
    (A("create", "services", "dev"), DENY),
    # anything else: no opinion (RBAC decides)
    (A("list", "deployments", "dev", group="apps"), NONE),
    (A("get", "namespaces", name="dev"), NONE),
]


def _outcome(decision):
    return ALLOW if decision.allowed else DENY if decision.denied else NONE


@pytest.mark.parametrize("attrs, want", CASES,
                         ids=[f"{c[0].verb}-{c[0].combined_resource}-{c[0].name or '-'}-{i}"
                              for i, c in enumerate(CASES)])
def test_node_authorizer(attrs, want):
    assert _outcome(nodeauthz.authorize(N1, attrs, VIEW)) == want


def test_only_node_identities_are_judged():
    # a user named like a node but outside skiff:nodes is not a node
    impostor = Identity("skiff:node:n1", ("system:authenticated",))
    assert _outcome(nodeauthz.authorize(impostor, A("get", "secrets", "dev", "tls"), VIEW)) == NONE


def test_denials_say_why():
    d = nodeauthz.authorize(N1, A("update", "pods", "dev", "theirs", "status"), VIEW)
    assert d.reason == "node 'n1' cannot update pod dev/theirs: the pod is bound to node 'n2'"
    d = nodeauthz.authorize(N1, A("get", "secrets", "dev", "other-secret"), VIEW)
    assert "no relationship found between node 'n1' and this object" in d.reason


def test_pod_references_are_found_wherever_they_sit():
    refs = nodeauthz.pod_references(VIEW.get("Pod", "dev", "mine").spec)
    assert refs == {"secrets": {"tls", "db-password"}, "configmaps": {"app-config", "env"}}


def token_request(account, pod_name, ns="dev"):
    """The TokenRequest the agent sends (only the fields the authorizer reads)."""
    from types import SimpleNamespace
    return SimpleNamespace(namespace=ns, service_account=account, bound_pod_name=pod_name)


@pytest.mark.parametrize("attrs, want", [
    (A("create", "serviceaccounts", "dev", "default", "token", obj=token_request("default", "mine")), ALLOW),
    (A("create", "serviceaccounts", "dev", "default", "token", obj=token_request("default", "theirs")), DENY),
    (A("create", "serviceaccounts", "dev", "builder", "token", obj=token_request("builder", "mine")), DENY),
    (A("create", "serviceaccounts", "dev", "default", "token", obj=token_request("default", "")), DENY),
    (A("get", "serviceaccounts", "dev", "default"), DENY),
])
def test_service_account_tokens_only_for_its_pods(attrs, want):
    assert _outcome(nodeauthz.authorize(N1, attrs, VIEW)) == want


def test_create_token_attributes():
    from controlplane.apiserver.authz.attributes import of_request
    got = of_request("/skiff.api.Api/CreateToken", token_request("default", "mine"))
    assert (got.verb, got.combined_resource, got.namespace, got.name) == ("create", "serviceaccounts/token",
                                                                          "dev", "default")
    got = of_request("/skiff.api.Api/WhoAmI", None)
    assert (got.verb, got.resource, got.api_group) == ("create", "selfsubjectreviews", "authentication.k8s.io")


def test_projected_volume_sources_are_references():
    """A node may read the Secrets and ConfigMaps named in its pods' projected volumes."""
    p = pod("proj", "n1")
    sources = p.spec.volumes.add(name="bundle").projected.sources
    sources.add().secret.name = "proj-secret"
    sources.add().config_map.name = "proj-config"
    sources.add().service_account_token.path = "token"
    assert nodeauthz.pod_references(p.spec) == {"secrets": {"proj-secret"}, "configmaps": {"proj-config"}}
    view = DictView.of(p, pod("other", "n2"))
    assert _outcome(nodeauthz.authorize(N1, A("get", "secrets", "dev", "proj-secret"), view)) == ALLOW
    assert _outcome(nodeauthz.authorize(N1, A("get", "configmaps", "dev", "proj-config"), view)) == ALLOW
    assert _outcome(nodeauthz.authorize(N1, A("get", "secrets", "dev", "unnamed"), view)) == DENY


def test_a_node_reads_the_pull_secrets_of_its_pods_only():
    """As Kubernetes' Node authorizer: imagePullSecrets are a pod's references too."""
    mine, theirs = pod("pulls", "n1"), pod("pulls-elsewhere", "n2")
    mine.spec.image_pull_secrets.add(name="regcred")
    theirs.spec.image_pull_secrets.add(name="their-regcred")
    view = DictView.of(stored_node("n1"), mine, theirs)
    assert _outcome(nodeauthz.authorize(N1, A("get", "secrets", "dev", "regcred"), view)) == ALLOW
    assert _outcome(nodeauthz.authorize(N1, A("get", "secrets", "dev", "their-regcred"), view)) == DENY
