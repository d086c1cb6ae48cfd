"""The node agent's config file (YAML, camelCase like every skiff file).

    nodeName: node1
    servers: ["10.200.0.11:7100", "10.200.0.12:7100", "10.200.0.13:7100"]
    address: 10.200.0.21                  # the node's InternalIP
    listen: "10.200.0.21:10250"           # the agent's own gRPC server (logs/exec/image load)
    dockerHost: unix:///run/skiff-lab/node1/docker.sock
    dataDir: /var/lib/skiff-lab/node1/agent
    labels: {}                            # optional extra node labels
    capacity: {cpu: "2", memory: 4Gi, pods: "110"}   # optional; default = this machine's (also
                                          # ephemeral-storage: default the size of dataDir's filesystem)
    # optional liveness and status reporting (lab defaults; Kubernetes' kubelet defaults in brackets):
    nodeLeaseDurationS: 5                 # [40] the node's Lease (kube-node-lease/<node>) is renewed every
                                          # quarter of it [10 s]; lab: = the control plane's 5 s
                                          # nodeMonitorGracePeriodS [40 s, 50 s since 1.32]
    nodeStatusUpdateFrequencyS: 2.5       # [10] how often the agent computes its status and reads its Node
                                          # to compare (a read, no write unless something changed)
    nodeStatusReportFrequencyS: 300       # [300] the status is written when it changes, else this often
    pauseImage: skiff/pause:latest        # optional
    # optional tuning (defaults are Kubernetes' where Kubernetes has one):
    restartBackoffBaseS: 10               # crash-loop back-off: base, doubling ...
    restartBackoffCapS: 300               # ... up to this cap
    resyncS: 5                            # every pod (and every container the engine has) re-synced
    syncWorkers: 8                        # pods synced in parallel
    imagePullTimeoutS: 60                 # a pull (policy Always/IfNotPresent) gives up after this
    podNetwork: true                      # optional, default false: give pods IPs (nodeagent/network);
                                          # the agent must then own its network namespace (a lab node,
                                          # a VM): it creates cbr0, routes, sysctls and a NAT rule there.
                                          # The backend and cluster CIDR come from the Node's annotations
                                          # (written by the node IPAM controller), not from this file.
    dnsUpstream: 10.200.0.53:53           # optional (podNetwork only): where the node DNS forwards names
                                          # outside cluster.local; without it they are REFUSED.
    tls:                                  # optional: mTLS to the API and on the agent's own server
      caFile: /etc/skiff/pki/ca.crt       # (absent = plaintext); keys in skiff/pki/config.py
      certFile: /etc/skiff/pki/node1.crt  # CN skiff:node:<nodeName>, O skiff:nodes
      keyFile: /etc/skiff/pki/node1.key

Unknown keys are an error (a typo must not silently fall back to a default).
Every error names the file and the key.
"""

from dataclasses import dataclass, field

import yaml

from skiff.api import quantity
from skiff.pki import config as tlsconfig
from skiff.pki.config import TLSConfig


class ConfigError(Exception):
    pass


@dataclass(frozen=True)
class AgentConfig:
    node_name: str
    servers: tuple
    address: str
    listen: str
    docker_host: str
    data_dir: str
    labels: dict = field(default_factory=dict)
    capacity: dict = field(default_factory=dict)
    node_lease_duration_s: int = 5
    node_status_update_frequency_s: float = 2.5
    node_status_report_frequency_s: float = 300.0
    pause_image: str = "skiff/pause:latest"
    restart_backoff_base_s: float = 10.0
    restart_backoff_cap_s: float = 300.0
    resync_s: float = 5.0
    sync_workers: int = 8
    image_pull_timeout_s: float = 60.0
    pod_network: bool = False
    dns_upstream: str = ""
    tls: TLSConfig | None = None

    @property
    def lease_renew_s(self) -> float:
        """The Lease renewal period: a quarter of its duration (the kubelet's ratio, 10 s for 40 s)."""
        return self.node_lease_duration_s / 4.0

    @property
    def listen_port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])


_REQUIRED = {
    "nodeName": "node_name", "servers": "servers", "address": "address", "listen": "listen",
    "dockerHost": "docker_host", "dataDir": "data_dir",
}
_OPTIONAL_FLOAT = {
    "nodeStatusUpdateFrequencyS": "node_status_update_frequency_s",
    "nodeStatusReportFrequencyS": "node_status_report_frequency_s",
    "restartBackoffBaseS": "restart_backoff_base_s",
    "restartBackoffCapS": "restart_backoff_cap_s", "resyncS": "resync_s",
    "imagePullTimeoutS": "image_pull_timeout_s",
}
_OTHER = ("labels", "capacity", "pauseImage", "syncWorkers", "podNetwork", "dnsUpstream", "nodeLeaseDurationS", "tls")
CAPACITY_KEYS = ("cpu", "memory", "pods", "ephemeral-storage")


def load(path: str) -> AgentConfig:
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse(doc, path)


