"""The multi-node lab on one host, through the CLI: namespaces, addresses and routes,
one Docker engine per node, the control plane on the lab network, node chaos, and a
`down` that leaves nothing behind. One lab for the module (it costs a few seconds);
its last test takes it down and checks that nothing of it is left.

The checks read the machine itself (/proc, iproute2, the engines' sockets), not the
lab's own bookkeeping.
"""

import json
import os
import random
import string
import subprocess
import sys

import docker
import pytest

from skiff import client as clientmod
from skiff.lab import netlab
from tests.e2e.conftest import Cli, skiff_argv
from tests.helpers import remove, temp_dir, wait_until

NETNS_DIR = "/var/run/netns"
pick_prefix_and_subnet = netlab.pick_free_prefix_and_subnet


class NodeLab:
    """A multi-node lab driven through the CLI, plus what a test needs to inspect it."""

    def __init__(self, tag: str, nodes: int = 2):
        self.root = temp_dir(tag)
        self.cli = Cli(os.path.join(self.root, "lab"), os.path.join(self.root, "config"))
        self.prefix, self.subnet = pick_prefix_and_subnet()
        self.nodes = nodes
        self.net = self.subnet.rsplit(".", 1)[0]      # "10.2xx.yy"
        self.run_dir = f"/run/{self.prefix}-lab"

    @property
    def lab_dir(self) -> str:
        return self.cli.lab_dir

    def up_argv(self, *extra) -> list[str]:
        return ["lab", "up", "--nodes", str(self.nodes), "--prefix", self.prefix,
                "--subnet", self.subnet, *extra]

    def up(self, *extra, timeout=240):
        return self.cli.run(*self.up_argv(*extra), timeout=timeout)

    def down(self, check=False):
        return self.cli.run("lab", "down", check=check, timeout=180)

    def state(self) -> dict:
        with open(os.path.join(self.lab_dir, "lab.json"), encoding="utf-8") as f:
            return json.load(f)

    def addr(self, host: int) -> str:
        return f"{self.net}.{host}"

    def socket(self, node: str) -> str:
        return f"{self.run_dir}/{node}/docker.sock"

    def netns(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def agents(self) -> bool:
        return bool(self.state().get("agents"))

    def dump_logs(self) -> None:
        logs = os.path.join(self.lab_dir, "logs")
        for name in sorted(os.listdir(logs)) if os.path.isdir(logs) else []:
            with open(os.path.join(logs, name), errors="replace") as f:
                print(f"----- {name} -----\n{f.read()[-3000:]}")

    def close(self) -> None:
        self.down()
        remove(self.root)

    # ------------------------------------------------------------ independent checks

    def leftovers(self) -> dict:
        """Everything on this machine that belongs to this lab; empty when it is gone."""
        ns = [n for n in (os.listdir(NETNS_DIR) if os.path.isdir(NETNS_DIR) else [])
              if n.startswith(self.prefix + "-")]
        links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True,
                               text=True).stdout
        link = [ln.split(":")[1].strip().split("@")[0] for ln in links.splitlines()
                if ln.split(":")[1].strip().split("@")[0].startswith(self.prefix + "-")]
        return {"netns": ns, "links": link, "processes": self.processes(),
                "mounts": self.mounts(),
                "dirs": [d for d in (self.run_dir, self.lab_dir) if os.path.exists(d)]}

    def processes(self, paths=None) -> list[str]:
        """Processes whose command line names a path of this lab (or of `paths`)."""
        paths = paths or [self.run_dir + "/", self.lab_dir + "/"]
        me = os.getpid()
        out = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == me:
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if any(p in cmd for p in paths) and "pytest" not in cmd:
                out.append(f"{entry}: {cmd[:160]}")
        return out

    def mounts(self) -> list[str]:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            points = [line.split()[4] for line in f]
        return [m for m in points if m.startswith((self.run_dir, self.lab_dir))]


