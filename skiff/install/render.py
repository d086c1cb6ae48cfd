"""What the installer puts on a machine, as a pure function of its inputs.

render(inputs, current_hosts) -> [File]: every file the installer owns, with its full
content and mode. Nothing here reads or writes the machine; plan.py compares these
files with what is there and apply.py writes the differences.

Files (paths are fixed, like k3s' /etc/rancher/k3s and /var/lib/rancher/k3s):

  /etc/skiff/controlplane.yaml     role controlplane: controlplane/config.py's format
  /etc/skiff/raft-password         role controlplane: the Raft password (0600)
  /etc/skiff/controlplane.env      role controlplane: EnvironmentFile of the unit (0600)
  /etc/skiff/admin.yaml            role controlplane: the CLI config for root on the machine (0600):
                                   context admin@skiff, the replicas' API addresses, the CA and
                                   the admin's client certificate inline (skiff/clientconfig.py)
  /etc/skiff/pki/ca.crt, ca.key    role controlplane: the cluster CA (key 0600), copied from the
                                   join directory's controlplane/ part (cluster.py)
  /etc/skiff/pki/<name>.crt, .key  role controlplane: this replica's serving/client certificate
                                   (cluster.replica_cert; the replica renews it itself later)
  /etc/skiff/encryption-config.yaml  role controlplane: Secret encryption keys (0600), copied
  /etc/skiff/sa.key                role controlplane: ServiceAccount signing key (0600), copied
  /etc/skiff/agent.yaml            role agent: nodeagent/config.py's format; 0600 (its tls:
                                   section holds the join token). The agent writes
                                   /etc/skiff/pki/ca.crt, <node>.crt, <node>.key when it joins.
  /etc/skiff/agent.env             role agent: EnvironmentFile of the unit (0600)
  /etc/systemd/system/skiff-controlplane.service, skiff-agent.service
  /etc/modules-load.d/skiff.conf   br_netfilter, vxlan, overlay (loaded at boot)
  /etc/sysctl.d/90-skiff.conf      ip_forward=1, bridge-nf-call-iptables=1, rp_filter=2
  /etc/hosts                       the hostname's 127.0.1.1 line Vagrant/Debian writes, fixed
  /etc/docker/daemon.json          role agent: the engine as the lab runs it (no bridge, no
                                   iptables/masquerade/ip_forward of its own: the pod network is
                                   the agent's); other keys already there are kept

State lives under /var/lib/skiff/<role> (the daemons' dataDir); the units create
nothing else.

The units follow k3s' k3s.service / k3s-agent.service: Type=exec, Restart=always,
RestartSec=5s, EnvironmentFile=-..., no start limit; the agent's unit has
KillMode=process (stopping or restarting the agent kills the agent process only: the
pods' containers belong to dockerd and keep running, as with k3s and docker.service),
Delegate=yes, After/Wants docker.service.
"""

import ipaddress
import json
import shlex
from dataclasses import dataclass, field

import yaml

ETC = "/etc/skiff"
PKI = "/etc/skiff/pki"
STATE = "/var/lib/skiff"
UNIT_DIR = "/etc/systemd/system"
CONTROLPLANE_UNIT = "skiff-controlplane.service"
AGENT_UNIT = "skiff-agent.service"
ROLES = ("controlplane", "agent")

# The pod network's kernel needs (docs/networking.md, nodeagent/network/hostcfg.py).
MODULES = ("br_netfilter", "vxlan", "overlay")
SYSCTLS = (
    ("net.ipv4.ip_forward", "1"),
    ("net.bridge.bridge-nf-call-iptables", "1"),
    ("net.ipv4.conf.all.rp_filter", "2"),
    ("net.ipv4.conf.default.rp_filter", "2"),
)


@dataclass(frozen=True)
class File:
    path: str
    content: str
    mode: int = 0o644


