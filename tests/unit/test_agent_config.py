"""The agent's config file (nodeagent/config.py) and its node status (nodeagent/node.py)."""

import pytest
import yaml

from nodeagent import config as configmod
from nodeagent import node as nodemod
from nodeagent.runtime.timeutil import rfc3339
from skiff.api import objects_pb2 as pb

GOOD = {
    "nodeName": "node1",
    "servers": ["10.200.0.11:7100", "10.200.0.12:7100"],
    "address": "10.200.0.21",
    "listen": "10.200.0.21:10250",
    "dockerHost": "unix:///run/skiff-lab/node1/docker.sock",
    "dataDir": "/var/lib/skiff-lab/node1/agent",
}


def test_minimal_config_gets_defaults(tmp_path):
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(GOOD))
    cfg = configmod.load(str(path))
    assert cfg.node_name == "node1" and cfg.servers == ("10.200.0.11:7100", "10.200.0.12:7100")
    assert (cfg.pause_image, cfg.listen_port) == ("skiff/pause:latest", 10250)
    # Lab defaults: the Lease lasts the control plane's 5 s grace period, renewed every quarter of it.
    assert (cfg.node_lease_duration_s, cfg.lease_renew_s) == (5, 1.25)
    assert (cfg.node_status_update_frequency_s, cfg.node_status_report_frequency_s) == (2.5, 300.0)
    assert (cfg.restart_backoff_base_s, cfg.restart_backoff_cap_s) == (10.0, 300.0)
    assert cfg.labels == {} and cfg.capacity == {}
    assert configmod.parse(yaml.safe_load(configmod.dump(cfg))) == cfg


def test_full_config():
    doc = dict(GOOD, labels={"zone": "a"}, capacity={"cpu": "2", "memory": "4Gi", "pods": "110"},
               nodeLeaseDurationS=2, nodeStatusUpdateFrequencyS=1, nodeStatusReportFrequencyS=60,
               pauseImage="my/pause:1", restartBackoffBaseS=0.5, restartBackoffCapS=4,
               resyncS=2, syncWorkers=3, imagePullTimeoutS=5)
    cfg = configmod.parse(doc)
    assert cfg.capacity == {"cpu": "2", "memory": "4Gi", "pods": "110"}
    assert (cfg.restart_backoff_base_s, cfg.restart_backoff_cap_s, cfg.sync_workers) == (0.5, 4.0, 3)
    assert (cfg.node_lease_duration_s, cfg.lease_renew_s) == (2, 0.5)
    assert (cfg.node_status_update_frequency_s, cfg.node_status_report_frequency_s) == (1.0, 60.0)
    assert configmod.parse(yaml.safe_load(configmod.dump(cfg))) == cfg


@pytest.mark.parametrize("change,message", [
    ({"nodeName": None}, "missing required key(s) nodeName"),
    ({"servers": []}, "missing required key(s) servers"),
    ({"servers": ["nohostport"]}, "servers: expected a list of host:port strings"),
    ({"listen": "10250"}, "listen: expected host:port"),
    ({"dockerHost": "/var/run/docker.sock"}, "dockerHost: expected unix:///path/docker.sock"),
    ({"nodeLeaseDurationS": 0}, "nodeLeaseDurationS: expected a positive whole number of seconds"),
    ({"nodeLeaseDurationS": 2.5}, "nodeLeaseDurationS: expected a positive whole number of seconds"),
    ({"nodeStatusUpdateFrequencyS": 0}, "nodeStatusUpdateFrequencyS: expected a positive number of seconds"),
    ({"nodeStatusReportFrequencyS": "often"}, "nodeStatusReportFrequencyS: expected a positive number"),
    ({"heartbeatS": 1}, "unknown key(s) heartbeatS"),
    ({"capacity": {"cpu": "lots"}}, "capacity.cpu: 'lots' is not a positive quantity"),
    ({"capacity": {"gpu": "1"}}, "capacity.gpu: unknown resource"),
    ({"labels": {"a": 1}}, "labels: expected a mapping of strings to strings"),
    ({"heartbeat": 1}, "unknown key(s) heartbeat"),
    ({"syncWorkers": 0}, "syncWorkers: expected a positive integer"),
    ({"restartBackoffBaseS": 10, "restartBackoffCapS": 1}, "restartBackoffCapS (1.0) is smaller"),
])
def test_config_errors_name_the_key(change, message):
    doc = dict(GOOD, **change)
    with pytest.raises(configmod.ConfigError) as err:
        configmod.parse(doc, "agent.yaml")
    assert message in str(err.value)
    assert str(err.value).startswith("agent.yaml: ")


