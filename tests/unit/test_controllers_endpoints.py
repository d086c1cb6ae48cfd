"""The pure Endpoints planner (controlplane/controllers/endpoints_plan.py), table-driven."""

import pytest

from controlplane.controllers.endpoints_plan import needs_write, plan_endpoints, resolve_port, wants_endpoints
from skiff.api import objects_pb2 as pb


def svc(selector=None, ports=(("http", 80, 8080),), name="web", ns="default", headless=False,
        publish=False, typ="ClusterIP"):
    s = pb.Service(api_version="v1", kind="Service", metadata=pb.ObjectMeta(name=name, namespace=ns,
                                                                            labels={"app": "web"}))
    s.spec.type = typ
    s.spec.selector.update({"app": "web"} if selector is None else selector)
    s.spec.cluster_ip = "None" if headless else "10.96.0.10"
    s.spec.publish_not_ready_addresses = publish
    for pname, port, target in ports:
        p = s.spec.ports.add(name=pname, port=port, protocol="TCP")
        if isinstance(target, int):
            p.target_port.int_val = target
        else:
            p.target_port.str_val = target
    return s


def pod(name, ip="", ready=True, labels=None, node="node1", phase="Running", deleting=False, ns="default",
        cports=(), hostname="", subdomain=""):
    p = pb.Pod(metadata=pb.ObjectMeta(name=name, namespace=ns, uid=f"uid-{name}",
                                      labels={"app": "web"} if labels is None else labels))
    p.spec.node_name = node
    p.spec.hostname, p.spec.subdomain = hostname, subdomain
    c = p.spec.containers.add(name="c")
    for cname, number in cports:
        c.ports.add(name=cname, container_port=number, protocol="TCP")
    p.status.phase = phase
    p.status.pod_ip = ip
    p.status.conditions.add(type="Ready", status="True" if ready else "False")
    if deleting:
        p.metadata.deletion_timestamp = "2026-01-01T00:00:00Z"
    return p


def summary(ep):
    """[(ports, ready ips, not-ready ips)] — what the table compares."""
    return [(tuple((p.name, p.port) for p in s.ports), [a.ip for a in s.addresses],
             [a.ip for a in s.not_ready_addresses]) for s in ep.subsets]


CASES = [
    ("no pods", svc(), [], []),
    ("ready and not ready, sorted by IP",
     svc(), [pod("b", "10.244.1.10"), pod("a", "10.244.1.9"), pod("c", "10.244.2.5", ready=False)],
     [((("http", 8080),), ["10.244.1.9", "10.244.1.10"], ["10.244.2.5"])]),
    ("no IP, terminal, deleting, other labels, other namespace: left out",
     svc(), [pod("a", ""), pod("b", "10.0.0.2", phase="Succeeded"), pod("c", "10.0.0.3", deleting=True),
             pod("d", "10.0.0.4", labels={"app": "db"}), pod("e", "10.0.0.5", ns="other"),
             pod("f", "10.0.0.6")],
     [((("http", 8080),), ["10.0.0.6"], [])]),
    ("named target port resolved per pod; pods without it left out; subsets per port set",
     svc(ports=(("http", 80, "web"),)),
     [pod("a", "10.0.0.1", cports=(("web", 8080),)), pod("b", "10.0.0.2", cports=(("web", 9090),)),
      pod("c", "10.0.0.3", cports=(("other", 1),))],
     [((("http", 8080),), ["10.0.0.1"], []), ((("http", 9090),), ["10.0.0.2"], [])]),
    ("two ports, one numeric one named",
     svc(ports=(("http", 80, 8080), ("metrics", 9100, "metrics"))),
     [pod("a", "10.0.0.1", cports=(("metrics", 9101),))],
     [((("http", 8080), ("metrics", 9101)), ["10.0.0.1"], [])]),
    ("publishNotReadyAddresses puts every address in addresses",
     svc(publish=True), [pod("a", "10.0.0.1", ready=False)], [((("http", 8080),), ["10.0.0.1"], [])]),
]


@pytest.mark.parametrize("what,service,pods,expected", CASES, ids=[c[0] for c in CASES])
def test_plan_endpoints(what, service, pods, expected):
    ep = plan_endpoints(service, pods)
    assert (ep.metadata.name, ep.metadata.namespace) == (service.metadata.name, service.metadata.namespace)
    assert summary(ep) == expected


def test_address_fields_and_labels():
    ep = plan_endpoints(svc(name="web", headless=True),
                        [pod("a", "10.0.0.1", node="node2", hostname="a", subdomain="web")])
    addr = ep.subsets[0].addresses[0]
    assert (addr.ip, addr.node_name, addr.hostname) == ("10.0.0.1", "node2", "a")
    assert (addr.target_ref.kind, addr.target_ref.namespace, addr.target_ref.name, addr.target_ref.uid) == \
        ("Pod", "default", "a", "uid-a")
    assert dict(ep.metadata.labels) == {"app": "web", "service.kubernetes.io/headless": ""}
    assert ep.subsets[0].ports[0].protocol == "TCP"


def test_wants_and_needs_write():
    assert wants_endpoints(svc())
    assert not wants_endpoints(svc(selector={}))
    assert not wants_endpoints(svc(typ="ExternalName"))
    desired = plan_endpoints(svc(), [pod("a", "10.0.0.1")])
    assert needs_write(None, desired)
    stored = pb.Endpoints()
    stored.CopyFrom(desired)
    stored.metadata.resource_version, stored.metadata.uid = "7", "u"
    assert not needs_write(stored, desired)
    assert needs_write(stored, plan_endpoints(svc(), [pod("a", "10.0.0.1", ready=False)]))


@pytest.mark.parametrize("target,cports,expected", [
    (8080, (), 8080), ("8080", (), 8080), ("web", (("web", 81),), 81), ("web", (), None), (None, (), 80)])
def test_resolve_port(target, cports, expected):
    sp = pb.ServicePort(port=80, protocol="TCP")
    if isinstance(target, int):
        sp.target_port.int_val = target
    elif target is not None:
        sp.target_port.str_val = target
    assert resolve_port(sp, pod("a", "10.0.0.1", cports=cports)) == expected
