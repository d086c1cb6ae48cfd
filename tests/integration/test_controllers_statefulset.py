"""The StatefulSet controller on a real 3-replica control plane (loopback), with fake nodes.

The nodes are test_controllers' FakeNodes (they renew Leases and finish graceful
deletions as an agent does). Pods never run: a Kubelet thread here marks every
bound pod Running and Ready, except the ones a test holds back, and a watch records
every pod event, so tests assert on the order things happened in.
"""

import threading

import pytest

from skiff import client as clientmod
from skiff.api import objects_pb2 as pb
from tests.helpers import wait_until
from tests.integration.test_controllers import events, mutate, nodes, ns, set_ready  # noqa: F401 - fixtures

SET = "web"
REVISION = "controller-revision-hash"


class Kubelet:
    """Marks bound pods of ns Running and Ready unless their name is in hold."""

    def __init__(self, client, ns):
        self.client, self.ns = client, ns
        self.hold = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            try:
                pods, _ = self.client.list("pods", self.ns)
                todo = [p for p in pods if p.spec.node_name and not p.metadata.deletion_timestamp
                        and p.status.phase != "Running" and p.metadata.name not in self.hold]
                if todo:
                    set_ready(self.client, todo)
            except (clientmod.ApiError, AssertionError):
                pass
            self.stop.wait(0.1)

    def close(self):
        self.stop.set()
        self.thread.join(5)


class PodLog:
    """Every pod event of ns, in order: (type, name, uid, ready, deleting, revision)."""

    def __init__(self, client, ns):
        self.entries = []
        self._client = client
        self._stream = client.watch("pods", ns)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            for etype, pod, _ in self._stream:
                ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)
                self.entries.append((etype, pod.metadata.name, pod.metadata.uid, ready,
                                     bool(pod.metadata.deletion_timestamp), pod.metadata.labels.get(REVISION, "")))
        except Exception:  # noqa: BLE001 - the stream ends with the test
            pass

    def first(self, etype, name, deleting=None):
        """Index of the first event of that type for name (with that deleting flag), or None."""
        for i, (t, n, _, _, d, _) in enumerate(self.entries):
            if t == etype and n == name and (deleting is None or d == deleting):
                return i
        return None

    def close(self):
        self._client.close()   # ends the stream
        self.thread.join(5)


@pytest.fixture
def kubelet(client, ns):
    k = Kubelet(client, ns)
    yield k
    k.close()


@pytest.fixture
def podlog(cluster, ns):
    log = PodLog(cluster.client(), ns)
    yield log
    log.close()


def statefulset(ns, replicas=3, image="skiff/busybox:1", policy="OrderedReady", strategy=None):
    s = pb.StatefulSet(metadata=pb.ObjectMeta(name=SET, namespace=ns))
    s.spec.replicas = replicas
    s.spec.service_name = "nginx"
    s.spec.pod_management_policy = policy
    if strategy:
        s.spec.update_strategy.type = strategy
    s.spec.selector.match_labels["app"] = SET
    s.spec.template.metadata.labels["app"] = SET
    c = s.spec.template.spec.containers.add(name="main", image=image)
    c.resources.requests["cpu"] = "10m"
    return s


def live_pods(client, ns):
    return {p.metadata.name: p for p in client.list("pods", ns)[0] if not p.metadata.deletion_timestamp}


def wait_ready_set(client, ns, replicas, timeout_s=30):
    """The set's status says replicas pods, all ready and updated, and the pods exist."""
    def done():
        s = client.get("statefulsets", SET, ns)
        st = s.status
        ok = (st.observed_generation == s.metadata.generation and st.replicas == replicas
              and st.ready_replicas == replicas and st.updated_replicas == replicas
              and st.current_revision == st.update_revision != "")
        return s if ok and len(live_pods(client, ns)) == replicas else None
    return wait_until(done, timeout_s, f"statefulset {SET}: {replicas} ready and updated")


def set_spec(client, ns, fn):
    return mutate(client, "statefulsets", SET, fn, namespace=ns)


