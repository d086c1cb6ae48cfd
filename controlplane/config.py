"""The control-plane replica's config file (YAML, camelCase like every skiff file).

The format is a contract: the lab (skiff/lab/controlplane.py) writes it as plain YAML
without importing this module; load() parses and validates it when a replica starts.

    name: cp1
    dataDir: /var/lib/skiff/cp1
    apiAddress: 0.0.0.0:7100        # gRPC API (clients, agents, other replicas)
    advertiseApiAddress: 10.0.0.11:7100   # optional: what peers/clients should dial
    raftAddress: 10.0.0.11:7200     # Raft peer traffic (PySyncObj)
    raftPasswordFile: /etc/skiff/raft-password
    peers:
      - {name: cp2, apiAddress: 10.0.0.12:7100, raftAddress: 10.0.0.12:7200}
      - {name: cp3, apiAddress: 10.0.0.13:7100, raftAddress: 10.0.0.13:7200,
         joinAddress: 10.0.0.13:7300}   # optional: its tls.joinAddress (the in-cluster API port)
    raft:                           # optional; LAN defaults
      minTimeoutS: 0.45              # election timeout, drawn in [min, max] (RaftTuning)
      maxTimeoutS: 0.9
      heartbeatS: 0.1
      compactionMinEntries: 5000
      compactionMinTimeS: 300
    watchHistory: 20000             # optional: changes a watch can resume across
    controllers:                    # optional: the leader-only loops (see ControllersConfig)
      enabled: true
      nodeMonitorGracePeriodS: 5
      podEvictionTimeoutS: 5
    services:                       # optional: Service address allocation (see ServicesConfig)
      serviceCIDR: 10.96.0.0/12
      nodePortRange: 30000-32767
      loadBalancerPool: 10.200.0.200-10.200.0.220
    encryptionConfigFile: /etc/skiff/encryption-config.yaml   # optional, see below
    network:                        # optional: the pod network (absent = no node IPAM; pods get loopback only)
      clusterCIDR: 10.244.0.0/16    # every pod IP comes from here
      nodeCIDRMaskSize: 24          # each Node gets one such block (spec.podCIDR)
      backend: host-gw              # host-gw | vxlan (agents learn it from the Node annotation skiff.io/network-backend)
    tls:                            # optional: mTLS on the API and on calls to agents and peers
      caFile: /etc/skiff/pki/ca.crt         # absent = plaintext (every caller is the admin)
      certFile: /etc/skiff/pki/cp1.crt      # keys documented in skiff/pki/config.py
      keyFile: /etc/skiff/pki/cp1.key
      caKeyFile: /etc/skiff/pki/ca.key
      certLifetimeS: 31536000
    serviceAccounts:                # optional: ServiceAccount tokens (see controlplane/apiserver/sa_tokens.py)
      keyFile: /etc/skiff/sa.key    # PEM EC P-256 key signing and verifying tokens; the SAME file on every
                                    # replica (python -m skiff.satoken PATH makes one); absent: no tokens
      issuer: https://kubernetes.default.svc.cluster.local   # the tokens' iss (default shown)
      audiences: []                 # what a token must be for to reach the API (default: [issuer])
      minExpirationS: 600           # shortest lifetime a TokenRequest may ask for (Kubernetes: 600)
      maxExpirationS: 172800        # longest; longer requests are cut to it

encryptionConfigFile: Secrets encrypted at rest. The file is Kubernetes'
EncryptionConfiguration (format and providers: controlplane/store/encryption.py; operator
guide, key rotation: docs/secrets-encryption.md). Every replica of a cluster needs the same
keys (the file is the cluster's, like the Raft password; mode 0600, owned by the replica's
user); the first provider's first key encrypts, every listed key decrypts. Absent: Secrets
are stored in clear (the replica logs a warning at start), and a Secret stored encrypted
cannot be read. A relative path is relative to this config file. An invalid file stops the
replica at start with a message naming the field.
"""

import ipaddress
import os
from dataclasses import dataclass, field

import yaml

from controlplane.store import encryption as encmod
from skiff.pki import config as tlsconfig
from skiff.pki.config import TLSConfig
from controlplane.apiserver.sa_tokens import ServiceAccountsConfig, dump_config, parse_config