def in_netns(ns: str, *argv, timeout=20) -> subprocess.CompletedProcess:
    return subprocess.run(["nsenter", f"--net={NETNS_DIR}/{ns}", *argv], capture_output=True,
                          text=True, timeout=timeout)


def ip_json(ns: str, *args):
    r = subprocess.run(["ip", "-j", "-n", ns, *args], capture_output=True, text=True, check=True)
    return json.loads(r.stdout or "[]")


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b") ", 1)[1][:1] not in (b"Z", b"X")
    except OSError:
        return False


def engine(lab: NodeLab, node: str) -> docker.DockerClient:
    return docker.DockerClient(base_url="unix://" + lab.socket(node), timeout=30)


def engine_answers(sock: str) -> bool:
    if not os.path.exists(sock):
        return False
    try:
        c = docker.DockerClient(base_url="unix://" + sock, timeout=2)
        try:
            return c.ping()
        finally:
            c.close()
    except Exception:  # noqa: BLE001 - not yet
        return False


def connect_from(ns: str, address: str, port: int) -> subprocess.CompletedProcess:
    """A TCP connect from inside a namespace (the test's own Python, run with nsenter)."""
    code = ("import socket,sys; s=socket.create_connection((sys.argv[1], int(sys.argv[2])), 3); "
            "print(s.getsockname()[0])")
    return in_netns(ns, sys.executable, "-c", code, address, str(port))


def node_conditions(lab: NodeLab) -> dict:
    items = json.loads(lab.cli.out("get", "nodes", "-o", "json"))["items"]
    return {n["metadata"]["name"]: {c["type"]: c["status"] for c in n["status"].get("conditions", [])}
            for n in items}


NOTHING = {"netns": [], "links": [], "processes": [], "mounts": [], "dirs": []}


@pytest.fixture(scope="module")
def lab(request):
    nl = NodeLab("lab", nodes=2)
    try:
        nl.up_output = nl.up().stdout
    except BaseException:
        nl.dump_logs()
        nl.close()
        raise
    yield nl
    if request.session.testsfailed:
        nl.dump_logs()
    nl.close()


def test_up_prints_a_summary(lab):
    out = lab.up_output
    assert "skiff lab is up" in out
    for host in (11, 12, 13):
        assert f"{lab.addr(host)}:7100" in out
    assert f"node1 {lab.addr(21)}" in out and f"node2 {lab.addr(22)}" in out
    assert "(leader)" in out and lab.cli.config in out and "phases" in out


def test_namespaces_addresses_routes_and_forwarding(lab):
    gateway = lab.addr(254)
    bridge = ip_json(lab.netns("lab"), "addr", "show", "skiff0")[0]
    assert [(a["local"], a["prefixlen"]) for a in bridge["addr_info"] if a["family"] == "inet"] \
        == [(gateway, 24)]
    host = json.loads(subprocess.run(["ip", "-j", "addr", "show", f"{lab.prefix}-host"],
                                     capture_output=True, text=True, check=True).stdout)[0]
    assert [a["local"] for a in host["addr_info"] if a["family"] == "inet"] == [lab.addr(1)]
    machines = {"cp1": 11, "cp2": 12, "cp3": 13, "node1": 21, "node2": 22}
    for name, host_part in machines.items():
        ns = lab.netns(name)
        assert os.path.exists(f"{NETNS_DIR}/{ns}")
        eth0 = ip_json(ns, "addr", "show", "eth0")[0]
        assert [a["local"] for a in eth0["addr_info"] if a["family"] == "inet"] == [lab.addr(host_part)]
        assert "UP" in eth0["flags"]
        assert "UP" in ip_json(ns, "link", "show", "lo")[0]["flags"]
        assert [r["gateway"] for r in ip_json(ns, "route", "show", "default")] == [gateway]
        forward = in_netns(ns, "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip()
        assert forward == ("1" if name.startswith("node") else "0"), name


def test_each_node_has_its_own_engine_running_containers(lab):
    state = lab.state()
    for node in ("node1", "node2"):
        pid = state["nodes"][node]["enginePid"]
        # dockerd really runs in the node's network namespace
        assert os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"{NETNS_DIR}/{lab.netns(node)}").st_ino
        c = engine(lab, node)
        try:
            tags = {t for img in c.images.list() for t in img.tags}
            assert {"skiff/busybox:latest", "skiff/pause:latest"} <= tags
            out = c.containers.run("skiff/busybox:latest", ["echo", f"hello from {node}"],
                                   network_mode="none", remove=True, name=f"skiff-e2e-{node}")
            assert out == f"hello from {node}\n".encode()
        finally:
            c.close()


