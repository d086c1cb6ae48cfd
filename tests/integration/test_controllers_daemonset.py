"""The DaemonSet controller on a real 3-replica control plane (loopback), with fake nodes.

The nodes are test_controllers.FakeNodes (Node objects whose Lease a thread renews,
and which finish graceful pod deletions as an agent would). Pods never run: the
tests mark them Running and Ready through the status subresource, as an agent would
report them, which is how rollouts are paced.
"""

import threading
import time

import pytest

from skiff import client as clientmod
from skiff.api import objects_pb2 as pb
from tests.helpers import scratch_namespace, wait_until
from tests.integration.test_controllers import (EVICTION_S, GRACE_S, NODES, condition, events, mutate,  # noqa: F401
                                                nodes, now_rfc3339)  # nodes: the fake nodes fixture

HASH = "controller-revision-hash"


@pytest.fixture
def ns(client, nodes):
    with scratch_namespace(client, "skiff-ds") as name:
        yield name


def daemonset(name, ns, image="skiff/busybox:1", node_selector=None, unavailable=1, surge=0, strategy=None):
    d = pb.DaemonSet(metadata=pb.ObjectMeta(name=name, namespace=ns))
    d.spec.selector.match_labels["app"] = name
    d.spec.template.metadata.labels["app"] = name
    c = d.spec.template.spec.containers.add(name="main", image=image)
    c.resources.requests["cpu"] = "10m"
    d.spec.template.spec.node_selector.update(node_selector or {})
    if strategy == "OnDelete":
        d.spec.update_strategy.type = "OnDelete"
    else:
        d.spec.update_strategy.rolling_update.max_unavailable.int_val = unavailable
        d.spec.update_strategy.rolling_update.max_surge.int_val = surge
    return d


def live_pods(client, ns, app):
    pods, _ = client.list("pods", ns, label_selector=f"app={app}")
    return [p for p in pods if not p.metadata.deletion_timestamp]


def is_ready(p):
    cond = condition(p, "Ready")
    return cond is not None and cond.status == "True"


def report_ready(client, ns, app):
    """Play the agents: every live pod of app that is not Ready yet becomes Running and Ready."""
    def ready(p):
        now = now_rfc3339()
        p.status.phase = "Running"
        for ctype in ("Ready", "ContainersReady"):
            cond = condition(p, ctype) or p.status.conditions.add(type=ctype)
            cond.status, cond.last_transition_time = "True", now
    for p in live_pods(client, ns, app):
        if not is_ready(p):
            try:
                mutate(client, "pods", p.metadata.name, ready, namespace=ns, status=True)
            except clientmod.NotFound:
                pass


def wait_one_per_node(client, ns, app, node_names, timeout_s=20, ready=True):
    def done():
        if ready:
            report_ready(client, ns, app)
        pods = live_pods(client, ns, app)
        on = sorted(p.spec.node_name for p in pods)
        return pods if on == sorted(node_names) else None
    return wait_until(done, timeout_s, f"one pod of {app} on each of {sorted(node_names)}")


def wait_status(client, ns, name, timeout_s=20, **want):
    def done():
        st = client.get("daemonsets", name, ns).status
        return all(getattr(st, k) == v for k, v in want.items())
    wait_until(done, timeout_s, f"daemonset {name} status {want}")


def set_image(client, ns, name, image):
    def fn(d):
        d.spec.template.spec.containers[0].image = image
    return mutate(client, "daemonsets", name, fn, namespace=ns)


def label_node(client, name, key, value):
    def fn(n):
        if value is None:
            n.metadata.labels.pop(key, None)
        else:
            n.metadata.labels[key] = value
    mutate(client, "nodes", name, fn, namespace="")


# ---------------------------------------------------------------- tests

