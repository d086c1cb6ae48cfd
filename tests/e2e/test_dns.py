"""Cluster DNS on the real lab, through the CLI: every node serves cluster.local on its
bridge address (cbr0's .1, port 53); ClusterFirst pods get it in /etc/resolv.conf with
the search list; names resolve with busybox nslookup (short names through the search
list, FQDNs, headless services to pod IPs, ExternalName to a CNAME followed to its
target); names outside the cluster are forwarded to the lab's upstream resolver (in the
lab namespace on the gateway, zone `lab.`), never to this machine's; a client reaches an
HTTP server by the service's name; service environment variables in a pod started after
the service. One lab for the module (2 nodes: the client on node1, servers elsewhere)."""

import json
import ssl

import pytest
import yaml

from tests.e2e.conftest import nodes_lab
from tests.helpers import wait_until

NS = "skiff-dns"
SERVER = ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"]


def _pod(name, node, labels=None, containers=None, **spec):
    containers = containers or [{"name": "c", "command": ["sleep", "100000"]}]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "labels": labels or {"app": name}},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1, **spec,
                     "containers": [{"image": "skiff/busybox:latest", "imagePullPolicy": "Never", **c}
                                    for c in containers]}}


def services():
    def svc(name, **spec):
        return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS}, "spec": spec}
    ports = [{"name": "http", "port": 80, "targetPort": 8080}]
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
            svc("web", selector={"app": "web"}, ports=ports),
            svc("web-headless", selector={"app": "web"}, ports=ports, clusterIP="None"),
            svc("ext", type="ExternalName", externalName="node2.lab")]