@dataclass(frozen=True)
class Inputs:
    """Everything a run depends on. controlplanes: ((name, address), ...) of every
    replica, this one included when role is controlplane. address: this machine's
    advertise address (Raft, gRPC, the Node's InternalIP: host-gw next hop and VXLAN
    endpoint). python: the interpreter the units run (a venv with skiff installed).
    source_dir: set PYTHONPATH in the units to a checkout (running from source)."""
    role: str
    name: str
    address: str
    hostname: str
    controlplanes: tuple
    raft_password: str = ""
    join_token: str = ""
    # TLS (issue 10). Control plane: cluster = the shared secrets (cluster.Material; None:
    # plaintext, no encryption, no ServiceAccount key), serving_cert/serving_key its own pair.
    # Agent: join_token (SKIFF1-...) turns TLS on: it joins through the replicas' join ports.
    cluster: object = None
    serving_cert: bytes = b""
    serving_key: bytes = b""
    join_port: int = 7300
    python: str = "/opt/skiff/venv/bin/python"
    source_dir: str = ""
    code_version: str = ""
    api_port: int = 7100
    raft_port: int = 7200
    agent_port: int = 10250
    network_backend: str = "host-gw"
    cluster_cidr: str = "10.244.0.0/16"
    load_balancer_pool: str = ""
    docker_host: str = "unix:///var/run/docker.sock"
    dns_upstream: str = ""
    labels: dict = field(default_factory=dict)

    def api_addresses(self) -> list[str]:
        return [f"{addr}:{self.api_port}" for _, addr in self.controlplanes]

    def join_addresses(self) -> list[str]:
        return [f"{addr}:{self.join_port}" for _, addr in self.controlplanes]


class InputError(ValueError):
    pass


def validate(inp: Inputs) -> None:
    """Bad input: a clear error naming the option, before anything is written."""
    if inp.role not in ROLES:
        raise InputError(f"--role: expected one of {', '.join(ROLES)}, got {inp.role!r}")
    if not inp.name or not all(c.isalnum() or c in "-." for c in inp.name) or inp.name != inp.name.lower():
        raise InputError(f"--name: {inp.name!r} is not a lowercase DNS name")
    for what, addr in [("--address", inp.address)] + [(f"--controlplanes {n}", a) for n, a in inp.controlplanes]:
        try:
            ip = ipaddress.IPv4Address(addr)
        except ValueError:
            raise InputError(f"{what}: {addr!r} is not an IPv4 address") from None
        if ip.is_unspecified:
            raise InputError(f"{what}: 0.0.0.0 cannot be advertised; give the machine's own address")
    if not inp.controlplanes:
        raise InputError("--controlplanes: at least one NAME=ADDRESS is required")
    names = [n for n, _ in inp.controlplanes]
    if len(set(names)) != len(names):
        raise InputError(f"--controlplanes: duplicate name in {', '.join(names)}")
    if inp.role == "controlplane":
        mine = dict(inp.controlplanes).get(inp.name)
        if mine is None:
            raise InputError(f"--controlplanes: this replica ({inp.name}) is not in the list")
        if mine != inp.address:
            raise InputError(f"--controlplanes: {inp.name}={mine} differs from --address {inp.address}")
        if len(inp.raft_password) < 16:
            raise InputError("the Raft password must be at least 16 characters")
        if inp.cluster is not None and not (inp.serving_cert and inp.serving_key):
            raise InputError("TLS: this replica's certificate and key are missing")
    if inp.role == "agent" and inp.join_token:
        from skiff.pki import tokens
        try:
            tokens.parse_token(inp.join_token)
        except tokens.TokenError as exc:
            raise InputError(f"--join-token: {exc}") from None
    if inp.network_backend not in ("host-gw", "vxlan"):
        raise InputError(f"--network: expected host-gw or vxlan, got {inp.network_backend!r}")
    if not inp.python.startswith("/"):
        raise InputError(f"--python: {inp.python!r} must be an absolute path (systemd runs it)")


