"""One lab node: a network namespace with its own Docker engine and a skiff agent.

The engine is started with `nsenter --net=<netns> dockerd ...` (not `ip netns exec`,
which remounts /sys and hides the cgroup mounts from dockerd: docs/networking.md).

Which processes belong to a node (what a power cut kills):
- the recorded engine and agent pids, if their command lines still name this
  node's paths (a recycled pid is never hit);
- every process whose command line names this node's exec-root, data-root or
  agent config: dockerd, its containerd, every containerd-shim (they daemonize
  away from the engine), the agent;
- every process in the cgroup of one of this node's containers (the container
  ids are the directory names under the engine's data-root and exec-root), so
  container processes whose shim is already gone are found too;
- all descendants of the above.
Paths match exactly (an argument equals the path or lies under it), so node1
never matches node10, and nothing outside this node's own directories matches.
"""

import importlib.util
import os
import re
import shutil
import signal
import socket
import sys
import time

import yaml

from skiff.lab import procs
from skiff.lab.plan import Member, NodePaths

AGENT_PORT = 10250   # the kubelet's port: logs, exec and image load are served there
_SHIM_TASKS = ("containerd", "daemon", "io.containerd.runtime.v2.task", "moby")
_TOOL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def spread_servers(node_name: str, servers) -> list[str]:
    """The control-plane endpoints in node `node_name`'s order of preference: rotated by the
    node's number (node1 dials the first replica first, node2 the second, ...), so the agents'
    watches and Lease renewals spread over the replicas as they would behind a load balancer.
    In the same order every agent dialled the first replica: at 20 nodes it served 80 watches
    and 16 Lease writes a second, 10 % of a core idle, against 3.7 % for a replica serving no
    agent (bench/README.md, idle_cost). A name without a trailing number keeps the order; the
    agent still fails over to the others in turn."""
    servers = list(servers)
    digits = re.search(r"(\d+)$", node_name)
    if not servers or digits is None:
        return servers
    k = (int(digits.group(1)) - 1) % len(servers)
    return servers[k:] + servers[:k]


class NodeError(RuntimeError):
    pass


def agent_command() -> list[str] | None:
    """How to run skiff-agent, or None while the agent does not exist (nodeagent/main.py)."""
    try:
        if importlib.util.find_spec("nodeagent.main") is None:
            return None
    except ImportError:
        return None
    script = os.path.join(os.path.dirname(sys.executable), "skiff-agent")
    if os.path.exists(script):
        return [script]
    return [sys.executable, "-m", "nodeagent.main"]


def process_env() -> dict:
    env = dict(os.environ)
    env["PATH"] = env.get("PATH", "") + ":" + _TOOL_PATH if env.get("PATH") else _TOOL_PATH
    # The agent imports skiff from wherever this process does (as the replicas do).
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    # The engine and the agent take everything from their flags / config file.
    for var in ("DOCKER_HOST", "SKIFF_SERVER", "SKIFF_CONFIG"):
        env.pop(var, None)
    return env


