"""A Service through a node power cut, on both pod network backends (own labs: destructive).

A ClusterIP service has 3 endpoints, one per node; clients run on node1 and node2.
`skiff chaos kill-node node3` (the node of one endpoint): once the node is NotReady
(Ready=Unknown after the lab's 5 s grace period) the service answers every request
from the surviving endpoints and never from the dead pod, and node3's entries are
gone from the survivors' kernels (its podCIDR route; with vxlan also its neighbour and
FDB entry), so nothing is sent into a dead node. `skiff chaos start-node node3`: Ready
again, its entries are back on the survivors, and a new pod on node3 behind the same
service answers clients on both other nodes. Kernel state is read with nsenter in the
nodes' netns, as one would on the node's VM. Timings are printed, never asserted.
"""

import json
import subprocess
import threading
import time

import pytest
import yaml

from tests.e2e.conftest import nodes_lab
from tests.helpers import wait_until

NS = "svcchaos"
VICTIM = "node3"
SURVIVORS = ("node1", "node2")
# Each answer names the pod that served it: "<hostname> <pod IP>".
SERVER = ["sh", "-c", 'mkdir -p /www && echo "$(hostname) $POD_IP" > /www/index.html && exec httpd -f -p 8080 -h /www']


@pytest.fixture(scope="module", params=["host-gw", "vxlan"])
def lab(request):
    with nodes_lab(request, f"svcchaos-{request.param}", 3, network=request.param) as cli:
        yield cli


def server_spec(**extra):
    return {"terminationGracePeriodSeconds": 1, **extra,
            "containers": [{"name": "httpd", "image": "skiff/busybox:latest", "imagePullPolicy": "Never",
                            "command": SERVER,
                            "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}


def manifests():
    # One web pod per node, each pinned by its own single-replica Deployment: while node3 is
    # down its replacement stays Pending (no Ready node matches), so the survivors' answers
    # come only from the two pods that were there from the start.
    docs = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}]
    for i in (1, 2, 3):
        docs.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": f"web{i}", "namespace": NS},
                     "spec": {"replicas": 1, "selector": {"matchLabels": {"app": f"web{i}"}},
                              "template": {"metadata": {"labels": {"app": f"web{i}", "svc": "web"}},
                                           "spec": server_spec(nodeSelector={"kubernetes.io/hostname": f"node{i}"})}}})
    for i in (1, 2):
        docs.append({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": f"client{i}", "namespace": NS, "labels": {"app": "client"}},
                     "spec": {"nodeName": f"node{i}", "terminationGracePeriodSeconds": 1,
                              "containers": [{"name": "c", "image": "skiff/busybox:latest",
                                              "imagePullPolicy": "Never", "command": ["sleep", "100000"]}]}})
    docs.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": NS},
                 "spec": {"selector": {"svc": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})
    return docs


def pods(lab, selector):
    return json.loads(lab.out("get", "po", "-n", NS, "-l", selector, "-o", "json"))["items"]


def ready_web(lab):
    """{pod name: (node, IP)} of the Ready, not deleted pods behind the service."""
    out = {}
    for p in pods(lab, "svc=web"):
        st = p.get("status", {})
        if p["metadata"].get("deletionTimestamp") or not st.get("podIP"):
            continue
        if any(c["type"] == "Ready" and c["status"] == "True" for c in st.get("conditions", [])):
            out[p["metadata"]["name"]] = (p["spec"].get("nodeName"), st["podIP"])
    return out


def endpoint_ips(lab):
    ep = json.loads(lab.out("get", "endpoints", "web", "-n", NS, "-o", "json"))
    return {a["ip"] for s in ep.get("subsets", []) for a in s.get("addresses", [])}


def fetch(lab, client, ip, count, wait_s=2):
    """`count` requests in a row from pod `client`: one line per request, "FAIL" for a failed one."""
    script = (f'for i in $(seq {count}); do r=$(printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w {wait_s} {ip} 80 '
              '| tail -n 1); [ -n "$r" ] && echo "$r" || echo FAIL; done')
    out = lab.out("exec", "-n", NS, client, "--", "sh", "-c", script, timeout=30 + count * (wait_s + 1))
    return [line.strip() for line in out.splitlines() if line.strip()]


def nsenter(lab, node, *cmd):
    return subprocess.run(["nsenter", f"--net={lab.plan.node(node).netns_path}", *cmd], capture_output=True,
                          text=True, check=True).stdout


def entries_for(lab, observer, cidr, address):
    """What `observer`'s kernel holds towards the node with `cidr`/`address`: route lines,
    and with vxlan neighbour and FDB lines on skiff.1."""
    net = cidr.split("/")[0]
    found = [ln for ln in nsenter(lab, observer, "ip", "route").splitlines() if ln.startswith(cidr + " ")]
    if lab.backend == "vxlan":
        found += [ln for ln in nsenter(lab, observer, "ip", "neigh", "show", "dev", "skiff.1").splitlines()
                  if ln.split()[:1] == [net]]
        found += [ln for ln in nsenter(lab, observer, "bridge", "fdb", "show", "dev", "skiff.1").splitlines()
                  if f"dst {address} " in ln + " "]
    return found


def complete(lab, found):
    return len(found) == (3 if lab.backend == "vxlan" else 1)