DOCKER_CONFIG = "/etc/docker/daemon.json"
DOCKER_UNIT = "docker.service"
# dockerd's flags in the lab (skiff/lab/node.py), as daemon.json keys.
DOCKER_SETTINGS = {"bridge": "none", "iptables": False, "ip-masq": False, "ip-forward": False}


def render(inp: Inputs, current_hosts: tuple | None, current_docker: tuple | None = None) -> list[File]:
    """Every file for inp. current_hosts / current_docker: /etc/hosts and
    /etc/docker/daemon.json as they are, (content, mode) or None (absent); their modes
    and, in daemon.json, the keys skiff does not set are kept."""
    validate(inp)
    files = [File("/etc/modules-load.d/skiff.conf", modules_load()),
             File("/etc/sysctl.d/90-skiff.conf", sysctl_conf())]
    if inp.role == "controlplane":
        files += [
            File(f"{ETC}/raft-password", inp.raft_password + "\n", 0o600),
            File(f"{ETC}/controlplane.yaml", _yaml(controlplane_doc(inp))),
            File(f"{ETC}/controlplane.env", env_file(inp, {}), 0o600),
            File(f"{ETC}/admin.yaml", admin_config(inp), 0o600),
            File(f"{UNIT_DIR}/{CONTROLPLANE_UNIT}", controlplane_unit(inp)),
        ]
        c = inp.cluster
        if c is not None:
            files += [
                File(f"{PKI}/ca.crt", c.ca_crt.decode()),
                File(f"{PKI}/ca.key", c.ca_key.decode(), 0o600),
                File(f"{PKI}/{inp.name}.crt", inp.serving_cert.decode()),
                File(f"{PKI}/{inp.name}.key", inp.serving_key.decode(), 0o600),
                File(f"{ETC}/encryption-config.yaml", c.encryption_config, 0o600),
                File(f"{ETC}/sa.key", c.sa_key.decode(), 0o600),
            ]
    else:
        files += [
            File(f"{ETC}/agent.yaml", _yaml(agent_doc(inp)), 0o600 if inp.join_token else 0o644),
            File(f"{ETC}/agent.env", env_file(inp, {}), 0o600),
            File(f"{UNIT_DIR}/{AGENT_UNIT}", agent_unit(inp)),
            docker_config(current_docker),
        ]
    text, mode = current_hosts or ("", 0o644)
    files.append(File("/etc/hosts", fix_hosts(text, inp.hostname, inp.address), mode))
    return files


def services_of(inp: Inputs, docker: bool = True) -> dict[str, list[str]]:
    """unit -> the files whose change means the service must restart. docker: whether
    docker.service is ours to restart (systemd machines; the unit runner has no docker)."""
    if inp.role == "controlplane":
        # Not the serving certificate: the replica re-reads it at each handshake (renewal).
        return {CONTROLPLANE_UNIT: [f"{UNIT_DIR}/{CONTROLPLANE_UNIT}", f"{ETC}/controlplane.yaml",
                                    f"{ETC}/raft-password", f"{ETC}/controlplane.env",
                                    f"{PKI}/ca.crt", f"{PKI}/ca.key", f"{ETC}/encryption-config.yaml",
                                    f"{ETC}/sa.key"]}
    out = {DOCKER_UNIT: [DOCKER_CONFIG]} if docker else {}
    out[AGENT_UNIT] = [f"{UNIT_DIR}/{AGENT_UNIT}", f"{ETC}/agent.yaml", f"{ETC}/agent.env"]
    return out


def docker_config(current: tuple | None) -> File:
    """daemon.json with DOCKER_SETTINGS merged into what is there (unparseable: replaced)."""
    text, mode = current or ("", 0o644)
    try:
        doc = json.loads(text) if text.strip() else {}
    except ValueError:
        doc = {}
    if not isinstance(doc, dict):
        doc = {}
    if all(doc.get(k) == v for k, v in DOCKER_SETTINGS.items()):
        return File(DOCKER_CONFIG, text, mode)   # already right: byte for byte as it is
    doc.update(DOCKER_SETTINGS)
    return File(DOCKER_CONFIG, json.dumps(doc, indent=2, sort_keys=True) + "\n", mode)


