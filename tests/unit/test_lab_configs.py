"""The config files the lab writes are plain YAML (skiff/ imports nothing from the replica
or the agent); here they are read back by the replica's and the agent's own parsers, which
must accept them and see exactly the settings the lab means."""

import dataclasses

import pytest

from controlplane import config as cpconfig
from nodeagent import config as agentconfig
from skiff.lab.controlplane import ControlPlane, services_for_subnet
from skiff.lab.lab import agent_network
from skiff.lab.node import AGENT_PORT, LabNode, spread_servers
from skiff.lab.plan import CLUSTER_CIDR, make_plan
from skiff.pki import certs
from skiff.pki.config import TLSConfig


def _load_all(cp: ControlPlane, tmp_path) -> dict:
    cp.write_configs()
    return {name: cpconfig.load(cp.config_path(name)) for name in cp.names}


def test_loopback_replica_configs_take_every_default(tmp_path):
    cp = ControlPlane(str(tmp_path), replicas=3, api_base_port=7100, raft_base_port=7200)
    cfgs = _load_all(cp, tmp_path)
    password = (tmp_path / "raft-password").read_text().strip()
    assert len(password) >= 16 and (tmp_path / "raft-password").stat().st_mode & 0o777 == 0o600
    # One encryption config for the cluster (every replica names it), its keys 0600.
    enc_file = tmp_path / "encryption-config.yaml"
    assert enc_file.stat().st_mode & 0o777 == 0o600
    assert {c.encryption_config_file for c in cfgs.values()} == {str(enc_file)}
    assert cfgs["cp2"].encryption.write == ("aesgcm", "key1")
    assert dataclasses.replace(cfgs["cp2"], encryption=None) == cpconfig.ControlPlaneConfig(
        name="cp2", data_dir=str(tmp_path / "cp2" / "data"), api_address="127.0.0.1:7101",
        raft_address="127.0.0.1:7201", raft_password=password,
        peers=(cpconfig.Peer("cp1", "127.0.0.1:7100", "127.0.0.1:7200", "127.0.0.1:7300"),
               cpconfig.Peer("cp3", "127.0.0.1:7102", "127.0.0.1:7202", "127.0.0.1:7302")),
        encryption_config_file=str(enc_file),
        tls=TLSConfig(ca_file=str(tmp_path / "pki" / "ca.crt"), cert_file=str(tmp_path / "pki" / "cp2.crt"),
                      key_file=str(tmp_path / "pki" / "cp2.key"), ca_key_file=str(tmp_path / "pki" / "ca.key"),
                      join_address="127.0.0.1:7301"),
        service_accounts=cpconfig.ServiceAccountsConfig(key_file=str(tmp_path / "sa.key")))
    assert [c.self_peer.api_address for c in cfgs.values()] == cp.endpoints
    # One ServiceAccount signing key for all replicas, private to the lab's user.
    assert {c.service_accounts.key_file for c in cfgs.values()} == {str(tmp_path / "sa.key")}
    assert (tmp_path / "sa.key").stat().st_mode & 0o777 == 0o600
    assert b"BEGIN PRIVATE KEY" in (tmp_path / "sa.key").read_bytes()


def test_lab_replicas_get_certificates_naming_their_addresses(tmp_path):
    """TLS is on in the lab: each replica's certificate is the control plane's identity and
    names its address (the client checks it); the admin's is in system:masters."""
    plan = make_plan(nodes=1, replicas=3, lab_dir=str(tmp_path))
    cp = ControlPlane(str(tmp_path), replicas=3, api_base_port=7100, raft_base_port=7200, host="",
                      addresses=[m.address for m in plan.replicas], netns=[m.netns for m in plan.replicas])
    cfgs = _load_all(cp, tmp_path)
    from cryptography import x509
    for name, cfg in cfgs.items():
        pem = open(cfg.tls.cert_file, "rb").read()
        assert certs.subject(pem) == (f"skiff:controlplane:{name}", ("skiff:controlplane", "system:masters"))
        san = certs.load_cert(pem).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert cfg.api_address.rsplit(":", 1)[0] in [str(i) for i in san.get_values_for_type(x509.IPAddress)]
    assert certs.subject(cp.admin_credentials.cert) == ("skiff:admin", ("system:masters",))
    tls = cp.node_tls("node1", plan.nodes[0].address)["tls"]
    assert certs.subject(open(tls["certFile"], "rb").read()) == ("skiff:node:node1", ("skiff:nodes",))


