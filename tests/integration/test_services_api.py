"""Services on a real 3-replica control plane (loopback): allocation through the API and
the Endpoints controller, with fake pods whose IP and readiness are written as status."""

import uuid

import pytest

from skiff import client as clientmod
from skiff.api import objects_pb2 as pb
from tests.helpers import wait_until


@pytest.fixture
def ns(client):
    name = f"skiff-svc-{uuid.uuid4().hex[:6]}"
    client.create(pb.Namespace(metadata=pb.ObjectMeta(name=name)))
    yield name
    client.delete("namespaces", name, "")


def service(name, ns, typ="ClusterIP", cluster_ip="", node_port=0, selector=None, target="http"):
    s = pb.Service(metadata=pb.ObjectMeta(name=name, namespace=ns))
    s.spec.type = typ
    s.spec.cluster_ip = cluster_ip
    s.spec.selector.update(selector if selector is not None else {"app": name})
    p = s.spec.ports.add(name="http", port=80, node_port=node_port)
    p.target_port.str_val = target
    return s


def fake_pod(client, name, ns, app, ip, ready=True):
    p = pb.Pod(metadata=pb.ObjectMeta(name=name, namespace=ns, labels={"app": app}))
    c = p.spec.containers.add(name="c", image="skiff/busybox:latest")
    c.ports.add(name="http", container_port=8080)
    pod = client.create(p)
    set_status(client, pod, ip, ready)
    return pod


def set_status(client, pod, ip, ready):
    for _ in range(50):
        pod = client.get("pods", pod.metadata.name, pod.metadata.namespace)
        pod.status.phase = "Running"
        pod.status.pod_ip = ip
        del pod.status.conditions[:]
        pod.status.conditions.add(type="Ready", status="True" if ready else "False")
        try:
            return client.update_status(pod)
        except clientmod.Conflict:
            continue
    raise AssertionError("status write kept conflicting")


def endpoints_view(client, name, ns):
    try:
        ep = client.get("endpoints", name, ns)
    except clientmod.NotFound:
        return None
    return (sorted((a.ip, a.target_ref.name) for s in ep.subsets for a in s.addresses),
            sorted(a.ip for s in ep.subsets for a in s.not_ready_addresses),
            sorted({p.port for s in ep.subsets for p in s.ports}))


def test_allocation_through_the_api(client, ns):
    a = client.create(service("a", ns, typ="NodePort"))
    assert a.spec.cluster_ip.startswith("10.") and list(a.spec.cluster_ips) == [a.spec.cluster_ip]
    assert 30000 <= a.spec.ports[0].node_port <= 32767
    with pytest.raises(clientmod.Invalid, match=r"spec\.clusterIP"):
        client.create(service("b", ns, cluster_ip=a.spec.cluster_ip))
    with pytest.raises(clientmod.Invalid, match=r"spec\.ports\[0\]\.nodePort"):
        client.create(service("b", ns, typ="NodePort", node_port=a.spec.ports[0].node_port))
    # Re-applying the manifest without the assigned values keeps them.
    again, _ = client.apply(service("a", ns, typ="NodePort"))
    assert again.spec.cluster_ip == a.spec.cluster_ip and again.spec.ports[0].node_port == a.spec.ports[0].node_port
    headless = client.create(service("h", ns, cluster_ip="None"))
    assert headless.spec.cluster_ip == "None"
    lb = client.create(service("lb", ns, typ="LoadBalancer"))
    assert lb.spec.ports[0].node_port and not lb.status.load_balancer.ingress   # no pool configured: pending
    # Deleting frees the address for an explicit claim.
    client.delete("services", "a", ns)
    b = client.create(service("b", ns, cluster_ip=a.spec.cluster_ip))
    assert b.spec.cluster_ip == a.spec.cluster_ip