def _yaml(doc) -> str:
    return "# Written by skiff's installer (deploy/install.sh); a rerun overwrites changes.\n" + \
        yaml.safe_dump(doc, sort_keys=False)


def controlplane_doc(inp: Inputs) -> dict:
    """The replica's config (controlplane/config.py). API and Raft bind the advertise
    address only: the Raft port (password-protected) stays on the private network."""
    # peers' joinAddress: the in-cluster API port the Service default/kubernetes points at.
    peers = [{"name": n, "apiAddress": f"{a}:{inp.api_port}", "raftAddress": f"{a}:{inp.raft_port}",
              **({"joinAddress": f"{a}:{inp.join_port}"} if inp.cluster is not None else {})}
             for n, a in inp.controlplanes if n != inp.name]
    doc = {"name": inp.name, "dataDir": f"{STATE}/controlplane",
           "apiAddress": f"{inp.address}:{inp.api_port}",
           "raftAddress": f"{inp.address}:{inp.raft_port}",
           "raftPasswordFile": f"{ETC}/raft-password", "peers": peers,
           "network": {"clusterCIDR": inp.cluster_cidr, "backend": inp.network_backend}}
    if inp.load_balancer_pool:
        doc["services"] = {"loadBalancerPool": inp.load_balancer_pool}
    if inp.cluster is not None:
        doc["encryptionConfigFile"] = f"{ETC}/encryption-config.yaml"
        doc["serviceAccounts"] = {"keyFile": f"{ETC}/sa.key"}
        # joinAddress: Join (bootstrap tokens) and bearer tokens, no client certificate.
        doc["tls"] = {"caFile": f"{PKI}/ca.crt", "certFile": f"{PKI}/{inp.name}.crt",
                      "keyFile": f"{PKI}/{inp.name}.key", "caKeyFile": f"{PKI}/ca.key",
                      "joinAddress": f"{inp.address}:{inp.join_port}"}
    return doc


ADMIN_CONTEXT = "admin@skiff"


def admin_config(inp: Inputs) -> str:
    """The CLI config (skiff/clientconfig.py) of the cluster's administrator: every replica
    renders the same text, so the copy in the join directory is compared, not rewritten."""
    from skiff import clientconfig
    c = inp.cluster
    if c is None:
        return _yaml({"servers": inp.api_addresses()})
    ctx = clientconfig.context_doc(ADMIN_CONTEXT, inp.api_addresses(), user="skiff:admin",
                                   ca=c.ca_crt, cert=c.admin_crt, key=c.admin_key)
    return _yaml({"currentContext": ADMIN_CONTEXT, "contexts": [ctx]})


def agent_doc(inp: Inputs) -> dict:
    """The agent's config (nodeagent/config.py): InternalIP = the advertise address."""
    doc = {"nodeName": inp.name, "servers": inp.api_addresses(), "address": inp.address,
           "listen": f"{inp.address}:{inp.agent_port}", "dockerHost": inp.docker_host,
           "dataDir": f"{STATE}/agent", "podNetwork": True}
    if inp.labels:
        doc["labels"] = dict(inp.labels)
    if inp.dns_upstream:
        doc["dnsUpstream"] = inp.dns_upstream
    if inp.join_token:
        # The agent joins once (no certificate yet): pins the CA by the token's digest, sends
        # a CSR, writes these three files (nodeagent/join.py); then renews through the API.
        doc["tls"] = {"caFile": f"{PKI}/ca.crt", "certFile": f"{PKI}/{inp.name}.crt",
                      "keyFile": f"{PKI}/{inp.name}.key", "joinToken": inp.join_token,
                      "joinServers": inp.join_addresses()}
    return doc