def pods():
    web = [_pod(f"web-{i}", "node2", labels={"app": "web"},
                containers=[{"name": "httpd", "command": SERVER, "ports": [{"containerPort": 8080}],
                             "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}])
           for i in range(2)]
    client = _pod("client", "node1", containers=[{"name": "c", "command": ["sleep", "100000"]},
                                                 {"name": "side", "command": ["sleep", "100000"]}])
    nolinks = _pod("nolinks", "node1", enableServiceLinks=False)
    default = _pod("default-dns", "node1", dnsPolicy="Default")
    return web + [client, nolinks, default]


@pytest.fixture(scope="module")
def lab(request):
    with nodes_lab(request, "dns", 2) as cli:
        # Services first: the pods must start after them to get their variables.
        cli.run("apply", "-f", "-", input=yaml.safe_dump_all(services()))
        wait_until(lambda: get(cli, "svc", "web")["spec"].get("clusterIP"), 30, "web's ClusterIP")
        cli.run("apply", "-f", "-", input=yaml.safe_dump_all(pods()))
        wait_until(lambda: len(running(cli)) == 5, 120, "5 pods running with IPs")
        wait_until(lambda: len(ready_addresses(cli, "web-headless")) == 2, 60, "2 ready endpoints")
        yield cli


def get(cli, kind, name):
    return json.loads(cli.out("get", kind, name, "-n", NS, "-o", "json"))


def running(cli):
    items = json.loads(cli.out("get", "po", "-n", NS, "-o", "json"))["items"]
    return {p["metadata"]["name"]: p["status"]["podIP"] for p in items
            if p.get("status", {}).get("phase") == "Running" and p["status"].get("podIP")}


def ready_addresses(cli, name):
    subsets = get(cli, "endpoints", name).get("subsets") or []
    return sorted(a["ip"] for s in subsets for a in s.get("addresses", []))


def sh(cli, pod, script, container="c", timeout=60):
    extra = ["-c", container] if container else []
    return cli.out("exec", "-n", NS, pod, *extra, "--", "sh", "-c", script, timeout=timeout)


def lookup(cli, name, pod="client"):
    """The addresses busybox nslookup prints for name (the server's own address excluded)."""
    out = sh(cli, pod, f"nslookup {name} 2>&1; true")
    lines = out.splitlines()
    # busybox prints "Server: ..." / "Address: <server>:53" first, then the answers.
    answers = [line.split(":", 1)[1].strip() for line in lines[2:] if line.startswith("Address")]
    return out, sorted(answers)


def node_dns(cli, node):
    pod_cidr = json.loads(cli.out("get", "node", node, "-o", "json"))["spec"]["podCIDR"]
    from nodeagent.dns.server import bridge_address
    return bridge_address(pod_cidr)


def test_resolv_conf_is_cluster_first_in_every_container(lab):
    want = [f"nameserver {node_dns(lab, 'node1')}",
            f"search {NS}.svc.cluster.local svc.cluster.local cluster.local",
            "options ndots:5"]
    for container in ("c", "side"):
        lines = [x for x in sh(lab, "client", "cat /etc/resolv.conf", container).splitlines()
                 if not x.startswith("#")]
        assert lines == want, (container, lines)
    # dnsPolicy Default keeps the engine's copy of the node's file: no cluster nameserver.
    assert node_dns(lab, "node1") not in sh(lab, "default-dns", "cat /etc/resolv.conf")


def test_short_name_and_fqdn_resolve_to_the_cluster_ip(lab):
    ip = get(lab, "svc", "web")["spec"]["clusterIP"]
    # (busybox nslookup applies the search list only to names without a dot, so no "web.<ns>")
    for name in ("web", f"web.{NS}.svc.cluster.local"):
        out, answers = lookup(lab, name)
        assert answers == [ip], (name, out)


def test_unknown_cluster_name_is_nxdomain(lab):
    out, answers = lookup(lab, f"nope.{NS}.svc.cluster.local")
    assert answers == [] and "NXDOMAIN" in out, out


def test_headless_service_resolves_to_the_pod_ips(lab):
    pod_ips = sorted(ip for name, ip in running(lab).items() if name.startswith("web-"))
    assert ready_addresses(lab, "web-headless") == pod_ips
    out, answers = lookup(lab, "web-headless")
    assert answers == pod_ips, out


def node_address(cli, node):
    n = json.loads(cli.out("get", "node", node, "-o", "json"))
    return next(a["address"] for a in n["status"]["addresses"] if a["type"] == "InternalIP")


def test_external_name_answers_a_cname_followed_upstream(lab):
    out = sh(lab, "client", f"nslookup -type=cname ext.{NS}.svc.cluster.local 2>&1; true")
    assert "canonical name = node2.lab" in out, out
    out, answers = lookup(lab, "ext")
    assert "canonical name = node2.lab" in out and answers == [node_address(lab, "node2")], out


def test_other_names_are_forwarded_to_the_lab_resolver(lab):
    # node1.lab has a dot but fewer than 5: the search list first (NXDOMAIN from the
    # cluster zone), then the name itself, which the node forwards upstream.
    for node in ("node1", "node2"):
        out, answers = lookup(lab, f"{node}.lab")
        assert answers == [node_address(lab, node)], out
    out, answers = lookup(lab, "nosuch.lab")
    assert answers == [] and "NXDOMAIN" in out, out
    assert "dns: " in lab.out("lab", "status") and " running" in lab.out("lab", "status").split("dns: ")[1]


def test_pod_a_record(lab):
    ip = running(lab)["web-0"]
    out, answers = lookup(lab, f"{ip.replace('.', '-')}.{NS}.pod.cluster.local")
    assert answers == [ip], out


def test_client_reaches_the_server_by_service_name(lab):
    names = {n for n in running(lab) if n.startswith("web-")}
    script = 'printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 3 web 80 | tail -n 1'
    wait_until(lambda: sh(lab, "client", script).strip() in names, 30, "an answer from web by name")


def test_service_env_vars_in_a_pod_started_after_the_service(lab):
    svc = get(lab, "svc", "web")
    env = dict(line.split("=", 1) for line in sh(lab, "client", "env").splitlines() if "=" in line)
    assert env["WEB_SERVICE_HOST"] == svc["spec"]["clusterIP"]
    assert env["WEB_SERVICE_PORT"] == "80" and env["WEB_SERVICE_PORT_HTTP"] == "80"
    assert env["WEB_PORT"] == f"tcp://{svc['spec']['clusterIP']}:80"
    assert "WEB_HEADLESS_SERVICE_HOST" not in env and "EXT_SERVICE_HOST" not in env
    assert "WEB_SERVICE_HOST" not in sh(lab, "nolinks", "env")     # enableServiceLinks: false
    # the API's own Service reaches every pod, links or not
    api_ip = json.loads(lab.out("get", "svc", "kubernetes", "-n", "default", "-o", "json"))["spec"]["clusterIP"]
    assert env["KUBERNETES_SERVICE_HOST"] == api_ip and env["KUBERNETES_SERVICE_PORT"] == "443"
    assert f"KUBERNETES_SERVICE_HOST={api_ip}" in sh(lab, "nolinks", "env")


def test_pods_reach_the_api_through_the_kubernetes_service(lab):
    eps = json.loads(lab.out("get", "endpoints", "kubernetes", "-n", "default", "-o", "json"))
    assert len([a for s in eps["subsets"] for a in s["addresses"]]) == 3      # the three replicas
    out, answers = lookup(lab, "kubernetes.default.svc.cluster.local")
    api_ip = json.loads(lab.out("get", "svc", "kubernetes", "-n", "default", "-o", "json"))["spec"]["clusterIP"]
    assert answers == [api_ip], out
    # port 443 is a replica's gRPC server (DNAT to its port 7100 on the lab network), which speaks
    # TLS: a ClientHello sent from the pod is answered with a handshake record (type 0x16)
    hello = "".join(f"\\{b:03o}" for b in client_hello())
    script = f"printf '{hello}' | nc -w 2 kubernetes.default.svc.cluster.local 443 | od -An -tx1 | head -n 1"
    wait_until(lambda: sh(lab, "client", script).split()[:1] == ["16"], 30, "a TLS handshake from kubernetes:443")


def client_hello() -> bytes:
    """A TLS ClientHello as this machine's OpenSSL sends it (any TLS server answers it)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    outgoing = ssl.MemoryBIO()
    conn = ctx.wrap_bio(ssl.MemoryBIO(), outgoing)
    with pytest.raises(ssl.SSLWantReadError):
        conn.do_handshake()
    return outgoing.read()