# ---------------------------------------------------------------- tests

def test_ordered_ready_creates_in_order_each_ready_first(client, ns, kubelet, podlog):
    client.create(statefulset(ns, 3))
    s = wait_ready_set(client, ns, 3)
    added = [podlog.first("ADDED", f"{SET}-{i}") for i in range(3)]
    assert None not in added and added == sorted(added), podlog.entries
    for i in (1, 2):   # web-i was created only after web-(i-1) was seen ready
        before = podlog.entries[:added[i]]
        assert any(n == f"{SET}-{i - 1}" and ready for _, n, _, ready, _, _ in before), podlog.entries

    pods = live_pods(client, ns)
    for i in range(3):
        p = pods[f"{SET}-{i}"]
        assert p.metadata.labels["statefulset.kubernetes.io/pod-name"] == f"{SET}-{i}"
        assert p.metadata.labels["apps.kubernetes.io/pod-index"] == str(i)
        assert p.metadata.labels[REVISION] == s.status.update_revision
        assert (p.spec.hostname, p.spec.subdomain) == (f"{SET}-{i}", "nginx")
        ref = p.metadata.owner_references[0]
        assert (ref.kind, ref.name, ref.uid, ref.controller) == ("StatefulSet", SET, s.metadata.uid, True)
    messages = sorted(e.message for e in events(client, ns, "SuccessfulCreate", SET))
    assert messages == [f"create Pod {SET}-{i} in StatefulSet {SET} successful" for i in range(3)]


def test_ordered_ready_waits_for_a_pod_that_is_not_ready(client, ns, kubelet):
    kubelet.hold.add(f"{SET}-0")
    client.create(statefulset(ns, 3))
    # The status is written after a sync planned with web-0 present: it created nothing more.
    wait_until(lambda: client.get("statefulsets", SET, ns).status.replicas == 1, 20, "status: 1 replica")
    wait_until(lambda: client.get("pods", f"{SET}-0", ns).spec.node_name, 20, "web-0 bound")
    assert set(live_pods(client, ns)) == {f"{SET}-0"}
    kubelet.hold.clear()
    wait_ready_set(client, ns, 3)


def test_a_deleted_pod_comes_back_with_the_same_name(client, ns, kubelet):
    client.create(statefulset(ns, 2))
    wait_ready_set(client, ns, 2)
    old = client.get("pods", f"{SET}-1", ns)
    client.delete("pods", f"{SET}-1", ns)

    def replaced():
        p = live_pods(client, ns).get(f"{SET}-1")
        return p is not None and p.metadata.uid != old.metadata.uid
    wait_until(replaced, 30, "web-1 made again")
    wait_ready_set(client, ns, 2)


def test_scale_down_removes_the_highest_first_one_at_a_time(client, ns, kubelet, podlog):
    client.create(statefulset(ns, 3))
    wait_ready_set(client, ns, 3)
    set_spec(client, ns, lambda s: setattr(s.spec, "replicas", 1))
    wait_ready_set(client, ns, 1)
    assert set(live_pods(client, ns)) == {f"{SET}-0"}
    gone2, deleting1 = podlog.first("DELETED", f"{SET}-2"), podlog.first("MODIFIED", f"{SET}-1", deleting=True)
    assert gone2 is not None and deleting1 is not None and gone2 < deleting1, podlog.entries
    messages = [e.message for e in events(client, ns, "SuccessfulDelete", SET)]
    assert sorted(messages) == [f"delete Pod {SET}-{i} in StatefulSet {SET} successful" for i in (1, 2)]


