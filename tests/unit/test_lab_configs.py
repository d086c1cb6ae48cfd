"""The config files the lab writes are plain YAML (skiff/ imports nothing from the replica
or the agent); here they are read back by the replica's and the agent's own parsers, which
must accept them and see exactly the settings the lab means."""

import pytest

from controlplane import config as cpconfig
from nodeagent import config as agentconfig
from skiff.lab.controlplane import ControlPlane, services_for_subnet
from skiff.lab.lab import agent_network
from skiff.lab.node import AGENT_PORT, LabNode, spread_servers
from skiff.lab.plan import CLUSTER_CIDR, make_plan


def _load_all(cp: ControlPlane, tmp_path) -> dict:
    cp.write_configs()
    return {name: cpconfig.load(cp.config_path(name)) for name in cp.names}


def test_loopback_replica_configs_take_every_default(tmp_path):
    cp = ControlPlane(str(tmp_path), replicas=3, api_base_port=7100, raft_base_port=7200)
    cfgs = _load_all(cp, tmp_path)
    password = (tmp_path / "raft-password").read_text().strip()
    assert len(password) >= 16 and (tmp_path / "raft-password").stat().st_mode & 0o777 == 0o600
    assert cfgs["cp2"] == cpconfig.ControlPlaneConfig(
        name="cp2", data_dir=str(tmp_path / "cp2" / "data"), api_address="127.0.0.1:7101",
        raft_address="127.0.0.1:7201", raft_password=password,
        peers=(cpconfig.Peer("cp1", "127.0.0.1:7100", "127.0.0.1:7200"),
               cpconfig.Peer("cp3", "127.0.0.1:7102", "127.0.0.1:7202")),
        service_accounts=cpconfig.ServiceAccountsConfig(key_file=str(tmp_path / "sa.key")))
    assert [c.self_peer.api_address for c in cfgs.values()] == cp.endpoints
    # One ServiceAccount signing key for all replicas, private to the lab's user.
    assert {c.service_accounts.key_file for c in cfgs.values()} == {str(tmp_path / "sa.key")}
    assert (tmp_path / "sa.key").stat().st_mode & 0o777 == 0o600
    assert b"BEGIN PRIVATE KEY" in (tmp_path / "sa.key").read_bytes()


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
    assert cfgs["cp1"].peers == (cpconfig.Peer("cp2", "10.200.0.12:7100", "10.200.0.12:7200"),
                                 cpconfig.Peer("cp3", "10.200.0.13:7100", "10.200.0.13:7200"))
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
