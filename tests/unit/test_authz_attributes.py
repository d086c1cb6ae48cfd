"""Request attributes of every API RPC (controlplane/apiserver/authz/attributes.py): table."""

import pytest

from controlplane.apiserver.authz.attributes import Attributes, of_request, of_review
from skiff.api import node_pb2 as npb
from skiff.api import objects_pb2 as pb
from skiff.api import service_pb2 as api
from skiff.api.kinds import wrap

M = "/skiff.api.Api/"


def pod(name="web", ns="dev"):
    return pb.Pod(metadata=pb.ObjectMeta(name=name, namespace=ns))


def deploy(name="web", ns=""):
    return pb.Deployment(metadata=pb.ObjectMeta(name=name, namespace=ns))


def eviction(name="web", ns="dev"):
    env = pb.Object()
    env.eviction.metadata.name, env.eviction.metadata.namespace = name, ns
    return env


def a(verb, resource="", group="", ns="", name="", sub="", **kw):
    return Attributes(verb, resource, group, ns, name, sub, **kw)


CASES = [
    # writes: a create names no object (resourceNames never match it)
    ("Create", api.WriteRequest(object=wrap(pod())), a("create", "pods", "", "dev")),
    ("Create", api.WriteRequest(object=wrap(deploy())), a("create", "deployments", "apps", "default")),
    ("Create", api.WriteRequest(object=wrap(pb.Node(metadata=pb.ObjectMeta(name="n1")))), a("create", "nodes")),
    ("Create", api.WriteRequest(object=eviction()), a("create", "pods", "", "dev", "web", "eviction")),
    ("Update", api.WriteRequest(object=wrap(pod())), a("update", "pods", "", "dev", "web")),
    ("Update", api.WriteRequest(object=wrap(pod()), subresource="status"),
     a("update", "pods", "", "dev", "web", "status")),
    ("Update", api.WriteRequest(object=wrap(pod()), subresource="binding"),
     a("create", "pods", "", "dev", "web", "binding")),
    ("Update", api.WriteRequest(object=wrap(pb.Lease(metadata=pb.ObjectMeta(name="n1", namespace="kube-node-lease")))),
     a("update", "leases", "coordination.k8s.io", "kube-node-lease", "n1")),
    ("Apply", api.WriteRequest(object=wrap(pod("missing"))), a("create", "pods", "", "dev")),
    ("Apply", api.WriteRequest(object=wrap(pod("there"))), a("patch", "pods", "", "dev", "there")),
    ("Delete", api.DeleteRequest(ref=api.ObjectRef(kind="deploy", name="web")),
     a("delete", "deployments", "apps", "default", "web")),
    ("Delete", api.DeleteRequest(ref=api.ObjectRef(kind="clusterrolebinding", namespace="x", name="b")),
     a("delete", "clusterrolebindings", "rbac.authorization.k8s.io", "", "b")),
    # reads
    ("Get", api.GetRequest(ref=api.ObjectRef(kind="po", namespace="dev", name="web")),
     a("get", "pods", "", "dev", "web")),
    ("Get", api.GetRequest(ref=api.ObjectRef(kind="nodes", name="n1")), a("get", "nodes", "", "", "n1")),
    ("List", api.ListRequest(kind="pods"), a("list", "pods")),   # every namespace: cluster scope
    ("List", api.ListRequest(kind="pods", namespace="dev"), a("list", "pods", "", "dev")),
    ("List", api.ListRequest(kind="nodes", namespace="dev"), a("list", "nodes")),
    ("Watch", api.WatchRequest(kind="pods", field_selector="spec.nodeName=n1"),
     a("watch", "pods", field_selector="spec.nodeName=n1")),
    ("Watch", api.WatchRequest(kind="cronjobs", namespace="dev"), a("watch", "cronjobs", "batch", "dev")),
    ("List", api.ListRequest(kind="widgets", namespace="dev"), a("list", "widgets", "", "dev")),
    # proxied to an agent
    ("PodLogs", npb.LogsRequest(pod="web", namespace="dev"), a("get", "pods", "", "dev", "web", "log")),
    ("PodLogs", npb.LogsRequest(pod="web"), a("get", "pods", "", "default", "web", "log")),
    ("PodExec", npb.ExecInput(start=npb.ExecStart(pod="web", namespace="dev")),
     a("create", "pods", "", "dev", "web", "exec")),
    ("LoadImage", npb.ImageChunk(node="n1"), a("create", "nodes", "", "", "n1", "proxy")),
    # everyone's
    ("ClusterStatus", api.ClusterStatusRequest(), a("get", path="/clusterstatus")),
    ("AccessReview", api.AccessReviewRequest(verb="get"),
     a("create", "selfsubjectaccessreviews", "authorization.k8s.io")),
]


@pytest.mark.parametrize("rpc, request_, want", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_attributes_of_every_rpc(rpc, request_, want):
    got = of_request(M + rpc, request_, exists=lambda kind, ns, name: name == "there")
    assert got == want


def test_writes_carry_their_object_for_node_restriction():
    p = pod()
    got = of_request(M + "Update", api.WriteRequest(object=wrap(p), subresource="status"))
    assert got.obj == p and got.combined_resource == "pods/status"


def test_an_unknown_method_has_no_attributes():
    assert of_request(M + "Reboot", api.GetRequest()) is None


def test_a_review_asks_about_its_own_attributes():
    req = api.AccessReviewRequest(verb="list", group="apps", resource="deployments", namespace="dev")
    assert of_review(req) == a("list", "deployments", "apps", "dev")
