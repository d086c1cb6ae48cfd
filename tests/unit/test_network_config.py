"""The network settings: replica config network: section, agent podNetwork."""

import pytest

from controlplane import config as cfgmod
from nodeagent import config as agentcfg
from tests.helpers import write_replica_config


def test_network_section_absent_means_no_ipam(tmp_path):
    path, _ = write_replica_config(tmp_path, "")
    assert cfgmod.load(path).network is None


def test_network_defaults_and_roundtrip(tmp_path):
    path, pw = write_replica_config(tmp_path, "network: {}\n")
    net = cfgmod.load(path).network
    assert net == cfgmod.NetworkConfig("10.244.0.0/16", 24, "host-gw")
    path, pw = write_replica_config(tmp_path, "network: {clusterCIDR: 10.32.0.0/12, nodeCIDRMaskSize: 26, backend: vxlan}\n")
    cfg = cfgmod.load(path)
    assert cfg.network == cfgmod.NetworkConfig("10.32.0.0/12", 26, "vxlan")
    (tmp_path / "again.yaml").write_text(cfgmod.dump(cfg, pw))
    assert cfgmod.load(str(tmp_path / "again.yaml")).network == cfg.network


@pytest.mark.parametrize("section,error", [
    ("network: {backend: udp}", "backend"),
    ("network: {clusterCIDR: 10.244.0.1/16}", "clusterCIDR"),
    ("network: {nodeCIDRMaskSize: 8}", "nodeCIDRMaskSize"),
    ("network: {nodeCIDRMaskSize: 31}", "nodeCIDRMaskSize"),
    ("network: {bogus: 1}", "bogus"),
])
def test_network_errors(tmp_path, section, error):
    path, _ = write_replica_config(tmp_path, section + "\n")
    with pytest.raises(cfgmod.ConfigError, match=error):
        cfgmod.load(path)


def test_agent_pod_network_flag():
    base = {"nodeName": "n1", "servers": ["a:1"], "address": "10.0.0.1", "listen": "10.0.0.1:10250",
            "dockerHost": "unix:///x.sock", "dataDir": "/tmp/x"}
    assert agentcfg.parse(dict(base)).pod_network is False
    cfg = agentcfg.parse(dict(base, podNetwork=True))
    assert cfg.pod_network is True
    import yaml
    assert agentcfg.parse(yaml.safe_load(agentcfg.dump(cfg))).pod_network is True
    with pytest.raises(agentcfg.ConfigError, match="podNetwork"):
        agentcfg.parse(dict(base, podNetwork="yes"))
