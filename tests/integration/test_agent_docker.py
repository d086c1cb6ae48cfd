"""The node agent with a real Docker engine and a real control plane (loopback).

The module starts its own dockerd (everything under a skiff-dockerd-* temp dir,
no bridge, no iptables; its HTTP(S) proxy points at a closed port on 127.0.0.1 so
an image pull fails at once instead of leaving the machine), loads the lab's
images, starts a 3-replica control plane and runs `skiff-agent --config` as a real
process. Tests drive it through the API only (pods are created with
spec.nodeName set: no scheduler is involved) and check the results through the API
and, read-only, through the engine.
"""

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
import yaml

from nodeagent.runtime import labels as L
from skiff import client as clientmod
from skiff.api import codec
from skiff.api import objects_pb2 as pb
from skiff.lab import grpcimage, images
from tests.dockerd import PrivateDockerd, unmount_below
from tests.helpers import free_port_block, remove, temp_dir, wait_until

pytestmark = pytest.mark.integration

NODE = "skiff-it-node"
BUSYBOX = images.BUSYBOX_IMAGE


# ------------------------------------------------------------------ the engine


@pytest.fixture(scope="module")
def engine():
    eng = PrivateDockerd().start()
    yield eng
    eng.stop()


# ------------------------------------------------------------------ the agent


class AgentProcess:
    """`skiff-agent --config FILE` as a real process, killed only by its pid."""

    def __init__(self, cluster, engine, base):
        self.base = base
        self.config_path = os.path.join(base, "agent.yaml")
        self.log_path = os.path.join(base, "agent.log")
        self.data_dir = os.path.join(base, "data")
        self.port = free_port_block(1)
        cfg = {
            "nodeName": NODE, "servers": list(cluster.endpoints), "address": "127.0.0.1",
            "listen": f"127.0.0.1:{self.port}", "dockerHost": engine.host, "dataDir": self.data_dir,
            "nodeLeaseDurationS": 2, "restartBackoffBaseS": 1, "restartBackoffCapS": 4, "resyncS": 2,
            **cluster.node_tls(NODE, "127.0.0.1"),
        }
        with open(self.config_path, "w", encoding="utf-8") as f:
            yaml.safe_dump(cfg, f)
        self.proc = None

    def start(self):
        script = os.path.join(os.path.dirname(sys.executable), "skiff-agent")
        argv = [script] if os.path.exists(script) else [sys.executable, "-m", "nodeagent.main"]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv + ["--config", self.config_path], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log, start_new_session=True)
        wait_until(lambda: "event=agent_started" in self.log()[self.log_offset:], 60, "the agent to start")

    @property
    def log_offset(self):
        return getattr(self, "_offset", 0)

    def mark(self):
        """Later log() slices start here."""
        self._offset = len(self.log())

    def log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture(scope="module")
def agent(cluster, engine):
    base = temp_dir("agent")
    proc = AgentProcess(cluster, engine, base)
    try:
        proc.start()
        yield proc
    finally:
        proc.stop()
        print("----- agent log tail -----\n" + proc.log()[-6000:])
        unmount_below(base)
        remove(base)


@pytest.fixture
def ns(client, agent):
    name = f"skiff-it-{uuid.uuid4().hex[:6]}"
    client.create(pb.Namespace(metadata=pb.ObjectMeta(name=name)))
    yield name
    try:
        client.delete("namespace", name)
    except clientmod.NotFound:
        pass


# ------------------------------------------------------------------ helpers


def pod_manifest(name, ns, containers, **spec):
    doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
           "spec": {"nodeName": NODE, "containers": containers, **spec}}
    return codec.decode(pb.Pod, doc)


def box(name, script, **extra):
    """A busybox container running `sh -c script` (image already loaded: IfNotPresent)."""
    c = {"name": name, "image": BUSYBOX, "imagePullPolicy": "IfNotPresent", "command": ["sh", "-c", script]}
    c.update(extra)
    return c


def get_pod(client, ns, name):
    return client.get("pods", name, ns)


def container_status(pod, name):
    for cs in list(pod.status.container_statuses) + list(pod.status.init_container_statuses):
        if cs.name == name:
            return cs
    return None


def wait_running(client, ns, name, timeout_s=60, ready=True):
    def check():
        pod = get_pod(client, ns, name)
        if pod.status.phase != "Running":
            return None
        if ready and not all(cs.ready for cs in pod.status.container_statuses):
            return None
        return pod
    return wait_until(check, timeout_s, f"pod {ns}/{name} running")