def test_host_reaches_the_control_plane_on_the_lab_network(lab):
    servers = [f"{lab.addr(h)}:7100" for h in (11, 12, 13)]
    assert clientmod.resolve_endpoints(config_path=lab.cli.config) == servers
    status = lab.cli.out("cluster", "status")
    for s in servers:
        assert s in status
    assert status.count(" yes") == 3 and "leader" in status


def test_nodes_reach_the_control_plane_and_each_other(lab):
    for node, own in (("node1", 21), ("node2", 22)):
        for cp in (11, 12, 13):
            r = connect_from(lab.netns(node), lab.addr(cp), 7100)
            assert r.returncode == 0, r.stderr
            assert r.stdout.strip() == lab.addr(own)     # from the node's own address
    r = in_netns(lab.netns("node1"), "busybox", "ping", "-c", "1", "-W", "2", lab.addr(22))
    assert r.returncode == 0, r.stdout + r.stderr


def test_status_lists_replicas_and_nodes(lab):
    out = lab.cli.out("lab", "status")
    for name, host_part in (("cp1", 11), ("cp2", 12), ("cp3", 13), ("node1", 21), ("node2", 22)):
        line = next(ln for ln in out.splitlines() if ln.split()[:1] == [name])
        assert lab.netns(name) in line and lab.addr(host_part) in line and "running" in line, line
    assert "leader" in out


def test_nodes_are_registered_and_ready(lab):
    if not lab.agents():
        pytest.skip("skiff-agent is not installed: the lab ran without agents")
    items = json.loads(lab.cli.out("get", "nodes", "-o", "json"))["items"]
    got = {n["metadata"]["name"]: n for n in items}
    assert sorted(got) == ["node1", "node2"]
    for name, host_part in (("node1", 21), ("node2", 22)):
        status = got[name]["status"]
        assert {"type": "InternalIP", "address": lab.addr(host_part)} in status["addresses"]
        assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "True"


def test_kill_agent_leaves_the_engine_and_start_agent_brings_it_back(lab):
    if not lab.agents():
        pytest.skip("skiff-agent is not installed: the lab ran without agents")
    c = engine(lab, "node1")
    try:
        survivor = c.containers.run("skiff/busybox:latest", ["sleep", "600"], network_mode="none",
                                    detach=True, name="skiff-e2e-survivor")
        old = lab.state()["nodes"]["node1"]["agentPid"]
        assert pid_alive(old)
        assert "killed the agent of node1" in lab.cli.out("chaos", "kill-agent", "node1")
        assert not pid_alive(old)
        assert pid_alive(lab.state()["nodes"]["node1"]["enginePid"])
        survivor.reload()
        assert survivor.status == "running"
        lab.cli.out("chaos", "start-agent", "node1")
        new = lab.state()["nodes"]["node1"]["agentPid"]
        assert new != old and pid_alive(new)
        wait_until(lambda: node_conditions(lab)["node1"]["Ready"] == "True", 30, "node1 Ready")
    finally:
        c.containers.get("skiff-e2e-survivor").remove(force=True)
        c.close()


