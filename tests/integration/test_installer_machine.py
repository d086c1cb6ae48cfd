"""deploy/install.sh run for real inside a lab machine, twice (root; CI runs as root).

The machine: network namespace skiff-in<rand> with one address (its private network),
its own hostname (UTS namespace), and its own mount namespace where /etc and /var/lib
are overlays over the host's (upper dirs in a temp dir): the installer writes the real
paths (/etc/skiff, /var/lib/skiff, /etc/systemd/system, /etc/hosts, ...), the host's
files never change, and the upper dirs show exactly what was written. No systemd is
PID 1 here, so the installer runs the units through the unit runner (ExecStart exactly).

Asserted: the first run starts a replica that answers on the advertise address with the
unit's ExecStart as its command line, fixes the 127.0.1.1 line; TLS is on: the replica
answers the admin certificate of the admin config the installer wrote in the join
directory and refuses plain TCP and a certificate from a foreign CA, and a join token is
published there; the second run with the same inputs writes nothing (every file's inode
and mtime unchanged, no certificate re-issued, no new token) and restarts nothing (same
pid); a changed input rewrites exactly that file and restarts the replica; an address
not bound on the machine is refused before anything is written. The agent role joins
with the published token (CA pinned by digest, CSR) and gets skiff:node:<name>.
"""

import os
import shlex
import subprocess
import sys
import uuid

import pytest

from tests.helpers import remove, temp_dir

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root (netns, mounts)")]

UNIT = "skiff-controlplane.service"
AGENT_UNIT = "skiff-agent.service"


def sh(*argv, check=True, **kw):
    r = subprocess.run(list(argv), capture_output=True, text=True, **kw)
    if check:
        assert r.returncode == 0, f"{' '.join(argv)} -> {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