class LabNode:
    """A node's processes; pids live in `record` (the node's entry in lab.json) and are
    saved through `save()` as soon as they exist."""

    def __init__(self, member: Member, paths: NodePaths, record: dict, save=lambda: None):
        self.m = member
        self.paths = paths
        self.record = record
        self.save = save

    @property
    def name(self) -> str:
        return self.m.name

    # ------------------------------------------------------------ engine

    def engine_argv(self) -> list[str]:
        p = self.paths
        return ["nsenter", f"--net={self.m.netns_path}", shutil.which("dockerd") or "dockerd",
                "--config-file", p.daemon_config, "--data-root", p.data_root,
                "--exec-root", p.exec_root, "-H", p.docker_host, "--pidfile", p.pidfile,
                "--bridge=none", "--iptables=false", "--ip-masq=false", "--ip-forward=false"]

    def _ours(self, pid: int, *paths) -> bool:
        if not pid or procs.is_zombie_or_gone(pid):
            return False
        return any(procs.names_path(procs.argv(pid), path) for path in paths)

    def engine_pid(self) -> int:
        return int(self.record.get("enginePid") or 0)

    def engine_alive(self) -> bool:
        return self._ours(self.engine_pid(), self.paths.exec_root)

    def start_engine(self) -> int:
        if self.engine_alive():
            return self.engine_pid()
        p = self.paths
        for d in (p.exec_root, p.data_root, p.node_dir):
            os.makedirs(d, exist_ok=True)
        if not os.path.exists(p.daemon_config):
            with open(p.daemon_config, "w", encoding="utf-8") as f:
                f.write("{}\n")
        # Pid files of a killed engine: dockerd refuses to start if its pid now names
        # another process, and adopts a "containerd" whose pid was recycled.
        for stale in (p.pidfile, os.path.join(p.exec_root, "containerd", "containerd.pid")):
            try:
                with open(stale, encoding="utf-8") as f:
                    pid = int(f.read().strip() or 0)
            except (OSError, ValueError):
                continue
            if not self._ours(pid, p.exec_root):
                os.remove(stale)
        pid = procs.spawn(self.engine_argv(), p.engine_log, env=process_env(), cwd=p.node_dir)
        self.record["enginePid"] = pid
        self.record["engineStart"] = procs.start_time(pid)
        self.save()
        return pid

    def docker(self, timeout_s: float = 30.0):
        import docker
        return docker.DockerClient(base_url=self.paths.docker_host, timeout=timeout_s)

    def engine_answers(self) -> bool:
        if not os.path.exists(self.paths.socket):
            return False
        try:
            c = self.docker(timeout_s=2.0)
            try:
                return bool(c.ping())
            finally:
                c.close()
        except Exception:  # noqa: BLE001 - any failure means "not yet"
            return False

    def wait_engine(self, timeout_s: float = 60.0) -> str:
        """Until the engine answers on its socket; returns its version."""
        def version():
            if not self.engine_answers():
                return None
            c = self.docker()
            try:
                return c.version().get("Version", "?")
            finally:
                c.close()
        try:
            return procs.wait_answering(version, procs.running(self.engine_pid()), timeout_s)
        except procs.NotAnswering as exc:
            raise self._gave_up(exc, "dockerd", f"did not answer on {self.paths.socket}",
                                self.paths.engine_log, timeout_s) from None

    def load_archives(self, archives) -> list[str]:
        """docker load each archive (path) into this node's engine; returns the tags."""
        tags = []
        c = self.docker(timeout_s=120.0)
        try:
            for path in archives:
                with open(path, "rb") as f:
                    for image in c.images.load(f.read()):
                        tags += image.tags
        finally:
            c.close()
        return tags

    # ------------------------------------------------------------ agent

    def agent_pid(self) -> int:
        return int(self.record.get("agentPid") or 0)

    def agent_alive(self) -> bool:
        return self._ours(self.agent_pid(), self.paths.agent_config)

    def write_agent_config(self, servers: list[str], extra: dict | None = None) -> None:
        doc = {"nodeName": self.name, "servers": spread_servers(self.name, servers), "address": self.m.address,
               "listen": f"{self.m.address}:{AGENT_PORT}", "dockerHost": self.paths.docker_host,
               "dataDir": self.paths.agent_data}
        doc.update(extra or {})
        os.makedirs(self.paths.agent_data, exist_ok=True)
        with open(self.paths.agent_config, "w", encoding="utf-8") as f:
            yaml.safe_dump(doc, f, sort_keys=False)

    def start_agent(self) -> int:
        if self.agent_alive():
            return self.agent_pid()
        cmd = agent_command()
        if cmd is None:
            raise NodeError("skiff-agent is not installed (nodeagent/main.py does not exist yet)")
        argv = ["nsenter", f"--net={self.m.netns_path}", *cmd, "--config", self.paths.agent_config]
        pid = procs.spawn(argv, self.paths.agent_log, env=process_env(), cwd=self.paths.node_dir)
        self.record["agentPid"] = pid
        self.record["agentStart"] = procs.start_time(pid)
        self.save()
        return pid

    def wait_agent(self, timeout_s: float = 60.0) -> None:
        """Until the agent's own server (logs, exec, image load) accepts connections.

        Node Ready is not enough after a restart: the old heartbeat keeps the node Ready
        for a grace period while the new agent is still starting."""
        def listening():
            socket.create_connection((self.m.address, AGENT_PORT), timeout=1.0).close()
            return True
        try:
            procs.wait_answering(listening, procs.running(self.agent_pid()), timeout_s)
        except procs.NotAnswering as exc:
            raise self._gave_up(exc, "skiff-agent", f"did not listen on {self.m.address}:{AGENT_PORT}",
                                self.paths.agent_log, timeout_s) from None

    def _gave_up(self, exc, what: str, silent: str, log_path: str, timeout_s: float) -> "NodeError":
        if exc.exited:
            return NodeError(f"{self.name}: {what} exited; see {log_path}:\n{procs.tail(log_path)}")
        return NodeError(f"{self.name}: {what} {silent} within {timeout_s:.0f}s; see {log_path}")

    def agent_pids(self) -> set[int]:
        pids = set(procs.find_by_path_arg([self.paths.agent_config]))
        if self.agent_alive():
            pids.add(self.agent_pid())
        return pids

    def kill_agent(self, timeout_s: float = 10.0) -> set[int]:
        """kill -9 the agent and whatever it spawned; returns the pids killed."""
        killed: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while True:
            pids = {p for p in procs.descendants(self.agent_pids(), procs.parents())
                    if not procs.is_zombie_or_gone(p)}
            if not pids:
                return killed
            if time.monotonic() > deadline:
                raise NodeError(f"{self.name}: agent processes survive kill -9: {sorted(pids)}")
            procs.kill_all(pids)
            killed |= pids
            time.sleep(0.02)

    def stop_agent(self, timeout_s: float = 3.0) -> None:
        """SIGTERM, then kill -9 whatever is left after timeout_s."""
        procs.kill_all(self.agent_pids(), signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.agent_pids():
            time.sleep(0.05)
        self.kill_agent()

    # ------------------------------------------------------------ the whole node

    def container_ids(self) -> set[str]:
        ids = set()
        for d in (os.path.join(self.paths.data_root, "containers"),
                  os.path.join(self.paths.exec_root, *_SHIM_TASKS)):
            try:
                ids |= {e for e in os.listdir(d) if len(e) == 64}
            except OSError:
                pass
        return ids

    def processes(self) -> set[int]:
        """Every live process of this node (see the module docstring)."""
        p = self.paths
        roots = set(procs.find_by_path_arg([p.exec_root, p.data_root, p.agent_config]))
        for pid in (self.engine_pid(), self.agent_pid()):
            if self._ours(pid, p.exec_root, p.agent_config):
                roots.add(pid)
        roots |= set(procs.find_in_cgroups(self.container_ids()))
        everything = procs.descendants(roots, procs.parents())
        everything.discard(os.getpid())
        return {pid for pid in everything if not procs.is_zombie_or_gone(pid)}

    def power_cut(self, timeout_s: float = 15.0) -> set[int]:
        """kill -9 everything of this node at once (agent, dockerd, containerd, shims,
        containers), repeated until nothing is left; returns the pids killed."""
        killed: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while True:
            pids = self.processes()
            if not pids:
                return killed
            if time.monotonic() > deadline:
                raise NodeError(f"{self.name}: processes survive kill -9: {sorted(pids)}")
            procs.kill_all(pids)
            killed |= pids
            time.sleep(0.02)


def node_ready(node) -> bool:
    """The Node object's Ready condition is True."""
    for c in node.status.conditions:
        if c.type == "Ready":
            return c.status == "True"
    return False