def test_ip_families_as_on_a_single_stack_ipv4_cluster(client, ns):
    """The server defaults the families (kept on re-apply), accepts PreferDualStack as IPv4
    single-stack and refuses what needs IPv6, before anything is stored."""
    a = client.create(service("a", ns))
    assert (a.spec.ip_family_policy, list(a.spec.ip_families)) == ("SingleStack", ["IPv4"])
    again, _ = client.apply(service("a", ns))
    assert (again.spec.ip_family_policy, list(again.spec.ip_families)) == ("SingleStack", ["IPv4"])
    prefer = service("p", ns)
    prefer.spec.ip_family_policy = "PreferDualStack"
    p = client.create(prefer)
    assert (p.spec.ip_family_policy, list(p.spec.ip_families)) == ("PreferDualStack", ["IPv4"])
    assert p.spec.cluster_ip.startswith("10.")
    headless = client.create(service("h", ns, cluster_ip="None", selector={}))
    assert (headless.spec.ip_family_policy, list(headless.spec.ip_families)) == \
        ("RequireDualStack", ["IPv4", "IPv6"])   # Kubernetes' selectorless headless special case
    require = service("r", ns)
    require.spec.ip_family_policy = "RequireDualStack"
    with pytest.raises(clientmod.Invalid, match=r'spec\.ipFamilyPolicy: Invalid value: "RequireDualStack": '
                       r"this cluster is not configured for dual-stack services"):
        client.create(require)
    v6 = service("v6", ns)
    v6.spec.ip_families.append("IPv6")
    with pytest.raises(clientmod.Invalid, match=r'spec\.ipFamilies\[0\]: Invalid value: "IPv6": '
                       r"not configured on this cluster"):
        client.create(v6)
    with pytest.raises(clientmod.NotFound):
        client.get("services", "r", ns)


def test_endpoints_follow_pods_and_services(client, ns):
    client.create(service("web", ns))
    wait_until(lambda: endpoints_view(client, "web", ns) == ([], [], []), 10, "empty Endpoints for web")
    p1 = fake_pod(client, "web-1", ns, "web", "10.244.1.5")
    fake_pod(client, "web-2", ns, "web", "10.244.2.5", ready=False)
    fake_pod(client, "other", ns, "db", "10.244.3.5")
    wait_until(lambda: endpoints_view(client, "web", ns) == ([("10.244.1.5", "web-1")], ["10.244.2.5"], [8080]),
               10, "web-1 ready and web-2 not ready, on the named port 8080")
    ep = client.get("endpoints", "web", ns)
    addr = next(a for s in ep.subsets for a in s.addresses)
    assert addr.target_ref.kind == "Pod" and addr.target_ref.uid == p1.metadata.uid
    p2 = client.get("pods", "web-2", ns)
    set_status(client, p2, "10.244.2.5", True)
    wait_until(lambda: endpoints_view(client, "web", ns) ==
               ([("10.244.1.5", "web-1"), ("10.244.2.5", "web-2")], [], [8080]), 10, "both ready")
    client.delete("pods", "web-1", ns)
    wait_until(lambda: endpoints_view(client, "web", ns) == ([("10.244.2.5", "web-2")], [], [8080]),
               10, "web-1 gone from the Endpoints")
    # Relabeling a pod takes it out.
    for _ in range(50):
        p = client.get("pods", "web-2", ns)
        p.metadata.labels["app"] = "x"
        try:
            client.update(p)
            break
        except clientmod.Conflict:
            continue
    wait_until(lambda: endpoints_view(client, "web", ns) == ([], [], []), 10, "web-2 relabeled away")
    client.delete("services", "web", ns)
    wait_until(lambda: endpoints_view(client, "web", ns) is None, 10, "Endpoints deleted with the Service")


def test_the_api_service_lists_the_connected_replicas(cluster, client):
    """default/kubernetes: the first ClusterIP, port grpc 443, and Endpoints with every replica's join
    address (TLS + bearer tokens); deleted, the leader puts it back."""
    svc = wait_until(lambda: _get(client, "services", "kubernetes"), 30, "the kubernetes Service")
    assert svc.spec.cluster_ip == "10.96.0.1" and [(p.name, p.port) for p in svc.spec.ports] == [("grpc", 443)]

    def api_ports():
        ep = _get(client, "endpoints", "kubernetes")
        return sorted(p.port for s in (ep.subsets if ep else []) for p in s.ports for _ in s.addresses)
    # the join ports: TLS with bearer tokens, what a pod holds (the API port requires a
    # client certificate; see docs/serviceaccounts.md)
    every = sorted(int(cluster.join_address(n).rsplit(":", 1)[1]) for n in cluster.names)
    wait_until(lambda: api_ports() == every, 30, f"the Endpoints naming the 3 replicas {every}")
    # deleted by a user: the leader puts it back (with its first address again)
    client.delete("services", "kubernetes", "default")
    back = wait_until(lambda: _get(client, "services", "kubernetes"), 30, "the kubernetes Service back")
    assert back.metadata.uid != svc.metadata.uid and back.spec.cluster_ip == "10.96.0.1"


def _get(client, resource, name):
    try:
        return client.get(resource, name, "default")
    except clientmod.NotFound:
        return None