def test_one_pod_per_node_bound_with_kubernetes_tolerations_and_status(client, ns):
    ds = client.create(daemonset("agent", ns))
    pods = wait_one_per_node(client, ns, "agent", NODES)
    rev = pods[0].metadata.labels[HASH]
    for p in pods:
        assert p.metadata.labels[HASH] == rev
        ref = p.metadata.owner_references[0]
        assert (ref.kind, ref.name, ref.uid, ref.controller) == ("DaemonSet", "agent", ds.metadata.uid, True)
        tolerations = {(t.key, t.effect) for t in p.spec.tolerations}
        assert ("node.kubernetes.io/unreachable", "NoExecute") in tolerations
        assert ("node.kubernetes.io/unschedulable", "NoSchedule") in tolerations
        term = p.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution.node_selector_terms[0]
        assert list(term.match_fields[0].values) == [p.spec.node_name]
    wait_status(client, ns, "agent", desired_number_scheduled=3, current_number_scheduled=3, number_ready=3,
                number_available=3, updated_number_scheduled=3, number_unavailable=0, number_misscheduled=0,
                observed_generation=ds.metadata.generation)
    assert len(events(client, ns, "SuccessfulCreate", "agent")) == 3
    # a pod deleted by hand comes back on its node
    victim = pods[0]
    client.delete("pods", victim.metadata.name, ns)
    wait_until(lambda: any(p.spec.node_name == victim.spec.node_name and p.metadata.uid != victim.metadata.uid
                           for p in live_pods(client, ns, "agent")), 20, "the pod replaced on its node")
    # deleting the DaemonSet deletes its pods (garbage collection)
    client.delete("daemonsets", "agent", ns)
    wait_until(lambda: not client.list("pods", ns, label_selector="app=agent")[0], 20, "pods collected")


def test_node_selector_label_changes_and_a_node_that_joins_and_leaves(client, ns):
    client.create(daemonset("edge", ns, node_selector={"role": "edge"}))
    wait_status(client, ns, "edge", desired_number_scheduled=0, observed_generation=1)
    assert live_pods(client, ns, "edge") == []
    try:
        label_node(client, NODES[1], "role", "edge")
        wait_one_per_node(client, ns, "edge", [NODES[1]])
        # a node that joins with the label gets its pod
        joined = pb.Node(metadata=pb.ObjectMeta(name="skiff-node4", labels={"role": "edge"}))
        joined.status.allocatable.update({"cpu": "2", "memory": "4Gi", "pods": "110"})
        joined.status.conditions.add(type="Ready", status="True", last_heartbeat_time=now_rfc3339())
        client.create(joined)
        wait_one_per_node(client, ns, "edge", [NODES[1], "skiff-node4"])
        wait_status(client, ns, "edge", desired_number_scheduled=2, number_ready=2)
        # ... and a node that goes away loses it (the pod GC removes pods of deleted nodes)
        client.delete("nodes", "skiff-node4")
        wait_one_per_node(client, ns, "edge", [NODES[1]], timeout_s=30)
        wait_status(client, ns, "edge", desired_number_scheduled=1)
        # a node whose label goes loses its pod
        label_node(client, NODES[1], "role", None)
        wait_until(lambda: not live_pods(client, ns, "edge"), 20, "the pod leaves the unlabelled node")
        wait_status(client, ns, "edge", desired_number_scheduled=0, current_number_scheduled=0)
    finally:
        label_node(client, NODES[1], "role", None)
        try:
            client.delete("nodes", "skiff-node4")
        except clientmod.NotFound:
            pass


def _watch_rollout(client, ns, app, new_rev, check, timeout_s=40):
    """Play the agents until every node runs a ready pod of new_rev, calling check(pods) on
    every sample (about every 20 ms)."""
    deadline = time.monotonic() + timeout_s
    samples = 0
    while time.monotonic() < deadline:
        report_ready(client, ns, app)
        pods = live_pods(client, ns, app)
        check(pods)
        samples += 1
        if (sorted(p.spec.node_name for p in pods) == sorted(NODES)
                and all(p.metadata.labels[HASH] == new_rev and is_ready(p) for p in pods)):
            return samples
        time.sleep(0.02)
    raise AssertionError(f"rollout of {app} did not finish: {[(p.spec.node_name, p.metadata.labels[HASH]) for p in pods]}")


def _new_revision(client, ns, name, old_rev):
    def differs():
        pods = client.list("pods", ns, label_selector=f"app={name}")[0]
        revs = {p.metadata.labels[HASH] for p in pods} - {old_rev}
        return revs.pop() if revs else None
    return wait_until(differs, 20, "a pod of the new revision")


def test_rolling_update_replaces_node_by_node_within_max_unavailable(client, ns):
    client.create(daemonset("roll", ns, unavailable=1))
    old_rev = wait_one_per_node(client, ns, "roll", NODES)[0].metadata.labels[HASH]
    set_image(client, ns, "roll", "skiff/busybox:2")
    worst = [0]

    def check(pods):
        ready_nodes = {p.spec.node_name for p in pods if is_ready(p)}
        worst[0] = max(worst[0], len(NODES) - len(ready_nodes))
        assert len(NODES) - len(ready_nodes) <= 1, f"more than maxUnavailable=1 nodes unavailable: {ready_nodes}"
        assert all(n <= 1 for n in _per_node(pods).values()), "two pods on a node without surge"
    new_rev = _new_revision(client, ns, "roll", old_rev)
    _watch_rollout(client, ns, "roll", new_rev, check)
    assert worst[0] == 1   # it did take one node down at a time
    assert len(events(client, ns, "SuccessfulDelete", "roll")) >= 3
    wait_status(client, ns, "roll", updated_number_scheduled=3, number_available=3)


