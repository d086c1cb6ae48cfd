"""Node lifecycle decisions: a pure function of Lease renewals and heartbeats seen, and monotonic time."""

import pytest

from controlplane.controllers.nodelifecycle_plan import (Actions, NodeHealth, decide, eviction_delay_s,
                                                         next_deadline_s, next_wakeup_s, observe)
from skiff.api import objects_pb2 as pb

GRACE = 5.0
EVICT = 5.0
UNREACHABLE = "node.kubernetes.io/unreachable"


def node(heartbeat="t1", ready="True", tainted=False):
    n = pb.Node(metadata=pb.ObjectMeta(name="n1"))
    if ready is not None:
        n.status.conditions.add(type="Ready", status=ready, last_heartbeat_time=heartbeat)
    if tainted:
        n.spec.taints.add(key=UNREACHABLE, effect="NoExecute")
    return n


def pod(name, marked=False, deleting=False, phase="Running", tolerate=None):
    p = pb.Pod(metadata=pb.ObjectMeta(name=name, namespace="ns"))
    p.spec.node_name = "n1"
    p.status.phase = phase
    status = "False" if marked else "True"
    for ctype in ("Ready", "ContainersReady"):
        p.status.conditions.add(type=ctype, status=status)
    if deleting:
        p.metadata.deletion_timestamp = "2024-01-01T00:00:00Z"
    if tolerate is not None:
        t = p.spec.tolerations.add(key=UNREACHABLE, operator="Exists", effect="NoExecute")
        if tolerate != "forever":
            t.toleration_seconds = tolerate
    return p


def test_observe_starts_the_clock_at_first_sight_and_moves_it_on_change():
    h = observe(None, node("t1"), 100.0)
    assert h == NodeHealth("t1", 100.0, False)
    assert observe(h, node("t1"), 107.0) is h                      # same heartbeat: clock keeps running
    assert observe(h, node("t2"), 107.0) == NodeHealth("t2", 107.0, True)
    assert observe(None, node(ready=None), 5.0) == NodeHealth("", 5.0, False)


def lease(renew):
    return pb.Lease(metadata=pb.ObjectMeta(name="n1", namespace="kube-node-lease"),
                    spec=pb.LeaseSpec(holder_identity="n1", lease_duration_seconds=5, renew_time=renew))


H0 = NodeHealth("t1", 100.0, False, "r1")
OBSERVE_CASES = [
    # (id, previous health, node, lease, now, want)
    ("first sight starts the clock (new leader)", None, node("t1"), lease("r1"), 100.0, H0),
    ("first sight without a Lease", None, node("t1"), None, 100.0, NodeHealth("t1", 100.0, False, "")),
    ("nothing moved: the clock keeps running", H0, node("t1"), lease("r1"), 107.0, H0),
    ("a renewal restarts the clock", H0, node("t1"), lease("r2"), 107.0, NodeHealth("t1", 107.0, True, "r2")),
    ("a renewal with an OLDER remote time still counts (clocks are not compared)", H0, node("t1"),
     lease("r0"), 107.0, NodeHealth("t1", 107.0, True, "r0")),
    ("a status write (new lastHeartbeatTime) counts too", H0, node("t2"), lease("r1"), 107.0,
     NodeHealth("t2", 107.0, True, "r1")),
    ("the Lease disappears: no renewal, the clock keeps running", H0, node("t1"), None, 107.0, H0),
    ("a Lease appears (first renewal after creation)", NodeHealth("t1", 100.0, False, ""), node("t1"),
     lease("r1"), 103.0, NodeHealth("t1", 103.0, True, "r1")),
    ("a status write by the controller (Ready=Unknown) keeps lastHeartbeatTime: no renewal", H0,
     node("t1", ready="Unknown"), lease("r1"), 107.0, H0),
]


@pytest.mark.parametrize("prev, node_, lease_, now, want", [c[1:] for c in OBSERVE_CASES],
                         ids=[c[0] for c in OBSERVE_CASES])
def test_observe(prev, node_, lease_, now, want):
    assert observe(prev, node_, now, lease_) == want