def containers_of(engine, uid, container=None):
    filters = [f"{L.POD_UID}={uid}"]
    if container is not None:
        filters.append(f"{L.CONTAINER_NAME}={container}")
    found = engine.client.containers.list(all=True, filters={"label": filters})
    return sorted(found, key=lambda c: int(c.labels.get(L.ATTEMPT, "0")))


def running_container(engine, uid, container):
    running = [c for c in containers_of(engine, uid, container) if c.status == "running"]
    assert len(running) == 1, f"expected one running {container}, got {[c.name for c in running]}"
    return running[0]


def logs(engine, uid, container):
    return "".join(c.logs().decode(errors="replace") for c in containers_of(engine, uid, container))


def events_of(client, ns, name):
    items, _ = client.list("events", ns)
    return [(e.type, e.reason, e.message) for e in items if e.involved_object.name == name]


def has_event(client, ns, name, reason, text=""):
    return any(r == reason and text in m for _, r, m in events_of(client, ns, name))


# ------------------------------------------------------------------ tests


def test_node_registers_and_renews_its_lease(client, agent, engine):
    node = wait_until(lambda: client.get("nodes", NODE, ""), 30, "the node")
    assert node.metadata.labels["kubernetes.io/hostname"] == NODE
    assert node.metadata.labels["kubernetes.io/os"] == "linux"
    assert [(a.type, a.address) for a in node.status.addresses] == [("InternalIP", "127.0.0.1"),
                                                                    ("Hostname", NODE)]
    assert node.status.node_info.container_runtime_version == \
        f"docker://{engine.client.version()['Version']}"
    assert node.status.daemon_endpoints.kubelet_endpoint.port == agent.port
    assert int(node.status.capacity["cpu"]) >= 1 and node.status.capacity["pods"] == "110"
    names = {n for img in node.status.images for n in img.names}
    assert {images.BUSYBOX_IMAGE, images.PAUSE_IMAGE} <= names
    ready = next(c for c in node.status.conditions if c.type == "Ready")
    assert ready.status == "True"
    # Liveness is the Lease (renewed every 0.5 s for a 2 s lease), owned by the Node; the Node
    # itself is not rewritten while nothing about it changes.
    lease = wait_until(lambda: client.get("leases", NODE, "kube-node-lease"), 10, "the node's Lease")
    assert (lease.spec.holder_identity, lease.spec.lease_duration_seconds) == (NODE, 2)
    assert [(r.kind, r.name) for r in lease.metadata.owner_references] == [("Node", NODE)]
    first, node_rv = lease.spec.renew_time, client.get("nodes", NODE, "").metadata.resource_version

    def renewed():
        return client.get("leases", NODE, "kube-node-lease").spec.renew_time > first
    wait_until(renewed, 10, "a renewal")
    renewals = client.get("leases", NODE, "kube-node-lease").metadata.resource_version
    assert int(renewals) > int(lease.metadata.resource_version)
    assert client.get("nodes", NODE, "").metadata.resource_version == node_rv