def test_config_file_errors(tmp_path):
    with pytest.raises(configmod.ConfigError, match="no such file"):
        configmod.load(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("nodeName: [unclosed")
    with pytest.raises(configmod.ConfigError, match="not valid YAML"):
        configmod.load(str(bad))
    bad.write_text("- a list")
    with pytest.raises(configmod.ConfigError, match="expected a mapping"):
        configmod.load(str(bad))


# ------------------------------------------------------------------ node


FACTS = nodemod.MachineFacts(cpu="8", memory="16000000Ki", kernel_version="6.1.0", os_image="Debian GNU/Linux 12",
                             machine_id="abc", docker_version="20.10.24")


def cond(status, ctype):
    return next(c for c in status.conditions if c.type == ctype)


def test_node_object():
    cfg = configmod.parse(dict(GOOD, labels={"zone": "a"}, capacity={"memory": "4Gi"}))
    node = nodemod.build_node(cfg, FACTS, 1_700_000_000)
    assert node.metadata.name == "node1"
    assert dict(node.metadata.labels) == {"kubernetes.io/hostname": "node1", "kubernetes.io/os": "linux",
                                          "kubernetes.io/arch": "amd64", "zone": "a"}
    st = node.status
    assert dict(st.capacity) == {"cpu": "8", "memory": "4Gi", "pods": "110"} == dict(st.allocatable)
    assert [(a.type, a.address) for a in st.addresses] == [("InternalIP", "10.200.0.21"), ("Hostname", "node1")]
    assert st.node_info.container_runtime_version == "docker://20.10.24"
    assert st.node_info.kubelet_version == "skiff-0.1.0"
    assert (st.node_info.operating_system, st.node_info.architecture) == ("linux", "amd64")
    assert st.daemon_endpoints.kubelet_endpoint.port == 10250
    ready = cond(st, "Ready")
    assert (ready.status, ready.reason) == ("True", "KubeletReady")
    assert ready.last_heartbeat_time == rfc3339(1_700_000_000)


def test_ephemeral_storage_is_the_data_dir_filesystem_size(tmp_path):
    import os
    st = os.statvfs(tmp_path)
    assert nodemod.filesystem_size(str(tmp_path)) == f"{st.f_blocks * st.f_frsize // 1024}Ki"
    assert nodemod.filesystem_size(str(tmp_path / "missing")) == ""
    facts = nodemod.machine_facts("20.10.24", str(tmp_path))
    assert facts.ephemeral_storage == nodemod.filesystem_size(str(tmp_path))
    node = nodemod.build_node(configmod.parse(GOOD), facts, 1_700_000_000)
    assert node.status.capacity["ephemeral-storage"] == facts.ephemeral_storage
    assert node.status.allocatable["ephemeral-storage"] == facts.ephemeral_storage
    # the config's capacity overrides it, as for cpu and memory
    node = nodemod.build_node(configmod.parse(dict(GOOD, capacity={"ephemeral-storage": "5Gi"})), facts, 0)
    assert node.status.allocatable["ephemeral-storage"] == "5Gi"


def test_heartbeat_keeps_transition_time_until_the_status_changes():
    cfg = configmod.parse(GOOD)
    first = nodemod.build_status(cfg, FACTS, 1_700_000_000, pb.NodeStatus())
    later = nodemod.build_status(cfg, FACTS, 1_700_000_060, first)
    ready = cond(later, "Ready")
    assert ready.last_heartbeat_time == rfc3339(1_700_000_060)
    assert ready.last_transition_time == rfc3339(1_700_000_000)
    # The node lifecycle controller marked us Unknown meanwhile: our Ready=True is a transition.
    cond(later, "Ready").status = "Unknown"
    back = nodemod.build_status(cfg, FACTS, 1_700_000_120, later)
    assert cond(back, "Ready").status == "True"
    assert cond(back, "Ready").last_transition_time == rfc3339(1_700_000_120)


def test_conditions_of_others_are_kept():
    cfg = configmod.parse(GOOD)
    old = nodemod.build_status(cfg, FACTS, 1_700_000_000, pb.NodeStatus())
    old.conditions.add(type="NetworkUnavailable", status="False", reason="RouteCreated")
    new = nodemod.build_status(cfg, FACTS, 1_700_000_010, old, images=[(("a:1",), 10), (("b:1", "b:2"), 20)])
    assert cond(new, "NetworkUnavailable").reason == "RouteCreated"
    assert [c.type for c in new.conditions].count("Ready") == 1
    assert [(list(i.names), i.size_bytes) for i in new.images] == [(["b:1", "b:2"], 20), (["a:1"], 10)]