ARRIVAL_CASES = [
    # (id, previous health, lease, now, arrived, want): a renewal dated when the watch delivered it
    ("dated at its arrival, not at the later look", H0, lease("r2"), 107.0, 106.6,
     NodeHealth("t1", 106.6, True, "r2")),
    ("no arrival noted: dated at the look", H0, lease("r2"), 107.0, None, NodeHealth("t1", 107.0, True, "r2")),
    ("never in the future", H0, lease("r2"), 107.0, 108.0, NodeHealth("t1", 107.0, True, "r2")),
    ("never before the previous change", H0, lease("r2"), 107.0, 90.0, NodeHealth("t1", 100.0, True, "r2")),
    ("no change: the arrival of the old value changes nothing", H0, lease("r1"), 107.0, 106.0, H0),
    ("first sight (a new leader) still starts the clock now", None, lease("r1"), 100.0, 60.0, H0),
]


@pytest.mark.parametrize("prev, lease_, now, arrived, want", [c[1:] for c in ARRIVAL_CASES],
                         ids=[c[0] for c in ARRIVAL_CASES])
def test_observe_dates_a_change_at_its_arrival(prev, lease_, now, arrived, want):
    assert observe(prev, node("t1"), now, lease_, arrived) == want


def test_a_renewal_seen_late_by_the_tick_does_not_delay_the_grace_period():
    """Renewal r2 arrives at 100.0; the controller's next tick looks at 100.45: the node is
    silent past grace at 105.0 + a bit, not at 105.45."""
    h = observe(H0, node("t1"), 100.45, lease("r2"), 100.0)
    assert decide(node(), h, PODS, 105.1, GRACE, EVICT).mark_unknown
    assert decide(node(), h, PODS, 110.1, GRACE, EVICT).evict == ("ns/a", "ns/b")


PODS = (pod("a"), pod("b"))

CASES = [
    # (id, node, health, now, pods, want)
    ("heartbeating", node(), NodeHealth("t1", 100, True), 104.9, PODS, Actions()),
    ("exactly at the grace period: still fine", node(), NodeHealth("t1", 100, True), 105.0, PODS, Actions()),
    ("silent past grace: unknown, taint, pods not ready", node(), NodeHealth("t1", 100, True), 105.1, PODS,
     Actions(mark_unknown=True, add_taint=True, pods_not_ready=("ns/a", "ns/b"))),
    ("already handled: nothing to repeat", node(ready="Unknown", tainted=True), NodeHealth("t1", 100, True), 107,
     (pod("a", marked=True),), Actions()),
    ("a pod not yet marked", node(ready="Unknown", tainted=True), NodeHealth("t1", 100, True), 107,
     (pod("a", marked=True), pod("b")), Actions(pods_not_ready=("ns/b",))),
    ("deleting and finished pods are not marked", node(ready="Unknown", tainted=True),
     NodeHealth("t1", 100, True), 107, (pod("a", deleting=True), pod("b", phase="Succeeded")), Actions()),
    ("past grace + eviction: every pod force-deleted", node(ready="Unknown", tainted=True),
     NodeHealth("t1", 100, True), 110.1, (pod("a", marked=True), pod("b", deleting=True)),
     Actions(evict=("ns/a", "ns/b"))),
    ("evicted pods are not marked first", node(), NodeHealth("t1", 100, True), 111, PODS,
     Actions(mark_unknown=True, add_taint=True, evict=("ns/a", "ns/b"))),
    ("a pod tolerating unreachable forever stays", node(ready="Unknown", tainted=True),
     NodeHealth("t1", 100, True), 500, (pod("a", marked=True, tolerate="forever"),), Actions()),
    ("tolerationSeconds replaces the eviction timeout", node(ready="Unknown", tainted=True),
     NodeHealth("t1", 100, True), 125.1,
     (pod("short", marked=True, tolerate=0), pod("long", marked=True, tolerate=30)), Actions(evict=("ns/short",))),
    ("no Ready condition at all counts as silent", node(ready=None), NodeHealth("", 100, False), 106, (),
     Actions(mark_unknown=True, add_taint=True)),
    ("heartbeats back: remove the taint", node(heartbeat="t9", tainted=True), NodeHealth("t9", 200, True), 201,
     PODS, Actions(remove_taint=True)),
    ("new leader, tainted node, no heartbeat seen yet: keep the taint", node(ready="Unknown", tainted=True),
     NodeHealth("t1", 200, False), 201, (), Actions()),
]