def test_rolling_update_honours_the_partition_highest_first(client, ns, kubelet, podlog):
    client.create(statefulset(ns, 3))
    old_rev = wait_ready_set(client, ns, 3).status.update_revision

    def update(s):
        s.spec.template.spec.containers[0].image = "skiff/busybox:2"
        s.spec.update_strategy.rolling_update.partition = 1
    set_spec(client, ns, update)

    def partitioned():
        s = client.get("statefulsets", SET, ns)
        st = s.status
        return s if (st.observed_generation == s.metadata.generation and st.updated_replicas == 2
                     and st.ready_replicas == 3 and st.current_replicas == 1) else None
    s = wait_until(partitioned, 40, "web-1 and web-2 updated, web-0 not")
    new_rev = s.status.update_revision
    assert new_rev != old_rev and s.status.current_revision == old_rev
    pods = live_pods(client, ns)
    assert {n: p.metadata.labels[REVISION] for n, p in pods.items()} == {
        f"{SET}-0": old_rev, f"{SET}-1": new_rev, f"{SET}-2": new_rev}
    assert pods[f"{SET}-0"].spec.containers[0].image == "skiff/busybox:1"
    assert pods[f"{SET}-1"].spec.containers[0].image == "skiff/busybox:2"
    assert podlog.first("DELETED", f"{SET}-2") < podlog.first("MODIFIED", f"{SET}-1", deleting=True)

    # Below the partition a deleted pod comes back at the current (old) revision.
    uid0 = pods[f"{SET}-0"].metadata.uid
    client.delete("pods", f"{SET}-0", ns)

    def back():
        p = live_pods(client, ns).get(f"{SET}-0")
        return p if p is not None and p.metadata.uid != uid0 else None
    p0 = wait_until(back, 30, "web-0 made again")
    assert (p0.metadata.labels[REVISION], p0.spec.containers[0].image) == (old_rev, "skiff/busybox:1")

    set_spec(client, ns, lambda s: setattr(s.spec.update_strategy.rolling_update, "partition", 0))
    s = wait_ready_set(client, ns, 3)
    assert s.status.current_revision == new_rev
    assert all(p.spec.containers[0].image == "skiff/busybox:2" for p in live_pods(client, ns).values())


def test_on_delete_replaces_only_deleted_pods(client, ns, kubelet):
    client.create(statefulset(ns, 2, strategy="OnDelete"))
    old_rev = wait_ready_set(client, ns, 2).status.update_revision
    set_spec(client, ns, lambda s: setattr(s.spec.template.spec.containers[0], "image", "skiff/busybox:2"))

    def seen():
        s = client.get("statefulsets", SET, ns)
        return s if s.status.observed_generation == s.metadata.generation else None
    new_rev = wait_until(seen, 20, "new generation observed").status.update_revision
    assert new_rev != old_rev
    assert {p.metadata.labels[REVISION] for p in live_pods(client, ns).values()} == {old_rev}
    uid = client.get("pods", f"{SET}-1", ns).metadata.uid
    client.delete("pods", f"{SET}-1", ns)

    def back():
        p = live_pods(client, ns).get(f"{SET}-1")
        return p if p is not None and p.metadata.uid != uid else None
    assert wait_until(back, 30, "web-1 made again").metadata.labels[REVISION] == new_rev
    assert live_pods(client, ns)[f"{SET}-0"].metadata.labels[REVISION] == old_rev


def test_parallel_creates_all_at_once(client, ns, kubelet):
    kubelet.hold.update({f"{SET}-{i}" for i in range(3)})
    client.create(statefulset(ns, 3, policy="Parallel"))
    wait_until(lambda: len(live_pods(client, ns)) == 3, 20, "3 pods, none ready")
    assert client.get("statefulsets", SET, ns).status.ready_replicas == 0
    kubelet.hold.clear()
    wait_ready_set(client, ns, 3)
    set_spec(client, ns, lambda s: setattr(s.spec, "replicas", 0))
    wait_until(lambda: not live_pods(client, ns), 20, "all pods gone")


def test_deleting_the_set_deletes_its_pods(client, ns, kubelet):
    client.create(statefulset(ns, 2))
    wait_ready_set(client, ns, 2)
    client.delete("statefulsets", SET, ns)
    wait_until(lambda: not client.list("pods", ns)[0], 30, "the set's pods collected")
