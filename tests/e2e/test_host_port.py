"""hostPort on the real lab through the CLI (one lab, 2 nodes, the default pod network).

A pod with hostPort 8080 (containerPort 80) answers on its node's lab address :8080:
from the host over the lab network (the pod sees the host's address: no SNAT, as with
Kubernetes' portmap), from the other node's namespace, from its own node (the OUTPUT
chain) and from the pod itself (hairpin, masqueraded). A second pod asking for the same
hostPort is scheduled to the other node; a third stays Pending with the NodePorts reason.
Deleting the first pod removes its rules from the node, and the Pending pod then takes
the freed port. Kernel state (iptables) is read with nsenter in the node's netns, as one
would on the node's VM.
"""

import json
import re
import socket
import subprocess
import sys

import pytest
import yaml

from nodeagent.proxy.render import skiff_lines
from tests.e2e.conftest import nodes_lab
from tests.helpers import wait_until

NS = "hostport"
HOST_PORT = 8080
# /cgi-bin/peer answers "<client address> <pod name>": who the pod saw, and which pod it is.
SERVER = ["sh", "-c", "mkdir -p /www/cgi-bin && hostname > /www/index.html && "
          "printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho $REMOTE_ADDR $(hostname)\\n' "
          "> /www/cgi-bin/peer && chmod +x /www/cgi-bin/peer && exec httpd -f -p 80 -h /www"]
NO_FREE_PORTS = "0/2 nodes are available: 2 node(s) didn't have free ports for the requested pod ports."


@pytest.fixture(scope="module")
def lab(request):
    with nodes_lab(request, "hostport", 2) as cli:
        cli.run("apply", "-f", "-", input=yaml.safe_dump_all(
            [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}, pod_doc("hp-a")]))
        yield cli