@pytest.mark.parametrize("node_, health, now, pods, want", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_decide(node_, health, now, pods, want):
    assert decide(node_, health, pods, now, GRACE, EVICT) == want


def test_a_new_leader_gives_every_node_a_fresh_grace_period():
    """The previous leader saw the last heartbeat long ago; this one starts counting now."""
    n = node("old-beat")
    started = 1000.0
    health = observe(None, n, started)
    assert decide(n, health, PODS, started + GRACE - 0.1, GRACE, EVICT).empty
    assert decide(n, health, PODS, started + GRACE + 0.1, GRACE, EVICT).mark_unknown


def test_a_new_leader_gives_a_fresh_grace_period_to_nodes_with_leases():
    n, started = node("old-beat"), 1000.0
    health = observe(None, n, started, lease("renewed-long-ago"))
    health = observe(health, n, started + GRACE - 0.1, lease("renewed-long-ago"))
    assert decide(n, health, PODS, started + GRACE - 0.1, GRACE, EVICT).empty
    assert decide(n, health, PODS, started + GRACE + 0.1, GRACE, EVICT).mark_unknown


def test_renewals_keep_a_node_alive_while_its_status_stays_unchanged():
    """Node status is written every few minutes: the Lease alone keeps the node Ready."""
    n = node("status-written-once")
    health = observe(None, n, 0.0, lease("r0"))
    for i in range(1, 41):                       # 50 s of renewals every 1.25 s
        t = i * 1.25
        health = observe(health, n, t, lease(f"r{i}"))
        assert decide(n, health, PODS, t, GRACE, EVICT).empty
    # renewals stop: the node goes Unknown once the grace period has passed since the last one
    assert decide(n, health, PODS, 50.0 + GRACE, GRACE, EVICT).empty
    assert decide(n, health, PODS, 50.0 + GRACE + 0.1, GRACE, EVICT).mark_unknown


def test_timeline_of_a_dead_node_coming_back():
    health = observe(None, node("b1"), 0.0)
    for t, beat in ((1.0, "b2"), (2.0, "b3")):
        health = observe(health, node(beat), t)
    assert decide(node("b3"), health, PODS, 7.0, GRACE, EVICT).empty
    assert decide(node("b3"), health, PODS, 7.1, GRACE, EVICT).mark_unknown
    assert decide(node("b3", "Unknown", True), health, (), 12.1, GRACE, EVICT) == Actions()
    assert decide(node("b3", "Unknown", True), health, PODS, 12.1, GRACE, EVICT).evict == ("ns/a", "ns/b")
    # The agent is back: it writes Ready=True with a new heartbeat.
    health = observe(health, node("b4"), 20.0)
    assert decide(node("b4", "True", True), health, (), 20.0, GRACE, EVICT) == Actions(remove_taint=True)


def test_eviction_delay():
    assert eviction_delay_s(pod("a"), 5.0) == 5.0
    assert eviction_delay_s(pod("a", tolerate="forever"), 5.0) is None
    assert eviction_delay_s(pod("a", tolerate=42), 5.0) == 42.0
    other = pod("b")
    other.spec.tolerations.add(key="something-else", operator="Exists")
    assert eviction_delay_s(other, 5.0) == 5.0


# The node went silent at t=10 (changed_at_s); GRACE and EVICT are 5 s.
DEADLINE_CASES = [
    ("no pods: the end of the grace period", [], 12.0, 15.0),
    ("a pod: the grace period still comes first", [pod("a")], 12.0, 15.0),
    ("grace over: the pod's eviction", [pod("a")], 16.0, 20.0),
    ("grace over, a pod tolerating 42 s too", [pod("a", tolerate=42), pod("b")], 16.0, 20.0),
    ("default eviction over: the tolerating pod's", [pod("a", tolerate=42), pod("b")], 21.0, 57.0),
    ("a pod tolerating forever adds nothing", [pod("a", tolerate="forever")], 16.0, None),
    ("tolerationSeconds 0: evicted right at the end of grace", [pod("a", tolerate=0)], 12.0, 15.0),
    ("everything past: nothing ahead", [pod("a")], 30.0, None),
]


@pytest.mark.parametrize("pods, now, want", [c[1:] for c in DEADLINE_CASES], ids=[c[0] for c in DEADLINE_CASES])
def test_next_deadline(pods, now, want):
    assert next_deadline_s(NodeHealth("t1", 10.0, True), pods, now, GRACE, EVICT) == want


WAKEUP_CASES = [
    # deadlines, now, period -> seconds to the next tick
    ("nothing ahead: the period", [None], 12.0, 0.5, 0.5),
    ("a deadline in 0.2 s: just after it", [12.2], 12.0, 0.5, 0.21),
    ("a deadline after the period: the period", [13.0], 12.0, 0.5, 0.5),
    ("passed deadlines do not make it spin", [11.0, 11.5], 12.0, 0.5, 0.5),
    ("the earliest of several", [12.4, 12.1, None], 12.0, 0.5, 0.11),
]


@pytest.mark.parametrize("deadlines, now, period, want", [c[1:] for c in WAKEUP_CASES],
                         ids=[c[0] for c in WAKEUP_CASES])
def test_next_wakeup(deadlines, now, period, want):
    assert next_wakeup_s(deadlines, now, period) == pytest.approx(want)


def test_the_next_deadline_is_when_decide_changes_its_answer():
    """Just before the deadline decide() still waits; just after it, it acts."""
    health, pods = NodeHealth("t1", 10.0, True), [pod("a", marked=True)]
    n = node("t1", "Unknown", tainted=True)
    grace_end = next_deadline_s(health, [], 10.0, GRACE, EVICT)
    assert decide(node("t1"), health, [], grace_end - 0.001, GRACE, EVICT).empty
    assert decide(node("t1"), health, [], grace_end + 0.001, GRACE, EVICT).mark_unknown
    evict_at = grace_end + EVICT
    assert decide(n, health, pods, evict_at - 0.001, GRACE, EVICT).evict == ()
    assert decide(n, health, pods, evict_at + 0.001, GRACE, EVICT).evict == ("ns/a",)


def test_the_controller_notes_when_each_renewal_arrived():
    from controlplane.controllers.nodelifecycle import NodeLifecycleController

    class Informer:
        def add_handler(self, **kw):
            pass

    now = [50.0]
    c = NodeLifecycleController(None, Informer(), Informer(), None, GRACE, EVICT, clock=lambda: now[0],
                                leases=Informer())
    c._lease_arrived(lease("r1"))
    now[0] = 51.25
    c._lease_arrived(lease("r2"))
    now[0] = 51.7
    c._lease_arrived(lease("r2"))          # a repeat of the same value keeps its first arrival
    c._node_arrived(node("t1"))
    prev = NodeHealth("t0", 40.0, True, "r1")
    assert c._arrival_of("n1", node("t0"), lease("r2"), prev) == 51.25            # the renewal's arrival
    assert c._arrival_of("n1", node("t1"), lease("r2"), prev) == 51.7             # both changed: the later
    assert c._arrival_of("n1", node("t0"), lease("r1"), prev) is None             # nothing changed
    assert c._arrival_of("n1", node("t0"), lease("r9"), prev) is None             # not noted yet: now
    assert c._arrival_of("n1", node("t1"), lease("r9"), prev) is None             # one of two not noted: now
    assert c._arrival_of("n1", node("t0"), lease("r2"), None) is None             # first sight
    assert c._arrival_of("other", node("t1"), None, NodeHealth("t0", 1.0, True)) is None
    for i in range(10):                     # old values are forgotten
        c._lease_arrived(lease(f"x{i}"))
    assert len(c._arrived["n1"]) <= 4
