"""Scheduling gates: validated as Kubernetes (set at creation, only removed on update), the
scheduler leaves a gated pod alone with PodScheduled=False/SchedulingGated and schedules it
once the last gate goes, the store refuses to bind a gated pod, and `get pods` shows
SchedulingGated in the STATUS column."""

import threading
from types import SimpleNamespace

import pytest

from controlplane.scheduler.scheduler import SCHEDULING_GATED_MESSAGE, Scheduler
from controlplane.store import binding
from skiff.api import codec, defaults, kinds, validation
from skiff.api import objects_pb2 as pb
from skiff.api.kinds.pod import pod_status


def pod_doc(gates=(), node_name=""):
    spec = {"containers": [{"name": "c", "image": "skiff/busybox:latest"}]}
    if gates:
        spec["schedulingGates"] = [{"name": g} for g in gates]
    if node_name:
        spec["nodeName"] = node_name
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"}, "spec": spec}


def decoded(doc):
    kind = kinds.BY_NAME["Pod"]
    msg = codec.decode(kind.message, doc)
    defaults.apply_defaults(kind, msg)
    return kind, msg


def errors(doc):
    kind, msg = decoded(doc)
    return [str(e) for e in validation.validate(kind, msg)]


def update_errors(old_doc, new_doc):
    kind, old = decoded(old_doc)
    _, new = decoded(new_doc)
    return [str(e) for e in validation.validate(kind, new) + validation.validate_update(kind, new, old)]


CREATE = [
    ((), "", []),
    (("example.com/wait",), "", []),
    (("wait", "example.com/other"), "", []),
    (("a", "a"), "", ['spec.schedulingGates[1]: Duplicate value: "a"']),
    (("-bad",), "", ['spec.schedulingGates[0].name: Invalid value: "-bad"']),
    (("",), "", ["spec.schedulingGates[0].name: Required value"]),
    (("wait",), "node1",
     ["spec.nodeName: Forbidden: cannot be set until all schedulingGates have been cleared"]),
]


@pytest.mark.parametrize("gates,node,expected", CREATE)
def test_gates_on_create(gates, node, expected):
    got = errors(pod_doc(gates, node))
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.startswith(e)


UPDATE = [
    # (old gates, new gates, error)
    (("a", "b"), ("a",), None),
    (("a", "b"), (), None),
    (("a",), ("a",), None),
    (("a",), ("a", "b"), "spec.schedulingGates: Forbidden: only deletion is allowed, but found new scheduling gate 'b'"),
    ((), ("x",), "spec.schedulingGates: Forbidden: only deletion is allowed, but found new scheduling gate 'x'"),
]


@pytest.mark.parametrize("old,new,error", UPDATE)
def test_gates_on_update_only_removed(old, new, error):
    got = update_errors(pod_doc(old), pod_doc(new))
    assert got == ([error] if error else [])


def test_gates_cannot_be_added_to_a_bound_pod():
    got = update_errors(pod_doc((), "node1"), pod_doc(("x",), "node1"))
    assert "spec.schedulingGates: Forbidden: only deletion is allowed, but found new scheduling gate 'x'" in got


# ---------------------------------------------------------------- the scheduler

class FakeInformer:
    def __init__(self, objs=()):
        self.objs = {f"{o.metadata.namespace}/{o.metadata.name}" if o.metadata.namespace else o.metadata.name: o
                     for o in objs}
        self.handlers = []

    def add_handler(self, on_add=None, on_update=None, on_delete=None):
        self.handlers.append((on_add, on_update, on_delete))

    def get(self, key):
        return self.objs.get(key)

    def list(self, namespace=""):
        return list(self.objs.values())


class Client:
    def __init__(self):
        self.bindings, self.statuses = [], []

    def update(self, obj, request_id=None, subresource=""):
        self.bindings.append(obj.spec.node_name)
        return obj

    def update_status(self, obj, request_id=None):
        self.statuses.append(obj)
        return obj


def gated_pod(*gates):
    _, p = decoded(pod_doc(gates))
    p.metadata.uid = "uid-p"
    return p


def node():
    n = pb.Node(metadata=pb.ObjectMeta(name="node1"))
    n.status.allocatable.update({"cpu": "2", "memory": "4Gi", "pods": "110"})
    n.status.conditions.add(type="Ready", status="True")
    return n


def scheduler_with(p):
    events = []
    recorder = SimpleNamespace(event=lambda obj, typ, reason, msg: events.append((typ, reason, msg)))
    client = Client()
    pods = FakeInformer([p])
    sched = Scheduler(client, pods, FakeInformer([node()]), recorder)
    return sched, client, pods, events


def test_a_gated_pod_is_not_scheduled_and_says_why():
    sched, client, _, events = scheduler_with(gated_pod("example.com/wait"))
    assert sched.sync("default/p") is None        # no backoff: it waits for its gates, not for nodes
    assert client.bindings == [] and events == []
    [written] = client.statuses
    [cond] = [c for c in written.status.conditions if c.type == "PodScheduled"]
    assert (cond.status, cond.reason, cond.message) == ("False", "SchedulingGated", SCHEDULING_GATED_MESSAGE)
    assert "default/p" not in sched._unschedulable


def test_removing_the_last_gate_enqueues_and_schedules():
    old = gated_pod("a")
    sched, client, pods, events = scheduler_with(old)
    new = gated_pod()
    pods.objs["default/p"] = new
    _, on_update, _ = pods.handlers[0]
    on_update(old, new)
    assert sched.loop.queue.get(timeout_s=1) == "default/p"
    sched.sync("default/p")
    assert client.bindings == ["node1"]
    assert events[-1][1] == "Scheduled"


def test_removing_one_of_two_gates_keeps_it_gated():
    sched, client, pods, _ = scheduler_with(gated_pod("a", "b"))
    pods.objs["default/p"] = gated_pod("b")
    sched.sync("default/p")
    assert client.bindings == []


def test_the_store_refuses_to_bind_a_gated_pod():
    p = gated_pod("a")
    target = pb.Pod()
    target.spec.node_name = "node1"
    code, message = binding.bind(p, target, "2026-01-01T00:00:00Z")
    assert code == "conflict" and "schedulingGates" in message
    assert p.spec.node_name == ""


def test_status_column_shows_scheduling_gated():
    p = gated_pod("a")
    p.status.phase = "Pending"
    assert pod_status(p) == "Pending"
    p.status.conditions.add(type="PodScheduled", status="False", reason="SchedulingGated")
    assert pod_status(p) == "SchedulingGated"
    p.status.conditions[0].status, p.status.conditions[0].reason = "True", ""
    assert pod_status(p) == "Pending"