def test_two_containers_share_an_empty_dir_and_localhost(client, engine, ns):
    server = box("server", "echo hello-from-server > /data/index.html; exec httpd -f -p 8080 -h /data",
                 volumeMounts=[{"name": "shared", "mountPath": "/data"}],
                 resources={"limits": {"cpu": "500m", "memory": "64Mi"}})
    del server["imagePullPolicy"]  # :latest -> Always: the pull fails (no registry), the local image is used
    fetch = ("for i in $(seq 1 100); do "
             "printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc 127.0.0.1 8080 > /tmp/out 2>/dev/null; "
             "if grep -q hello-from-server /tmp/out; then cp /tmp/out /data/fetched; echo fetched; exit 0; fi; "
             "sleep 0.1; done; exit 1")
    client_c = box("client", fetch, volumeMounts=[{"name": "shared", "mountPath": "/data"}])
    t0 = time.monotonic()
    pod = client.create(pod_manifest("share", ns, [server, client_c], restartPolicy="OnFailure",
                                     volumes=[{"name": "shared", "emptyDir": {}}]))
    uid = pod.metadata.uid

    def client_done():
        p = get_pod(client, ns, "share")
        cs = container_status(p, "client")
        return p if cs and cs.state.HasField("terminated") and p.status.phase == "Running" else None
    pod = wait_until(client_done, 60, "the client container to finish")
    print(f"measured: 2-container pod to client completion {time.monotonic() - t0:.2f}s")
    done = container_status(pod, "client").state.terminated
    assert (done.exit_code, done.reason) == (0, "Completed")
    assert container_status(pod, "server").state.HasField("running")
    srv = running_container(engine, uid, "server")
    assert srv.exec_run(["cat", "/data/fetched"]).output.decode().find("hello-from-server") >= 0
    assert "fetched" in logs(engine, uid, "client")
    # One pause container holds the namespaces; both containers joined it.
    (pause,) = containers_of(engine, uid, L.SANDBOX)
    assert pause.attrs["HostConfig"]["NetworkMode"] == "none"
    assert srv.attrs["HostConfig"]["NetworkMode"] == f"container:{pause.id}"
    assert srv.attrs["HostConfig"]["IpcMode"] == f"container:{pause.id}"
    assert (srv.attrs["HostConfig"]["CpuQuota"], srv.attrs["HostConfig"]["CpuPeriod"]) == (50000, 100000)
    assert srv.attrs["HostConfig"]["Memory"] == 64 * 2**20
    assert srv.exec_run(["hostname"]).output.decode().strip() == "share"
    hosts = srv.exec_run(["cat", "/etc/hosts"]).output.decode().splitlines()
    assert "127.0.0.1\tlocalhost" in hosts and "127.0.1.1\tshare" in hosts
    assert srv.labels[L.POD_UID] == uid and srv.labels[L.NODE] == NODE
    assert srv.labels[L.CONTAINER_KIND] == "app" and srv.labels[L.SPEC_HASH].startswith("v1:")
    assert srv.name == L.container_name("share", ns, uid, "server", 0)
    # Status and events as Kubernetes reports them.
    cs = container_status(pod, "server")
    assert cs.container_id == f"docker://{srv.id}" and cs.image == BUSYBOX and cs.image_id.startswith("docker://")
    assert pod.status.host_ip == "127.0.0.1" and pod.status.start_time
    conds = {c.type: c.status for c in pod.status.conditions}
    assert conds["Initialized"] == "True" and conds["PodScheduled"] == "True"
    wait_until(lambda: has_event(client, ns, "share", "Started", "Started container server")
               and has_event(client, ns, "share", "Created", "Created container client")
               and has_event(client, ns, "share", "Pulled", 'Container image "skiff/busybox:latest" already present')
               and has_event(client, ns, "share", "Failed", "using the image already present"),
               15, "Created/Started/Pulled events and the Always-pull fallback warning")


def test_init_containers_run_in_order_before_the_app(client, engine, ns):
    pod = client.create(pod_manifest(
        "init", ns,
        [box("app", "cat /work/init.txt; exec sleep 3600", volumeMounts=[{"name": "work", "mountPath": "/work"}])],
        initContainers=[
            box("first", "sleep 1; echo first-was-here > /work/init.txt",
                volumeMounts=[{"name": "work", "mountPath": "/work"}]),
            box("second", "test -f /work/init.txt && echo second >> /work/init.txt",
                volumeMounts=[{"name": "work", "mountPath": "/work"}])],
        volumes=[{"name": "work", "emptyDir": {}}], terminationGracePeriodSeconds=1))
    uid = pod.metadata.uid

    def initializing():
        p = get_pod(client, ns, "init")
        cs = container_status(p, "first")
        return p if cs and cs.state.HasField("running") else None
    p = wait_until(initializing, 30, "the first init container to run")
    assert p.status.phase == "Pending"
    init_cond = next(c for c in p.status.conditions if c.type == "Initialized")
    assert init_cond.status == "False" and "first second" in init_cond.message
    assert container_status(p, "app").state.waiting.reason == "PodInitializing"
    assert not containers_of(engine, uid, "second")  # not before the first one finished
    p = wait_running(client, ns, "init", 30)
    for name in ("first", "second"):
        t = container_status(p, name).state.terminated
        assert (t.exit_code, t.reason) == (0, "Completed")
    wait_until(lambda: logs(engine, uid, "app") == "first-was-here\nsecond\n", 10, "the app to read the init output")


