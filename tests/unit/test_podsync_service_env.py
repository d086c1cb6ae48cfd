"""Service links: <SVC>_SERVICE_HOST/PORT... (nodeagent/podsync/service_env.py) and their
place in the container environment (env.resolve_env)."""

from nodeagent.podsync.env import resolve_env
from nodeagent.podsync.service_env import service_env
from skiff.api import objects_pb2 as pb


def svc(name, ns="apps", ip="10.96.0.20", ports=(("http", 80, "TCP"),), type_="ClusterIP"):
    s = pb.Service()
    s.metadata.name, s.metadata.namespace = name, ns
    s.spec.cluster_ip, s.spec.type = ip, type_
    for pname, port, proto in ports:
        s.spec.ports.add(name=pname, port=port, protocol=proto)
    return s


def pod(links=None):
    p = pb.Pod()
    p.metadata.name, p.metadata.namespace = "p", "apps"
    if links is not None:
        p.spec.enable_service_links = links
    p.spec.containers.add(name="c", image="i")
    return p


SERVICES = [
    svc("my-web", ports=[("http", 80, "TCP"), ("dns-udp", 53, "UDP")]),
    svc("api", ip="10.96.0.21", ports=[("", 8080, "TCP")]),
    svc("headless", ip="None"),
    svc("ext", ip="", type_="ExternalName"),
    svc("noports", ip="10.96.0.22", ports=[]),
    svc("other-ns", ns="default"),
]


def test_service_env_vars():
    env = dict(service_env(pod(), SERVICES))
    assert env["MY_WEB_SERVICE_HOST"] == "10.96.0.20"
    assert env["MY_WEB_SERVICE_PORT"] == "80"
    assert env["MY_WEB_SERVICE_PORT_HTTP"] == "80"
    assert env["MY_WEB_SERVICE_PORT_DNS_UDP"] == "53"
    assert env["MY_WEB_PORT"] == "tcp://10.96.0.20:80"
    assert env["MY_WEB_PORT_53_UDP"] == "udp://10.96.0.20:53"
    assert env["MY_WEB_PORT_53_UDP_PROTO"] == "udp"
    assert env["MY_WEB_PORT_53_UDP_PORT"] == "53"
    assert env["MY_WEB_PORT_53_UDP_ADDR"] == "10.96.0.20"
    assert env["API_SERVICE_HOST"] == "10.96.0.21" and env["API_SERVICE_PORT"] == "8080"
    assert not any(k.startswith("API_SERVICE_PORT_") for k in env)   # unnamed port
    for absent in ("HEADLESS_", "EXT_", "NOPORTS_", "OTHER_NS_"):
        assert not any(k.startswith(absent) for k in env), absent


def test_service_env_is_in_name_order():
    names = [k for k, _ in service_env(pod(), SERVICES) if k.endswith("_SERVICE_HOST")]
    assert names == ["API_SERVICE_HOST", "MY_WEB_SERVICE_HOST"]


def test_enable_service_links_false_gives_nothing():
    assert service_env(pod(links=False), SERVICES) == []
    assert service_env(pod(links=True), SERVICES) != []


API = svc("kubernetes", ns="default", ip="10.96.0.1", ports=[("grpc", 443, "TCP")])


def test_every_pod_gets_the_api_service():
    for links in (None, False):
        env = dict(service_env(pod(links), SERVICES + [API]))
        assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1" and env["KUBERNETES_SERVICE_PORT"] == "443"
        assert env["KUBERNETES_SERVICE_PORT_GRPC"] == "443" and env["KUBERNETES_PORT"] == "tcp://10.96.0.1:443"
    assert [k for k, _ in service_env(pod(False), SERVICES + [API])
            if k.endswith("_SERVICE_HOST")] == ["KUBERNETES_SERVICE_HOST"]
    # a Service of that name in the pod's own namespace takes its place (as in kubelet)
    own = svc("kubernetes", ip="10.96.0.99")
    assert dict(service_env(pod(), [API, own] + SERVICES))["KUBERNETES_SERVICE_HOST"] == "10.96.0.99"
    assert dict(service_env(pod(), [own, API] + SERVICES))["KUBERNETES_SERVICE_HOST"] == "10.96.0.99"
    assert dict(service_env(pod(False), [own, API]))["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"


def test_container_env_overrides_and_expands_service_vars():
    p = pod()
    c = p.spec.containers[0]
    c.env.add(name="API_SERVICE_PORT", value="9999")
    c.env.add(name="URL", value="http://$(MY_WEB_SERVICE_HOST):$(MY_WEB_SERVICE_PORT)")
    env = dict(resolve_env(p, c, lambda *a: None, lambda *a: None, service_vars=service_env(p, SERVICES)))
    assert env["API_SERVICE_PORT"] == "9999"
    assert env["URL"] == "http://10.96.0.20:80"
    assert env["MY_WEB_SERVICE_HOST"] == "10.96.0.20"
