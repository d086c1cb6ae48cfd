"""Deletion with each propagation policy, and ReplicationControllers, on a real control plane.

No nodes: the pods stay Pending (unbound), so a delete removes a pod at once unless a
finalizer holds it, which is how the foreground case is made observable step by step.
"""

import uuid

import pytest

from skiff import client as clientmod
from skiff.api import kinds
from skiff.api import objects_pb2 as pb
from skiff.retry import update_on_conflict
from tests.helpers import scratch_namespace, wait_until

HOLD = "skiff.test/hold"


@pytest.fixture
def ns(client):
    with scratch_namespace(client, "skiff-gc") as name:
        yield name


def replicaset(name, ns, replicas):
    rs = pb.ReplicaSet(metadata=pb.ObjectMeta(name=name, namespace=ns))
    rs.spec.replicas = replicas
    rs.spec.selector.match_labels["app"] = name
    rs.spec.template.metadata.labels["app"] = name
    rs.spec.template.spec.containers.add(name="main", image="skiff/busybox:latest")
    return rs


def pods_of(client, ns, app):
    return client.list("pods", namespace=ns, label_selector=f"app={app}")[0]


def wait_pods(client, ns, app, count, owner_uid=None):
    def done():
        pods = pods_of(client, ns, app)
        if len(pods) != count:
            return None
        if owner_uid and not all(any(r.uid == owner_uid for r in p.metadata.owner_references) for p in pods):
            return None
        return pods
    return wait_until(done, 20, f"{count} pods of {app}")


def gone(client, kind, name, ns):
    try:
        client.get(kind, name, ns)
        return False
    except clientmod.NotFound:
        return True


def gc_pass_done(client, ns):
    """Wait until the garbage collector deleted a dependent made dangling on purpose: proof
    that a whole pass ran after this call (it deletes what a pass finds dangling)."""
    probe_pod = pb.Pod(metadata=pb.ObjectMeta(name=f"probe-{uuid.uuid4().hex[:6]}", namespace=ns))
    probe_pod.metadata.owner_references.add(api_version="apps/v1", kind="ReplicaSet", name="nobody",
                                            uid=str(uuid.uuid4()))
    probe_pod.spec.containers.add(name="main", image="skiff/busybox:latest")
    client.create(probe_pod)
    wait_until(lambda: gone(client, "pods", probe_pod.metadata.name, ns), 15, "the GC to collect a probe pod")


def test_background_is_the_default_owner_first_then_dependents(client, ns):
    rs = client.create(replicaset("bg", ns, 2))
    wait_pods(client, ns, "bg", 2, rs.metadata.uid)
    client.delete("replicasets", "bg", ns)
    assert gone(client, "replicasets", "bg", ns)    # at once
    wait_until(lambda: not pods_of(client, ns, "bg"), 15, "the GC to delete the pods")


def test_orphan_leaves_pods_without_owner_references(client, ns):
    rs = client.create(replicaset("orph", ns, 3))
    before = wait_pods(client, ns, "orph", 3, rs.metadata.uid)
    client.delete("replicasets", "orph", ns, propagation_policy="Orphan")
    wait_until(lambda: gone(client, "replicasets", "orph", ns), 15, "the orphaned ReplicaSet to go")
    gc_pass_done(client, ns)
    after = pods_of(client, ns, "orph")
    assert sorted(p.metadata.uid for p in after) == sorted(p.metadata.uid for p in before)
    assert all(not p.metadata.owner_references for p in after)
    assert all(not p.metadata.deletion_timestamp for p in after)


def test_foreground_keeps_the_owner_until_its_pods_are_gone(client, ns):
    rs = client.create(replicaset("fg", ns, 2))
    pods = wait_pods(client, ns, "fg", 2, rs.metadata.uid)
    assert all(r.block_owner_deletion for p in pods for r in p.metadata.owner_references)
    held = pods[0]
    held.metadata.finalizers.append(HOLD)
    client.update(held)

    client.delete("replicasets", "fg", ns, propagation_policy="Foreground")
    marked = client.get("replicasets", "fg", ns)
    assert marked.metadata.deletion_timestamp and list(marked.metadata.finalizers) == ["foregroundDeletion"]
    # The free pod goes; the held one is marked deleting and stays; the owner waits for it.
    wait_until(lambda: [p.metadata.name for p in pods_of(client, ns, "fg")] == [held.metadata.name],
               15, "the unheld pod to be deleted")
    wait_until(lambda: client.get("pods", held.metadata.name, ns).metadata.deletion_timestamp, 15,
               "the held pod to be marked deleting")
    gc_pass_done(client, ns)
    still = client.get("replicasets", "fg", ns)
    assert still.metadata.deletion_timestamp and "foregroundDeletion" in still.metadata.finalizers
    assert len(pods_of(client, ns, "fg")) == 1          # the controller did not replace pods

    live = client.get("pods", held.metadata.name, ns)
    del live.metadata.finalizers[:]
    client.update(live)
    wait_until(lambda: gone(client, "replicasets", "fg", ns), 15, "the ReplicaSet to go after its last pod")
    assert not pods_of(client, ns, "fg")


def test_replication_controller_keeps_and_scales_its_pods(client, ns):
    rc = pb.ReplicationController(metadata=pb.ObjectMeta(name="legacy", namespace=ns))
    rc.spec.replicas = 2
    rc.spec.template.metadata.labels["app"] = "legacy"
    rc.spec.template.spec.containers.add(name="main", image="skiff/busybox:latest")
    rc = client.create(rc)
    assert dict(rc.spec.selector) == {"app": "legacy"}      # defaulted from the template
    pods = wait_pods(client, ns, "legacy", 2, rc.metadata.uid)
    ref = pods[0].metadata.owner_references[0]
    assert (ref.kind, ref.api_version, ref.controller, ref.block_owner_deletion) == \
        ("ReplicationController", "v1", True, True)
    # the controller writes the RC's status meanwhile: retry on a conflict, as a user's tool does
    update_on_conflict(client, kinds.BY_NAME["ReplicationController"], "legacy", ns,
                       lambda live: setattr(live.spec, "replicas", 3))
    wait_pods(client, ns, "legacy", 3, rc.metadata.uid)
    wait_until(lambda: client.get("rc", "legacy", ns).status.replicas == 3, 15, "status.replicas 3")
    client.delete("rc", "legacy", ns, propagation_policy="Foreground")
    wait_until(lambda: gone(client, "rc", "legacy", ns), 15, "the RC to go after its pods")
    assert not pods_of(client, ns, "legacy")


def test_unknown_propagation_policy_is_refused(client, ns):
    client.create(replicaset("odd", ns, 0))
    with pytest.raises(clientmod.Invalid, match='propagationPolicy: Unsupported value: "Sideways"'):
        client.delete("replicasets", "odd", ns, propagation_policy="Sideways")
    assert not gone(client, "replicasets", "odd", ns)
