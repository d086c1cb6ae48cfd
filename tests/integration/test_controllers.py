"""The leader-only loops on a real 3-replica control plane (loopback), with fake nodes.

No agents run here: the nodes are Node objects this module registers through the
API, and a thread per node plays the agent's part that matters to the control
plane, as the agent does it: it renews the node's Lease (kube-node-lease, every
HEARTBEAT_S), writes the Node's status only when it changes (Ready=True again
after the node lifecycle controller set Unknown), and finishes graceful deletions
of the pods bound to it (delete with grace 0, what an agent does once the
containers stopped). Stopping a node's thread is a node going silent. Pods never
run, so readiness is simulated through update_status.
"""

import collections
import datetime
import threading
import time
import uuid

import pytest

from controlplane.config import ControllersConfig
from skiff import client as clientmod
from skiff.api import objects_pb2 as pb
from skiff.api.kinds.coordination import NODE_LEASE_NAMESPACE, micro_time
from skiff.informer import Informer
from tests.helpers import scratch_namespace, wait_until

GRACE_S = ControllersConfig.node_monitor_grace_period_s
EVICTION_S = ControllersConfig.pod_eviction_timeout_s
HEARTBEAT_S = 0.5          # Lease renewals (a 2 s lease renewed at a quarter of it)
LEASE_DURATION_S = 2
NODES = ("skiff-node1", "skiff-node2", "skiff-node3")
UNREACHABLE = "node.kubernetes.io/unreachable"


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(obj, ctype):
    return next((c for c in obj.status.conditions if c.type == ctype), None)


def mutate(client, kind, name, fn, namespace="default", status=False, attempts=50):
    """Read-modify-write with compare-and-swap, retrying on Conflict (others write too)."""
    for _ in range(attempts):
        obj = client.get(kind, name, namespace)
        fn(obj)
        try:
            return client.update_status(obj) if status else client.update(obj)
        except clientmod.Conflict:
            time.sleep(0.02)
    raise AssertionError(f"could not update {kind}/{name}: conflicts all along")