def test_liveness_failure_restarts_with_back_off(client, engine, ns):
    script = "trap 'exit 0' TERM; touch /tmp/healthy; sleep 2; rm /tmp/healthy; sleep 3600 & wait"
    pod = client.create(pod_manifest("live", ns, [box("app", script, livenessProbe={
        "exec": {"command": ["test", "-f", "/tmp/healthy"]}, "periodSeconds": 1, "failureThreshold": 2})],
        terminationGracePeriodSeconds=5))
    uid = pod.metadata.uid

    def restarted(n):
        def check():
            p = get_pod(client, ns, "live")
            cs = container_status(p, "app")
            return p if cs and cs.restart_count >= n and cs.state.HasField("running") else None
        return check
    p = wait_until(restarted(2), 60, "two liveness restarts")
    cs = container_status(p, "app")
    assert cs.last_state.terminated.finished_at and cs.last_state.terminated.container_id
    assert cs.container_id == f"docker://{running_container(engine, uid, 'app').id}"
    assert len(containers_of(engine, uid, "app")) <= 3  # old instances are garbage-collected
    wait_until(lambda: has_event(client, ns, "live", "Unhealthy", "Liveness probe failed")
               and has_event(client, ns, "live", "Killing", "Container app failed liveness probe, will be restarted"),
               15, "Unhealthy and Killing events")


def test_crash_loop_back_off(client, ns):
    client.create(pod_manifest("crash", ns, [box("app", "exit 3")]))

    def backing_off():
        p = get_pod(client, ns, "crash")
        cs = container_status(p, "app")
        return p if cs and cs.state.waiting.reason == "CrashLoopBackOff" else None
    p = wait_until(backing_off, 60, "CrashLoopBackOff")
    cs = container_status(p, "app")
    assert cs.state.waiting.message.startswith("back-off ")
    assert "restarting failed container=app pod=crash_" in cs.state.waiting.message
    assert (cs.last_state.terminated.exit_code, cs.last_state.terminated.reason) == (3, "Error")
    assert p.status.phase == "Running"  # restartPolicy Always: it keeps being restarted
    wait_until(lambda: container_status(get_pod(client, ns, "crash"), "app").restart_count >= 3, 60,
               "restarts to continue after the back-off")
    assert has_event(client, ns, "crash", "BackOff", "Back-off restarting failed container app")


def test_run_to_completion_pod_succeeds_and_keeps_its_containers(client, engine, ns):
    pod = client.create(pod_manifest("job", ns, [box("work", "echo done")], restartPolicy="Never"))
    uid = pod.metadata.uid
    p = wait_until(lambda: (lambda x: x if x.status.phase == "Succeeded" else None)(get_pod(client, ns, "job")),
                   30, "phase Succeeded")
    t = container_status(p, "work").state.terminated
    assert (t.exit_code, t.reason) == (0, "Completed")
    ready = next(c for c in p.status.conditions if c.type == "Ready")
    assert (ready.status, ready.reason) == ("False", "PodCompleted")
    wait_until(lambda: all(c.status == "exited" for c in containers_of(engine, uid)), 15, "the sandbox stopped")
    assert logs(engine, uid, "work") == "done\n"  # kept for its logs until the pod is deleted


def test_readiness_probe_flips_ready(client, engine, ns):
    pod = client.create(pod_manifest("ready", ns, [box("app", "trap 'exit 0' TERM; sleep 3600 & wait", readinessProbe={
        "exec": {"command": ["test", "-f", "/tmp/ready"]}, "periodSeconds": 1, "failureThreshold": 1})],
        terminationGracePeriodSeconds=5))
    uid = pod.metadata.uid
    wait_running(client, ns, "ready", ready=False)

    def ready_is(value):
        def check():
            p = get_pod(client, ns, "ready")
            cond = next((c for c in p.status.conditions if c.type == "Ready"), None)
            cs = container_status(p, "app")
            return p if cond is not None and cond.status == value and cs.ready == (value == "True") else None
        return check
    p = wait_until(ready_is("False"), 15, "Ready=False without the file")
    assert next(c for c in p.status.conditions if c.type == "ContainersReady").status == "False"
    running_container(engine, uid, "app").exec_run(["touch", "/tmp/ready"])
    wait_until(ready_is("True"), 15, "Ready=True once the file exists")
    running_container(engine, uid, "app").exec_run(["rm", "/tmp/ready"])
    p = wait_until(ready_is("False"), 15, "Ready=False after the file is removed")
    assert container_status(p, "app").restart_count == 0  # readiness never restarts
    assert has_event(client, ns, "ready", "Unhealthy", "Readiness probe failed")