def test_tls_off_writes_no_tls_section(tmp_path):
    cp = ControlPlane(str(tmp_path), replicas=1, api_base_port=7100, raft_base_port=7200, tls=False)
    assert _load_all(cp, tmp_path)["cp1"].tls is None
    assert cp.admin_credentials is None and cp.node_tls("n", "10.0.0.1") == {}


@pytest.mark.parametrize("kw,want", [
    ({"raft": {"compactionMinEntries": 300}, "watch_history": 200},
     {"raft": cpconfig.RaftTuning(compaction_min_entries=300), "watch_history": 200}),
    ({"network": {"backend": "vxlan", "clusterCIDR": CLUSTER_CIDR}},
     {"network": cpconfig.NetworkConfig(CLUSTER_CIDR, 24, "vxlan")}),
    ({"network": {"clusterCIDR": "10.250.0.0/16", "nodeCIDRMaskSize": 26, "backend": "host-gw"}},
     {"network": cpconfig.NetworkConfig("10.250.0.0/16", 26, "host-gw")}),
    ({"network": {}}, {"network": cpconfig.NetworkConfig()}),
    ({"services": services_for_subnet("10.200.0.0/24")},
     {"services": cpconfig.ServicesConfig(load_balancer_pool="10.200.0.200-10.200.0.220")}),
    ({"services": services_for_subnet("10.200.0.0/26")}, {"services": cpconfig.ServicesConfig()}),
])
def test_replica_config_sections_are_read_as_the_lab_means(tmp_path, kw, want):
    cp = ControlPlane(str(tmp_path), replicas=1, api_base_port=7100, raft_base_port=7200, **kw)
    cfg = _load_all(cp, tmp_path)["cp1"]
    for field, value in want.items():
        assert getattr(cfg, field) == value
    untouched = {"raft": cpconfig.RaftTuning(), "watch_history": 20000, "network": None,
                 "services": cpconfig.ServicesConfig(), "controllers": cpconfig.ControllersConfig()}
    for field, value in untouched.items():
        if field not in want:
            assert getattr(cfg, field) == value


def test_nodes_mode_replica_configs_as_the_lab_writes_them(tmp_path):
    plan = make_plan(nodes=2, replicas=3, lab_dir=str(tmp_path))
    cp = ControlPlane(str(tmp_path), replicas=3, api_base_port=7100, raft_base_port=7200, host="",
                      addresses=[m.address for m in plan.replicas], netns=[m.netns for m in plan.replicas],
                      network={"backend": "host-gw", "clusterCIDR": CLUSTER_CIDR},
                      services=services_for_subnet(plan.subnet))
    cfgs = _load_all(cp, tmp_path)
    assert [c.api_address for c in cfgs.values()] == ["10.200.0.11:7100", "10.200.0.12:7100", "10.200.0.13:7100"]
    assert cfgs["cp1"].peers == (cpconfig.Peer("cp2", "10.200.0.12:7100", "10.200.0.12:7200", "10.200.0.12:7300"),
                                 cpconfig.Peer("cp3", "10.200.0.13:7100", "10.200.0.13:7200", "10.200.0.13:7300"))
    assert {c.network for c in cfgs.values()} == {cpconfig.NetworkConfig("10.244.0.0/16", 24, "host-gw")}
    assert {c.services.load_balancer_pool for c in cfgs.values()} == {"10.200.0.200-10.200.0.220"}


def test_agent_config_as_the_lab_writes_it(tmp_path):
    plan = make_plan(nodes=2, replicas=3, lab_dir=str(tmp_path))
    m = plan.nodes[1]
    node = LabNode(m, plan.node_paths(m.name), {})
    node.write_agent_config(["10.200.0.11:7100", "10.200.0.12:7100"], agent_network(plan))
    cfg = agentconfig.load(node.paths.agent_config)
    assert cfg == agentconfig.AgentConfig(
        # node2 dials the second replica first (spread_servers)
        node_name="node2", servers=("10.200.0.12:7100", "10.200.0.11:7100"), address="10.200.0.22",
        listen=f"10.200.0.22:{AGENT_PORT}", docker_host=node.paths.docker_host,
        data_dir=node.paths.agent_data, pod_network=True, dns_upstream=f"{plan.gateway}:53")


@pytest.mark.parametrize("name, want", [
    ("node1", ["a", "b", "c"]),
    ("node2", ["b", "c", "a"]),
    ("node3", ["c", "a", "b"]),
    ("node4", ["a", "b", "c"]),
    ("node20", ["b", "c", "a"]),
    ("worker", ["a", "b", "c"]),          # no number: the order as given
])
def test_agents_spread_over_the_replicas(name, want):
    assert spread_servers(name, ["a", "b", "c"]) == want
    assert spread_servers(name, []) == []
