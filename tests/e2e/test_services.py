"""Services on the real lab through the CLI, with 4 nodes (3 web pods spread over node2-4,
the client pod on node1): ClusterIP load spreading (by IP and by DNS name) from a pod on
another node, NodePort on every node's address, LoadBalancer from the host, ClientIP
affinity, REJECT without endpoints, traffic policies, scaling down, and rules that survive an agent
restart byte for byte. Kernel state (iptables) is read with nsenter in the node's
netns, as one would on the node's VM. One lab per pod network backend (host-gw, vxlan),
each torn down before the next starts.

Needs pod IPs (the pod network) and the proxier wired into the agent
(nodeagent.proxy.proxier.Proxier).
"""

import collections
import json
import socket
import subprocess
import time

import pytest
import yaml

from nodeagent.proxy.render import skiff_lines
from tests.e2e.conftest import nodes_lab
from tests.helpers import wait_until


NS = "svc"
SERVER_NODES = ["node2", "node3", "node4"]     # one web pod each; the client is on node1
# / answers the pod's name; /cgi-bin/peer answers "<client address> <pod name>" (what the pod sees)
SERVER = ["sh", "-c", "mkdir -p /www/cgi-bin && hostname > /www/index.html && "
          "printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho $REMOTE_ADDR $(hostname)\\n' "
          "> /www/cgi-bin/peer && chmod +x /www/cgi-bin/peer && exec httpd -f -p 8080 -h /www"]


@pytest.fixture(scope="module", params=["host-gw", "vxlan"])
def lab(request):
    # 4 nodes: the 3 web pods spread over node2-4, the client on node1, a node of its own
    with nodes_lab(request, f"services-{request.param}", 4, network=request.param) as cli:
        cli.run("apply", "-f", "-", input=yaml.safe_dump_all(manifests()))
        wait_until(lambda: len(ready_pods(cli, "app=web")) == 3 and ready_pods(cli, "app=client"), 120,
                   "3 web pods and the client pod running with IPs")
        yield cli


def manifests():
    web = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": NS},
           "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                                 "spec": {"terminationGracePeriodSeconds": 1,
                                          "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                                              "nodeSelectorTerms": [{"matchExpressions": [{
                                                  "key": "kubernetes.io/hostname", "operator": "NotIn",
                                                  "values": ["node1"]}]}]}}},
                                          "containers": [{"name": "httpd", "image": "skiff/busybox:latest",
                                                          "imagePullPolicy": "Never", "command": SERVER,
                                                          "ports": [{"name": "http", "containerPort": 8080}],
                                                          "readinessProbe": {"tcpSocket": {"port": 8080},
                                                                             "periodSeconds": 1}}]}}}}
    client = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client", "namespace": NS,
                                                              "labels": {"app": "client"}},
              "spec": {"nodeName": "node1", "terminationGracePeriodSeconds": 1,
                       "containers": [{"name": "c", "image": "skiff/busybox:latest", "imagePullPolicy": "Never",
                                       "command": ["sleep", "100000"]}]}}

    def svc(name, typ="ClusterIP", **spec):
        doc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS},
               "spec": {"type": typ, "selector": {"app": "web"},
                        "ports": [{"name": "http", "port": 80, "targetPort": "http"}], **spec}}
        return doc

    nobody = svc("nobody", "NodePort")
    nobody["spec"]["selector"] = {"app": "nobody"}
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}, web, client,
            svc("web"), svc("web-np", "NodePort"), svc("web-lb", "LoadBalancer"),
            svc("sticky", sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 300}}),
            svc("web-local", "NodePort", externalTrafficPolicy="Local"),
            svc("web-lb-local", "LoadBalancer", externalTrafficPolicy="Local"),
            svc("web-internal", internalTrafficPolicy="Local"),
            nobody]


def ready_pods(lab, selector):
    items = json.loads(lab.out("get", "po", "-n", NS, "-l", selector, "-o", "json"))["items"]
    out = {}
    for p in items:
        st = p.get("status", {})
        if p["metadata"].get("deletionTimestamp") or not st.get("podIP"):
            continue
        if any(c["type"] == "Ready" and c["status"] == "True" for c in st.get("conditions", [])):
            out[p["metadata"]["name"]] = st["podIP"]
    return out


def get_svc(lab, name):
    return json.loads(lab.out("get", "svc", name, "-n", NS, "-o", "json"))


def fetch_from_client(lab, ip, port, count):
    """Hostnames answering `count` HTTP requests made from the client pod (node1)."""
    script = (f'for i in $(seq {count}); do printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 2 {ip} {port} | tail -n 1; '
              'done')
    out = lab.out("exec", "-n", NS, "client", "--", "sh", "-c", script, timeout=120)
    return [line.strip() for line in out.splitlines() if line.strip()]


def http_from_host(ip, port, timeout_s=3.0, path="/"):
    with socket.create_connection((ip, port), timeout=timeout_s) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    return data.decode().strip().splitlines()[-1]