@dataclass(frozen=True)
class Peer:
    """A replica as the others know it. join_address: its tls.joinAddress ("" = none or
    unknown), where the Service default/kubernetes sends pods (controlplane/bootstrap.py)."""
    name: str
    api_address: str
    raft_address: str
    join_address: str = ""


@dataclass(frozen=True)
class RaftTuning:
    """PySyncObj timing (controlplane/store/raft.py make_conf; docs/store.md).

    heartbeat_s: the leader's empty append when no entry went out for that long. Its only
      job is liveness: every entry and commit-index update is sent at once (unbatched
      appends), so it costs failover time, not commit latency. Each heartbeat is a message
      to and a reply from every follower (about 0.25 ms of Python each on this machine):
      50 ms cost an idle leader about 2 % of a core and a follower 1 %; 100 ms half that.
    min_timeout_s / max_timeout_s: a follower that hears nothing for a random time in
      [min, max] starts an election: the failover time after a leader dies. A follower
      tolerates a stall (GC, a saturated CPU) of min_timeout_s - heartbeat_s without a
      needless election: 0.35 s, as with the former 50 ms / 0.4-0.8 s. Failover (kill -9
      of the leader to the next commit, a bare loopback trio, 20 rounds each): median
      1.14 s -> 1.27 s, max 1.27 s -> 1.55 s (150 ms / 0.5-1.0 s: median 1.35 s, a 2.9 s
      worst case, too slow). etcd's defaults are 100 ms / 1 s.
    """
    min_timeout_s: float = 0.45
    max_timeout_s: float = 0.9
    heartbeat_s: float = 0.1
    compaction_min_entries: int = 5000
    compaction_min_time_s: float = 300.0


@dataclass(frozen=True)
class ControllersConfig:
    """Settings of the leader-only loops (scheduler, controllers, node lifecycle, GC).

    node_monitor_grace_period_s: how long a node's Lease (kube-node-lease/<node>,
      spec.renewTime) and its Ready lastHeartbeatTime may both stay unchanged (as seen
      by the leader, measured with its monotonic clock) before the node is marked
      Ready=Unknown and tainted node.kubernetes.io/unreachable. Lab default 5 s, the
      agents' default lease duration (renewed every 1.25 s); Kubernetes' default
      (--node-monitor-grace-period) is 40 s (50 s since 1.32), its kubelet's lease
      40 s renewed every 10 s.
    pod_eviction_timeout_s: how much longer after that the node's pods are
      force-deleted so their controllers replace them elsewhere. Lab default 5 s;
      Kubernetes' default is 300 s (the tolerationSeconds of the default
      not-ready/unreachable NoExecute tolerations; formerly --pod-eviction-timeout).
    enabled: false runs the replica without any leader-only loop (API and store only).
    job_backoff_base_s: the Job controller's delay before replacing a failed pod, doubled
      per further failure up to 6 min; Kubernetes' value, 10 s, by default (tests shorten it).
    """
    enabled: bool = True
    node_monitor_grace_period_s: float = 5.0
    pod_eviction_timeout_s: float = 5.0
    job_backoff_base_s: float = 10.0


@dataclass(frozen=True)
class ServicesConfig:
    """Where Services get their addresses (allocated inside the replicated apply).

    service_cidr: ClusterIPs come from here (lowest free address first); Kubernetes'
      default --service-cluster-ip-range is 10.96.0.0/12.
    node_port_range: "lo-hi" inclusive, Kubernetes' default 30000-32767.
    load_balancer_pool: "first-last" addresses for type LoadBalancer (status.loadBalancer
      .ingress); "" = none (LoadBalancer services stay <pending>, like a cloud-less cluster).
    The proposing replica puts these settings into each Service write, so the state
    machine reads them from the log, never from a replica's own file: replicas with
    different files cannot diverge (the one that proposes wins for that write).
    """
    service_cidr: str = "10.96.0.0/12"
    node_port_range: str = "30000-32767"
    load_balancer_pool: str = ""

    def alloc_settings(self) -> dict:
        """The plain-data form carried in Raft commands (see skiff/api/svcalloc.py)."""
        lo, hi = (int(x) for x in self.node_port_range.split("-"))
        pool = tuple(self.load_balancer_pool.split("-")) if self.load_balancer_pool else ()
        return {"cidr": self.service_cidr, "nodePorts": (lo, hi), "lbPool": pool}