class FakeNodes:
    """Node objects plus, per node, a thread that renews its Lease and finishes pod deletions."""

    def __init__(self, client):
        self.client = client
        self.alive = {name: threading.Event() for name in NODES}
        self.closed = threading.Event()
        self.threads = []
        self.renewals = collections.Counter()

    def register(self):
        for name in NODES:
            node = pb.Node(metadata=pb.ObjectMeta(name=name, labels={
                "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}))
            for which in (node.status.capacity, node.status.allocatable):
                which.update({"cpu": "2", "memory": "4Gi", "pods": "110"})
            now = now_rfc3339()
            node.status.conditions.add(type="Ready", status="True", reason="KubeletReady",
                                       message="kubelet is posting ready status",
                                       last_heartbeat_time=now, last_transition_time=now)
            self.client.create(node)
            self.alive[name].set()
            t = threading.Thread(target=self._run, args=(name,), name=f"fake-{name}", daemon=True)
            t.start()
            self.threads.append(t)

    def stop(self, name):
        self.alive[name].clear()

    def resume(self, name):
        self.alive[name].set()

    def close(self):
        self.closed.set()
        for t in self.threads:
            t.join(5)
        for name in NODES:
            try:
                self.client.delete("nodes", name)
            except clientmod.ApiError:
                pass

    def _run(self, name):
        while not self.closed.is_set():
            if self.alive[name].is_set():
                try:
                    self._heartbeat(name)
                    self._finish_deletions(name)
                except clientmod.ApiError:
                    pass  # a replica being killed: the next beat goes elsewhere
            self.closed.wait(HEARTBEAT_S)

    def _heartbeat(self, name):
        node = self.client.get("nodes", name)
        self._renew(name, node)
        ready = condition(node, "Ready")
        if ready.status == "True":
            return  # nothing changed: the Node is not written (liveness is the Lease)
        now = now_rfc3339()
        ready.last_transition_time = ready.last_heartbeat_time = now
        ready.status, ready.reason, ready.message = "True", "KubeletReady", "kubelet is posting ready status"
        try:
            self.client.update_status(node)
        except clientmod.Conflict:
            pass  # the node lifecycle controller wrote first; try again next period

    def _renew(self, name, node):
        try:
            lease = self.client.get("leases", name, NODE_LEASE_NAMESPACE)
        except clientmod.NotFound:
            lease = pb.Lease(metadata=pb.ObjectMeta(name=name, namespace=NODE_LEASE_NAMESPACE))
            lease.metadata.owner_references.add(api_version="v1", kind="Node", name=name, uid=node.metadata.uid)
        lease.spec.holder_identity, lease.spec.lease_duration_seconds = name, LEASE_DURATION_S
        lease.spec.renew_time = micro_time(time.time())
        try:
            self.client.update(lease) if lease.metadata.resource_version else self.client.create(lease)
            self.renewals[name] += 1
        except (clientmod.Conflict, clientmod.AlreadyExists):
            pass

    def _finish_deletions(self, name):
        pods, _ = self.client.list("pods", field_selector=f"spec.nodeName={name}")
        for pod in pods:
            if pod.metadata.deletion_timestamp:
                try:
                    self.client.delete("pods", pod.metadata.name, pod.metadata.namespace,
                                       uid=pod.metadata.uid, grace_period_seconds=0)
                except (clientmod.NotFound, clientmod.Conflict):
                    pass


@pytest.fixture(scope="module")
def nodes(cluster):
    c = cluster.client()
    fake = FakeNodes(c)
    fake.register()
    yield fake
    fake.close()
    c.close()


@pytest.fixture
def ns(client, nodes):
    with scratch_namespace(client, "skiff-ct") as name:
        yield name


# ---------------------------------------------------------------- helpers

def deployment(name, ns, replicas, cpu="100m", app=None):
    d = pb.Deployment(metadata=pb.ObjectMeta(name=name, namespace=ns))
    d.spec.replicas = replicas
    d.spec.selector.match_labels["app"] = app or name
    d.spec.template.metadata.labels["app"] = app or name
    c = d.spec.template.spec.containers.add(name="main", image="skiff/busybox:latest")
    c.resources.requests["cpu"] = cpu
    c.resources.requests["memory"] = "16Mi"
    return d


def pod(name, ns, cpu="10m"):
    p = pb.Pod(metadata=pb.ObjectMeta(name=name, namespace=ns))
    c = p.spec.containers.add(name="main", image="skiff/busybox:latest")
    c.resources.requests["cpu"] = cpu
    return p


def pods_of(client, ns, label_selector=""):
    return client.list("pods", ns, label_selector=label_selector)[0]


def active(pods):
    return [p for p in pods if not p.metadata.deletion_timestamp]


def spread(pods):
    return collections.Counter(p.spec.node_name for p in pods)


def events(client, ns, reason, name=None):
    return [e for e in client.list("events", ns)[0]
            if e.reason == reason and (name is None or e.involved_object.name == name)]


def wait_active_bound(client, ns, count, label_selector="", timeout_s=20):
    def done():
        pods = active(pods_of(client, ns, label_selector))
        return pods if len(pods) == count and all(p.spec.node_name for p in pods) else None
    return wait_until(done, timeout_s, f"{count} active bound pods in {ns}")


def set_ready(client, pods):
    """Simulate the agent reporting the pods ready."""
    def ready(p):
        now = now_rfc3339()
        p.status.phase = "Running"
        for ctype in ("Ready", "ContainersReady"):
            cond = condition(p, ctype) or p.status.conditions.add(type=ctype)
            cond.status, cond.last_transition_time = "True", now
    for p in pods:
        mutate(client, "pods", p.metadata.name, ready, namespace=p.metadata.namespace, status=True)


def scale(client, ns, name, replicas):
    def fn(d):
        d.spec.replicas = replicas
    return mutate(client, "deployments", name, fn, namespace=ns)


def scheduled_condition(client, ns, name):
    return condition(client.get("pods", name, ns), "PodScheduled")


def wait_unschedulable(client, ns, name, message, timeout_s=10):
    def done():
        cond = scheduled_condition(client, ns, name)
        return cond is not None and cond.status == "False" and cond.reason == "Unschedulable" \
            and cond.message == message
    wait_until(done, timeout_s, f"{name}: PodScheduled=False {message!r}")


def wait_bound(client, ns, name, timeout_s=10):
    return wait_until(lambda: client.get("pods", name, ns).spec.node_name, timeout_s, f"{name} bound")


# ---------------------------------------------------------------- tests

def test_deployment_creates_replicaset_spreads_and_scales(client, ns):
    d = client.create(deployment("web", ns, 6))
    pods = wait_active_bound(client, ns, 6)
    rss = client.list("replicasets", ns)[0]
    assert len(rss) == 1
    rs = rss[0]
    h = rs.metadata.labels["pod-template-hash"]
    assert rs.metadata.name == f"web-{h}"
    assert rs.spec.selector.match_labels["pod-template-hash"] == h
    assert rs.spec.template.metadata.labels["pod-template-hash"] == h
    ref = rs.metadata.owner_references[0]
    assert (ref.kind, ref.name, ref.uid, ref.controller) == ("Deployment", "web", d.metadata.uid, True)
    assert spread(pods) == {n: 2 for n in NODES}, spread(pods)
    for p in pods:
        assert p.metadata.name.startswith(f"{rs.metadata.name}-") and len(p.metadata.name) == len(rs.metadata.name) + 6
        assert p.metadata.labels["pod-template-hash"] == h
        owner = p.metadata.owner_references[0]
        assert (owner.kind, owner.uid, owner.controller, owner.block_owner_deletion) == \
            ("ReplicaSet", rs.metadata.uid, True, True)
    wait_until(lambda: all(scheduled_condition(client, ns, p.metadata.name).status == "True" for p in pods),
               10, "PodScheduled=True on every pod")
    scheduled = {e.message for e in wait_until(lambda: len(events(client, ns, "Scheduled")) >= 6 and
                                               events(client, ns, "Scheduled"), 10, "Scheduled events")}
    assert {f"Successfully assigned {ns}/{p.metadata.name} to {p.spec.node_name}" for p in pods} <= scheduled
    assert len(events(client, ns, "SuccessfulCreate")) == 6

    set_ready(client, pods)

    def ready_status():
        rs_now = client.get("replicasets", rs.metadata.name, ns)
        d_now = client.get("deployments", "web", ns)
        st = d_now.status
        return (rs_now.status.ready_replicas == 6 and rs_now.status.available_replicas == 6
                and rs_now.status.fully_labeled_replicas == 6 and st.replicas == 6
                and st.updated_replicas == 6 and st.ready_replicas == 6 and st.available_replicas == 6
                and st.unavailable_replicas == 0 and st.observed_generation == d_now.metadata.generation
                and condition(d_now, "Available").status == "True"
                and condition(d_now, "Progressing").reason == "NewReplicaSetAvailable") and d_now
    d_now = wait_until(ready_status, 10, "ready counts in RS and Deployment status")
    assert condition(d_now, "Progressing").message == f'ReplicaSet "{rs.metadata.name}" has successfully progressed.'

    scale(client, ns, "web", 2)
    wait_until(lambda: len(pods_of(client, ns)) == 2, 15, "scaled down to 2 pods")
    assert client.get("replicasets", rs.metadata.name, ns).spec.replicas == 2
    assert len(events(client, ns, "SuccessfulDelete")) == 4

    scale(client, ns, "web", 8)
    pods = wait_active_bound(client, ns, 8)
    counts = spread(pods)
    assert set(counts) == set(NODES) and max(counts.values()) - min(counts.values()) <= 1, counts

    def scaled_status():
        st = client.get("deployments", "web", ns).status
        return st.replicas == 8 and st.ready_replicas == 2 and st.unavailable_replicas == 6
    wait_until(scaled_status, 10, "deployment status after scaling to 8 (2 ready)")
    d_now = client.get("deployments", "web", ns)
    assert condition(d_now, "Available").status == "False"  # 2 available < 8 - 25%


def rollout_deployment(name, ns, replicas, strategy="RollingUpdate", surge=1, unavailable=0):
    d = deployment(name, ns, replicas, cpu="10m")
    d.spec.strategy.type = strategy
    if strategy == "RollingUpdate":
        d.spec.strategy.rolling_update.max_surge.int_val = surge
        d.spec.strategy.rolling_update.max_unavailable.int_val = unavailable
    return d


def set_image(client, ns, name, image, cause=None):
    def fn(d):
        d.spec.template.spec.containers[0].image = image
        if cause:
            d.metadata.annotations["kubernetes.io/change-cause"] = cause
    return mutate(client, "deployments", name, fn, namespace=ns)


def owned_rss(client, ns, d_uid):
    return {r.spec.template.spec.containers[0].image: r for r in client.list("replicasets", ns)[0]
            if r.metadata.owner_references and r.metadata.owner_references[0].uid == d_uid}


def wait_rolled_out(client, ns, name, replicas, timeout_s=20):
    def done():
        d = client.get("deployments", name, ns)
        st = d.status
        return (st.observed_generation == d.metadata.generation and st.updated_replicas == replicas
                and st.replicas == replicas and st.available_replicas == replicas
                and condition(d, "Progressing").reason == "NewReplicaSetAvailable") and d
    return wait_until(done, timeout_s, f"{name} rolled out")


def test_rolling_update_keeps_surge_and_availability_then_rolls_back(client, ns):
    """maxSurge 1, maxUnavailable 0 on 4 replicas: never more than 5 pods, never fewer than 4
    ready ones, while the test plays the agents and reports each new pod ready."""
    d = client.create(rollout_deployment("app", ns, 4))
    set_ready(client, wait_active_bound(client, ns, 4))
    wait_rolled_out(client, ns, "app", 4)
    set_image(client, ns, "app", "skiff/busybox:v2", cause="skiff set image deployment/app main=skiff/busybox:v2")
    most, fewest_ready = 0, 4

    def step():
        nonlocal most, fewest_ready
        pods = active(pods_of(client, ns))
        most = max(most, len(pods))
        fewest_ready = min(fewest_ready, sum(1 for p in pods if condition(p, "Ready")
                                             and condition(p, "Ready").status == "True"))
        set_ready(client, [p for p in pods if p.spec.node_name and not condition(p, "Ready")])
        new = owned_rss(client, ns, d.metadata.uid).get("skiff/busybox:v2")
        return (new is not None and len(pods) == 4
                and all(p.spec.containers[0].image == "skiff/busybox:v2" for p in pods)) and new
    new_rs = wait_until(step, 30, "every pod replaced by a ready v2 pod", interval_s=0.05)
    assert most <= 5, f"{most} pods at once (replicas 4 + maxSurge 1)"
    assert fewest_ready >= 4, f"only {fewest_ready} ready pods (replicas 4 - maxUnavailable 0)"
    d_now = wait_rolled_out(client, ns, "app", 4)
    assert d_now.metadata.annotations["deployment.kubernetes.io/revision"] == "2"
    assert new_rs.metadata.annotations["deployment.kubernetes.io/revision"] == "2"
    assert new_rs.metadata.annotations["kubernetes.io/change-cause"].endswith("main=skiff/busybox:v2")
    assert new_rs.metadata.annotations["deployment.kubernetes.io/desired-replicas"] == "4"
    assert new_rs.metadata.annotations["deployment.kubernetes.io/max-replicas"] == "5"
    scaled = [e.message for e in events(client, ns, "ScalingReplicaSet", "app")]
    assert f"Scaled up replica set {new_rs.metadata.name} from 0 to 1" in scaled
    assert len(scaled) >= 8, scaled       # one pod at a time: 4 up, 4 down (events may merge)

    # Undo: the old ReplicaSet's template comes back; that RS is the new one, revision 3.
    from skiff.cli.rollout_cmds import rollback
    old_rs = owned_rss(client, ns, d.metadata.uid)["skiff/busybox:latest"]
    mutate(client, "deployments", "app", lambda dd: rollback(dd, old_rs), namespace=ns)

    def back():
        pods = active(pods_of(client, ns))
        set_ready(client, [p for p in pods if p.spec.node_name and not condition(p, "Ready")])
        return len(pods) == 4 and all(p.spec.containers[0].image == "skiff/busybox:latest" for p in pods)
    wait_until(back, 30, "rolled back to the first template", interval_s=0.05)
    wait_rolled_out(client, ns, "app", 4)
    rss = owned_rss(client, ns, d.metadata.uid)
    assert len(rss) == 2, "the old ReplicaSet was reused, not recreated"
    first = rss["skiff/busybox:latest"]
    assert (first.metadata.name, first.metadata.annotations["deployment.kubernetes.io/revision"],
            first.metadata.annotations["deployment.kubernetes.io/revision-history"]) == \
        (old_rs.metadata.name, "3", "1")


def test_recreate_starts_new_pods_only_when_the_old_ones_are_gone(client, ns):
    d = client.create(rollout_deployment("rc", ns, 3, strategy="Recreate"))
    set_ready(client, wait_active_bound(client, ns, 3))
    wait_rolled_out(client, ns, "rc", 3)
    set_image(client, ns, "rc", "skiff/busybox:v2")
    overlaps = []

    def replaced():
        pods = pods_of(client, ns)       # terminating ones included
        images = {p.spec.containers[0].image for p in pods}
        if len(images) > 1:
            overlaps.append(sorted(p.metadata.name for p in pods))
        return len(pods) == 3 and images == {"skiff/busybox:v2"}
    wait_until(replaced, 30, "3 pods, all v2", interval_s=0.05)
    assert overlaps == [], f"old and new pods side by side: {overlaps[:3]}"
    rss = owned_rss(client, ns, d.metadata.uid)
    assert rss["skiff/busybox:latest"].spec.replicas == 0 and rss["skiff/busybox:v2"].spec.replicas == 3


def test_paused_deployment_scales_but_does_not_roll_out(client, ns):
    d = client.create(rollout_deployment("pz", ns, 2))
    wait_active_bound(client, ns, 2)

    def pause_and_change(dd):
        dd.spec.paused = True
        dd.spec.template.spec.containers[0].image = "skiff/busybox:v2"
        dd.spec.replicas = 3
    changed = mutate(client, "deployments", "pz", pause_and_change, namespace=ns)
    pods = wait_active_bound(client, ns, 3)
    assert {p.spec.containers[0].image for p in pods} == {"skiff/busybox:latest"}

    def observed():
        now = client.get("deployments", "pz", ns)
        return now.status.observed_generation == changed.metadata.generation and now
    d_now = wait_until(observed, 10, "the paused spec observed")
    assert (condition(d_now, "Progressing").status, condition(d_now, "Progressing").reason) == \
        ("Unknown", "DeploymentPaused")
    assert list(owned_rss(client, ns, d.metadata.uid)) == ["skiff/busybox:latest"]

    mutate(client, "deployments", "pz", lambda dd: setattr(dd.spec, "paused", False), namespace=ns)
    wait_until(lambda: "skiff/busybox:v2" in owned_rss(client, ns, d.metadata.uid), 10, "resumed: a new RS")


def test_a_stuck_rollout_passes_its_progress_deadline(client, ns):
    """New pods that never get ready: Progressing goes False/ProgressDeadlineExceeded about
    progressDeadlineSeconds after the last progress, with no other event to wake the controller."""
    d = rollout_deployment("stuck", ns, 2)
    d.spec.progress_deadline_seconds = 3
    client.create(d)
    set_ready(client, wait_active_bound(client, ns, 2))
    wait_rolled_out(client, ns, "stuck", 2)
    set_image(client, ns, "stuck", "skiff/busybox:broken")
    started = time.monotonic()

    def timed_out():
        cond = condition(client.get("deployments", "stuck", ns), "Progressing")
        return cond.status == "False" and cond.reason == "ProgressDeadlineExceeded" and cond
    cond = wait_until(timed_out, 15, "Progressing=False ProgressDeadlineExceeded")
    assert time.monotonic() - started >= 2.5
    assert cond.message.endswith("has timed out progressing.")
    assert len(active(pods_of(client, ns))) == 3     # 2 old ones kept, 1 surge pod


def test_unschedulable_pod_says_why_once_and_is_retried_on_node_change(client, ns):
    client.create(pod("big", ns, cpu="3"))
    message = "0/3 nodes are available: 3 Insufficient cpu."
    wait_unschedulable(client, ns, "big", message)
    failed = wait_until(lambda: events(client, ns, "FailedScheduling", "big"), 5, "FailedScheduling event")
    # The event: the histogram, then which filter rejected which node.
    assert [e.message for e in failed] == [
        f"{message} Rejected by: NodeResourcesFit: skiff-node1, skiff-node2, skiff-node3 (Insufficient cpu)."]
    assert failed[0].type == "Warning"

    # A node change that does not help: the pod is retried, the message is the same.
    def label(n):
        n.metadata.labels["skiff-test/touched"] = "yes"
    mutate(client, "nodes", "skiff-node1", label)
    # Give the scheduler time for its backoff retries (1 s, 2 s) to run: absence of spam
    # can only be seen after the fact.
    time.sleep(3.5)
    failed = events(client, ns, "FailedScheduling", "big")
    assert len(failed) == 1 and failed[0].count == 1, [(e.message, e.count) for e in failed]

    def more_cpu(n):
        n.status.allocatable["cpu"] = "4"
    mutate(client, "nodes", "skiff-node2", more_cpu, status=True)
    try:
        assert wait_bound(client, ns, "big", timeout_s=5) == "skiff-node2"
        wait_until(lambda: scheduled_condition(client, ns, "big").status == "True", 5, "PodScheduled=True")
    finally:
        client.delete("pods", "big", ns, grace_period_seconds=0)

        def restore(n):
            n.status.allocatable["cpu"] = "2"
        mutate(client, "nodes", "skiff-node2", restore, status=True)

        def unlabel(n):
            n.metadata.labels.pop("skiff-test/touched", None)
        mutate(client, "nodes", "skiff-node1", unlabel)


def test_node_selector_affinity_taints_and_tolerations(client, ns):
    def add_label(n):
        n.metadata.labels["disktype"] = "ssd"

    def add_taint(n):
        n.spec.taints.add(key="dedicated", value="gpu", effect="NoSchedule")
    mutate(client, "nodes", "skiff-node2", add_label)
    try:
        p = pod("ssd", ns)
        p.spec.node_selector["disktype"] = "ssd"
        client.create(p)
        assert wait_bound(client, ns, "ssd") == "skiff-node2"

        p = pod("nvme", ns)
        p.spec.node_selector["disktype"] = "nvme"
        client.create(p)
        wait_unschedulable(client, ns, "nvme",
                           "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.")

        mutate(client, "nodes", "skiff-node3", add_taint)
        # Filters run in order (taints before affinity), so the tainted node reports its taint.
        wait_unschedulable(client, ns, "nvme",
                           "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, "
                           "2 node(s) didn't match Pod's node affinity/selector.")
        assert sorted(e.message.split(" Rejected by: ")[0]
                      for e in events(client, ns, "FailedScheduling", "nvme")) == sorted([
            "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.",
            "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, "
            "2 node(s) didn't match Pod's node affinity/selector."])

        def only_node3(p):
            term = p.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution \
                .node_selector_terms.add()
            term.match_expressions.add(key="kubernetes.io/hostname", operator="In", values=["skiff-node3"])
            return p

        client.create(only_node3(pod("no-toleration", ns)))
        wait_unschedulable(client, ns, "no-toleration",
                           "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, "
                           "2 node(s) didn't match Pod's node affinity/selector.")

        p = only_node3(pod("tolerates", ns))
        p.spec.tolerations.add(key="dedicated", operator="Equal", value="gpu", effect="NoSchedule")
        client.create(p)
        assert wait_bound(client, ns, "tolerates") == "skiff-node3"

        # Not on a tainted node unless tolerated, even when it is the emptiest.
        for i in range(3):
            client.create(pod(f"plain-{i}", ns))
        for i in range(3):
            assert wait_bound(client, ns, f"plain-{i}") in ("skiff-node1", "skiff-node2")
    finally:
        def drop_label(n):
            n.metadata.labels.pop("disktype", None)

        def drop_taint(n):
            keep = [t for t in n.spec.taints if t.key != "dedicated"]
            del n.spec.taints[:]
            n.spec.taints.extend(keep)
        mutate(client, "nodes", "skiff-node2", drop_label)
        mutate(client, "nodes", "skiff-node3", drop_taint)


def test_replicaset_adopts_orphans_and_releases_relabelled_pods(client, ns):
    orphan = pod("orphan", ns)
    orphan.metadata.labels["app"] = "adopt"
    client.create(orphan)
    rs = pb.ReplicaSet(metadata=pb.ObjectMeta(name="rs", namespace=ns))
    rs.spec.replicas = 2
    rs.spec.selector.match_labels["app"] = "adopt"
    rs.spec.template.metadata.labels["app"] = "adopt"
    rs.spec.template.spec.containers.add(name="main", image="skiff/busybox:latest")
    rs = client.create(rs)

    def owned():
        pods = [p for p in active(pods_of(client, ns, "app=adopt"))
                if p.metadata.owner_references and p.metadata.owner_references[0].uid == rs.metadata.uid]
        return len(pods) == 2 and pods
    pods = wait_until(owned, 10, "the RS owns 2 pods, the orphan among them")
    assert "orphan" in {p.metadata.name for p in pods}
    assert len(pods_of(client, ns)) == 2  # adopted, so only one created

    def relabel(p):
        p.metadata.labels["app"] = "gone"
    mutate(client, "pods", "orphan", relabel, namespace=ns)
    wait_until(lambda: not client.get("pods", "orphan", ns).metadata.owner_references, 10, "orphan released")
    wait_until(lambda: owned() and "orphan" not in {p.metadata.name for p in owned()}, 10,
               "a replacement for the released pod")
    wait_until(lambda: client.get("replicasets", "rs", ns).status.replicas == 2, 10, "RS status.replicas")


def test_deleting_a_deployment_deletes_its_replicasets_and_pods(client, ns):
    client.create(deployment("gc", ns, 3))
    wait_active_bound(client, ns, 3)
    client.delete("deployments", "gc", ns)
    wait_until(lambda: not client.list("replicasets", ns)[0] and not pods_of(client, ns), 20,
               "ReplicaSets and pods of the deleted Deployment gone")

    # A dependent whose owner never existed (or is long gone) goes too.
    rs = pb.ReplicaSet(metadata=pb.ObjectMeta(name="stray", namespace=ns))
    rs.metadata.owner_references.add(api_version="apps/v1", kind="Deployment", name="ghost",
                                      uid=str(uuid.uuid4()), controller=True)
    rs.spec.replicas = 1
    rs.spec.selector.match_labels["app"] = "stray"
    rs.spec.template.metadata.labels["app"] = "stray"
    rs.spec.template.spec.containers.add(name="main", image="skiff/busybox:latest")
    client.create(rs)
    wait_until(lambda: not client.list("replicasets", ns)[0] and not pods_of(client, ns), 20,
               "the stray ReplicaSet and its pods collected")


def test_pods_of_a_deleted_node_are_force_deleted(client, ns):
    node = pb.Node(metadata=pb.ObjectMeta(name="skiff-node9"))
    node.spec.unschedulable = True
    client.create(node)
    p = pod("stranded", ns)
    p.spec.node_name = "skiff-node9"
    client.create(p)
    client.delete("nodes", "skiff-node9")
    t0 = time.monotonic()

    def gone():
        try:
            client.get("pods", "stranded", ns)
            return False
        except clientmod.NotFound:
            return True
    wait_until(gone, 15, "the pod of the deleted node removed")
    print(f"\norphaned pod removed {time.monotonic() - t0:.1f}s after its node was deleted")


def test_lease_renewals_do_not_wake_node_watchers(client, nodes):
    """Nodes renewing their Leases leave the Node objects alone: a Node watcher (every
    agent's proxier, pod network and DNS) gets no event per heartbeat."""
    node_events, lease_events = collections.Counter(), collections.Counter()
    watchers = [Informer(client, "nodes", name="count-nodes"),
                Informer(client, "leases", namespace=NODE_LEASE_NAMESPACE, name="count-leases")]
    watchers[0].add_handler(None, lambda old, new: node_events.update([new.metadata.name]), None)
    watchers[1].add_handler(None, lambda old, new: lease_events.update([new.metadata.name]), None)
    for w in watchers:
        w.start()
    try:
        assert all(w.wait_synced(10) for w in watchers)
        # about 3 s of renewals: every node renewed several times
        wait_until(lambda: all(lease_events[n] >= 6 for n in NODES), 15, "6 renewals of every node's Lease")
        assert sum(node_events.values()) == 0, node_events
        print(f"\nidle: {sum(lease_events.values())} Lease events, {sum(node_events.values())} Node events")
    finally:
        for w in watchers:
            w.stop()


def test_a_nodes_lease_is_collected_with_its_node(client):
    node = client.create(pb.Node(metadata=pb.ObjectMeta(name="skiff-node8")))
    lease = pb.Lease(metadata=pb.ObjectMeta(name="skiff-node8", namespace=NODE_LEASE_NAMESPACE))
    lease.metadata.owner_references.add(api_version="v1", kind="Node", name="skiff-node8", uid=node.metadata.uid)
    lease.spec.holder_identity, lease.spec.lease_duration_seconds = "skiff-node8", 40
    client.create(lease)
    client.delete("nodes", "skiff-node8")

    def gone():
        try:
            client.get("leases", "skiff-node8", NODE_LEASE_NAMESPACE)
            return False
        except clientmod.NotFound:
            return True
    wait_until(gone, 10, "the Lease of the deleted node collected")


def test_silent_node_goes_unknown_then_its_pods_are_replaced(client, ns, nodes):
    client.create(deployment("ha", ns, 6))
    pods = wait_active_bound(client, ns, 6)
    assert spread(pods) == {n: 2 for n in NODES}
    set_ready(client, pods)
    dead = "skiff-node3"
    doomed = {p.metadata.name for p in pods if p.spec.node_name == dead}
    nodes.stop(dead)
    t0 = time.monotonic()
    try:
        def unknown():
            n = client.get("nodes", dead)
            ready = condition(n, "Ready")
            return ready.status == "Unknown" and n
        n = wait_until(unknown, GRACE_S + 5, f"{dead} Ready=Unknown")
        t_unknown = time.monotonic() - t0
        ready = condition(n, "Ready")
        assert (ready.reason, ready.message) == ("NodeStatusUnknown", "Kubelet stopped posting node status.")
        wait_until(lambda: any(t.key == UNREACHABLE and t.effect == "NoExecute"
                               for t in client.get("nodes", dead).spec.taints), 5, "unreachable taint")

        def not_ready():
            out = []
            for name in doomed:
                try:
                    p = client.get("pods", name, ns)
                except clientmod.NotFound:
                    return True  # already evicted: it was marked before (checked below by events)
                out.append(condition(p, "Ready").status == "False"
                           and condition(p, "ContainersReady").status == "False")
            return all(out)
        wait_until(not_ready, 5, "pods on the silent node Ready=False")
        wait_until(lambda: client.get("replicasets", client.list("replicasets", ns)[0][0].metadata.name, ns)
                   .status.ready_replicas <= 4, 5, "RS readyReplicas drops")

        def replaced():
            all_pods = pods_of(client, ns)
            live = active(all_pods)
            return (len(live) == 6 and all(p.spec.node_name and p.spec.node_name != dead for p in live)
                    and not any(p.spec.node_name == dead for p in all_pods))
        wait_until(replaced, GRACE_S + EVICTION_S + 10, "6 active pods, none on the silent node")
        t_replaced = time.monotonic() - t0
        evictions = {e.message for e in events(client, ns, "NodeControllerEviction")}
        assert {f"Marking for deletion Pod {ns}/{name} from Node {dead}" for name in doomed} <= evictions
        print(f"\nnode silent -> Ready=Unknown after {t_unknown:.1f}s (grace {GRACE_S}s); "
              f"pods replaced after {t_replaced:.1f}s (grace + eviction {GRACE_S + EVICTION_S}s)")
    finally:
        nodes.resume(dead)

    def healthy():
        n = client.get("nodes", dead)
        return condition(n, "Ready").status == "True" and not any(t.key == UNREACHABLE for t in n.spec.taints)
    wait_until(healthy, 10, f"{dead} Ready=True again and untainted")


def test_new_leader_carries_on_scaling_after_leader_kill(cluster, client, ns):
    client.create(deployment("fo", ns, 3, cpu="50m"))
    wait_active_bound(client, ns, 3)
    victim = cluster.leader()
    target = 30
    scale(client, ns, "fo", target)
    # Kill the leader in the middle of the scale-up: once it has created some pods.
    created = wait_until(lambda: len(pods_of(client, ns)) >= 5 and len(pods_of(client, ns)), 10,
                         "the leader starting to scale up", interval_s=0.005)
    cluster.kill(victim)
    t0 = time.monotonic()
    try:
        most = 0

        def converged():
            nonlocal most
            live = active(pods_of(client, ns))
            most = max(most, len(live))
            d = client.get("deployments", "fo", ns)
            return (len(live) == target and all(p.spec.node_name for p in live)
                    and d.status.replicas == target and d.status.observed_generation == d.metadata.generation)
        wait_until(converged, 40, f"{target} active bound pods after the leader was killed")
        print(f"\nleader {victim} killed with {created}/{target} pods created; converged "
              f"{time.monotonic() - t0:.1f}s later; at most {most} active pods seen")
        assert most == target, f"{most} active pods seen: duplicates were created"
        counts = spread(active(pods_of(client, ns)))
        assert max(counts.values()) - min(counts.values()) <= 1, counts
        assert cluster.leader() != victim

        scale(client, ns, "fo", 5)
        wait_until(lambda: len(pods_of(client, ns)) == 5, 20, "scaled down to 5 by the new leader")
        # A new leader gives every node a fresh grace period: nobody was marked down.
        for name in NODES:
            n = client.get("nodes", name)
            assert condition(n, "Ready").status == "True"
            assert not any(t.key == UNREACHABLE for t in n.spec.taints)
    finally:
        cluster.start(victim)
        cluster.wait_ready(60)