def node_rules(lab, node):
    netns = lab.plan.node(node).netns_path
    out = subprocess.run(["nsenter", f"--net={netns}", "iptables-save"], capture_output=True, text=True,
                         check=True).stdout
    return skiff_lines(out)


def web_names(lab):
    return set(ready_pods(lab, "app=web"))


@pytest.mark.parametrize("by", ["ip", "name"])
def test_clusterip_spreads_over_three_endpoints_from_another_node(lab, by):
    # by name: the short name through the pod's search list and the node's DNS, on every call
    target = get_svc(lab, "web")["spec"]["clusterIP"] if by == "ip" else "web"
    wait_until(lambda: len(fetch_from_client(lab, target, 80, 1)) == 1, 60, f"{target}:80 answering the client")
    by_node = web_by_node(lab)
    assert sorted(by_node) == SERVER_NODES and all(len(p) == 1 for p in by_node.values()), by_node
    answers = fetch_from_client(lab, target, 80, 60)
    counts = collections.Counter(answers)
    assert len(answers) == 60 and set(counts) == web_names(lab), counts
    assert all(8 <= n <= 35 for n in counts.values()), counts    # about 20 each


def test_nodeport_answers_on_every_node_address(lab):
    port = get_svc(lab, "web-np")["spec"]["ports"][0]["nodePort"]
    names = web_names(lab)
    for node in lab.plan.nodes:
        wait_until(lambda: http_from_host(node.address, port) in names, 30, f"NodePort {port} on {node.name}")


def test_loadbalancer_address_answers_from_the_host(lab):
    wait_until(lambda: get_svc(lab, "web-lb").get("status", {}).get("loadBalancer", {}).get("ingress"), 30,
               "an ingress address")
    ip = get_svc(lab, "web-lb")["status"]["loadBalancer"]["ingress"][0]["ip"]
    names = web_names(lab)
    assert ip in lab.out("get", "svc", "web-lb", "-n", NS)
    wait_until(lambda: http_from_host(ip, 80) in names, 30, f"LoadBalancer {ip}:80 from the host")


def web_by_node(lab):
    items = json.loads(lab.out("get", "po", "-n", NS, "-l", "app=web", "-o", "json"))["items"]
    ready = web_names(lab)
    out = collections.defaultdict(set)
    for p in items:
        if p["metadata"]["name"] in ready:
            out[p["spec"]["nodeName"]].add(p["metadata"]["name"])
    return out


def peers_from_host(address, port, count):
    """(client address the pod saw, pod name) for `count` requests from the host."""
    out = []
    for _ in range(count):
        peer, pod = http_from_host(address, port, path="/cgi-bin/peer").split()
        out.append((peer.strip("[]").removeprefix("::ffff:"), pod))   # httpd listens on IPv6 too
    return out


def test_external_traffic_policy_local_keeps_the_client_ip_and_stays_on_the_node(lab):
    host = lab.plan.host_address
    by_node = web_by_node(lab)
    assert sorted(by_node) == SERVER_NODES, by_node             # web avoids node1
    port = get_svc(lab, "web-local")["spec"]["ports"][0]["nodePort"]
    for node in SERVER_NODES:
        address = lab.plan.node(node).address
        wait_until(lambda: http_from_host(address, port) in by_node[node], 30, f"web-local on {node}")
        seen = peers_from_host(address, port, 12)
        # only this node's pods answer, and they see the host's own address (no SNAT)
        assert {pod for _, pod in seen} <= by_node[node] and {peer for peer, _ in seen} == {host}, seen
    # node1 has no web pod: its nodePort drops (no answer, no refusal), as kube-proxy does
    with pytest.raises(socket.timeout):            # dropped: not refused, not answered
        http_from_host(lab.plan.node("node1").address, port, timeout_s=2.0)
    # the Cluster policy NodePort on the same node masquerades: the pod sees a node's address
    np = get_svc(lab, "web-np")["spec"]["ports"][0]["nodePort"]
    seen = peers_from_host(lab.plan.node("node2").address, np, 6)
    assert host not in {peer for peer, _ in seen}, seen
    # LoadBalancer with Local: announced by a node with a web pod, answered by that node's pods only
    wait_until(lambda: get_svc(lab, "web-lb-local").get("status", {}).get("loadBalancer", {}).get("ingress"),
               30, "an ingress address")
    ip = get_svc(lab, "web-lb-local")["status"]["loadBalancer"]["ingress"][0]["ip"]
    wait_until(lambda: http_from_host(ip, 80) in web_names(lab), 30, f"web-lb-local {ip}:80 from the host")
    seen = peers_from_host(ip, 80, 12)
    pods = {pod for _, pod in seen}
    assert {peer for peer, _ in seen} == {host} and any(pods <= names for names in by_node.values()), seen


