"""NoExecute taint eviction: the pure planner (tables), the controller's sync against a fake
API (deletes, events, wake-ups, cancellations), and the API's timeAdded stamp."""

import datetime

import pytest

from controlplane.apiserver import admission
from controlplane.controllers.taint_eviction import REASON, TaintEvictionController
from controlplane.controllers.taint_eviction_plan import (FOREVER, Plan, cancelled, eviction_taints,
                                                          eviction_time, plan_node)
from skiff import client as clientmod
from skiff.api import kinds
from skiff.api import objects_pb2 as pb

T0 = datetime.datetime(2026, 3, 1, 12, 0, 0, tzinfo=datetime.timezone.utc).timestamp()


def ts(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def taint(key="dedicated", value="x", effect="NoExecute", added=T0):
    return pb.Taint(key=key, value=value, effect=effect, time_added=ts(added) if added is not None else "")


def node(*taints, name="n1"):
    n = pb.Node(metadata=pb.ObjectMeta(name=name))
    n.spec.taints.extend(taints)
    return n


def tol(key="dedicated", value="x", op="Equal", effect="NoExecute", seconds=None):
    t = pb.Toleration(key=key, operator=op, value=value, effect=effect)
    if seconds is not None:
        t.toleration_seconds = seconds
    return t


def pod(name="p", *tolerations, bound=T0 - 100, phase="Running", deleting=False, node_name="n1"):
    p = pb.Pod(metadata=pb.ObjectMeta(name=name, namespace="ns", uid=f"uid-{name}",
                                      creation_timestamp=ts(T0 - 101)))
    p.spec.node_name = node_name
    p.spec.tolerations.extend(tolerations)
    p.status.phase = phase
    if bound is not None:
        p.status.conditions.add(type="PodScheduled", status="True", last_transition_time=ts(bound))
    if deleting:
        p.metadata.deletion_timestamp = ts(T0)
    return p


# ---------------------------------------------------------------- which taints

def test_eviction_taints_are_the_noexecute_ones_except_unreachable():
    n = node(taint("a"), taint("b", effect="NoSchedule"), taint("c", effect="PreferNoSchedule"),
             taint("node.kubernetes.io/unreachable", value=""), taint("node.kubernetes.io/not-ready", value=""))
    assert [t.key for t in eviction_taints(n)] == ["a", "node.kubernetes.io/not-ready"]


# ---------------------------------------------------------------- one pod: when it must go

EVICTION_TIME_CASES = [
    # (id, tolerations, taints, now, want: epoch, "now" (any time not after now) or FOREVER)
    ("no toleration: at once", (), (taint(),), T0 + 1, "now"),
    ("a toleration of another key: at once", (tol(key="other"),), (taint(),), T0 + 1, "now"),
    ("a value mismatch (Equal): at once", (tol(value="y"),), (taint(),), T0 + 1, "now"),
    ("a NoSchedule toleration does not cover NoExecute", (tol(effect="NoSchedule"),), (taint(),), T0 + 1, "now"),
    ("tolerated without seconds: forever", (tol(),), (taint(),), T0 + 1, FOREVER),
    ("Exists with no key tolerates everything forever", (tol(key="", value="", op="Exists", effect=""),),
     (taint(), taint("b")), T0 + 1, FOREVER),
    ("tolerationSeconds from timeAdded", (tol(seconds=5),), (taint(),), T0 + 1, T0 + 5),
    ("the deadline has passed: now", (tol(seconds=5),), (taint(),), T0 + 6, "now"),
    ("tolerationSeconds 0: at once", (tol(seconds=0),), (taint(),), T0, "now"),
    ("negative tolerationSeconds: at once", (tol(seconds=-3),), (taint(),), T0, "now"),
    ("two taints: the smallest tolerationSeconds wins",
     (tol(seconds=30), tol(key="b", seconds=10)), (taint(), taint("b")), T0 + 1, T0 + 10),
    ("two taints, one tolerated forever: the other's seconds still bound it",
     (tol(), tol(key="b", seconds=10)), (taint(), taint("b")), T0 + 1, T0 + 10),
    ("two taints, one not tolerated: at once", (tol(seconds=30),), (taint(), taint("b")), T0 + 1, "now"),
    ("the FIRST matching toleration is used (forever), a later one's seconds ignored",
     (tol(), tol(op="Exists", value="", seconds=5)), (taint(),), T0 + 100, FOREVER),
    ("the FIRST matching toleration is used (5 s), a later forever one ignored",
     (tol(seconds=5), tol(op="Exists", value="")), (taint(),), T0 + 1, T0 + 5),
    ("each taint counts from its own timeAdded",
     (tol(seconds=10), tol(key="b", seconds=10)), (taint(added=T0 - 5), taint("b", added=T0)), T0, T0 + 5),
    ("a timeAdded in the future counts from now", (tol(seconds=10),), (taint(added=T0 + 50),), T0, T0 + 10),
]


@pytest.mark.parametrize("case", EVICTION_TIME_CASES, ids=[c[0] for c in EVICTION_TIME_CASES])
def test_eviction_time(case):
    _, tolerations, taints, now, want = case
    got = eviction_time(pod("p", *tolerations), list(taints), now)
    if want == "now":
        assert got is not FOREVER and got <= now
    else:
        assert got == want


def test_a_pod_bound_after_the_taint_gets_its_whole_toleration():
    """Kubernetes counts from when it sees the pod on the tainted node: a pod scheduled onto a
    node tainted an hour ago is not evicted at once."""
    late = pod("late", tol(seconds=5), bound=T0 + 3600)
    assert eviction_time(late, [taint()], T0 + 3601) == T0 + 3605
    no_condition = pod("created-bound", tol(seconds=5), bound=None)   # creationTimestamp T0 - 101
    assert eviction_time(no_condition, [taint()], T0 + 1) == T0 + 5


def test_a_taint_without_time_added_counts_from_first_seen():
    untimed = taint(added=None)
    p = pod("p", tol(seconds=5))
    assert eviction_time(p, [untimed], T0 + 2, {("dedicated", "x", "NoExecute"): T0}) == T0 + 5
    assert eviction_time(p, [untimed], T0 + 2) == T0 + 7     # not seen before: from now


# ---------------------------------------------------------------- a node: the plan

PLAN_CASES = [
    # (id, node, pods, now, want Plan)
    ("no taints: nothing", node(), [pod("a")], T0, Plan()),
    ("a NoSchedule taint evicts nothing", node(taint(effect="NoSchedule")), [pod("a")], T0, Plan()),
    ("unreachable is the node lifecycle controller's", node(taint("node.kubernetes.io/unreachable", value="")),
     [pod("a")], T0 + 1000, Plan()),
    ("untolerated pods go, tolerating ones wait or stay", node(taint()),
     [pod("b"), pod("a"), pod("wait", tol(seconds=5)), pod("stay", tol())], T0 + 1,
     Plan(evict=("ns/a", "ns/b"), pending=("ns/wait",), next_at_s=T0 + 5)),
    ("the earliest deadline is the wake-up", node(taint()),
     [pod("w10", tol(seconds=10)), pod("w3", tol(seconds=3))], T0,
     Plan(pending=("ns/w10", "ns/w3"), next_at_s=T0 + 3)),
    ("deadline reached", node(taint()), [pod("w", tol(seconds=5))], T0 + 5, Plan(evict=("ns/w",))),
    ("terminating and finished pods are left alone", node(taint()),
     [pod("del", deleting=True), pod("done", phase="Succeeded"), pod("failed", phase="Failed"),
      pod("pending", phase="Pending")], T0, Plan(evict=("ns/pending",))),
]


@pytest.mark.parametrize("case", PLAN_CASES, ids=[c[0] for c in PLAN_CASES])
def test_plan_node(case):
    _, n, pods, now, want = case
    assert plan_node(n, pods, now) == want


def test_cancelled_names_pods_still_there_whose_eviction_went_away():
    pods = [pod("a"), pod("b"), pod("gone-deleting", deleting=True)]
    before = {"ns/a", "ns/b", "ns/gone-deleting", "ns/deleted"}
    plan = Plan(evict=("ns/b",))
    assert cancelled(before, plan, pods) == ("ns/a",)
    assert cancelled(before, Plan(pending=("ns/a",)), pods) == ("ns/b",)


# ---------------------------------------------------------------- the controller's sync

class FakeInformer:
    def __init__(self, objs=()):
        self.objs = {self._key(o): o for o in objs}

    @staticmethod
    def _key(o):
        return f"{o.metadata.namespace}/{o.metadata.name}" if o.metadata.namespace else o.metadata.name

    def add_handler(self, *handlers):
        pass

    def keys(self):
        return sorted(self.objs)

    def get(self, key):
        return self.objs.get(key)

    def list(self, namespace=""):
        return [o for o in self.objs.values() if not namespace or o.metadata.namespace == namespace]

    def wait_synced(self, timeout_s=0):
        return True


class FakeApi:
    def __init__(self, pods, conflict=()):
        self.pods, self.deletes, self.conflict = pods, [], set(conflict)

    def delete(self, kind, name, namespace="default", uid="", grace_period_seconds=None):
        assert kind == "pods" and grace_period_seconds is None   # graceful: the pod's own period
        if name in self.conflict:
            raise clientmod.Conflict("uid precondition failed")
        self.deletes.append((namespace, name, uid))
        self.pods.objs.pop(f"{namespace}/{name}", None)


class Recorder:
    def __init__(self):
        self.events = []

    def event(self, obj, etype, reason, message):
        self.events.append((obj.metadata.name, etype, reason, message))


def controller(n, pods, now, conflict=()):
    nodes, pod_inf = FakeInformer([n]), FakeInformer(pods)
    api, rec = FakeApi(pod_inf, conflict), Recorder()
    clock = {"now": now}
    ctl = TaintEvictionController(api, nodes, pod_inf, rec, clock=lambda: clock["now"])
    return ctl, nodes, api, rec, clock


def test_sync_evicts_untolerated_pods_with_events_and_wakes_at_the_deadline():
    other = pod("elsewhere", node_name="n2")
    ctl, _, api, rec, _ = controller(node(taint()), [pod("a"), pod("w", tol(seconds=5)), pod("s", tol()), other],
                                     T0 + 1)
    again = ctl.sync("n1")
    assert api.deletes == [("ns", "a", "uid-a")]
    assert rec.events == [("a", "Normal", REASON, "Marking for deletion Pod ns/a")]
    assert 4.0 < again < 4.2          # just after T0 + 5


def test_sync_at_the_deadline_evicts_the_tolerating_pod():
    ctl, _, api, rec, clock = controller(node(taint()), [pod("w", tol(seconds=5))], T0 + 1)
    assert ctl.sync("n1") is not None
    clock["now"] = T0 + 5.05
    assert ctl.sync("n1") is None
    assert api.deletes == [("ns", "w", "uid-w")]


def test_removing_the_taint_before_the_deadline_cancels_with_an_event():
    ctl, nodes, api, rec, clock = controller(node(taint()), [pod("w", tol(seconds=5))], T0 + 1)
    ctl.sync("n1")
    nodes.objs["n1"] = node()
    clock["now"] = T0 + 6
    assert ctl.sync("n1") is None
    assert api.deletes == []
    assert rec.events == [("w", "Normal", REASON, "Cancelling deletion of Pod ns/w")]
    assert ctl.sync("n1") is None and len(rec.events) == 1    # said once


def test_a_conflicting_delete_is_skipped_without_event():
    ctl, _, api, rec, _ = controller(node(taint()), [pod("a")], T0, conflict={"a"})
    ctl.sync("n1")
    assert api.deletes == [] and rec.events == []


def test_a_node_without_noexecute_taints_costs_no_call():
    ctl, _, api, rec, _ = controller(node(taint(effect="NoSchedule")), [pod("a")], T0)
    assert ctl.sync("n1") is None and ctl.sync("gone") is None
    assert api.deletes == [] and rec.events == []


# ---------------------------------------------------------------- the API stamps timeAdded

NODE = kinds.lookup("node")


def _admitted(new, old=None):
    admission.admit(NODE, new, old=old, creating=old is None)
    return new


def test_admission_stamps_time_added_on_new_noexecute_taints_only():
    n = _admitted(node(taint(added=None), taint("ns", effect="NoSchedule", added=None)))
    by_key = {t.key: t for t in n.spec.taints}
    assert by_key["dedicated"].time_added.endswith("Z")
    assert by_key["ns"].time_added == ""
    given = _admitted(node(taint("kept", added=T0)))
    assert given.spec.taints[0].time_added == ts(T0)


def test_admission_keeps_the_stored_time_added_of_an_unchanged_taint():
    old = node(taint(added=T0), taint("b", value="1", added=T0))
    old.metadata.uid, old.metadata.resource_version = "u", "3"
    new = node(taint(added=None), taint("b", value="2", added=None))
    _admitted(new, old)
    by_key = {t.key: t for t in new.spec.taints}
    assert by_key["dedicated"].time_added == ts(T0)          # same key, value, effect: kept
    assert by_key["b"].time_added != ts(T0)                  # a new value is a new taint: now