def test_image_change_restarts_the_container(client, engine, ns):
    engine.client.images.get(BUSYBOX).tag("skiff/busybox", "v2")
    pod = client.create(pod_manifest("image", ns, [box("app", "trap 'exit 0' TERM; sleep 3600 & wait")],
                                     terminationGracePeriodSeconds=5))
    uid = pod.metadata.uid
    p = wait_running(client, ns, "image")
    old_id = running_container(engine, uid, "app").id
    p.spec.containers[0].image = "skiff/busybox:v2"
    client.update(p)

    def replaced():
        cs = container_status(get_pod(client, ns, "image"), "app")
        return cs if cs.image == "skiff/busybox:v2" and cs.state.HasField("running") and cs.restart_count == 1 \
            else None
    wait_until(replaced, 30, "the container to be restarted with the new image")
    new = running_container(engine, uid, "app")
    assert new.id != old_id and new.attrs["Config"]["Image"] == "skiff/busybox:v2"
    assert has_event(client, ns, "image", "Killing", "Container app definition changed, will be restarted")


def test_steady_pod_status_is_not_rewritten(client, ns):
    app = box("app", "trap 'exit 0' TERM; touch /tmp/ok; sleep 3600 & wait", readinessProbe={
        "exec": {"command": ["test", "-f", "/tmp/ok"]}, "periodSeconds": 1})
    client.create(pod_manifest("steady", ns, [app], terminationGracePeriodSeconds=2))
    rv = wait_running(client, ns, "steady").metadata.resource_version
    time.sleep(5)  # two resyncs of the agent and five probes: none of them may write
    assert get_pod(client, ns, "steady").metadata.resource_version == rv


def test_startup_probe_gates_readiness(client, engine, ns):
    app = box("app", "trap 'exit 0' TERM; sleep 3600 & wait",
              startupProbe={"exec": {"command": ["test", "-f", "/tmp/started"]}, "periodSeconds": 1,
                            "failureThreshold": 60},
              readinessProbe={"exec": {"command": ["true"]}, "periodSeconds": 1})
    pod = client.create(pod_manifest("startup", ns, [app], terminationGracePeriodSeconds=2))
    uid = pod.metadata.uid
    wait_running(client, ns, "startup", ready=False)
    time.sleep(2)  # readiness would pass at once if the startup probe did not hold it back
    cs = container_status(get_pod(client, ns, "startup"), "app")
    assert not cs.started and not cs.ready
    running_container(engine, uid, "app").exec_run(["touch", "/tmp/started"])
    cs = wait_until(lambda: (lambda c: c if c.started and c.ready else None)(
        container_status(get_pod(client, ns, "startup"), "app")), 15, "started and ready")
    assert cs.restart_count == 0


def test_http_and_tcp_probes_run_in_the_pod_network(client, ns):
    web = box("web", "echo ok > /tmp/index.html; exec httpd -f -p 8080 -h /tmp",
              readinessProbe={"httpGet": {"path": "/index.html", "port": 8080}, "periodSeconds": 1},
              # initialDelaySeconds: a probe before httpd listens would fail (and restart it)
              # in Kubernetes too; the delay leaves that race out of what this test judges.
              livenessProbe={"tcpSocket": {"port": 8080}, "initialDelaySeconds": 2, "periodSeconds": 1,
                             "failureThreshold": 1})
    client.create(pod_manifest("probes", ns, [web], terminationGracePeriodSeconds=1))
    p = wait_running(client, ns, "probes", 30)
    # The pod's network has only its own loopback (network mode none): a ready
    # container proves the httpGet probe ran inside the pod's network namespace.
    assert container_status(p, "web").ready
    time.sleep(4)  # three liveness probes or more; a single failure would have restarted it
    assert container_status(get_pod(client, ns, "probes"), "web").restart_count == 0