def node_ready(lab, node):
    n = json.loads(lab.out("get", "node", node, "-o", "json"))
    return any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))


def test_service_survives_node_power_cut_and_node_comes_back(lab):
    lab.run("apply", "-f", "-", input=yaml.safe_dump_all(manifests()))
    wait_until(lambda: len(ready_web(lab)) == 3 and all(
        p.get("status", {}).get("phase") == "Running" for p in pods(lab, "app=client")) and len(pods(lab, "app=client"))
        == 2, 120, "3 web pods (one per node) and 2 clients running")
    web = ready_web(lab)
    assert sorted(node for node, _ in web.values()) == ["node1", "node2", "node3"], web
    dead_name, (_, dead_ip) = next((n, v) for n, v in web.items() if v[0] == VICTIM)
    ip = json.loads(lab.out("get", "svc", "web", "-n", NS, "-o", "json"))["spec"]["clusterIP"]
    wait_until(lambda: endpoint_ips(lab) == {v[1] for v in web.values()}, 30, "3 endpoints")
    wait_until(lambda: set(a.split()[0] for a in fetch(lab, "client1", ip, 30)) == set(web), 60,
               "all 3 endpoints answering client1")
    cidr = json.loads(lab.out("get", "node", VICTIM, "-o", "json"))["spec"]["podCIDR"]
    address = lab.plan.node(VICTIM).address
    for n in SURVIVORS:
        found = entries_for(lab, n, cidr, address)
        assert complete(lab, found), (n, found)

    # Power cut. The kernel entries are polled in a thread of their own (a batch of requests
    # can take seconds while one of them still goes to the dead pod).
    t_kill = time.monotonic()
    lab.out("chaos", "kill-node", VICTIM)
    seen = {}
    stop = threading.Event()

    def watch_kernel():
        while not stop.is_set() and not ("routes" in seen and "not_ready" in seen):
            if "not_ready" not in seen and not node_ready(lab, VICTIM):
                seen["not_ready"] = time.monotonic() - t_kill
            if "routes" not in seen and not any(entries_for(lab, n, cidr, address) for n in SURVIVORS):
                seen["routes"] = time.monotonic() - t_kill
            time.sleep(0.1)
    watcher = threading.Thread(target=watch_kernel, daemon=True)
    watcher.start()
    try:
        def only_survivors():
            answers = fetch(lab, "client1", ip, 5)
            return len(answers) == 5 and "FAIL" not in answers and not any(dead_ip in a for a in answers)
        wait_until(only_survivors, 60, "5 answers in a row, none from the dead pod")
        t_service = time.monotonic() - t_kill
        watcher.join(60)
    finally:
        stop.set()
    assert "routes" in seen, {n: entries_for(lab, n, cidr, address) for n in SURVIVORS}
    assert dead_ip not in endpoint_ips(lab)
    print(f"[{lab.backend}] kill-node -> {VICTIM} NotReady: {seen.get('not_ready', -1):.1f}s; its entries gone "
          f"from the survivors: {seen['routes']:.1f}s; service answering only from survivors: {t_service:.1f}s")
    assert not node_ready(lab, VICTIM)
    for client in ("client1", "client2"):
        answers = fetch(lab, client, ip, 30)
        assert len(answers) == 30 and "FAIL" not in answers, (client, answers)
        assert not any(dead_ip in a or a.startswith(dead_name) for a in answers), (client, answers)
        assert {a.split()[0] for a in answers} <= set(web) - {dead_name}, (client, answers)

    # Power back.
    t_start = time.monotonic()
    lab.out("chaos", "start-node", VICTIM, timeout=120)
    wait_until(lambda: node_ready(lab, VICTIM), 90, f"{VICTIM} Ready again")
    t_ready = time.monotonic() - t_start
    for n in SURVIVORS:
        wait_until(lambda n=n: complete(lab, entries_for(lab, n, cidr, address)), 20, f"{n}'s entries to {VICTIM} back")
    t_back = time.monotonic() - t_start
    print(f"[{lab.backend}] start-node -> Ready: {t_ready:.1f}s; routes back on the survivors: {t_back:.1f}s")
    # A new pod on the node behind the same service (its pinned replica comes back too).
    extra = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "extra", "namespace": NS,
                                                             "labels": {"svc": "web", "app": "extra"}},
             "spec": server_spec(nodeSelector={"kubernetes.io/hostname": VICTIM})}
    lab.run("apply", "-f", "-", input=yaml.safe_dump(extra))
    new_ip = wait_until(lambda: ready_web(lab).get("extra", (None, None))[1], 90, "the new pod on node3 Ready")
    assert ready_web(lab)["extra"][0] == VICTIM
    wait_until(lambda: new_ip in endpoint_ips(lab), 30, "the new pod among the endpoints")
    for client in ("client1", "client2"):
        def reached(client=client):
            return any(a.split()[0] == "extra" and a.split()[-1] == new_ip for a in fetch(lab, client, ip, 12))
        wait_until(reached, 60, f"{client} reaching the new pod on {VICTIM} through the service")
        answers = fetch(lab, client, ip, 20)
        assert len(answers) == 20 and "FAIL" not in answers, (client, answers)