def test_lab_load_streams_an_archive_to_every_node(lab, tmp_path):
    from skiff import client as clientmod
    if not lab.agents() or not hasattr(clientmod.Client, "load_image"):
        pytest.skip("needs the agents and Client.load_image (the API's LoadImage)")
    tag = "skiff/loadtest:" + "".join(random.choices(string.ascii_lowercase, k=6))
    archive = tmp_path / "loadtest.tar"
    c1 = engine(lab, "node1")
    try:
        c1.images.get("skiff/busybox:latest").tag(tag)
        with open(archive, "wb") as f:
            for chunk in c1.api.get_image(tag):
                f.write(chunk)
        c1.images.remove(tag)
    finally:
        c1.close()
    out = lab.cli.out("lab", "load", str(archive))
    assert out.count(tag) == 2, out
    for node in ("node1", "node2"):
        c = engine(lab, node)
        try:
            assert tag in {t for img in c.images.list() for t in img.tags}, node
            c.images.remove(tag)
        finally:
            c.close()

    # An image of this host's own engine (here DOCKER_HOST points the SDK at node1's).
    def load(*args, docker_host):
        return subprocess.run(skiff_argv() + ["lab", "load", *args], capture_output=True,
                              text=True, timeout=120,
                              env=dict(lab.cli.env, DOCKER_HOST=docker_host))
    c1 = engine(lab, "node1")
    try:
        c1.images.get("skiff/busybox:latest").tag(tag)
        r = load(tag, "--node", "node2", docker_host="unix://" + lab.socket("node1"))
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.startswith("node2: loaded") and tag in r.stdout and "node1" not in r.stdout
        c1.images.remove(tag)
    finally:
        c1.close()
    c2 = engine(lab, "node2")
    try:
        assert tag in {t for img in c2.images.list() for t in img.tags}
        c2.images.remove(tag)
    finally:
        c2.close()
    r = load("skiff/no-such:1", docker_host="unix://" + lab.socket("node1"))
    assert r.returncode == 1 and "not an image of this host's Docker engine" in r.stderr, r.stderr
    r = load("skiff/no-such:1", docker_host=f"unix://{lab.run_dir}/no-engine.sock")
    assert r.returncode == 1 and "this host has no Docker engine" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    r = lab.cli.run("lab", "load", str(tmp_path / "skiff-no-such.tar"), check=False)
    assert r.returncode == 1 and "skiff-no-such.tar" in r.stderr


def test_kill_node_is_a_power_cut_and_start_node_restores_it(lab):
    marker = str(random.randint(400000, 499999))
    node2_paths = [f"{lab.run_dir}/node2/", f"{lab.lab_dir}/node2/"]
    c = engine(lab, "node2")
    try:
        plain = c.containers.run("skiff/busybox:latest", ["sleep", marker], network_mode="none",
                                 detach=True, name="skiff-e2e-plain")
        forked = c.containers.run("skiff/busybox:latest",
                                  ["sh", "-c", f"sleep {marker}1 & sleep {marker}2"],
                                  network_mode="none", detach=True, name="skiff-e2e-forked")
        plain.reload()
        forked.reload()
    finally:
        c.close()
    pids = [plain.attrs["State"]["Pid"], forked.attrs["State"]["Pid"]]
    state = lab.state()["nodes"]["node2"]
    engine_pid = state["enginePid"]
    assert all(pid_alive(p) for p in pids + [engine_pid])
    assert lab.processes(node2_paths)            # dockerd, containerd, shims
    assert len(lab.processes([f"sleep {marker}"])) >= 3

    out = lab.cli.out("chaos", "kill-node", "node2")
    assert "killed node node2" in out
    assert lab.processes(node2_paths) == []
    assert lab.processes([f"sleep {marker}"]) == []
    assert not any(pid_alive(p) for p in pids + [engine_pid])
    if "agentPid" in state:
        assert not pid_alive(state["agentPid"])
    port = ip_json(lab.netns("lab"), "link", "show", "node2")[0]
    assert "UP" not in port["flags"]
    r = in_netns(lab.netns("node1"), "busybox", "ping", "-c", "1", "-W", "1", lab.addr(22))
    assert r.returncode != 0                     # the cable is pulled
    assert engine_answers(lab.socket("node1"))   # the other node is untouched
    assert "node2" in lab.cli.out("lab", "status").split("nodes:")[1]

    out = lab.cli.out("chaos", "start-node", "node2")
    assert "started node node2" in out
    assert "UP" in ip_json(lab.netns("lab"), "link", "show", "node2")[0]["flags"]
    c = engine(lab, "node2")
    try:
        for name in ("skiff-e2e-plain", "skiff-e2e-forked"):
            try:
                assert c.containers.get(name).status != "running"   # died with the power
            except docker.errors.NotFound:
                pass                                                # or the agent cleaned it up
        out = c.containers.run("skiff/busybox:latest", ["echo", "back"], network_mode="none",
                               remove=True)
        assert out == b"back\n"
        for name in ("skiff-e2e-plain", "skiff-e2e-forked"):
            try:
                c.containers.get(name).remove(force=True)
            except docker.errors.NotFound:
                pass
    finally:
        c.close()
    r = in_netns(lab.netns("node1"), "busybox", "ping", "-c", "1", "-W", "2", lab.addr(22))
    assert r.returncode == 0
    if lab.agents():
        assert pid_alive(lab.state()["nodes"]["node2"]["agentPid"])
        wait_until(lambda: node_conditions(lab)["node2"]["Ready"] == "True", 60, "node2 Ready again")