BACKENDS = ("host-gw", "vxlan")


@dataclass(frozen=True)
class NetworkConfig:
    """The cluster's pod network (see controlplane.controllers.nodeipam).

    cluster_cidr: where every pod IP comes from; node_cidr_mask_size: the prefix length
    of each node's block (spec.podCIDR); backend: how nodes reach each other's blocks
    (host-gw: a route via the node's InternalIP, all nodes on one L2 segment; vxlan:
    flannel-style overlay, VNI 1, UDP 8472). The node IPAM controller publishes backend
    and cluster_cidr on every Node (annotations skiff.io/network-backend,
    skiff.io/cluster-cidr): agents learn them from there.
    """
    cluster_cidr: str = "10.244.0.0/16"
    node_cidr_mask_size: int = 24
    backend: str = "host-gw"


@dataclass(frozen=True)
class ControlPlaneConfig:
    name: str
    data_dir: str
    api_address: str
    raft_address: str
    raft_password: str
    advertise_api_address: str = ""
    peers: tuple = ()
    raft: RaftTuning = field(default_factory=RaftTuning)
    # How many recent changes a watch can resume across (older -> "expired, re-list").
    watch_history: int = 20000
    controllers: ControllersConfig = field(default_factory=ControllersConfig)
    services: ServicesConfig = field(default_factory=ServicesConfig)
    # None: no node IPAM (no network: section), like kube-controller-manager without --allocate-node-cidrs.
    network: NetworkConfig | None = None
    # Secrets at rest (encryptionConfigFile); None: stored in clear.
    encryption: encmod.Encryption | None = None
    encryption_config_file: str = ""
    # None: plaintext gRPC; else the cluster CA and this replica's certificate (skiff/pki/config.py).
    tls: TLSConfig | None = None
    service_accounts: ServiceAccountsConfig = field(default_factory=ServiceAccountsConfig)

    @property
    def self_peer(self) -> Peer:
        return Peer(self.name, self.advertise_api_address or self.api_address, self.raft_address,
                    self.tls.join_address if self.tls else "")


class ConfigError(ValueError):
    pass


def _need(doc, key, where, typ=str):
    value = doc.get(key)
    if not isinstance(value, typ) or value == "":
        raise ConfigError(f"{where}: {key} is required ({typ.__name__})")
    return value


def _address(value, where):
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{where}: {value!r} is not host:port")
    return value


def _check_mapping(doc, where, known) -> None:
    """doc must be a mapping whose keys are all in known; errors name `where`."""
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: expected a mapping")
    unknown = sorted(set(doc) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}")


def load(path: str) -> ControlPlaneConfig:
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f) or {}
    _check_mapping(doc, path, {"name", "dataDir", "apiAddress", "advertiseApiAddress", "raftAddress",
                               "raftPasswordFile", "peers", "raft", "watchHistory", "controllers",
                               "services", "network", "encryptionConfigFile", "tls", "serviceAccounts"})
    pw_file = _need(doc, "raftPasswordFile", path)
    try:
        with open(pw_file, encoding="utf-8") as f:
            password = f.read().strip()
    except OSError as exc:
        raise ConfigError(f"{path}: raftPasswordFile: {exc}") from exc
    if len(password) < 16:
        raise ConfigError(f"{path}: raftPasswordFile: the password must be at least 16 characters")
    peers = []
    for i, p in enumerate(doc.get("peers") or []):
        where = f"{path}: peers[{i}]"
        if not isinstance(p, dict):
            raise ConfigError(f"{where}: expected a mapping")
        join = p.get("joinAddress") or ""
        peers.append(Peer(_need(p, "name", where), _address(_need(p, "apiAddress", where), where),
                          _address(_need(p, "raftAddress", where), where),
                          _address(join, f"{where}: joinAddress") if join else ""))
    raft_doc = doc.get("raft") or {}
    tuning = RaftTuning(
        min_timeout_s=float(raft_doc.get("minTimeoutS", RaftTuning.min_timeout_s)),
        max_timeout_s=float(raft_doc.get("maxTimeoutS", RaftTuning.max_timeout_s)),
        heartbeat_s=float(raft_doc.get("heartbeatS", RaftTuning.heartbeat_s)),
        compaction_min_entries=int(raft_doc.get("compactionMinEntries", RaftTuning.compaction_min_entries)),
        compaction_min_time_s=float(raft_doc.get("compactionMinTimeS", RaftTuning.compaction_min_time_s)),
    )
    if not tuning.heartbeat_s * 3 < tuning.min_timeout_s < tuning.max_timeout_s:
        raise ConfigError(f"{path}: raft: need heartbeatS*3 < minTimeoutS < maxTimeoutS")
    enc_file, encryption = _encryption(doc.get("encryptionConfigFile"), path)
    return ControlPlaneConfig(
        encryption=encryption, encryption_config_file=enc_file,
        controllers=_controllers(doc.get("controllers"), path),
        network=_network(doc.get("network"), path) if "network" in doc else None,
        services=_services(doc.get("services"), path),
        name=_need(doc, "name", path),
        data_dir=_need(doc, "dataDir", path),
        api_address=_address(_need(doc, "apiAddress", path), path),
        advertise_api_address=doc.get("advertiseApiAddress") or "",
        raft_address=_address(_need(doc, "raftAddress", path), path),
        raft_password=password,
        peers=tuple(peers),
        raft=tuning,
        watch_history=int(doc.get("watchHistory", 20000)),
        tls=_tls(doc.get("tls"), path),
        service_accounts=parse_config(doc.get("serviceAccounts"), f"{path}: serviceAccounts", ConfigError),
    )


