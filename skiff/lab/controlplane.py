"""A control plane of N replicas as local processes (the lab's and the tests' cluster).

Two placements:
- loopback (tests, `skiff lab up --nodes 0`): every replica on `host`, ports
  api_base_port+i and raft_base_port+i (and with TLS the join port join_base_port+i,
  default raft_base_port+100: Join and bearer tokens, no client certificate);
- machines (the multi-node lab): replica i on its own address `addresses[i]` with the
  same ports on each, started inside network namespace `netns[i]` with
  `nsenter --net` (like a VM of its own on the lab bridge).

Layout under the lab directory:
  raft-password          shared Raft password (0600)
  encryption-config.yaml the cluster's Secret encryption keys (0600; EncryptionConfiguration)
  pki/                   the cluster CA and every certificate (skiff/pki/authority.py); TLS is on
                         unless ControlPlane(tls=False)
  sa.key                 the ServiceAccount token signing key, shared by the replicas (0600)
  cp1/config.yaml        replica config (the format deploy/ uses)
  cp1/data/              Raft journal + dump
  logs/cp1.log
"""

import os
import secrets
import sys
import time

import yaml

from skiff import client as clientmod
from skiff import encryption_config
from skiff import satoken
from skiff.lab import procs


class ControlPlane:
    """The replicas' config files are written as plain YAML documents: the file format
    (documented in controlplane/config.py, which parses and validates it when a replica
    starts) is the contract between the lab and the replica, as it is for deploy/. The
    optional sections are given in that format and written only when given, so every
    default is the replica's own:

      raft:     {"minTimeoutS": 0.4, "compactionMinEntries": 300, ...}
      network:  {"backend": "vxlan", "clusterCIDR": "10.244.0.0/16", ...}  (None: no section, no node IPAM)
      services: {"loadBalancerPool": "10.200.0.200-10.200.0.220", ...}
      watch_history: watchHistory (None: the replica's default)
      controllers: {"jobBackoffBaseS": 1, ...}  (the leader-only loops' settings)
    """

    def __init__(self, lab_dir: str, *, replicas: int = 3, host: str = "127.0.0.1",
                 api_base_port: int = 7100, raft_base_port: int = 7200,
                 raft: dict | None = None, watch_history: int | None = None,
                 addresses: list[str] | None = None, netns: list[str] | None = None,
                 network: dict | None = None, services: dict | None = None,
                 controllers: dict | None = None, tls: bool = True,
                 cert_lifetime_s: float | None = None, join_base_port: int | None = None):
        for what, items in (("addresses", addresses), ("netns", netns)):
            if items is not None and len(items) != replicas:
                raise ValueError(f"{what}: one per replica ({replicas}), got {len(items)}")
        self.addresses = list(addresses) if addresses else None
        self.netns = list(netns) if netns else None
        self.lab_dir = os.path.abspath(lab_dir)
        self.names = [f"cp{i + 1}" for i in range(replicas)]
        self.host = host
        self.api_base_port = api_base_port
        self.raft_base_port = raft_base_port
        self.raft = dict(raft or {})    # the replicas' raft: section (overrides of its defaults)
        self.watch_history = watch_history
        self.network = dict(network) if network is not None else None   # network: section; None = none
        self.services = dict(services or {})    # the replicas' services: section
        self.controllers = dict(controllers or {})    # the replicas' controllers: section
        self.pids: dict[str, int] = {}
        # mTLS on every port (issue 10): a CA in <lab>/pki, a certificate per replica and node,
        # an admin certificate the lab's clients use. cert_lifetime_s: what the CA issues.
        self.tls = tls
        self.join_base_port = join_base_port or raft_base_port + 100
        self.cert_lifetime_s = cert_lifetime_s
        self._admin_creds = None

    # ------------------------------------------------------------ layout

    def api_address(self, name) -> str:
        i = self.names.index(name)
        if self.addresses:
            return f"{self.addresses[i]}:{self.api_base_port}"
        return f"{self.host}:{self.api_base_port + i}"

    def raft_address(self, name) -> str:
        i = self.names.index(name)
        if self.addresses:
            return f"{self.addresses[i]}:{self.raft_base_port}"
        return f"{self.host}:{self.raft_base_port + i}"

    def join_address(self, name) -> str:
        i = self.names.index(name)
        if self.addresses:
            return f"{self.addresses[i]}:{self.join_base_port}"
        return f"{self.host}:{self.join_base_port + i}"

    def netns_of(self, name) -> str | None:
        return self.netns[self.names.index(name)] if self.netns else None

    @property
    def endpoints(self) -> list[str]:
        return [self.api_address(n) for n in self.names]

    def config_path(self, name) -> str:
        return os.path.join(self.lab_dir, name, "config.yaml")

    def data_dir(self, name) -> str:
        return os.path.join(self.lab_dir, name, "data")

    def log_path(self, name) -> str:
        return os.path.join(self.lab_dir, "logs", f"{name}.log")

    def write_configs(self) -> None:
        os.makedirs(self.lab_dir, exist_ok=True)
        pw_file = os.path.join(self.lab_dir, "raft-password")
        if not os.path.exists(pw_file):
            fd = os.open(pw_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(24))
        encryption_config.write_new(self.encryption_config_path)
        if self.tls:
            self.pki.write_replicas(self)
        satoken.ensure_signing_key(self.sa_key_path)
        for name in self.names:
            os.makedirs(os.path.dirname(self.config_path(name)), exist_ok=True)
            with open(self.config_path(name), "w", encoding="utf-8") as f:
                f.write(yaml.safe_dump(self.config_doc(name, pw_file), sort_keys=False))

    @property
    def encryption_config_path(self) -> str:
        """The cluster's encryption config (every replica's encryptionConfigFile)."""
        return os.path.join(self.lab_dir, "encryption-config.yaml")

    def config_doc(self, name: str, password_file: str) -> dict:
        """Replica `name`'s config file as a YAML document (controlplane/config.py's format)."""
        doc = {"name": name, "dataDir": self.data_dir(name), "apiAddress": self.api_address(name),
               "raftAddress": self.raft_address(name), "raftPasswordFile": password_file,
               "encryptionConfigFile": self.encryption_config_path,
               "peers": [{"name": p, "apiAddress": self.api_address(p), "raftAddress": self.raft_address(p),
                          **({"joinAddress": self.join_address(p)} if self.tls else {})}
                         for p in self.names if p != name]}
        if self.raft:
            doc["raft"] = dict(self.raft)
        if self.watch_history is not None:
            doc["watchHistory"] = self.watch_history
        if self.services:
            doc["services"] = dict(self.services)
        if self.network is not None:
            doc["network"] = dict(self.network)
        if self.controllers:
            doc["controllers"] = dict(self.controllers)
        if self.tls:
            doc["tls"] = {**self.pki.replica_tls_doc(name), "joinAddress": self.join_address(name)}
        doc["serviceAccounts"] = {"keyFile": self.sa_key_path}
        return doc

    # ------------------------------------------------------------ PKI

    @property
    def pki(self):
        from skiff.lab.pki import LabPki
        return LabPki(os.path.join(self.lab_dir, "pki"), self.cert_lifetime_s)

    @property
    def admin_credentials(self):
        """The admin's TLS credentials (CN skiff:admin, O system:masters); None with TLS off."""
        if not self.tls:
            return None
        if self._admin_creds is None:
            self._admin_creds = self.pki.admin_credentials()
        return self._admin_creds

    def node_tls(self, node: str, address: str) -> dict:
        """The agent config's tls: section for node `node` ({} with TLS off), its certificate
        issued now (CN skiff:node:<node>, SAN its address)."""
        return {"tls": self.pki.node_tls_doc(node, address)} if self.tls else {}

    def join_tls(self, node: str, ttl_s: float = 3600) -> dict:
        """The agent config's tls: section for node `node` joining with a new bootstrap token
        ({} with TLS off): the agent pins the CA, makes its key and gets its certificate
        itself (nodeagent/join.py), into <lab>/join/<node>/."""
        if not self.tls:
            return {}
        from skiff.pki import tokens
        c = self.client(call_timeout_s=5.0, failover_budget_s=20.0)
        try:
            token = tokens.create(c, ttl_s, f"skiff lab: join of {node}")
        finally:
            c.close()
        d = os.path.join(self.lab_dir, "join", node)
        return {"tls": {"caFile": os.path.join(d, "ca.crt"), "certFile": os.path.join(d, "node.crt"),
                        "keyFile": os.path.join(d, "node.key"), "joinToken": token,
                        "joinServers": [self.join_address(n) for n in self.names]}}

    @property
    def sa_key_path(self) -> str:
        return os.path.join(self.lab_dir, "sa.key")

    # ------------------------------------------------------------ processes

    def start(self, name) -> int:
        if procs.alive(self.pids.get(name, 0), self.config_path(name)):
            return self.pids[name]
        argv = [sys.executable, "-m", "controlplane.main", "--config", self.config_path(name)]
        if self.netns:
            # nsenter execs the replica (same pid): only the network namespace changes.
            argv = ["nsenter", f"--net=/var/run/netns/{self.netns_of(name)}"] + argv
        env = dict(os.environ)
        # The replica imports skiff from wherever this process does.
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        self.pids[name] = procs.spawn(argv, self.log_path(name), env=env)
        return self.pids[name]

    def start_all(self) -> None:
        for name in self.names:
            self.start(name)

    def is_running(self, name) -> bool:
        return procs.alive(self.pids.get(name, 0), self.config_path(name))

    def kill(self, name) -> bool:
        """kill -9 the replica's whole process group (a power cut of that machine)."""
        pid = self.pids.get(name, 0)
        ok = procs.kill_group(pid, self.config_path(name))
        procs.wait_dead(pid, self.config_path(name))
        return ok

    def kill_pid_only(self, name) -> bool:
        """kill -9 of the main pid alone: children (a compaction fork) may outlive it."""
        pid = self.pids.get(name, 0)
        if not procs.alive(pid, self.config_path(name)):
            return False
        os.kill(pid, 9)
        procs.wait_dead(pid, self.config_path(name))
        return True

    def stop_all(self) -> None:
        for name in self.names:
            procs.stop(self.pids.get(name, 0), self.config_path(name))
        # Anything started from these configs that we lost track of (tooling crash).
        for name in self.names:
            for pid in procs.find_by_marker(self.config_path(name)):
                procs.stop(pid, self.config_path(name))

    # ------------------------------------------------------------ readiness

    def client(self, endpoints=None, **kw) -> clientmod.Client:
        """A client as the cluster's administrator (endpoints: a subset, default all)."""
        kw.setdefault("tls", self.admin_credentials)
        return clientmod.Client(list(endpoints or self.endpoints), **kw)

    def wait_ready(self, timeout_s: float = 30.0, names=None) -> None:
        """Until there is a leader, every named replica answers, and 'default' exists."""
        names = names or [n for n in self.names if self.is_running(n)]
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        c = self.client(call_timeout_s=2.0, failover_budget_s=2.0)
        try:
            while time.monotonic() < deadline:
                try:
                    st = c.cluster_status()
                    up = {r.name: r for r in st.replicas if r.reachable}
                    leaders = [r for r in up.values() if r.role == "leader"]
                    if leaders and all(n in up for n in names):
                        c.get("namespace", "default", linearizable=True)
                        return
                    last = f"replicas up: {sorted(up)}, leader: {[r.name for r in leaders]}"
                except clientmod.ApiError as exc:
                    last = str(exc)
                time.sleep(0.1)
        finally:
            c.close()
        raise TimeoutError(f"control plane not ready after {timeout_s:.0f}s: {last}")

    def leader(self, timeout_s: float = 10.0) -> str:
        deadline = time.monotonic() + timeout_s
        c = self.client(call_timeout_s=2.0, failover_budget_s=2.0)
        try:
            while time.monotonic() < deadline:
                try:
                    for r in c.cluster_status().replicas:
                        if r.reachable and r.role == "leader":
                            return r.name
                except clientmod.ApiError:
                    pass
                time.sleep(0.05)
        finally:
            c.close()
        raise TimeoutError("no Raft leader")


def services_for_subnet(subnet: str) -> dict:
    """The lab's services: section: LoadBalancer addresses .200-.220 of the lab subnet
    (nodes are .21+, the gateway the last address), so the host reaches them on the
    lab bridge; a subnet smaller than /24 gets no pool (an empty section)."""
    import ipaddress
    net = ipaddress.ip_network(subnet)
    if net.num_addresses < 256:
        return {}
    return {"loadBalancerPool": f"{net[200]}-{net[220]}"}