def test_kill_and_start_a_replica_in_its_namespace(lab):
    def roles():
        out = lab.cli.out("cluster", "status")
        return {ln.split()[0]: ln.split()[2] for ln in out.splitlines()[1:] if ln.startswith("cp")}

    leader = next(n for n, r in roles().items() if r == "leader")
    pid = lab.state()["controlplane"]["pids"][leader]
    assert f"killed control-plane replica {leader}" in lab.cli.out("chaos", "kill-controlplane", "leader")
    assert not pid_alive(pid)
    wait_until(lambda: "leader" in [r for n, r in roles().items() if n != leader], 20, "a new leader")
    lab.cli.out("create", "-f", "-", input="apiVersion: v1\nkind: ConfigMap\n"
                "metadata: {name: skiff-after-kill}\n")
    lab.cli.out("chaos", "start-controlplane", leader)
    new = lab.state()["controlplane"]["pids"][leader]
    assert os.stat(f"/proc/{new}/ns/net").st_ino == os.stat(f"{NETNS_DIR}/{lab.netns(leader)}").st_ino
    wait_until(lambda: lab.cli.out("cluster", "status").count(" yes") == 3, 30, "all replicas back")
    lab.cli.out("delete", "cm", "skiff-after-kill")


def test_a_second_lab_cannot_take_the_same_names_or_subnet(lab):
    other = temp_dir("lab-other")
    try:
        cli = Cli(os.path.join(other, "lab"), os.path.join(other, "config"))
        _, free_subnet = pick_prefix_and_subnet()
        same_prefix = cli.run("lab", "up", "--nodes", "1", "--prefix", lab.prefix,
                              "--subnet", free_subnet, check=False)
        assert same_prefix.returncode == 1 and "already exist" in same_prefix.stderr
        same_subnet = cli.run("lab", "up", "--nodes", "1", "--prefix", "skiff-zz" + lab.prefix[-2:],
                              "--subnet", lab.subnet, check=False)
        assert same_subnet.returncode == 1 and "overlaps" in same_subnet.stderr
        assert not os.path.exists(cli.lab_dir)
    finally:
        remove(other)
    assert lab.cli.out("cluster", "status").count(" yes") == 3


def test_down_removes_everything(lab):
    before = lab.leftovers()
    assert before["netns"] and before["processes"] and before["dirs"]
    out = lab.cli.out("lab", "down", timeout=180)
    assert "removed" in out
    assert lab.leftovers() == NOTHING
    assert not os.path.exists(lab.cli.config)