def pod_doc(name):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS},
            "spec": {"terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "httpd", "image": "skiff/busybox:latest", "imagePullPolicy": "Never",
                                     "command": SERVER,
                                     "ports": [{"containerPort": 80, "hostPort": HOST_PORT}],
                                     "readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 1}}]}}


def get_pod(lab, name):
    return json.loads(lab.out("get", "po", name, "-n", NS, "-o", "json"))


def ready_node(lab, name):
    """The node of a Running, ready pod with an IP, else None."""
    p = get_pod(lab, name)
    st = p.get("status", {})
    ready = st.get("containerStatuses") and all(c.get("ready") for c in st["containerStatuses"])
    return p["spec"].get("nodeName") if st.get("phase") == "Running" and ready and st.get("podIP") else None


def peer_line(text):
    """The last line of /cgi-bin/peer's answer, with busybox httpd's IPv4-mapped client
    address ([::ffff:10.0.0.1]) as plain IPv4."""
    return re.sub(r"^\[::ffff:([0-9.]+)\]", r"\1", text.strip().splitlines()[-1])


def request(address, port=HOST_PORT, timeout_s=3.0):
    """'<client address> <pod name>' from /cgi-bin/peer, asked from this process's namespace."""
    with socket.create_connection((address, port), timeout=timeout_s) as s:
        s.sendall(b"GET /cgi-bin/peer HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    return peer_line(data.decode())


def request_from_node(lab, node, address, port=HOST_PORT):
    """request() run by this test's Python inside a node's network namespace."""
    code = ("import socket,sys; s=socket.create_connection((sys.argv[1], int(sys.argv[2])), 3); "
            "s.sendall(b'GET /cgi-bin/peer HTTP/1.0\\r\\n\\r\\n'); d=b''\n"
            "while True:\n c=s.recv(4096)\n if not c: break\n d+=c\n"
            "print(d.decode().strip().splitlines()[-1])")
    out = subprocess.run(["nsenter", f"--net={lab.plan.node(node).netns_path}", sys.executable, "-c", code,
                          address, str(port)], capture_output=True, text=True, timeout=20)
    return peer_line(out.stdout) if out.returncode == 0 and out.stdout.strip() else None


def answers(fn, *args):
    try:
        return fn(*args)
    except OSError:
        return None


def host_port_rules(lab, node, pod=""):
    """The node's hostPort rules (of one pod: its comment names it)."""
    out = subprocess.run(["nsenter", f"--net={lab.plan.node(node).netns_path}", "iptables-save", "-t", "nat"],
                         capture_output=True, text=True, check=True).stdout
    return [ln for ln in skiff_lines(out).splitlines()
            if "SKIFF-HP-" in ln and (not pod or f'"{NS}/{pod} hostPort' in ln)]


def other(node):
    return "node2" if node == "node1" else "node1"


def test_host_port_answers_on_the_nodes_address(lab):
    node = wait_until(lambda: ready_node(lab, "hp-a"), 120, "hp-a Running and ready")
    address = lab.plan.node(node).address
    # From the host over the lab network: the pod sees the host's own address (no SNAT).
    seen = wait_until(lambda: answers(request, address), 30, f"hostPort {HOST_PORT} on {node}")
    assert seen == f"{lab.plan.host_address} hp-a"
    # From the other node: its address, unchanged.
    peer = lab.plan.node(other(node))
    assert wait_until(lambda: request_from_node(lab, peer.name, address), 30, "from the other node") == \
        f"{peer.address} hp-a"
    # From the node itself (nat OUTPUT), to its own address.
    assert wait_until(lambda: request_from_node(lab, node, address), 30, "from the node itself").endswith(" hp-a")
    # The other node's address has no such port: nothing listens there.
    with pytest.raises(OSError):
        request(peer.address, timeout_s=2.0)
    rules = host_port_rules(lab, node)
    ip = get_pod(lab, "hp-a")["status"]["podIP"]
    assert any(f"-j DNAT --to-destination {ip}:80" in r for r in rules), rules


def test_hairpin_the_pod_reaches_its_own_host_port(lab):
    node = wait_until(lambda: ready_node(lab, "hp-a"), 60, "hp-a Running and ready")
    address = lab.plan.node(node).address
    script = f'printf "GET /cgi-bin/peer HTTP/1.0\\r\\n\\r\\n" | nc -w 3 {address} {HOST_PORT} | tail -n 1'
    out = wait_until(lambda: (lambda o: o.strip() and peer_line(o))(
        lab.out("exec", "-n", NS, "hp-a", "--", "sh", "-c", script, timeout=30)), 30, "hairpin answer")
    # Masqueraded to the node (the bridge's address), or the reply would bypass the DNAT.
    assert out.endswith(" hp-a") and not out.startswith(get_pod(lab, "hp-a")["status"]["podIP"] + " "), out


def test_the_same_host_port_goes_to_the_other_node_then_pending(lab):
    first = wait_until(lambda: ready_node(lab, "hp-a"), 60, "hp-a Running and ready")
    lab.run("apply", "-f", "-", input=yaml.safe_dump(pod_doc("hp-b")))
    second = wait_until(lambda: ready_node(lab, "hp-b"), 120, "hp-b Running and ready")
    assert second == other(first)
    address = lab.plan.node(second).address
    assert wait_until(lambda: answers(request, address), 30, f"hp-b on {second}").endswith(" hp-b")
    assert request(lab.plan.node(first).address).endswith(" hp-a")

    lab.run("apply", "-f", "-", input=yaml.safe_dump(pod_doc("hp-c")))

    def unschedulable():
        conds = [c for c in get_pod(lab, "hp-c").get("status", {}).get("conditions", [])
                 if c["type"] == "PodScheduled"]
        return conds[0] if conds and conds[0].get("status") == "False" else None
    cond = wait_until(unschedulable, 60, "hp-c refused by the scheduler")
    assert (cond["reason"], cond["message"]) == ("Unschedulable", NO_FREE_PORTS)
    assert not get_pod(lab, "hp-c")["spec"].get("nodeName")
    detail = "Rejected by: NodePorts: node1, node2 (node(s) didn't have free ports for the requested pod ports)."
    out = wait_until(lambda: (lambda o: detail in o and o)(lab.out("describe", "po", "hp-c", "-n", NS)), 30,
                     "the FailedScheduling detail in describe")
    assert "FailedScheduling" in out


def test_deleting_the_pod_removes_its_rules_and_frees_the_port(lab):
    node = wait_until(lambda: ready_node(lab, "hp-a"), 60, "hp-a Running and ready")
    assert len(host_port_rules(lab, node, "hp-a")) == 3    # the jump, the hairpin mark, the DNAT
    lab.run("delete", "po", "hp-a", "-n", NS, timeout=90)
    wait_until(lambda: not host_port_rules(lab, node, "hp-a"), 60, f"hp-a's rules gone from {node}")
    assert wait_until(lambda: ready_node(lab, "hp-c"), 120, "hp-c Running and ready") == node
    address = lab.plan.node(node).address
    assert wait_until(lambda: (answers(request, address) or "").endswith(" hp-c") or None, 30,
                      f"hp-c on {node}")
    lab.run("delete", "po", "hp-c", "-n", NS, timeout=90)
    wait_until(lambda: not host_port_rules(lab, node), 60, f"hp-c's rules gone from {node}")
    with pytest.raises(OSError):
        request(address, timeout_s=2.0)