def env_file(inp: Inputs, extra: dict) -> str:
    """KEY=VALUE lines for EnvironmentFile= (systemd.exec(5)): secrets stay out of the
    unit (world-readable) and out of `systemctl show`."""
    env = {"PYTHONUNBUFFERED": "1"}
    if inp.source_dir:
        env["PYTHONPATH"] = inp.source_dir
    if inp.code_version:
        # Not read by skiff: a new digest of the installed code changes this file, which
        # restarts the daemon onto the new code (an upgrade), and only then.
        env["SKIFF_CODE_VERSION"] = inp.code_version
    env.update(extra)
    lines = ["# Written by skiff's installer; mode 0600 (may hold secrets)."]
    lines += [f"{k}={shlex.quote(v) if v else ''}" for k, v in env.items()]
    return "\n".join(lines) + "\n"


def _unit(description: str, after: str, exec_start: str, extra_service: list[str],
          wants: str = "") -> str:
    lines = ["# Written by skiff's installer (deploy/install.sh); a rerun overwrites changes.",
             "[Unit]", f"Description={description}",
             "Wants=network-online.target" + (f" {wants}" if wants else ""),
             f"After=network-online.target {after}".rstrip(),
             "StartLimitIntervalSec=0", "",
             "[Service]", "Type=exec"]
    lines += extra_service
    lines += [f"ExecStart={exec_start}", "Restart=always", "RestartSec=5s",
              "LimitNOFILE=1048576", "TasksMax=infinity", "TimeoutStartSec=0", "",
              "[Install]", "WantedBy=multi-user.target", ""]
    return "\n".join(lines)


def controlplane_unit(inp: Inputs) -> str:
    return _unit("skiff control-plane replica (API server + Raft store)", "",
                 f"{inp.python} -m controlplane.main --config {ETC}/controlplane.yaml",
                 [f"EnvironmentFile=-{ETC}/controlplane.env", f"WorkingDirectory={STATE}/controlplane"])


def agent_unit(inp: Inputs) -> str:
    return _unit("skiff node agent", "docker.service",
                 f"{inp.python} -m nodeagent.main --config {ETC}/agent.yaml",
                 [f"EnvironmentFile=-{ETC}/agent.env", f"WorkingDirectory={STATE}/agent",
                  # Containers are dockerd's children, not ours; killing only the agent's
                  # process keeps pods running across an agent restart or upgrade (k3s, docker).
                  "KillMode=process", "Delegate=yes"],
                 wants="docker.service")


def modules_load() -> str:
    return "# skiff's pod network (written by skiff's installer)\n" + "".join(m + "\n" for m in MODULES)


def sysctl_conf() -> str:
    return "# skiff's pod network (written by skiff's installer)\n" + \
        "".join(f"{k} = {v}\n" for k, v in SYSCTLS)


def fix_hosts(text: str, hostname: str, address: str) -> str:
    """/etc/hosts with the hostname on the advertise address instead of 127.0.1.1.

    Debian's installer and Vagrant write `127.0.1.1 <hostname> ...`: the machine's own
    name then resolves to loopback, so anything that advertises "my hostname" hands out
    an address nobody else can reach (flannel's and kubeadm's Vagrant notes). The
    hostname is removed from every loopback line (a 127.0.1.1 line left empty goes) and
    one `<address> <hostname>` line is kept; everything else stays as it is."""
    out, have = [], False
    short = hostname.split(".")[0]
    names = {hostname, short}
    for line in text.splitlines():
        body = line.split("#", 1)[0].split()
        if len(body) >= 2 and (body[0].startswith("127.") or body[0] == address) and names & set(body[1:]):
            if body[0] == address and not have:
                out.append(line)
                have = True
                continue
            rest = [n for n in body[1:] if n not in names]
            if rest:
                out.append("\t".join([body[0]] + rest))
            continue
        out.append(line)
    if not have:
        out.append(f"{address}\t" + " ".join(dict.fromkeys([hostname, short])))
    return "\n".join(out) + "\n"