def parse(doc, source: str = "config") -> AgentConfig:
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: expected a mapping of keys (nodeName, servers, ...), "
                          f"got {type(doc).__name__}")
    known = set(_REQUIRED) | set(_OPTIONAL_FLOAT) | set(_OTHER)
    unknown = sorted(str(k) for k in doc if k not in known)
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)} "
                          f"(known: {', '.join(sorted(known))})")
    missing = [k for k in _REQUIRED if doc.get(k) in (None, "", [])]
    if missing:
        raise ConfigError(f"{source}: missing required key(s) {', '.join(missing)}")
    kw = {}
    for key, attr in _REQUIRED.items():
        value = doc[key]
        if key == "servers":
            if isinstance(value, str):
                value = [s.strip() for s in value.split(",") if s.strip()]
            if not isinstance(value, list) or not all(isinstance(s, str) and ":" in s for s in value):
                raise ConfigError(f"{source}: servers: expected a list of host:port strings, got {value!r}")
            value = tuple(value)
        elif not isinstance(value, str):
            raise ConfigError(f"{source}: {key}: expected a string, got {value!r}")
        kw[attr] = value
    _check_host_port(source, "listen", kw["listen"])
    if not (kw["docker_host"].startswith("unix://") or kw["docker_host"].startswith("tcp://")):
        raise ConfigError(f"{source}: dockerHost: expected unix:///path/docker.sock or tcp://host:port, "
                          f"got {kw['docker_host']!r}")
    for key, attr in _OPTIONAL_FLOAT.items():
        if doc.get(key) is None:
            continue
        value = doc[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(f"{source}: {key}: expected a positive number of seconds, got {value!r}")
        kw[attr] = float(value)
    labels = doc.get("labels") or {}
    if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                               for k, v in labels.items()):
        raise ConfigError(f"{source}: labels: expected a mapping of strings to strings, got {labels!r}")
    kw["labels"] = dict(labels)
    capacity = doc.get("capacity") or {}
    if not isinstance(capacity, dict):
        raise ConfigError(f"{source}: capacity: expected a mapping like {{cpu: \"2\", memory: 4Gi}}")
    cap = {}
    for name, value in capacity.items():
        if name not in CAPACITY_KEYS:
            raise ConfigError(f"{source}: capacity.{name}: unknown resource (known: {', '.join(CAPACITY_KEYS)})")
        text = str(value)
        if not quantity.is_valid(text) or quantity.parse_quantity(text) <= 0:
            raise ConfigError(f"{source}: capacity.{name}: {text!r} is not a positive quantity "
                              f"(e.g. cpu: \"2\", memory: 4Gi, pods: \"110\")")
        cap[name] = text
    kw["capacity"] = cap
    if doc.get("pauseImage") is not None:
        if not isinstance(doc["pauseImage"], str) or not doc["pauseImage"]:
            raise ConfigError(f"{source}: pauseImage: expected an image reference, got {doc['pauseImage']!r}")
        kw["pause_image"] = doc["pauseImage"]
    if doc.get("syncWorkers") is not None:
        workers = doc["syncWorkers"]
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ConfigError(f"{source}: syncWorkers: expected a positive integer, got {workers!r}")
        kw["sync_workers"] = workers
    if doc.get("nodeLeaseDurationS") is not None:
        duration = doc["nodeLeaseDurationS"]   # an int32 in the Lease (leaseDurationSeconds)
        if isinstance(duration, bool) or not isinstance(duration, int) or duration < 1:
            raise ConfigError(f"{source}: nodeLeaseDurationS: expected a positive whole number of seconds, "
                              f"got {duration!r}")
        kw["node_lease_duration_s"] = duration
    if doc.get("podNetwork") is not None:
        if not isinstance(doc["podNetwork"], bool):
            raise ConfigError(f"{source}: podNetwork: expected true or false, got {doc['podNetwork']!r}")
        kw["pod_network"] = doc["podNetwork"]
    if doc.get("dnsUpstream") is not None:
        up = doc["dnsUpstream"]
        host, sep, port = up.rpartition(":") if isinstance(up, str) else ("", "", "")
        if not isinstance(up, str) or not up or (sep and not (host and port.isdigit() and 0 < int(port) < 65536)):
            raise ConfigError(f"{source}: dnsUpstream: expected ip or ip:port, got {up!r}")
        kw["dns_upstream"] = up
    try:
        kw["tls"] = tlsconfig.parse(doc.get("tls"), source, allow_ca_key=False)
    except tlsconfig.TLSConfigError as exc:
        raise ConfigError(str(exc)) from None
    cfg = AgentConfig(**kw)
    if cfg.restart_backoff_cap_s < cfg.restart_backoff_base_s:
        raise ConfigError(f"{source}: restartBackoffCapS ({cfg.restart_backoff_cap_s}) is smaller than "
                          f"restartBackoffBaseS ({cfg.restart_backoff_base_s})")
    return cfg


def _check_host_port(source, key, value):
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{source}: {key}: expected host:port, got {value!r}")


def dump(cfg: AgentConfig) -> str:
    """The YAML text of cfg (what the lab and tests write)."""
    doc = {
        "nodeName": cfg.node_name, "servers": list(cfg.servers), "address": cfg.address,
        "listen": cfg.listen, "dockerHost": cfg.docker_host, "dataDir": cfg.data_dir,
        "labels": dict(cfg.labels), "capacity": dict(cfg.capacity),
        "nodeLeaseDurationS": cfg.node_lease_duration_s,
        "nodeStatusUpdateFrequencyS": cfg.node_status_update_frequency_s,
        "nodeStatusReportFrequencyS": cfg.node_status_report_frequency_s,
        "pauseImage": cfg.pause_image, "restartBackoffBaseS": cfg.restart_backoff_base_s,
        "restartBackoffCapS": cfg.restart_backoff_cap_s, "resyncS": cfg.resync_s,
        "syncWorkers": cfg.sync_workers, "imagePullTimeoutS": cfg.image_pull_timeout_s,
    }
    if cfg.pod_network:
        doc["podNetwork"] = True
    if cfg.dns_upstream:
        doc["dnsUpstream"] = cfg.dns_upstream
    if cfg.tls is not None:
        doc["tls"] = cfg.tls.to_doc()
    return yaml.safe_dump(doc, sort_keys=False)
