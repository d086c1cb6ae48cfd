"""The multi-node lab's layout: names, addresses and paths, as a pure function of a
few recorded inputs (prefix, subnet, counts, lab dir).

lab.json records those inputs, so every later command (down, status, chaos)
recomputes exactly the same layout. Invariants:
- every kernel object and directory the lab makes carries the prefix, which
  starts with "skiff" (network namespaces `<prefix>-lab`, `<prefix>-node1`,
  `<prefix>-cp1`; the root-namespace veth `<prefix>-host`; `/run/<prefix>-lab`);
- interface names fit IFNAMSIZ (15 characters), so the prefix is at most 10;
- addresses inside the subnet: .1 the host, .11+ control-plane replicas,
  .21+ nodes, the last usable address the gateway (on the lab bridge).
"""

import ipaddress
import os
import re
from dataclasses import dataclass

DEFAULT_PREFIX = "skiff"
DEFAULT_SUBNET = "10.200.0.0/24"
CLUSTER_CIDR = "10.244.0.0/16"   # the lab's pod network (replica config network.clusterCIDR)
BRIDGE = "skiff0"            # inside the lab namespace
HOST_PEER = "host"           # the lab-namespace end of the host veth
MEMBER_IFNAME = "eth0"       # inside a node / replica namespace
NETNS_DIR = "/var/run/netns"
CP_OFFSET = 11
NODE_OFFSET = 21
_PREFIX_RE = re.compile(r"^skiff[a-z0-9-]{0,5}$")


class PlanError(ValueError):
    pass


def lab_mac(address: str) -> str:
    """A MAC derived from the address (stable across restarts: no stale ARP on peers)."""
    return "0a:5a:" + ":".join(f"{int(o):02x}" for o in address.split("."))


@dataclass(frozen=True)
class Member:
    """A namespace on the lab bridge (a node or a control-plane replica: a 'machine')."""
    name: str        # node1, cp1
    netns: str       # skiff-node1
    address: str     # 10.200.0.21
    mac: str

    @property
    def netns_path(self) -> str:
        return os.path.join(NETNS_DIR, self.netns)

    @property
    def port(self) -> str:
        """The bridge port in the lab namespace (the machine's 'cable')."""
        return self.name


@dataclass(frozen=True)
class NodePaths:
    """Where one node's engine and agent keep their files.

    exec_root is kept short: containerd puts sockets under it (sun_path is 108 bytes).
    """
    exec_root: str       # /run/skiff-lab/node1
    socket: str          # /run/skiff-lab/node1/docker.sock
    pidfile: str         # /run/skiff-lab/node1/docker.pid
    node_dir: str        # <lab>/node1
    data_root: str       # <lab>/node1/docker
    daemon_config: str   # <lab>/node1/daemon.json (so the host's /etc/docker/daemon.json never applies)
    agent_config: str    # <lab>/node1/agent.yaml
    agent_data: str      # <lab>/node1/agent
    engine_log: str      # <lab>/logs/node1-docker.log
    agent_log: str       # <lab>/logs/node1-agent.log

    @property
    def docker_host(self) -> str:
        return "unix://" + self.socket


@dataclass(frozen=True)
class Plan:
    prefix: str
    subnet: str
    lab_dir: str
    run_dir: str
    lab_netns: str
    host_link: str
    host_address: str
    gateway: str
    prefixlen: int
    replicas: tuple
    nodes: tuple

    @property
    def members(self) -> tuple:
        return self.replicas + self.nodes

    @property
    def netns_names(self) -> list[str]:
        return [self.lab_netns] + [m.netns for m in self.members]

    def node(self, name: str) -> Member:
        for m in self.nodes:
            if m.name == name:
                return m
        raise KeyError(f"no node {name!r} (have {', '.join(m.name for m in self.nodes) or 'none'})")

    def replica(self, name: str) -> Member:
        for m in self.replicas:
            if m.name == name:
                return m
        raise KeyError(f"no control-plane replica {name!r}")

    def node_paths(self, name: str) -> NodePaths:
        exec_root = os.path.join(self.run_dir, name)
        node_dir = os.path.join(self.lab_dir, name)
        logs = os.path.join(self.lab_dir, "logs")
        return NodePaths(
            exec_root=exec_root, socket=os.path.join(exec_root, "docker.sock"),
            pidfile=os.path.join(exec_root, "docker.pid"), node_dir=node_dir,
            data_root=os.path.join(node_dir, "docker"),
            daemon_config=os.path.join(node_dir, "daemon.json"),
            agent_config=os.path.join(node_dir, "agent.yaml"),
            agent_data=os.path.join(node_dir, "agent"),
            engine_log=os.path.join(logs, f"{name}-docker.log"),
            agent_log=os.path.join(logs, f"{name}-agent.log"))


def make_plan(*, prefix: str = DEFAULT_PREFIX, subnet: str = DEFAULT_SUBNET, nodes: int,
              replicas: int, lab_dir: str) -> Plan:
    if not _PREFIX_RE.match(prefix):
        raise PlanError(f"prefix {prefix!r}: must start with 'skiff' and have at most 10 "
                        f"characters [a-z0-9-] (interface names are limited to 15)")
    try:
        net = ipaddress.ip_network(subnet, strict=True)
    except ValueError as exc:
        raise PlanError(f"subnet {subnet!r}: {exc}") from None
    if net.version != 4:
        raise PlanError(f"subnet {subnet}: IPv4 only")
    if nodes < 1:
        raise PlanError("a multi-node lab needs --nodes >= 1 (--nodes 0 runs the control plane on loopback)")
    if not 1 <= replicas <= NODE_OFFSET - CP_OFFSET:
        raise PlanError(f"replicas: 1..{NODE_OFFSET - CP_OFFSET}")
    usable = net.num_addresses - 2
    if NODE_OFFSET + nodes > usable:   # the last usable address is the gateway
        raise PlanError(f"subnet {subnet} is too small for {nodes} nodes "
                        f"(nodes start at .{NODE_OFFSET}; need a /24 or larger)")
    base = int(net.network_address)

    def addr(offset):
        return str(ipaddress.IPv4Address(base + offset))

    def member(name, offset):
        a = addr(offset)
        return Member(name=name, netns=f"{prefix}-{name}", address=a, mac=lab_mac(a))

    return Plan(
        prefix=prefix, subnet=str(net), lab_dir=os.path.abspath(lab_dir),
        run_dir=f"/run/{prefix}-lab", lab_netns=f"{prefix}-lab", host_link=f"{prefix}-host",
        host_address=addr(1), gateway=str(net.broadcast_address - 1), prefixlen=net.prefixlen,
        replicas=tuple(member(f"cp{i + 1}", CP_OFFSET + i) for i in range(replicas)),
        nodes=tuple(member(f"node{i + 1}", NODE_OFFSET + i) for i in range(nodes)))


def overlaps(subnet: str, in_use: list[str]) -> list[str]:
    """The networks of in_use (addresses with prefix, or routes) that overlap subnet."""
    net = ipaddress.ip_network(subnet)
    out = []
    for item in in_use:
        try:
            other = ipaddress.ip_network(item, strict=False)
        except ValueError:
            continue
        if other.version == net.version and other.prefixlen > 0 and net.overlaps(other):
            out.append(str(item))
    return out