class Machine:
    def __init__(self):
        self.ns = f"skiff-in{uuid.uuid4().hex[:6]}"
        third = int(uuid.uuid4().hex[:2], 16) % 200 + 20
        self.address = f"10.203.{third}.11"
        self.host_address = f"10.203.{third}.1"
        self.tmp = temp_dir("installer")
        self.join_dir = os.path.join(self.tmp, "join")
        self.holder = None

    def up(self):
        sh("ip", "netns", "add", self.ns)
        sh("ip", "-n", self.ns, "link", "set", "lo", "up")
        # The machine's NIC: a veth whose other end (named like the netns) is in the host's
        # namespace with .1, like a host-only network: the test reaches the API directly.
        sh("ip", "link", "add", self.ns, "type", "veth", "peer", "name", "eth0", "netns", self.ns)
        sh("ip", "addr", "add", f"{self.host_address}/24", "dev", self.ns)
        sh("ip", "link", "set", self.ns, "up")
        sh("ip", "-n", self.ns, "addr", "add", f"{self.address}/24", "dev", "eth0")
        sh("ip", "-n", self.ns, "link", "set", "eth0", "up")
        mounts = []
        for target, tag in (("/etc", "etc"), ("/var/lib", "varlib")):
            upper, work = os.path.join(self.tmp, "upper", tag), os.path.join(self.tmp, "work", tag)
            os.makedirs(upper)
            os.makedirs(work)
            mounts.append(f"mount -t overlay overlay -o lowerdir={target},upperdir={upper},workdir={work} {target}")
        script = " && ".join(mounts + [
            "hostname cp1",
            "printf '127.0.0.1\\tlocalhost\\n127.0.1.1\\tcp1 cp1\\n::1\\tlocalhost ip6-localhost\\n' > /etc/hosts",
            "echo ready", "exec sleep 3600"])
        self.holder = subprocess.Popen(
            # nsenter --net, not `ip netns exec`: the latter remounts /sys, hiding the cgroup
            # mounts dockerd needs (docs/networking.md); the lab's nodes do the same.
            ["nsenter", f"--net=/var/run/netns/{self.ns}", "unshare", "--mount", "--uts",
             "--propagation", "private", "sh", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.holder.stdout.readline()   # blocks until the mounts are done (or it died)
        assert line.strip() == "ready", f"lab machine setup failed: {self.holder.stderr.read()}"

    def run(self, *argv, check=True):
        """argv inside the machine (its network, mount and UTS namespaces)."""
        return sh("nsenter", "-t", str(self.holder.pid), "-m", "-u", "-n", "--", *argv, check=check)

    def install(self, *extra, role="controlplane", name="cp1", check=True):
        return self.run("bash", os.path.join(ROOT, "deploy/install.sh"), "--no-packages",
                        "--python", sys.executable, "--role", role, "--name", name,
                        "--address", self.address, "--controlplanes", f"cp1={self.address}",
                        "--join-dir", self.join_dir, "--kernel-modules", "skip", *extra, check=check)

    def upper(self, path):
        """Where a file the installer wrote under /etc or /var/lib lands on the host."""
        for prefix, tag in (("/etc/", "etc"), ("/var/lib/", "varlib")):
            if path.startswith(prefix):
                return os.path.join(self.tmp, "upper", tag, path[len(prefix):])
        raise ValueError(path)

    def snapshot(self):
        """path -> (inode, mtime_ns, mode) of every file the installer made (runner state aside)."""
        out = {}
        for base in (os.path.join(self.tmp, "upper"), self.join_dir):
            for dirpath, _, names in os.walk(base):
                for n in names:
                    p = os.path.join(dirpath, n)
                    if "/runner/" in p or "/skiff/controlplane/" in p:   # runner logs, Raft data
                        continue
                    st = os.lstat(p)
                    out[p] = (st.st_ino, st.st_mtime_ns, st.st_mode)
        return out

    def pid(self, unit=UNIT):
        r = self.run("cat", f"/var/lib/skiff/runner/{unit}.pid", check=False)
        return int(r.stdout.split()[0]) if r.returncode == 0 else None

    def admin_yaml(self):
        with open(os.path.join(self.join_dir, "admin.yaml"), encoding="utf-8") as f:
            return f.read()

    def client(self, **kw):
        from skiff import client as clientmod
        from skiff.install import join
        return clientmod.Client([f"{self.address}:7100"], tls=join.admin_credentials(self.admin_yaml()), **kw)

    def wait_api(self, timeout_s=60):
        code = ("import sys; from skiff.install import join; "
                f"tls = join.admin_credentials(open('{self.join_dir}/admin.yaml').read()); "
                f"join.wait_for_agent(None, ['{self.address}:7100'], {timeout_s}, False, say=lambda m: None, tls=tls)")
        r = self.run(sys.executable, "-c", code, check=False)
        if r.returncode != 0:
            log = self.run("cat", f"/var/lib/skiff/runner/{UNIT}.log", check=False).stdout
            pytest.fail(f"replica did not answer on {self.address}:7100: {r.stderr[-2000:]}\n--- log ---\n{log[-3000:]}")

    def down(self):
        if self.holder is not None and self.holder.poll() is None:
            for unit in (AGENT_UNIT, UNIT):
                self.run(sys.executable, "-m", "skiff.install.runner", "stop", unit, check=False)
            self.holder.kill()
            self.holder.wait()
        sh("ip", "netns", "del", self.ns, check=False)   # takes the veth (both ends) with it
        remove(self.tmp)


@pytest.fixture
def machine():
    m = Machine()
    try:
        m.up()
        yield m
    finally:
        m.down()


def test_install_twice_second_run_is_a_noop(machine):
    os.environ.setdefault("PYTHONPATH", ROOT)
    first = machine.install()
    out = first.stdout
    assert "wrote /etc/skiff/controlplane.yaml" in out and f"started {UNIT}" in out, out
    assert "nothing to do" not in out
    machine.wait_api()
    pid = machine.pid()
    assert pid
    # The runner ran the unit's ExecStart line exactly.
    with open(machine.upper(f"/etc/systemd/system/{UNIT}"), encoding="utf-8") as f:
        exec_start = next(line.split("=", 1)[1] for line in f if line.startswith("ExecStart="))
    cmdline = machine.run("cat", f"/proc/{pid}/cmdline").stdout.split("\0")[:-1]
    assert cmdline == shlex.split(exec_start)
    with open(machine.upper("/etc/hosts"), encoding="utf-8") as f:
        hosts = f.read()
    assert "127.0.1.1" not in hosts and f"{machine.address}\tcp1" in hosts
    assert os.stat(machine.upper("/etc/skiff/raft-password")).st_mode & 0o777 == 0o600
    assert os.stat(machine.upper("/etc/skiff/controlplane.env")).st_mode & 0o777 == 0o600
    assert os.path.exists(os.path.join(machine.join_dir, "admin.yaml"))
    assert_tls_only(machine)
    with open(os.path.join(machine.join_dir, "join-token"), encoding="utf-8") as f:
        token = f.read().strip()
    assert token.startswith("SKIFF1-") and f"wrote {machine.join_dir}/join-token" in out, out
    for secret in ("pki/ca.key", "pki/cp1.key", "encryption-config.yaml", "sa.key", "admin.yaml"):
        assert os.stat(machine.upper(f"/etc/skiff/{secret}")).st_mode & 0o777 == 0o600, secret
    assert os.stat(os.path.join(machine.join_dir, "controlplane")).st_mode & 0o777 == 0o700

    before = machine.snapshot()
    second = machine.install()
    assert "nothing to do" in second.stdout, second.stdout
    assert "wrote" not in second.stdout and "started" not in second.stdout, second.stdout
    assert machine.snapshot() == before
    assert machine.pid() == pid

    # One changed input: exactly its file, and the replica restarts onto it.
    third = machine.install("--network", "vxlan")
    wrote = sorted(line.split()[-1] for line in third.stdout.splitlines() if line.startswith("installer: wrote"))
    assert wrote == ["/etc/skiff/controlplane.yaml"], third.stdout
    assert f"restarted {UNIT}" in third.stdout
    after = machine.snapshot()
    changed = sorted(p for p in after if after[p] != before.get(p))
    assert changed == [machine.upper("/etc/skiff/controlplane.yaml")]
    machine.wait_api()
    assert machine.pid() not in (None, pid)


def assert_tls_only(machine):
    """The replica serves mTLS only: the admin's certificate gets answers; plain TCP and a
    foreign CA's certificate do not (the handshake fails: UNAVAILABLE)."""
    from skiff import client as clientmod
    from skiff.pki import certs
    from skiff.pki.tls import Credentials
    c = machine.client()
    try:
        assert c.get("namespaces", "default").metadata.name == "default"
    finally:
        c.close()
    ca, ca_key = certs.create_ca()
    cert, key = certs.issue(ca, ca_key, common_name="skiff:admin", groups=("system:masters",))
    for tls in (None, Credentials(ca=ca, cert=cert, key=key)):
        c = clientmod.Client([f"{machine.address}:7100"], tls=tls, call_timeout_s=2.0, failover_budget_s=2.0)
        try:
            with pytest.raises(clientmod.ApiError):
                c.get("namespaces", "default")
        finally:
            c.close()


def test_address_not_on_the_machine_is_refused_before_writing(machine):
    os.environ.setdefault("PYTHONPATH", ROOT)
    r = machine.run("bash", os.path.join(ROOT, "deploy/install.sh"), "--no-packages",
                    "--python", sys.executable, "--role", "controlplane", "--name", "cp1",
                    "--address", "10.203.254.99", "--controlplanes", "cp1=10.203.254.99",
                    "--kernel-modules", "skip", check=False)
    assert r.returncode == 2 and "10.203.254.99 is not an address of this machine" in r.stderr, r.stderr
    assert not os.path.exists(machine.upper("/etc/skiff"))


def test_agent_installed_on_the_machine_runs_pods_that_survive_its_restart(machine):
    """The agent role through the same path: its unit (run by the runner) registers the
    Node with the advertise address and runs a pod; a changed agent input restarts the
    agent only (KillMode=process): the pod's container keeps running and is adopted."""
    from nodeagent.runtime import labels as L
    from skiff import client as clientmod
    from skiff.api import codec
    from skiff.api import objects_pb2 as pb
    from skiff.lab import images
    from tests.dockerd import PrivateDockerd
    from tests.helpers import wait_until

    os.environ.setdefault("PYTHONPATH", ROOT)
    machine.install()
    machine.wait_api()
    # The engine in the machine's namespaces (as on a VM): the agent's bind-mount sources
    # under /var/lib/skiff exist only in the machine's mount namespace.
    engine = PrivateDockerd(["nsenter", "-t", str(machine.holder.pid), "-m", "-u", "-n", "--"]).start()
    c = machine.client()
    try:
        agent_args = ("--docker-host", engine.host, "--dns-upstream", "")
        first = machine.install(*agent_args, role="agent", name="node1")
        assert f"started {AGENT_UNIT}" in first.stdout and "wrote /etc/skiff/agent.yaml" in first.stdout
        # It joined with the published token: its own key and a certificate for its node identity.
        wait_until(lambda: os.path.exists(machine.upper("/etc/skiff/pki/node1.crt")), 60, "node1 joined")
        with open(machine.upper("/etc/skiff/pki/node1.crt"), "rb") as f:
            from skiff.pki import certs
            assert certs.subject(f.read()) == ("skiff:node:node1", ("skiff:nodes",))

        def ready():
            node = c.get("nodes", "node1")
            ok = any(cd.type == "Ready" and cd.status == "True" for cd in node.status.conditions)
            return node if ok else None
        node = wait_until(ready, 90, "node1 Ready")
        assert [a.address for a in node.status.addresses if a.type == "InternalIP"] == [machine.address]

        again = machine.install(*agent_args, role="agent", name="node1")
        assert "nothing to do" in again.stdout, again.stdout

        c.create(pb.Namespace(metadata=pb.ObjectMeta(name="inst")))
        c.create(codec.decode(pb.Pod, {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "inst"},
            "spec": {"containers": [{"name": "c", "image": images.BUSYBOX_IMAGE, "imagePullPolicy": "IfNotPresent",
                                     "command": ["sleep", "3600"]}]}}))
        try:
            pod = wait_until(lambda: (lambda p: p if p.status.phase == "Running" else None)(
                c.get("pods", "p", "inst")), 90, "pod inst/p Running")
        except AssertionError:
            log = machine.run("cat", f"/var/lib/skiff/runner/{AGENT_UNIT}.log", check=False).stdout
            pytest.fail(f"pod not running: {c.get('pods', 'p', 'inst')}\n--- agent log ---\n{log[-4000:]}")
        assert pod.spec.node_name == "node1" and pod.status.pod_ip

        def app_containers():
            return [x for x in engine.client.containers.list(filters={"label": [f"{L.POD_UID}={pod.metadata.uid}",
                                                                              f"{L.CONTAINER_NAME}=c"]})]
        before = app_containers()
        assert len(before) == 1
        agent_pid = machine.pid(AGENT_UNIT)

        changed = machine.install("--docker-host", engine.host, "--dns-upstream", machine.host_address,
                                  role="agent", name="node1")
        wrote = sorted(line.split()[-1] for line in changed.stdout.splitlines() if line.startswith("installer: wrote"))
        assert wrote == ["/etc/skiff/agent.yaml"], changed.stdout
        assert f"restarted {AGENT_UNIT}" in changed.stdout and "restarted skiff-controlplane" not in changed.stdout
        assert machine.pid(AGENT_UNIT) not in (None, agent_pid)
        after = app_containers()
        assert [x.id for x in after] == [before[0].id]       # the same container, still running
        wait_until(lambda: "event=agent_started" in machine.run(
            "cat", f"/var/lib/skiff/runner/{AGENT_UNIT}.log").stdout.split("event=agent_stopping")[-1],
            60, "the new agent to start")
        pod = c.get("pods", "p", "inst")
        assert pod.status.phase == "Running"
        assert [cs.restart_count for cs in pod.status.container_statuses] == [0]
    finally:
        c.close()
        machine.run(sys.executable, "-m", "skiff.install.runner", "stop", AGENT_UNIT, check=False)
        engine.stop()
