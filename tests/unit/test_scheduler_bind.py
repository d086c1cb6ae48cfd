"""The scheduler binds with one write (the binding subresource), as Kubernetes' Binding:
no separate PodScheduled status write, and a refused binding (already bound, being
deleted, replaced, gone) is simply dropped."""

import threading
from types import SimpleNamespace

import pytest

from controlplane.scheduler.scheduler import Scheduler
from skiff import client as clientmod
from skiff.api import objects_pb2 as pb


class RecordingClient:
    def __init__(self, fail=None):
        self.calls = []
        self.fail = fail

    def update(self, obj, request_id=None, subresource=""):
        self.calls.append(("update", subresource, obj.spec.node_name, obj.metadata.resource_version))
        self.sent = obj
        if self.fail:
            raise self.fail("refused")
        bound = pb.Pod()
        bound.CopyFrom(obj)
        bound.metadata.resource_version = "8"
        bound.status.conditions.add(type="PodScheduled", status="True")
        return bound

    def update_status(self, obj, request_id=None):
        self.calls.append(("update_status",))
        return obj


def scheduler_for(client):
    events = []
    recorder = SimpleNamespace(event=lambda obj, typ, reason, msg: events.append((typ, reason, msg)))
    sched = SimpleNamespace(client=client, recorder=recorder, _lock=threading.Lock(), _assumed={},
                            _last_failure={}, _set_scheduled_condition=lambda *a, **k: client.calls.append(a))
    return sched, events


def pending_pod():
    p = pb.Pod(metadata=pb.ObjectMeta(name="web-1", namespace="default", uid="uid-1", resource_version="7"))
    p.spec.containers.add(name="c", image="busybox")
    return p


def test_binding_is_one_write_and_records_scheduled():
    client = RecordingClient()
    sched, events = scheduler_for(client)
    Scheduler._bind(sched, "default/web-1", pending_pod(), "node-1")
    assert client.calls == [("update", "binding", "node-1", "")]
    # Only the pod's identity and the node travel (the log entry stays small).
    assert (client.sent.metadata.name, client.sent.metadata.uid) == ("web-1", "uid-1")
    assert not client.sent.spec.containers and not client.sent.HasField("status")
    assert events == [("Normal", "Scheduled", "Successfully assigned default/web-1 to node-1")]
    assert "uid-1" in sched._assumed


@pytest.mark.parametrize("error", [clientmod.Conflict, clientmod.NotFound])
def test_a_refused_binding_is_dropped(error):
    client = RecordingClient(fail=error)
    sched, events = scheduler_for(client)
    Scheduler._bind(sched, "default/web-1", pending_pod(), "node-1")
    assert client.calls == [("update", "binding", "node-1", "")]
    assert events == [] and sched._assumed == {}