def test_grpc_probe_runs_in_the_pod_network_without_a_pod_ip(client, engine, ns):
    """No pod network here: the pod has no IP, so the grpc probe calls 127.0.0.1 inside the
    pod's own namespace (network mode none: nothing else could answer there)."""
    engine.client.images.load(grpcimage.archive())
    app = {"name": "app", "image": grpcimage.TAG, "imagePullPolicy": "Never",
           "readinessProbe": {"grpc": {"port": 9000}, "periodSeconds": 1, "failureThreshold": 1}}
    client.create(pod_manifest("grpc", ns, [app], terminationGracePeriodSeconds=1))
    p = wait_running(client, ns, "grpc", 60)
    assert not p.status.pod_ip and container_status(p, "app").ready
    running_container(engine, p.metadata.uid, "app").exec_run(
        ["sh", "-c", "echo NOT_SERVING > /tmp/health-status"])
    wait_until(lambda: not container_status(get_pod(client, ns, "grpc"), "app").ready, 20, "not ready")
    wait_until(lambda: has_event(client, ns, "grpc", "Unhealthy",
                                 'Readiness probe failed: service unhealthy (responded with "NOT_SERVING")'),
               20, "the Unhealthy event")


def test_pre_stop_runs_before_sigterm_on_delete(client, engine, agent, ns):
    host_dir = temp_dir("agent-hostpath")
    try:
        script = ("trap 'echo sigterm >> /host/order; exit 0' TERM; echo started >> /host/order; "
                  "while true; do sleep 0.1; done")
        app = box("app", script, volumeMounts=[{"name": "host", "mountPath": "/host"},
                                               {"name": "mem", "mountPath": "/mem"}],
                  lifecycle={"preStop": {"exec": {"command": ["sh", "-c", "sleep 1; echo prestop >> /host/order"]}},
                             "postStart": {"exec": {"command": ["sh", "-c", "echo poststart >> /host/order"]}}})
        volumes = [{"name": "host", "hostPath": {"path": os.path.join(host_dir, "sub"), "type": "DirectoryOrCreate"}},
                   {"name": "mem", "emptyDir": {"medium": "Memory"}}]
        pod = client.create(pod_manifest("stop", ns, [app], terminationGracePeriodSeconds=20, volumes=volumes))
        uid = pod.metadata.uid
        order = os.path.join(host_dir, "sub", "order")
        wait_running(client, ns, "stop")
        mounts = running_container(engine, uid, "app").exec_run(["cat", "/proc/mounts"]).output.decode()
        assert any(line.split()[1:3] == ["/mem", "tmpfs"] for line in mounts.splitlines())
        pod_dir = os.path.join(agent.data_dir, "pods", uid)
        assert pod_dir in open("/proc/self/mountinfo").read()
        wait_until(lambda: os.path.exists(order) and "poststart" in open(order).read(), 10, "postStart")
        t0 = time.monotonic()
        client.delete("pods", "stop", ns)
        assert get_pod(client, ns, "stop").metadata.deletion_timestamp  # graceful: the agent finishes it

        def gone():
            try:
                get_pod(client, ns, "stop")
                return False
            except clientmod.NotFound:
                return True
        wait_until(gone, 30, "the pod to be deleted by the agent")
        elapsed = time.monotonic() - t0
        lines = [ln for ln in open(order).read().split() if ln != "poststart"]
        assert lines == ["started", "prestop", "sigterm"]
        assert elapsed < 15  # the trap exits at once: no wait for the full grace period
        assert containers_of(engine, uid) == []
        assert not os.path.exists(pod_dir)
        assert pod_dir not in open("/proc/self/mountinfo").read()  # the tmpfs was unmounted
        assert has_event(client, ns, "stop", "Killing", "Stopping container app")
    finally:
        remove(host_dir)


