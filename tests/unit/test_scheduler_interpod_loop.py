"""The scheduler loop with pod affinity (fake informers and client, the real Scheduler):
an unschedulable pod's event carries the per-node detail while its PodScheduled condition
keeps Kubernetes' histogram alone; a pod waiting on required pod affinity is retried when
a pod is bound (its target may have arrived), a plain unschedulable one is not."""

from types import SimpleNamespace

from controlplane.scheduler.scheduler import Scheduler
from skiff.api import objects_pb2 as pb


class FakeInformer:
    def __init__(self, items=()):
        self.items = {self.key(o): o for o in items}

    @staticmethod
    def key(o):
        return f"{o.metadata.namespace}/{o.metadata.name}" if o.metadata.namespace else o.metadata.name

    def add_handler(self, *handlers):
        pass

    def list(self):
        return list(self.items.values())

    def get(self, key):
        return self.items.get(key)


class FakeClient:
    def __init__(self):
        self.status = []

    def update_status(self, obj):
        self.status.append(obj)
        return obj


def node(name):
    n = pb.Node(metadata=pb.ObjectMeta(name=name, labels={"kubernetes.io/hostname": name}))
    n.status.allocatable.update({"cpu": "2", "memory": "4Gi", "pods": "110"})
    n.status.conditions.add(type="Ready", status="True")
    return n


def pod(name, labels, node_name="", affine_to=None):
    p = pb.Pod(metadata=pb.ObjectMeta(name=name, namespace="default", uid=f"uid-{name}", labels=labels))
    p.spec.containers.add(name="c", image="busybox")
    p.spec.node_name = node_name
    if affine_to:
        term = p.spec.affinity.pod_affinity.required_during_scheduling_ignored_during_execution.add(
            topology_key="kubernetes.io/hostname")
        term.label_selector.match_labels.update(affine_to)
    return p


def scheduler(pods, nodes):
    events = []
    recorder = SimpleNamespace(event=lambda obj, typ, reason, msg: events.append((typ, reason, msg)))
    client = FakeClient()
    sched = Scheduler(client, FakeInformer(pods), FakeInformer(nodes), recorder,
                      namespaces=FakeInformer([pb.Namespace(metadata=pb.ObjectMeta(name="default"))]))
    queued = []
    sched.loop = SimpleNamespace(enqueue=queued.append)
    return sched, client, events, queued


def test_event_has_the_detail_and_the_condition_the_histogram():
    waiting = pod("web", {"app": "web"}, affine_to={"app": "db"})
    sched, client, events, _ = scheduler([waiting], [node("n1"), node("n2")])
    sched.sync("default/web")
    histogram = "0/2 nodes are available: 2 node(s) didn't match pod affinity rules."
    assert events == [("Warning", "FailedScheduling",
                       f"{histogram} Rejected by: InterPodAffinity: n1, n2 (node(s) didn't match pod affinity rules).")]
    [cond] = [c for c in client.status[-1].status.conditions if c.type == "PodScheduled"]
    assert (cond.status, cond.reason, cond.message) == ("False", "Unschedulable", histogram)
    sched.sync("default/web")               # the same decision again: no second event
    assert len(events) == 1


def test_a_bound_pod_retries_only_the_pods_waiting_for_pods():
    waiting = pod("web", {"app": "web"}, affine_to={"app": "db"})
    too_big = pod("big", {"app": "big"})
    too_big.spec.containers[0].resources.requests["cpu"] = "64"
    sched, _, _, queued = scheduler([waiting, too_big], [node("n1")])
    sched.sync("default/web")
    sched.sync("default/big")
    assert sched._unschedulable == {"default/web", "default/big"}
    assert sched._wait_for_pods == {"default/web"}

    db = pod("db", {"app": "db"})
    bound_db = pod("db", {"app": "db"}, node_name="n1")
    sched._pod_updated(db, bound_db)
    assert queued == ["default/web"]

    queued.clear()
    relabelled = pod("db", {"app": "db", "tier": "data"}, node_name="n1")
    sched._pod_updated(bound_db, relabelled)
    assert queued == ["default/web"]

    queued.clear()
    sched._pod_updated(relabelled, relabelled)    # a status-only change helps nobody
    assert queued == []

    sched._pod_added(pod("db2", {"app": "db"}, node_name="n1"))   # created bound
    assert queued == ["default/web"]
