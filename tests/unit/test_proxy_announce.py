"""Which node announces a LoadBalancer address (nodeagent/proxy/announce.py): pure choices."""

import pytest

from nodeagent.proxy.announce import announcer, candidates
from nodeagent.proxy.render import Endpoint, ServicePort

LB = "10.200.0.200"


def port(local_external=False, endpoint_nodes=(), ips=(LB,)):
    eps = tuple(Endpoint(f"10.244.{i}.5", 8080, n) for i, n in enumerate(endpoint_nodes))
    return ServicePort("default", "web", "http", "tcp", "10.96.0.10", 80, 30080, tuple(ips), 0, eps,
                       local_external=local_external)


@pytest.mark.parametrize("ports,ready,want", [
    ([port(False, ["n2"])], ["n1", "n2", "n3"], ["n1", "n2", "n3"]),          # Cluster: every Ready node
    ([port(True, ["n2", "n3"])], ["n1", "n2", "n3"], ["n2", "n3"]),           # Local: nodes with an endpoint
    ([port(True, ["n2", "n3"])], ["n1", "n3"], ["n3"]),                       # ... that are Ready
    ([port(True, ["n2"])], ["n1", "n3"], ["n1", "n3"]),                       # none Ready: any (it drops)
    ([port(True, [])], ["n1"], ["n1"]),                                       # no endpoints at all
    ([port(True, ["n2"], ips=("10.200.0.201",))], ["n1", "n2"], ["n1", "n2"]),  # another address's service
    ([], [], []),
])
def test_candidates(ports, ready, want):
    assert candidates(LB, ports, ready) == want


def test_announcer_is_stable_and_spreads():
    nodes = ["n1", "n2", "n3"]
    chosen = {announcer(f"10.200.0.{i}", nodes) for i in range(200, 230)}
    assert chosen == set(nodes)                                           # addresses spread
    assert announcer(LB, nodes) == announcer(LB, list(reversed(nodes)))   # order does not matter
    owner = announcer(LB, nodes)
    others = [n for n in nodes if n != owner]
    assert announcer(LB, nodes + ["n4"]) in (owner, "n4")                 # moves only to a newcomer
    assert announcer(LB, others) != owner and announcer("", []) == ""
