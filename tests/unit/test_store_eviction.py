"""The eviction subresource inside the replicated apply: the budget check, the budget's
decrement and the pod's graceful deletion in one command, or nothing at all."""

import pytest

from controlplane.store import eviction
from controlplane.store.commands import Create, Evict, Update
from controlplane.store.state import StoreState
from skiff.api import objects_pb2 as pb
from skiff.api.kinds import policy
from tests.unit.statehelp import NOW, env
from tests.unit.statehelp import result_obj as obj

LATER = "2026-01-01T00:01:00Z"


def pod(name, ready=True, phase="Running", node="n1", labels=None, deleting=False):
    p = pb.Pod(metadata=pb.ObjectMeta(name=name, namespace="default", labels=labels or {"app": "web"}))
    p.spec.node_name = node
    p.spec.termination_grace_period_seconds = 30
    p.status.phase = phase
    p.status.conditions.add(type="Ready", status="True" if ready else "False")
    if deleting:
        p.metadata.deletion_timestamp = NOW
    return p


def budget(name="web", allowed=1, current=3, desired=2, generation=1, observed=1, selector=True,
           labels=None, policy_=None, disrupted=0):
    b = pb.PodDisruptionBudget(metadata=pb.ObjectMeta(name=name, namespace="default", generation=generation))
    b.spec.min_available.int_val = desired
    if selector:
        b.spec.selector.SetInParent()
        b.spec.selector.match_labels.update({"app": "web"} if labels is None else labels)
    if policy_:
        b.spec.unhealthy_pod_eviction_policy = policy_
    st = b.status
    st.observed_generation, st.disruptions_allowed = observed, allowed
    st.current_healthy, st.desired_healthy, st.expected_pods = current, desired, 3
    for i in range(disrupted):
        st.disrupted_pods[f"gone-{i}"] = NOW
    return b


# ---------------------------------------------------------------- the decision (pure)

DELETE, REFUSED_429 = (None, False), ("too_many_requests", policy.BUDGET_VIOLATED)


@pytest.mark.parametrize("case,the_pod,budgets,want", [
    ("no budget: plain delete", pod("a"), [], DELETE),
    ("budget of other pods", pod("a"), [budget(labels={"app": "db"})], DELETE),
    ("budget without selector selects nothing", pod("a"), [budget(selector=False, allowed=0)], DELETE),
    ("empty selector selects every pod (policy/v1)", pod("a"), [budget(labels={}, allowed=0)], REFUSED_429),
    ("Pending pod ignores budgets", pod("a", phase="Pending"), [budget(allowed=0)], DELETE),
    ("Succeeded pod ignores budgets", pod("a", phase="Succeeded"), [budget(allowed=0)], DELETE),
    ("Failed pod ignores budgets", pod("a", phase="Failed"), [budget(allowed=0)], DELETE),
    ("pod already deleting", pod("a", deleting=True), [budget(allowed=0)], DELETE),
    ("two budgets: refused as Kubernetes", pod("a"), [budget("x"), budget("y")],
     ("internal", "more than one PodDisruptionBudget")),
    ("ready pod, budget allows one: charged", pod("a"), [budget(allowed=1)], (None, True)),
    ("ready pod, budget allows none", pod("a"), [budget(allowed=0)], REFUSED_429),
    ("unready pod, AlwaysAllow", pod("a", ready=False), [budget(allowed=0, current=1, policy_="AlwaysAllow")],
     DELETE),
    ("unready pod, IfHealthyBudget, healthy budget: not charged", pod("a", ready=False),
     [budget(allowed=0, current=2, desired=2)], DELETE),
    ("unready pod, unset policy = IfHealthyBudget, unhealthy budget", pod("a", ready=False),
     [budget(allowed=0, current=1, desired=2)], REFUSED_429),
    ("unready pod, IfHealthyBudget, desired 0 is not healthy: checked", pod("a", ready=False),
     [budget(allowed=0, current=0, desired=0, policy_="IfHealthyBudget")], REFUSED_429),
    ("budget not observed since its spec changed", pod("a"), [budget(generation=2, observed=1)],
     ("too_many_requests", "The disruption budget web is still being processed by the server.")),
    ("negative disruptionsAllowed", pod("a"), [budget(allowed=-1)], ("forbidden", "is negative")),
    ("too many unconfirmed evictions", pod("a"), [budget(disrupted=eviction.MAX_DISRUPTED_PODS + 1)],
     ("forbidden", "DisruptedPods map too big")),
])
def test_check(case, the_pod, budgets, want):
    refused, charged = eviction.check(the_pod, budgets, LATER)
    if want[0] is None:
        assert refused is None, case
        assert (charged is not None) == want[1], case
    else:
        assert charged is None, case
        assert refused[0] == want[0] and want[1] in refused[1], (case, refused)