def _encryption(value, path) -> tuple:
    """(the encryption config file's path, its Encryption) or ("", None) when not set."""
    if value is None or value == "":
        return "", None
    if not isinstance(value, str):
        raise ConfigError(f"{path}: encryptionConfigFile must be a path")
    file = os.path.join(os.path.dirname(os.path.abspath(path)), value)
    try:
        return file, encmod.load(file)
    except encmod.EncryptionConfigError as exc:
        raise ConfigError(f"{path}: encryptionConfigFile: {exc}") from None
def _tls(doc, path):
    try:
        return tlsconfig.parse(doc, path)
    except tlsconfig.TLSConfigError as exc:
        raise ConfigError(str(exc)) from None


def _controllers(doc, path) -> ControllersConfig:
    if doc is None:
        return ControllersConfig()
    where = f"{path}: controllers"
    _check_mapping(doc, where, {"enabled", "nodeMonitorGracePeriodS", "podEvictionTimeoutS", "jobBackoffBaseS"})
    enabled = doc.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{where}: enabled must be true or false")
    values = {}
    for key, default in (("nodeMonitorGracePeriodS", ControllersConfig.node_monitor_grace_period_s),
                         ("podEvictionTimeoutS", ControllersConfig.pod_eviction_timeout_s),
                         ("jobBackoffBaseS", ControllersConfig.job_backoff_base_s)):
        value = doc.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(f"{where}: {key} must be a number of seconds > 0")
        values[key] = float(value)
    return ControllersConfig(enabled=enabled,
                             node_monitor_grace_period_s=values["nodeMonitorGracePeriodS"],
                             pod_eviction_timeout_s=values["podEvictionTimeoutS"],
                             job_backoff_base_s=values["jobBackoffBaseS"])


def _services(doc, path) -> ServicesConfig:
    if doc is None:
        return ServicesConfig()
    where = f"{path}: services"
    _check_mapping(doc, where, {"serviceCIDR", "nodePortRange", "loadBalancerPool"})
    cidr = str(doc.get("serviceCIDR", ServicesConfig.service_cidr))
    try:
        net = ipaddress.ip_network(cidr, strict=True)
    except ValueError as exc:
        raise ConfigError(f"{where}: serviceCIDR {cidr!r}: {exc}") from None
    if net.version != 4 or net.num_addresses < 4:
        raise ConfigError(f"{where}: serviceCIDR must be an IPv4 network of at least 4 addresses")
    ports = str(doc.get("nodePortRange", ServicesConfig.node_port_range))
    lo, sep, hi = ports.partition("-")
    if not (sep and lo.isdigit() and hi.isdigit() and 1 <= int(lo) <= int(hi) <= 65535):
        raise ConfigError(f"{where}: nodePortRange {ports!r} is not lo-hi (e.g. 30000-32767)")
    pool = str(doc.get("loadBalancerPool") or "")
    if pool:
        first, sep, last = pool.partition("-")
        try:
            a, b = ipaddress.IPv4Address(first), ipaddress.IPv4Address(last)
        except ValueError:
            a = b = None
        if not sep or a is None or a > b:
            raise ConfigError(f"{where}: loadBalancerPool {pool!r} is not first-last "
                              "(e.g. 10.200.0.200-10.200.0.220)")
        if a in net or b in net:
            raise ConfigError(f"{where}: loadBalancerPool {pool!r} overlaps serviceCIDR {cidr}")
    return ServicesConfig(service_cidr=cidr, node_port_range=f"{int(lo)}-{int(hi)}",
                          load_balancer_pool=pool)