def test_config_map_and_secret_in_env_and_volume(client, engine, ns):
    client.create(pb.ConfigMap(metadata=pb.ObjectMeta(name="app-config", namespace=ns),
                               data={"GREETING": "hello", "app.conf": "key=value\n"}))
    secret = pb.Secret(metadata=pb.ObjectMeta(name="app-secret", namespace=ns))
    secret.data["password"] = b"s3cret"
    client.create(secret)
    script = ('echo "greeting=$GREETING password=$PASSWORD message=$MESSAGE from=$CFG_GREETING node=$NODE"; '
              "cat /etc/app/app.conf; touch /etc/app/x 2>/dev/null && echo writable || echo read-only; "
              "cat /etc/secret/password; echo; cat /etc/only.conf; exec sleep 3600")
    app = box("app", script,
              env=[{"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "app-config", "key": "GREETING"}}},
                   {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "app-secret", "key": "password"}}},
                   {"name": "MISSING", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k",
                                                                       "optional": True}}},
                   {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                   {"name": "MESSAGE", "value": "$(GREETING) world"}],
              envFrom=[{"prefix": "CFG_", "configMapRef": {"name": "app-config"}}],
              volumeMounts=[{"name": "conf", "mountPath": "/etc/app"},
                            {"name": "conf", "mountPath": "/etc/only.conf", "subPath": "app.conf"},
                            {"name": "secret", "mountPath": "/etc/secret"}])
    pod = client.create(pod_manifest("conf", ns, [app], terminationGracePeriodSeconds=1,
                                     volumes=[{"name": "conf", "configMap": {"name": "app-config"}},
                                              {"name": "secret", "secret": {"secretName": "app-secret"}}]))
    uid = pod.metadata.uid
    wait_running(client, ns, "conf")
    out = wait_until(lambda: logs(engine, uid, "app") if logs(engine, uid, "app").count("key=value") == 2
                     else None, 10, "the app's output")
    assert out.splitlines() == [f"greeting=hello password=s3cret message=hello world from=hello node={NODE}",
                                "key=value", "read-only", "s3cret", "key=value"]


def test_missing_config_map_waits_then_starts(client, ns):
    app = box("app", "echo $V; exec sleep 3600",
              env=[{"name": "V", "valueFrom": {"configMapKeyRef": {"name": "later", "key": "v"}}}])
    client.create(pod_manifest("later", ns, [app], terminationGracePeriodSeconds=1))

    def waiting():
        cs = container_status(get_pod(client, ns, "later"), "app")
        return cs if cs and cs.state.waiting.reason == "CreateContainerConfigError" else None
    cs = wait_until(waiting, 30, "CreateContainerConfigError")
    assert cs.state.waiting.message == 'configmap "later" not found'
    client.create(pb.ConfigMap(metadata=pb.ObjectMeta(name="later", namespace=ns), data={"v": "now"}))
    wait_running(client, ns, "later", 60)


def test_image_never_pulled(client, ns):
    app = {"name": "app", "image": "skiff/not-there:1", "imagePullPolicy": "Never"}
    client.create(pod_manifest("never", ns, [app]))

    def waiting():
        cs = container_status(get_pod(client, ns, "never"), "app")
        return cs if cs and cs.state.waiting.reason == "ErrImageNeverPull" else None
    cs = wait_until(waiting, 30, "ErrImageNeverPull")
    assert cs.state.waiting.message == 'Container image "skiff/not-there:1" is not present with pull policy of Never'


def test_dead_sandbox_is_recreated(client, engine, ns):
    pod = client.create(pod_manifest("sandbox", ns, [box("app", "trap 'exit 0' TERM; sleep 3600 & wait")],
                                     terminationGracePeriodSeconds=2))
    uid = pod.metadata.uid
    wait_running(client, ns, "sandbox")
    (first,) = containers_of(engine, uid, L.SANDBOX)
    first.kill()

    def recreated():
        sandboxes = [c for c in containers_of(engine, uid, L.SANDBOX) if c.status == "running"]
        p = get_pod(client, ns, "sandbox")
        cs = container_status(p, "app")
        return sandboxes and sandboxes[0].id != first.id and cs.restart_count >= 1 and cs.ready
    wait_until(recreated, 30, "a new sandbox with the app restarted in it")
    new_sandbox = [c for c in containers_of(engine, uid, L.SANDBOX) if c.status == "running"][0]
    app = running_container(engine, uid, "app")
    assert app.attrs["HostConfig"]["NetworkMode"] == f"container:{new_sandbox.id}"
    assert has_event(client, ns, "sandbox", "SandboxChanged")