def _per_node(pods):
    out = {}
    for p in pods:
        out[p.spec.node_name] = out.get(p.spec.node_name, 0) + 1
    return out


def test_surge_update_never_leaves_a_node_without_a_ready_pod(client, ns):
    client.create(daemonset("surge", ns, unavailable=0, surge=1))
    old_rev = wait_one_per_node(client, ns, "surge", NODES)[0].metadata.labels[HASH]
    set_image(client, ns, "surge", "skiff/busybox:2")
    doubled = []

    def check(pods):
        ready_nodes = {p.spec.node_name for p in pods if is_ready(p)}
        assert ready_nodes == set(NODES), f"a node without a ready pod during a surge update: {ready_nodes}"
        per_node = _per_node(pods)
        assert sum(1 for n in per_node.values() if n > 1) <= 1, f"more than maxSurge=1 nodes surged: {per_node}"
        doubled.extend(n for n, c in per_node.items() if c > 1)
    _watch_rollout(client, ns, "surge", _new_revision(client, ns, "surge", old_rev), check)
    assert doubled, "a surge update runs two pods on a node for a while"


def test_on_delete_replaces_only_deleted_pods(client, ns):
    client.create(daemonset("od", ns, strategy="OnDelete"))
    pods = wait_one_per_node(client, ns, "od", NODES)
    old_rev = pods[0].metadata.labels[HASH]
    set_image(client, ns, "od", "skiff/busybox:2")
    wait_status(client, ns, "od", observed_generation=2, updated_number_scheduled=0)
    assert {p.metadata.labels[HASH] for p in live_pods(client, ns, "od")} == {old_rev}
    client.delete("pods", pods[0].metadata.name, ns)
    wait_until(lambda: sorted(p.metadata.labels[HASH] != old_rev for p in live_pods(client, ns, "od"))
               == [False, False, True], 20, "one pod of the new revision")
    wait_status(client, ns, "od", updated_number_scheduled=1)


def test_pods_on_a_silent_node_stay_and_are_not_replaced(client, ns, nodes):
    client.create(daemonset("stay", ns))
    pods = wait_one_per_node(client, ns, "stay", NODES)
    silent = NODES[2]
    nodes.stop(silent)
    try:
        wait_until(lambda: any(t.key == "node.kubernetes.io/unreachable"
                               for t in client.get("nodes", silent).spec.taints), GRACE_S + 10, "node tainted")
        deadline = time.monotonic() + EVICTION_S + 3
        while time.monotonic() < deadline:
            now = {p.metadata.uid for p in client.list("pods", ns, label_selector="app=stay")[0]}
            assert now == {p.metadata.uid for p in pods}, "a DaemonSet pod was evicted or replaced"
            time.sleep(0.25)
    finally:
        nodes.resume(silent)
    assert not events(client, ns, "NodeControllerEviction")


def test_cordoned_node_keeps_and_gets_its_pod(client, ns):
    def cordon(value):
        def fn(n):
            n.spec.unschedulable = value
        mutate(client, "nodes", NODES[0], fn, namespace="")
    cordon(True)
    try:
        client.create(daemonset("cord", ns))
        wait_one_per_node(client, ns, "cord", NODES)
    finally:
        cordon(False)


def test_concurrent_syncs_never_put_two_pods_on_a_node(client, ns):
    """Many DaemonSet writes in a burst (each one a sync) must not duplicate pods."""
    client.create(daemonset("burst", ns))
    stop = threading.Event()

    def poke():
        i = 0
        while not stop.is_set():
            i += 1
            try:
                mutate(client, "daemonsets", "burst",
                       lambda d: d.metadata.annotations.__setitem__("poke", str(i)), namespace=ns)
            except AssertionError:
                pass
    t = threading.Thread(target=poke, daemon=True)
    t.start()
    try:
        wait_one_per_node(client, ns, "burst", NODES)
        for _ in range(20):
            assert all(n == 1 for n in _per_node(live_pods(client, ns, "burst")).values())
            time.sleep(0.05)
    finally:
        stop.set()
        t.join(5)
