"""The API's own Service default/kubernetes and its Endpoints (controlplane/bootstrap.py), pure parts."""

import pytest

from controlplane.bootstrap import api_endpoints, api_service
from controlplane.config import ControlPlaneConfig, Peer


def cfg(addresses):
    peers = tuple(Peer(f"cp{i + 2}", a, f"10.0.0.{i + 12}:7200") for i, a in enumerate(addresses[1:]))
    return ControlPlaneConfig(name="cp1", data_dir="/tmp/x", api_address=addresses[0],
                              raft_address="10.0.0.11:7200", raft_password="p", peers=peers)


def subsets(ep):
    return [([a.ip for a in s.addresses], [(p.name, p.port) for p in s.ports]) for s in ep.subsets]


@pytest.mark.parametrize("addresses,want", [
    # one subset, addresses in numeric order
    (["10.0.0.11:7100", "10.0.0.9:7100", "10.0.0.13:7100"],
     [(["10.0.0.9", "10.0.0.11", "10.0.0.13"], [("grpc", 7100)])]),
    # loopback replicas on different ports: a subset per port
    (["127.0.0.1:7100", "127.0.0.1:7101"],
     [(["127.0.0.1"], [("grpc", 7100)]), (["127.0.0.1"], [("grpc", 7101)])]),
    # host names are not addresses
    (["cp1.lab:7100"], []),
])
def test_api_endpoints(addresses, want):
    ep = api_endpoints(cfg(addresses))
    assert (ep.metadata.namespace, ep.metadata.name) == ("default", "kubernetes")
    assert subsets(ep) == want


def test_api_service_takes_the_first_address_of_the_cidr():
    svc = api_service("10.96.0.0/12")
    assert svc.spec.cluster_ip == "10.96.0.1" and not svc.spec.selector
    assert [(p.name, p.port, p.protocol) for p in svc.spec.ports] == [("grpc", 443, "TCP")]
    assert api_service("10.200.128.0/24").spec.cluster_ip == "10.200.128.1"
