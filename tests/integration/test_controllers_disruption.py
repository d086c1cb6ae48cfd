"""PodDisruptionBudgets and evictions on a real 3-replica control plane (loopback), with the
fake nodes of test_controllers.py (they finish graceful deletions; readiness is simulated).

The disruption controller keeps each budget's status; an eviction is checked and charged
inside the replicated apply, so concurrent evictions against a budget of one let exactly
one through, whichever replicas they reach.
"""

import threading

import pytest

from skiff import client as clientmod
from skiff.api import objects_pb2 as pb
from skiff.api.kinds import policy
from tests.helpers import wait_until
from tests.integration.test_controllers import (  # noqa: F401 - nodes and ns are fixtures
    active, condition, deployment, mutate, nodes, ns, pods_of, set_ready, wait_active_bound,
)


def budget(name, ns, app, min_available=None, max_unavailable=None):
    b = pb.PodDisruptionBudget(metadata=pb.ObjectMeta(name=name, namespace=ns))
    b.spec.selector.match_labels["app"] = app
    for target, value in ((b.spec.min_available, min_available), (b.spec.max_unavailable, max_unavailable)):
        if isinstance(value, int):
            target.int_val = value
        elif value is not None:
            target.str_val = value
    return b


def wait_status(client, ns, name, want, timeout_s=15):
    """Until (expectedPods, desiredHealthy, currentHealthy, disruptionsAllowed) == want."""
    def done():
        st = client.get("poddisruptionbudgets", name, ns).status
        return (st.expected_pods, st.desired_healthy, st.current_healthy, st.disruptions_allowed) == want
    wait_until(done, timeout_s, f"pdb {ns}/{name} status {want}")
    return client.get("poddisruptionbudgets", name, ns)


def ready_deployment(client, ns, name, replicas):
    client.create(deployment(name, ns, replicas, cpu="10m"))
    pods = wait_active_bound(client, ns, replicas, label_selector=f"app={name}")
    set_ready(client, pods)
    return pods


def test_budget_status_follows_ready_pods_and_the_scale(client, ns):
    ready_deployment(client, ns, "web", 3)
    client.create(budget("web", ns, "web", min_available=2))
    pdb = wait_status(client, ns, "web", (3, 2, 3, 1))
    cond = condition(pdb, "DisruptionAllowed")
    assert (cond.status, cond.reason) == ("True", "SufficientPods")
    assert pdb.status.observed_generation == pdb.metadata.generation

    def to_percent(b):
        b.spec.ClearField("min_available")
        b.spec.max_unavailable.str_val = "50%"     # of the Deployment's 3: 2 (rounded up)
    mutate(client, "poddisruptionbudgets", "web", to_percent, namespace=ns)
    wait_status(client, ns, "web", (3, 1, 3, 2))

    def unready(p):
        condition(p, "Ready").status = "False"
    for p in pods_of(client, ns, "app=web")[:2]:
        mutate(client, "pods", p.metadata.name, unready, namespace=ns, status=True)
    pdb = wait_status(client, ns, "web", (3, 1, 1, 0))
    assert condition(pdb, "DisruptionAllowed").reason == "InsufficientPods"


def test_two_concurrent_evictions_against_a_budget_of_one(cluster, client, ns):
    pods = ready_deployment(client, ns, "api", 3)
    client.create(budget("api", ns, "api", min_available=2))
    wait_status(client, ns, "api", (3, 2, 3, 1))
    victims = sorted(p.metadata.name for p in pods)[:2]
    # One client per eviction, on different replicas, released at the same moment.
    clients = [cluster.client(), cluster.client()]
    clients[1].endpoints = clients[1].endpoints[1:] + clients[1].endpoints[:1]
    start = threading.Barrier(2)
    outcomes = {}

    def evict(i, name):
        start.wait()
        try:
            clients[i].evict(name, ns)
            outcomes[name] = "evicted"
        except clientmod.ApiError as exc:
            outcomes[name] = exc
    threads = [threading.Thread(target=evict, args=(i, n)) for i, n in enumerate(victims)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    for c in clients:
        c.close()
    evicted = [n for n, o in outcomes.items() if o == "evicted"]
    refused = [o for o in outcomes.values() if o != "evicted"]
    assert len(evicted) == 1 and len(refused) == 1, outcomes
    assert isinstance(refused[0], clientmod.TooManyRequests)
    assert refused[0].message == policy.BUDGET_VIOLATED

    pdb = client.get("poddisruptionbudgets", "api", ns)
    assert pdb.status.disruptions_allowed == 0
    # The replacement comes up; once it is ready the budget allows one again and the
    # second pod can go.
    other = next(n for n in victims if n not in evicted)
    wait_until(lambda: evicted[0] not in {p.metadata.name for p in pods_of(client, ns, "app=api")}, 15,
               "the evicted pod gone")
    fresh = wait_active_bound(client, ns, 3, label_selector="app=api")
    with pytest.raises(clientmod.TooManyRequests):
        client.evict(other, ns)          # the replacement is not ready yet
    set_ready(client, [p for p in fresh if p.metadata.name not in {p.metadata.name for p in pods}])
    wait_status(client, ns, "api", (3, 2, 3, 1))
    gone = client.evict(other, ns)
    assert gone.metadata.deletion_timestamp


def test_a_pod_under_two_budgets_cannot_be_evicted_and_unselected_pods_can(client, ns):
    ready_deployment(client, ns, "db", 2)
    client.create(budget("db-a", ns, "db", min_available=0))
    client.create(budget("db-b", ns, "db", max_unavailable=2))
    wait_status(client, ns, "db-a", (2, 0, 2, 2))
    wait_status(client, ns, "db-b", (2, 0, 2, 2))
    name = active(pods_of(client, ns, "app=db"))[0].metadata.name
    with pytest.raises(clientmod.ApiError, match="more than one PodDisruptionBudget"):
        client.evict(name, ns)
    lone = ready_deployment(client, ns, "cache", 1)[0]
    assert client.evict(lone.metadata.name, ns, grace_period_s=0) is not None
    with pytest.raises(clientmod.NotFound):
        client.evict("no-such-pod", ns)