def _network(doc, path) -> NetworkConfig:
    where = f"{path}: network"
    if doc is None:
        return NetworkConfig()
    _check_mapping(doc, where, {"clusterCIDR", "nodeCIDRMaskSize", "backend"})
    cidr = doc.get("clusterCIDR", NetworkConfig.cluster_cidr)
    try:
        net = ipaddress.IPv4Network(str(cidr), strict=True)
    except ValueError as exc:
        raise ConfigError(f"{where}: clusterCIDR: {exc}") from None
    mask = doc.get("nodeCIDRMaskSize", NetworkConfig.node_cidr_mask_size)
    if isinstance(mask, bool) or not isinstance(mask, int) or not net.prefixlen <= mask <= 30:
        raise ConfigError(f"{where}: nodeCIDRMaskSize must be an integer between the clusterCIDR's "
                          f"prefix length ({net.prefixlen}) and 30, got {mask!r}")
    backend = doc.get("backend", NetworkConfig.backend)
    if backend not in BACKENDS:
        raise ConfigError(f"{where}: backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    return NetworkConfig(cluster_cidr=str(net), node_cidr_mask_size=mask, backend=backend)


def dump(cfg: ControlPlaneConfig, password_file: str) -> str:
    """YAML text for cfg: the inverse of load() (the lab writes the same format as plain YAML,
    skiff/lab/controlplane.py)."""
    doc = {
        "name": cfg.name, "dataDir": cfg.data_dir, "apiAddress": cfg.api_address,
        "raftAddress": cfg.raft_address, "raftPasswordFile": password_file,
        "peers": [{"name": p.name, "apiAddress": p.api_address, "raftAddress": p.raft_address,
                   **({"joinAddress": p.join_address} if p.join_address else {})}
                  for p in cfg.peers],
        "raft": {"minTimeoutS": cfg.raft.min_timeout_s, "maxTimeoutS": cfg.raft.max_timeout_s,
                 "heartbeatS": cfg.raft.heartbeat_s,
                 "compactionMinEntries": cfg.raft.compaction_min_entries,
                 "compactionMinTimeS": cfg.raft.compaction_min_time_s},
    }
    if cfg.watch_history != 20000:
        doc["watchHistory"] = cfg.watch_history
    if cfg.advertise_api_address:
        doc["advertiseApiAddress"] = cfg.advertise_api_address
    if cfg.controllers != ControllersConfig():
        doc["controllers"] = {
            "enabled": cfg.controllers.enabled,
            "nodeMonitorGracePeriodS": cfg.controllers.node_monitor_grace_period_s,
            "podEvictionTimeoutS": cfg.controllers.pod_eviction_timeout_s,
            "jobBackoffBaseS": cfg.controllers.job_backoff_base_s}
    if cfg.services != ServicesConfig():
        doc["services"] = {"serviceCIDR": cfg.services.service_cidr,
                           "nodePortRange": cfg.services.node_port_range,
                           "loadBalancerPool": cfg.services.load_balancer_pool}
    if cfg.encryption_config_file:
        doc["encryptionConfigFile"] = cfg.encryption_config_file
    if cfg.network is not None:
        doc["network"] = {"clusterCIDR": cfg.network.cluster_cidr,
                          "nodeCIDRMaskSize": cfg.network.node_cidr_mask_size,
                          "backend": cfg.network.backend}
    if cfg.tls is not None:
        doc["tls"] = cfg.tls.to_doc()
    if cfg.service_accounts.key_file:
        doc["serviceAccounts"] = dump_config(cfg.service_accounts)
    return yaml.safe_dump(doc, sort_keys=False)