def test_charging_decrements_records_and_flips_the_condition():
    b = budget(allowed=1)
    _, charged = eviction.check(pod("a"), [b], LATER)
    assert charged.status.disruptions_allowed == 0
    assert dict(charged.status.disrupted_pods) == {"a": LATER}
    [cond] = charged.status.conditions
    assert (cond.type, cond.status, cond.reason, cond.last_transition_time) == \
        ("DisruptionAllowed", "False", "InsufficientPods", LATER)
    assert b.status.disruptions_allowed == 1 and not b.status.disrupted_pods   # input untouched
    _, charged = eviction.check(pod("a"), [budget(allowed=2)], LATER)
    assert charged.status.disruptions_allowed == 1 and not charged.status.conditions


# ---------------------------------------------------------------- in the state machine

@pytest.fixture
def st():
    s = StoreState(event_log_size=100)
    s.apply(Create("n", env(pb.Namespace(metadata=pb.ObjectMeta(name="default"))), NOW, "un"))
    for name in ("a", "b"):
        s.apply(Create(f"c-{name}", env(pod(name)), NOW, f"uid-{name}"))
    s.apply(Create("c-pdb", env(budget(allowed=0)), NOW, "uid-pdb"))
    # The controller's status write: one disruption allowed.
    s.apply(Update("s-pdb", env(budget(allowed=1)), "status"))
    return s


def stored(s, kind, name):
    from skiff.api import kinds
    return kinds.unwrap(s.get((kind, "default", name)))[1]


def test_second_eviction_against_a_budget_of_one_is_refused_and_changes_nothing(st):
    rv = st.rv
    result = st.apply(Evict("e1", ("Pod", "default", "a"), None, LATER))
    assert result[:2] == ("ok", "evicted")
    assert obj(result).metadata.deletion_timestamp == LATER        # graceful: its node stops it
    assert obj(result).metadata.deletion_grace_period_seconds == 30
    changes = st.events_after(rv)
    assert [(c.type, c.key) for c in changes] == [("MODIFIED", ("PodDisruptionBudget", "default", "web")),
                                                  ("MODIFIED", ("Pod", "default", "a"))]
    b = stored(st, "PodDisruptionBudget", "web")
    assert b.status.disruptions_allowed == 0 and dict(b.status.disrupted_pods) == {"a": LATER}

    rv = st.rv
    refused = st.apply(Evict("e2", ("Pod", "default", "b"), None, LATER))
    assert refused == ("error", "too_many_requests", policy.BUDGET_VIOLATED)
    assert st.rv == rv and not stored(st, "Pod", "b").metadata.deletion_timestamp


def test_eviction_retried_with_its_request_id_applies_once(st):
    first = st.apply(Evict("e1", ("Pod", "default", "a"), 5, LATER))
    rv = st.rv
    assert st.apply(Evict("e1", ("Pod", "default", "a"), 5, LATER)) == first
    assert st.rv == rv
    assert obj(first).metadata.deletion_grace_period_seconds == 5


def test_dry_run_answers_as_the_eviction_would_and_stores_nothing(st):
    rv = st.rv
    assert st.check(Evict("d", ("Pod", "default", "a"), None, LATER))[:2] == ("ok", "evicted")
    assert st.rv == rv and stored(st, "PodDisruptionBudget", "web").status.disruptions_allowed == 1
    st.apply(Update("s0", env(budget(allowed=0)), "status"))
    assert st.check(Evict("d", ("Pod", "default", "a"), None, LATER))[1] == "too_many_requests"


def test_missing_pod_and_unbound_pod(st):
    assert st.apply(Evict("m", ("Pod", "default", "nope"), None, LATER)) == \
        ("error", "not_found", 'pods "nope" not found')
    st.apply(Create("c-u", env(pod("u", node="", phase="Pending", labels={"app": "other"})), NOW, "uid-u"))
    rv = st.rv
    gone = st.apply(Evict("eu", ("Pod", "default", "u"), None, LATER))
    assert gone[:2] == ("ok", "evicted") and st.get(("Pod", "default", "u")) is None
    assert [c.type for c in st.events_after(rv)] == ["DELETED"]


def test_a_budget_cannot_be_created_with_a_status_of_its_own(st):
    rich = budget("rich", allowed=100, labels={"app": "other"})
    assert obj(st.apply(Create("c-rich", env(rich), NOW, "uid-rich"))).status == pb.PodDisruptionBudgetStatus()
    assert stored(st, "PodDisruptionBudget", "rich").status == pb.PodDisruptionBudgetStatus()


def test_an_eviction_has_no_kind_record_so_it_cannot_be_read_back():
    from skiff.api import kinds
    for word in ("eviction", "evictions", "Eviction"):
        with pytest.raises(KeyError):
            kinds.lookup(word)
    assert "Eviction" not in kinds.BY_NAME
