"""The API's own Service default/kubernetes and its Endpoints (controlplane/bootstrap.py), pure parts."""

import pytest

from controlplane import bootstrap
from controlplane.bootstrap import api_endpoints, api_service
from controlplane.config import ControlPlaneConfig, Peer
from controlplane.store.commands import Create
from controlplane.store.raft import StoreConsumer
from controlplane.store.reader import StoreReader
from skiff.api import kinds


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


def test_api_endpoints_send_pods_to_the_join_ports_with_tls():
    """With TLS the API port requires a client certificate; pods hold a token, so the
    Service's endpoints are the join ports (TLS, bearer tokens) where replicas have one."""
    from skiff.pki.config import TLSConfig
    base = ControlPlaneConfig(name="cp1", data_dir="/tmp/x", api_address="10.0.0.11:7100",
                              raft_address="10.0.0.11:7200", raft_password="p",
                              tls=TLSConfig(ca_file="ca", cert_file="c", key_file="k",
                                            join_address="10.0.0.11:7300"),
                              peers=(Peer("cp2", "10.0.0.12:7100", "10.0.0.12:7200", "10.0.0.12:7300"),
                                     Peer("cp3", "10.0.0.13:7100", "10.0.0.13:7200", "10.0.0.13:7300")))
    assert subsets(api_endpoints(base)) == [(["10.0.0.11", "10.0.0.12", "10.0.0.13"], [("grpc", 7300)])]


def test_api_service_takes_the_first_address_of_the_cidr():
    svc = api_service("10.96.0.0/12")
    assert svc.spec.cluster_ip == "10.96.0.1" and not svc.spec.selector
    assert [(p.name, p.port, p.protocol) for p in svc.spec.ports] == [("grpc", 443, "TCP")]
    assert api_service("10.200.128.0/24").spec.cluster_ip == "10.200.128.1"


class StateBackedStore:
    """The narrow store interface bootstrap uses (get, resource_version, propose), over a
    plain StoreState: bootstrap must need nothing else (no state, lock or change log)."""

    def __init__(self):
        self.consumer = StoreConsumer(100)
        self._reader = StoreReader(self.consumer)
        self.proposed = []

    def get(self, key):
        return self._reader.get(key)

    def resource_version(self):
        return self._reader.resource_version()

    def propose(self, cmd, timeout_s):
        self.proposed.append(cmd)
        return self.consumer.apply(cmd, _doApply=True)


def test_bootstrap_creates_the_builtins_once_through_the_store_interface():
    store = StateBackedStore()
    config = cfg(["10.0.0.11:7100", "10.0.0.12:7100"])
    bootstrap.ensure_namespaces(store)
    bootstrap.ensure_api_service(store, config)
    assert all(isinstance(c, Create) for c in store.proposed)
    assert [kinds.unwrap(store.get(("Namespace", "", n)))[1].metadata.name
            for n in bootstrap.BUILTIN_NAMESPACES] == list(bootstrap.BUILTIN_NAMESPACES)
    svc = kinds.unwrap(store.get(("Service", "default", "kubernetes")))[1]
    assert svc.spec.cluster_ip == "10.96.0.1"     # allocated from the settings in the command
    ep = kinds.unwrap(store.get(("Endpoints", "default", "kubernetes")))[1]
    assert subsets(ep) == [(["10.0.0.11", "10.0.0.12"], [("grpc", 7100)])]
    store.proposed.clear()
    bootstrap.ensure_namespaces(store)
    bootstrap.ensure_api_service(store, config)
    assert store.proposed == [], "a second pass must write nothing"
