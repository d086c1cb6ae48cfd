"""The DaemonSet controller's own decisions around the planner, with fake caches and client:
failed pods' back-off per node, FailedPlacement told once, expectations, status writes."""

import itertools

from controlplane.controllers.daemonset import FAILED_BACKOFF_BASE_S, DaemonSetController
from controlplane.controllers.podutil import copy
from tests.unit.test_controllers_daemonset import ds, node, pod


class Cache:
    def __init__(self, objs=()):
        self.objs = {self.key(o): o for o in objs}

    @staticmethod
    def key(o):
        return f"{o.metadata.namespace}/{o.metadata.name}" if o.metadata.namespace else o.metadata.name

    def add_handler(self, *fns):
        pass

    def get(self, key):
        return self.objs.get(key)

    def list(self, namespace=""):
        return [o for o in self.objs.values() if not namespace or o.metadata.namespace == namespace]

    def keys(self):
        return list(self.objs)


class Client:
    def __init__(self, pods: Cache, daemonsets: Cache):
        self.pods, self.daemonsets = pods, daemonsets
        self.created, self.deleted, self.status_writes = [], [], []
        self._n = itertools.count()

    def create(self, p):
        out = copy(p)
        out.metadata.name = f"{p.metadata.generate_name}{next(self._n)}"
        out.metadata.uid = f"uid-{out.metadata.name}"
        self.created.append(out)
        return out

    def delete(self, kind, name, ns, uid=""):
        self.deleted.append(name)

    def update_status(self, obj):
        self.status_writes.append(obj)
        self.daemonsets.objs[Cache.key(obj)] = obj     # the informer would show it
        return obj


class Recorder:
    def __init__(self):
        self.events = []

    def event(self, obj, event_type, reason, message):
        self.events.append((reason, message))


def controller(daemonset, nodes, pods, clock):
    pod_cache, ds_cache = Cache(pods), Cache([daemonset])
    client, recorder = Client(pod_cache, ds_cache), Recorder()
    ctl = DaemonSetController(client, ds_cache, pod_cache, Cache(nodes), recorder, clock=clock)
    return ctl, client, recorder, pod_cache


def test_failed_pod_deleted_then_the_node_backs_off():
    now = [100.0]
    d = ds()
    ctl, client, recorder, cache = controller(d, [node("n1")], [pod("a", "n1", phase="Failed")], lambda: now[0])
    ctl.sync("kube-system/agent")
    assert client.deleted == ["a"]
    assert ("FailedDaemonPod", "Found failed daemon pod kube-system/a on node n1, will try to kill it") \
        in recorder.events
    # the replacement fails too; within the back-off it stays, and the sync asks to look again then
    del cache.objs["kube-system/a"]
    cache.objs["kube-system/b"] = pod("b", "n1", phase="Failed")
    ctl.expectations.forget("kube-system/agent")
    again = ctl.sync("kube-system/agent")
    assert client.deleted == ["a"]
    assert again is not None and 0 < again <= FAILED_BACKOFF_BASE_S
    now[0] += FAILED_BACKOFF_BASE_S + 0.1
    ctl.sync("kube-system/agent")
    assert client.deleted == ["a", "b"]
    assert ctl._failed_backoff[("kube-system/agent", "n1")][1] == 2 * FAILED_BACKOFF_BASE_S   # doubles


def test_failed_placement_is_told_once_per_node_and_reason():
    d = ds(cpu="2")
    ctl, client, recorder, _ = controller(d, [node("n1", cpu="1"), node("n2")], [], lambda: 0.0)
    for _ in range(3):
        ctl.sync("kube-system/agent")
        ctl.expectations.forget("kube-system/agent")
    placement = [e for e in recorder.events if e[0] == "FailedPlacement"]
    assert placement == [("FailedPlacement", 'failed to place pod on "n1": Insufficient cpu')]
    assert [p.spec.node_name for p in client.created] == ["n2", "n2", "n2"]   # the cache never shows them


def test_expectations_hold_creates_until_the_cache_shows_them_and_status_is_written_once():
    d = ds()
    ctl, client, recorder, cache = controller(d, [node("n1"), node("n2")], [], lambda: 0.0)
    ctl.sync("kube-system/agent")
    ctl.sync("kube-system/agent")
    assert sorted(p.spec.node_name for p in client.created) == ["n1", "n2"]     # no duplicates
    assert len(client.status_writes) == 1 and client.status_writes[0].status.desired_number_scheduled == 2
    assert [e[0] for e in recorder.events] == ["SuccessfulCreate", "SuccessfulCreate"]
