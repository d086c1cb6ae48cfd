"""The pod network on the real lab, through the CLI, for both backends (one lab each).

Every node gets its own podCIDR; pods on 3 nodes get IPs from their node's block
(`get po -o wide`), /etc/hosts and fieldRef status.podIP carry the IP; pod-to-pod
across nodes works and keeps the source IP (the server prints its TCP peers with
netstat); an agent restart keeps pod IPs and leaks no IPAM entry; a killed node that
is deleted disappears from the survivors' routes, and once it is back its new pods
are reachable again. Kernel state (routes) is read with nsenter in the node's netns,
as one would on the node's VM.
"""

import ipaddress
import json
import os
import subprocess
import time

import pytest
import yaml

from nodeagent.runtime import labels as L
from tests.e2e.conftest import node_docker, nodes_lab
from tests.helpers import wait_until

NS = "net"
PORT = 8080
# Every connection gets the server's view of its TCP connections: the client finds itself there.
SERVER = ["sh", "-c", f"while true; do nc -l -p {PORT} -e netstat -tn; done"]


@pytest.fixture(scope="module", params=["host-gw", "vxlan"])
def lab(request):
    with nodes_lab(request, f"net-{request.param}", 3, network=request.param) as cli:
        yield cli


def pod_doc(name, node):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS, "labels": {"app": "net"}},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "srv", "image": "skiff/busybox:latest", "imagePullPolicy": "Never",
                                     "command": SERVER,
                                     "env": [{"name": "POD_IP",
                                              "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]}]}}


def get_pod(lab, name):
    return json.loads(lab.out("get", "po", name, "-n", NS, "-o", "json"))


def running_ip(lab, name):
    p = get_pod(lab, name)
    st = p.get("status", {})
    ready = all(c.get("ready") for c in st.get("containerStatuses", [])) and st.get("containerStatuses")
    return st.get("podIP") if st.get("phase") == "Running" and ready and st.get("podIP") else None


def node_cidrs(lab):
    items = json.loads(lab.out("get", "node", "-o", "json"))["items"]
    return {n["metadata"]["name"]: n["spec"].get("podCIDR", "") for n in items}


def node_netns(lab, node):
    from skiff.lab.lab import Lab
    plan = Lab(lab.lab_dir).plan()
    return next(m.netns for m in plan.nodes if m.name == node)


def node_routes(lab, node):
    return subprocess.run(["ip", "-n", node_netns(lab, node), "route"], capture_output=True, text=True,
                          check=True).stdout


def ipam_files(lab, node):
    """The node's IPAM records (one file per allocated address; last_reserved_ip is no record)."""
    d = os.path.join(lab.lab_dir, node, "agent", "network", "ipam")
    return sorted(f for f in os.listdir(d) if not f.startswith(".") and f != "last_reserved_ip")


def peers_seen(lab, client, server_ip):
    """What the server printed for one connection from pod client (its TCP peers)."""
    def attempt():
        r = lab.run("exec", "-n", NS, client, "--", "nc", "-w", "3", server_ip, PORT, check=False, timeout=30)
        return r.stdout if r.returncode == 0 and f"{server_ip}:{PORT}" in r.stdout else None
    return wait_until(attempt, 30, f"{client} -> {server_ip}:{PORT}", interval_s=0.5)


def assert_reaches(lab, client, client_ip, server_ip):
    seen = peers_seen(lab, client, server_ip)
    # The server's side of this connection names the client's pod IP: no NAT between pods.
    lines = [ln for ln in seen.splitlines() if f"{server_ip}:{PORT}" in ln]
    assert any(f"{client_ip}:" in ln.split(f"{server_ip}:{PORT}", 1)[1] for ln in lines), seen


def test_pod_network(lab):
    cidrs = node_cidrs(lab)
    assert sorted(cidrs) == ["node1", "node2", "node3"]
    assert len(set(cidrs.values())) == 3 and all(cidrs.values()), cidrs
    for c in cidrs.values():
        assert ipaddress.ip_network(c).subnet_of(ipaddress.ip_network("10.244.0.0/16"))

    # Like a node whose Docker engine manages iptables: FORWARD policy DROP. The pod network
    # must still forward (the agent's SKIFFNET-FWD chain accepts the cluster CIDR).
    for n in ("node1", "node2", "node3"):
        subprocess.run(["nsenter", f"--net=/var/run/netns/{node_netns(lab, n)}", "iptables", "-P", "FORWARD",
                        "DROP"], check=True)
        wait_until(lambda n=n: "-A FORWARD -j SKIFFNET-FWD" in subprocess.run(
            ["nsenter", f"--net=/var/run/netns/{node_netns(lab, n)}", "iptables", "-S", "FORWARD"],
            capture_output=True, text=True).stdout, 15, f"{n}'s FORWARD jump to SKIFFNET-FWD")
    docs = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}] + [pod_doc(f"p{i}", f"node{i}") for i in (1, 2, 3)]
    lab.out("apply", "-f", "-", input=yaml.safe_dump_all(docs))
    ips = {}
    for i in (1, 2, 3):
        ips[i] = wait_until(lambda i=i: running_ip(lab, f"p{i}"), 90, f"p{i} Running with an IP")
        assert ipaddress.ip_address(ips[i]) in ipaddress.ip_network(cidrs[f"node{i}"])
    wide = lab.out("get", "po", "-n", NS, "-o", "wide")
    for i in (1, 2, 3):
        line = next(ln for ln in wide.splitlines() if ln.startswith(f"p{i} "))
        assert ips[i] in line.split() and f"node{i}" in line.split(), wide
    assert get_pod(lab, "p1")["status"]["podIPs"] == [{"ip": ips[1]}]
    # the pod's own view: eth0, /etc/hosts, the downward API
    assert f"inet {ips[1]}/24" in lab.out("exec", "-n", NS, "p1", "--", "ip", "addr", "show", "eth0")
    assert f"{ips[1]}\tp1" in lab.out("exec", "-n", NS, "p1", "--", "cat", "/etc/hosts")
    assert lab.out("exec", "-n", NS, "p1", "--", "sh", "-c", "echo $POD_IP").strip() == ips[1]

    # pod -> pod across nodes (and on the same node through the bridge), source IP kept
    assert_reaches(lab, "p1", ips[1], ips[2])
    assert_reaches(lab, "p1", ips[1], ips[3])
    assert_reaches(lab, "p3", ips[3], ips[2])

    # agent restart: same IPs, one IPAM entry per pod, still reachable
    before = ipam_files(lab, "node2")
    assert before == [ips[2]]
    lab.out("chaos", "kill-agent", "node2")
    lab.out("chaos", "start-agent", "node2")
    p2 = lab.out("get", "po", "p2", "-n", NS, "-o", "wide")
    wait_until(lambda: json.loads(lab.out("get", "node", "node2", "-o", "json"))["status"]["conditions"], 30,
               "node2 reporting")
    extra = pod_doc("p2b", "node2")
    lab.out("apply", "-f", "-", input=yaml.safe_dump(extra))
    ip2b = wait_until(lambda: running_ip(lab, "p2b"), 90, "p2b Running after the agent restart")
    assert running_ip(lab, "p2") == ips[2], p2
    assert ip2b != ips[2]
    assert ipam_files(lab, "node2") == sorted([ips[2], ip2b])
    assert_reaches(lab, "p1", ips[1], ips[2])
    lab.out("delete", "po", "p2b", "-n", NS)
    wait_until(lambda: ipam_files(lab, "node2") == [ips[2]], 60, "p2b's IP released")

    # drift: a route deleted behind the agent's back is back within the periodic check
    routes = node_routes(lab, "node1")
    assert cidrs["node2"] in routes
    netns1 = node_netns(lab, "node1")
    subprocess.run(["ip", "-n", netns1, "route", "del", cidrs["node2"]], check=True)
    t0 = time.monotonic()
    wait_until(lambda: cidrs["node2"] in node_routes(lab, "node1"), 15, "node1's route to node2 repaired")
    print(f"route repaired after {time.monotonic() - t0:.1f}s")

    # a dead pause container: a new sandbox, the same IP, reachable again
    docker1 = node_docker(lab, "node1")

    def sandboxes():
        return [c for c in docker1.containers.list(filters={"label": f"{L.POD_NAME}=p1"})
                if c.labels.get(L.CONTAINER_KIND) == L.KIND_SANDBOX]
    first = sandboxes()
    assert len(first) == 1
    first[0].kill()
    wait_until(lambda: [c.id for c in sandboxes()] not in ([], [first[0].id]) and running_ip(lab, "p1")
               and get_pod(lab, "p1")["status"]["containerStatuses"][0]["state"].get("running"), 60,
               "p1 running in a new sandbox")
    assert running_ip(lab, "p1") == ips[1]
    assert_reaches(lab, "p1", ips[1], ips[2])
    assert_reaches(lab, "p2", ips[2], ips[1])
    assert ipam_files(lab, "node1") == [ips[1]]

    # node3 dies and is deleted: the survivors drop its routes
    lab.out("chaos", "kill-node", "node3")
    assert cidrs["node3"] in node_routes(lab, "node1")
    lab.out("delete", "node", "node3")
    for n in ("node1", "node2"):
        wait_until(lambda n=n: cidrs["node3"] not in node_routes(lab, n), 20, f"{n} without node3's route")
        assert "unreachable 10.244.0.0/16 proto 77" in node_routes(lab, n)
    # ... and its pod's address fails at once (the cluster CIDR's unreachable route), no timeout
    r = lab.run("exec", "-n", NS, "p1", "--", "nc", "-w", "10", ips[3], PORT, check=False)
    assert r.returncode != 0 and "No route to host" in r.stdout + r.stderr, r.stdout + r.stderr
    # node3 is back: registered again, a block again, its new pods reachable again
    lab.out("delete", "po", "p3", "-n", NS, "--grace-period", "0", check=False)
    lab.out("chaos", "start-node", "node3", timeout=120)
    cidr3 = wait_until(lambda: node_cidrs(lab).get("node3"), 60, "node3 with a podCIDR again")
    lab.out("apply", "-f", "-", input=yaml.safe_dump(pod_doc("p3b", "node3")))
    ip3 = wait_until(lambda: running_ip(lab, "p3b"), 90, "p3b Running on the restarted node3")
    assert ipaddress.ip_address(ip3) in ipaddress.ip_network(cidr3)
    assert_reaches(lab, "p1", ips[1], ip3)
    assert_reaches(lab, "p3b", ip3, ips[2])