def test_restarted_agent_adopts_running_pods_and_cleans_up_deleted_ones(client, engine, agent, ns):
    keep = client.create(pod_manifest("keep", ns, [box("app", "trap 'exit 0' TERM; sleep 3600 & wait")],
                                      initContainers=[box("init", "true")], terminationGracePeriodSeconds=2))
    graceful = client.create(pod_manifest("graceful", ns, [box("app", "trap 'exit 0' TERM; sleep 3600 & wait")],
                                          terminationGracePeriodSeconds=2))
    forced = client.create(pod_manifest("forced", ns, [box("app", "trap 'exit 0' TERM; sleep 3600 & wait")],
                                        terminationGracePeriodSeconds=2))
    for name in ("keep", "graceful", "forced"):
        wait_running(client, ns, name)
    before = {c.id: c.name for c in containers_of(engine, keep.metadata.uid)}
    status_before = get_pod(client, ns, "keep").status
    assert len(before) == 3  # pause, init, app

    agent.kill9()
    client.delete("pods", "graceful", ns)                          # the agent must finish it
    client.delete("pods", "forced", ns, grace_period_seconds=0)    # gone from the API at once
    assert get_pod(client, ns, "graceful").metadata.deletion_timestamp
    agent.mark()
    agent.start()

    def cleaned():
        try:
            get_pod(client, ns, "graceful")
            return False
        except clientmod.NotFound:
            pass
        return all(not containers_of(engine, p.metadata.uid)
                   and not os.path.exists(os.path.join(agent.data_dir, "pods", p.metadata.uid))
                   for p in (graceful, forced))
    wait_until(cleaned, 30, "both deleted pods to be cleaned up by the restarted agent")
    # The surviving pod was adopted: same containers, none created, none restarted.
    time.sleep(2 * 2 + 1)  # two resync periods of the restarted agent
    after = {c.id: c.name for c in containers_of(engine, keep.metadata.uid)}
    assert after == before
    assert all(c.status in ("running", "exited") for c in containers_of(engine, keep.metadata.uid))
    status_after = get_pod(client, ns, "keep").status
    assert next(cs for cs in status_after.container_statuses if cs.name == "app").restart_count == 0
    assert status_after.container_statuses[0].container_id == status_before.container_statuses[0].container_id
    new_log = agent.log()[agent.log_offset:]
    assert "event=container_started" not in new_log and "event=sandbox_started" not in new_log
    assert "event=pod_finalized" in new_log and "event=orphan_removed" in new_log


def test_sigterm_stops_the_agent_but_not_the_pods(client, engine, agent, ns):
    pod = client.create(pod_manifest("survivor", ns, [box("app", "trap 'exit 0' TERM; sleep 3600 & wait")],
                                     terminationGracePeriodSeconds=2))
    wait_running(client, ns, "survivor")
    ids = {c.id for c in containers_of(engine, pod.metadata.uid) if c.status == "running"}
    agent.stop()
    assert agent.proc.returncode == 0
    assert "event=agent_stopped" in agent.log()
    assert {c.id for c in containers_of(engine, pod.metadata.uid) if c.status == "running"} == ids
    agent.mark()
    agent.start()
    wait_running(client, ns, "survivor")
    assert {c.id for c in containers_of(engine, pod.metadata.uid) if c.status == "running"} == ids


def test_service_account_credentials_are_mounted_and_authenticate(client, engine, ns):
    """The pod's account token, ca.crt and namespace at Kubernetes' path, read-only; the token
    authenticates as the account; a pod with automountServiceAccountToken: false has none."""
    from skiff.satoken import MOUNT_PATH
    client.create(pb.ServiceAccount(metadata=pb.ObjectMeta(name="robot", namespace=ns)))
    pod = client.create(pod_manifest("sa", ns, [box("app", "exec sleep 3600")], serviceAccountName="robot",
                                     terminationGracePeriodSeconds=1))
    client.create(pod_manifest("nosa", ns, [box("app", "exec sleep 3600")], automountServiceAccountToken=False,
                               terminationGracePeriodSeconds=1))
    wait_running(client, ns, "sa")
    app = running_container(engine, pod.metadata.uid, "app")
    listing = app.exec_run(["ls", MOUNT_PATH]).output.decode().split()
    assert sorted(listing) == ["ca.crt", "namespace", "token"]
    assert app.exec_run(["cat", f"{MOUNT_PATH}/namespace"]).output.decode() == ns
    assert app.exec_run(["touch", f"{MOUNT_PATH}/x"]).exit_code != 0        # read-only
    token = app.exec_run(["cat", f"{MOUNT_PATH}/token"]).output.decode()
    user, groups = client.whoami(token)
    assert user == f"system:serviceaccount:{ns}:robot" and f"system:serviceaccounts:{ns}" in groups
    nosa = wait_running(client, ns, "nosa")
    other = running_container(engine, nosa.metadata.uid, "app")
    assert other.exec_run(["ls", MOUNT_PATH]).exit_code != 0