def test_internal_traffic_policy_local_stays_on_the_callers_node(lab):
    ip = get_svc(lab, "web-internal")["spec"]["clusterIP"]
    by_node = web_by_node(lab)
    for node in SERVER_NODES:
        caller = sorted(by_node[node])[0]          # a web pod calls the service from its own node

        def answers(count, caller=caller):
            script = (f'for i in $(seq {count}); do printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 2 {ip} 80 '
                      '| tail -n 1; done')
            out = lab.out("exec", "-n", NS, caller, "--", "sh", "-c", script, timeout=60)
            return [line.strip() for line in out.splitlines() if line.strip()]
        wait_until(lambda: answers(1), 30, f"web-internal from {caller}")
        got = answers(12)
        assert len(got) == 12 and set(got) <= by_node[node], (node, got)
    # the client on node1, where no web pod runs: dropped (no answer), not sent to another node
    assert fetch_from_client(lab, ip, 80, 2) == []
    assert f'"{NS}/web-internal:http has no local endpoints" -m tcp --dport 80 -j DROP' in node_rules(lab, "node1")
    assert len(fetch_from_client(lab, get_svc(lab, "web")["spec"]["clusterIP"], 80, 2)) == 2   # Cluster does


def test_client_ip_affinity_keeps_one_pod(lab):
    ip = get_svc(lab, "sticky")["spec"]["clusterIP"]
    answers = fetch_from_client(lab, ip, 80, 20)
    assert len(answers) == 20 and len(set(answers)) == 1, answers


def test_no_ready_endpoints_is_refused_at_once(lab):
    svc = get_svc(lab, "nobody")
    assert "<none>" in lab.out("get", "endpoints", "nobody", "-n", NS)
    # From a pod to the ClusterIP: refused (nc exits 1) well before its 5 s timeout. Timed
    # inside the pod: the exec round trip itself is slow on a loaded machine.
    out = lab.out("exec", "-n", NS, "client", "--", "sh", "-c",
                  f"s=$(date +%s); nc -w 5 {svc['spec']['clusterIP']} 80 </dev/null; echo rc=$? "
                  "dt=$(($(date +%s) - s))", timeout=30)
    assert "rc=1 " in out and int(out.split("dt=")[1]) < 4, out
    # From the host to its node port on every node: ECONNREFUSED at once, not a timeout.
    port = svc["spec"]["ports"][0]["nodePort"]
    for node in lab.plan.nodes:
        started = time.monotonic()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((node.address, port), timeout=5).close()
        assert time.monotonic() - started < 1.0


def test_scale_down_updates_every_node(lab):
    ip = get_svc(lab, "web")["spec"]["clusterIP"]
    lab.run("scale", "deploy", "web", "-n", NS, "--replicas", "1")
    wait_until(lambda: len(web_names(lab)) == 1 and
               len(json.loads(lab.out("get", "endpoints", "web", "-n", NS, "-o", "json"))["subsets"][0]["addresses"])
               == 1, 60, "one endpoint left")
    survivor = web_names(lab)

    def one_sep_everywhere():
        for node in lab.plan.nodes:
            rules = node_rules(lab, node.name)
            svc_lines = [line for line in rules.splitlines()
                         if line.startswith("-A SKIFF-SVC-") and f'"{NS}/web:http ->' in line]
            if len(svc_lines) != 1:
                return False
        return True

    wait_until(one_sep_everywhere, 30, "one endpoint in web's chain on every node")
    answers = fetch_from_client(lab, ip, 80, 20)
    assert len(answers) == 20 and set(answers) == survivor, answers
    lab.run("scale", "deploy", "web", "-n", NS, "--replicas", "3")
    wait_until(lambda: len(ready_pods(lab, "app=web")) == 3, 120, "3 web pods again")


def stable_rules(lab, node, quiet_s=3.0, timeout_s=60.0):
    """The node's skiff rules once they have not changed for quiet_s (the proxier
    batches changes once a second and resyncs on start)."""
    deadline = time.monotonic() + timeout_s
    last, since = node_rules(lab, node), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = node_rules(lab, node)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return now
    raise AssertionError(f"{node}'s rules kept changing for {timeout_s}s")


def test_agent_restart_keeps_rules_identical(lab):
    wait_until(lambda: len(json.loads(lab.out("get", "endpoints", "web", "-n", NS, "-o", "json"))
                           ["subsets"][0]["addresses"]) == 3, 60, "3 web endpoints")
    # Earlier tests' pods may still be terminating: start from rules that stopped changing.
    before = stable_rules(lab, "node2")
    lab.run("chaos", "kill-agent", "node2")
    assert node_rules(lab, "node2") == before          # the rules outlive the agent
    lab.run("chaos", "start-agent", "node2")
    wait_until(lambda: "Ready" in lab.out("get", "node", "node2"), 60, "node2 back")
    assert stable_rules(lab, "node2") == before
