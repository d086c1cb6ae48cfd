"""`skiff lab`: a whole cluster on this host, recorded in one lab directory.

Two modes:
- `--nodes 0` (loopback): the control-plane replicas as processes on 127.0.0.1.
- `--nodes N` (N >= 1): the multi-node lab. A lab network namespace holds the
  "physical" bridge; the host reaches it through a veth (like a Vagrant host-only
  network); every control-plane replica and every node is a network namespace
  cabled to that bridge; each node runs its own Docker engine and a skiff agent.
  Layout and names: skiff/lab/plan.py.

lab.json in the lab directory records what the lab makes BEFORE it is made (kernel
objects) or as soon as it exists (pids), so `skiff lab down` removes everything even
after the tooling itself crashed half-way through `up`, and touches nothing else.
The layout itself is recomputed from the recorded inputs (prefix, subnet, counts).
"""

import json
import os
import shutil
import signal
import time

import yaml

from skiff.lab import mounts, procs
from skiff.lab.base import (DEFAULT_LAB_DIR, STATE_FILE, LabError, new_state, say, user_config_path,
                            write_client_config)
from skiff.lab.build import agent_network, up_nodes
from skiff.lab.controlplane import ControlPlane, services_for_subnet
from skiff.lab.plan import DEFAULT_PREFIX, DEFAULT_SUBNET, Plan, PlanError, make_plan
from skiff.lab.status import status_text


class Lab:
    """A lab directory and its record, lab.json: what `up` made and started. Building the
    multi-node lab is skiff/lab/build.py's job, the status report skiff/lab/status.py's."""

    def __init__(self, lab_dir: str = DEFAULT_LAB_DIR):
        self.lab_dir = os.path.abspath(lab_dir)
        self.state_path = os.path.join(self.lab_dir, STATE_FILE)

    # ------------------------------------------------------------ state

    def load(self) -> dict | None:
        try:
            with open(self.state_path, encoding="utf-8") as f:
                return json.load(f)
        except FileNotFoundError:
            return None

    def save(self, state: dict) -> None:
        tmp = self.state_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(state, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.state_path)

    @staticmethod
    def is_nodes_mode(state: dict) -> bool:
        return state.get("mode") == "nodes"

    def plan(self, state: dict | None = None) -> Plan | None:
        state = state or self.load()
        if not state or not self.is_nodes_mode(state):
            return None
        p = state["plan"]
        return make_plan(prefix=p["prefix"], subnet=p["subnet"], nodes=p["nodes"],
                         replicas=p["replicas"], lab_dir=self.lab_dir)

    def controlplane(self, state: dict | None = None) -> ControlPlane | None:
        state = state or self.load()
        if not state:
            return None
        cp_state = state["controlplane"]
        plan = self.plan(state)
        cp = ControlPlane(self.lab_dir, replicas=cp_state["replicas"], host=cp_state["host"],
                          api_base_port=cp_state["apiBasePort"],
                          raft_base_port=cp_state["raftBasePort"],
                          addresses=[m.address for m in plan.replicas] if plan else None,
                          netns=[m.netns for m in plan.replicas] if plan else None,
                          network=dict(state["network"]) if state.get("network") else None,
                          services=services_for_subnet(plan.subnet) if plan else None)
        cp.pids = {k: int(v) for k, v in cp_state.get("pids", {}).items()}
        return cp

    def record_pids(self, cp: ControlPlane) -> None:
        state = self.load()
        state["controlplane"]["pids"] = dict(cp.pids)
        self.save(state)

    def nodes(self, state: dict) -> dict:
        """{name: LabNode} of a nodes-mode lab; pids saved into `state` (and lab.json)."""
        from skiff.lab.node import LabNode
        plan = self.plan(state)
        out = {}
        for m in plan.nodes if plan else ():
            rec = state.setdefault("nodes", {}).setdefault(m.name, {})
            out[m.name] = LabNode(m, plan.node_paths(m.name), rec, save=lambda: self.save(state))
        return out

    def node(self, name: str):
        state = self._need_nodes_lab()
        nodes = self.nodes(state)
        if name not in nodes:
            raise LabError(f"no node {name!r} (have {', '.join(nodes)})")
        return state, self.plan(state), nodes[name]

    def _need_nodes_lab(self) -> dict:
        state = self.load()
        if state is None:
            raise LabError(f"no lab in {self.lab_dir} (skiff lab up first)")
        if not self.is_nodes_mode(state):
            raise LabError("this lab has no nodes (it was started with --nodes 0)")
        return state

    def _alive(self, state: dict) -> list[str]:
        """What of this lab still runs (replicas, engines, agents, a running `up`)."""
        out = []
        cp = self.controlplane(state)
        out += [n for n in cp.names if cp.is_running(n)]
        if self.is_nodes_mode(state):
            for name, node in self.nodes(state).items():
                if node.engine_alive():
                    out.append(f"{name} engine")
                if node.agent_alive():
                    out.append(f"{name} agent")
            if self.dns_alive(state):
                out.append("dns")
        return out

    @staticmethod
    def dns_pid(state: dict) -> int:
        """The lab resolver's pid as recorded in lab.json (0: none)."""
        return int((state.get("dns") or {}).get("pid") or 0)

    def dns_alive(self, state: dict) -> bool:
        from skiff.lab.upstream_dns import LabDns
        plan = self.plan(state)
        return bool(plan) and LabDns(plan).alive(self.dns_pid(state))

    def _tooling_running(self, state: dict) -> int:
        t = state.get("tooling") or {}
        pid = int(t.get("pid") or 0)
        if pid != os.getpid() and procs.same_process(pid, int(t.get("start") or 0)):
            return pid
        return 0

    # ------------------------------------------------------------ up

    def up(self, *, replicas: int = 3, nodes: int = 0, api_base_port: int = 7100,
           raft_base_port: int = 7200, host: str = "127.0.0.1", timeout_s: float = 60.0,
           prefix: str = DEFAULT_PREFIX, subnet: str = DEFAULT_SUBNET,
           agents: bool | None = None, network: str = "host-gw",
           node_lease_s: int | None = None) -> ControlPlane:
        """agents: None = start them if skiff-agent exists, False = never, True = required.
        node_lease_s: the nodes' Lease duration and the node grace period (build.up_nodes)."""
        if nodes < 0:
            raise LabError("--nodes must be >= 0")
        plan = None
        if nodes:
            try:
                plan = make_plan(prefix=prefix, subnet=subnet, nodes=nodes, replicas=replicas,
                                 lab_dir=self.lab_dir)
            except PlanError as exc:
                raise LabError(str(exc)) from None
            self._preflight_tools()
        self._clear_remains()
        if plan is not None:
            self._preflight_names(plan)
        if os.path.isdir(self.lab_dir) and os.listdir(self.lab_dir):
            raise LabError(f"{self.lab_dir} is not empty and holds no lab: refusing to use it")
        os.makedirs(self.lab_dir, exist_ok=True)
        try:
            if plan is None:
                return self._up_loopback(replicas, api_base_port, raft_base_port, host, timeout_s)
            return up_nodes(self, plan, api_base_port, raft_base_port, timeout_s, agents, network,
                            node_lease_s)
        except LabError as exc:
            # Left as it is for a look at the logs; everything made is in lab.json.
            raise LabError(f"{exc}\nthe lab is half-built: logs in {os.path.join(self.lab_dir, 'logs')}; "
                           f"`skiff lab down --lab-dir {self.lab_dir}` removes it") from None

    def _clear_remains(self) -> None:
        existing = self.load()
        if existing is None:
            return
        pid = self._tooling_running(existing)
        if pid and not existing.get("complete", True):
            raise LabError(f"another `skiff lab up` (pid {pid}) is still building the lab in "
                           f"{self.lab_dir}")
        alive = self._alive(existing)
        if alive and existing.get("complete", True):
            raise LabError(f"a lab is already up in {self.lab_dir} (skiff lab down first)")
        say(f"cleaning up the remains of an earlier lab in {self.lab_dir}"
            + (f" (still running: {', '.join(alive)})" if alive else ""))
        self.down(quiet=True)

    def _preflight_tools(self) -> None:
        if os.geteuid() != 0:
            raise LabError("a lab with nodes needs root (network namespaces, Docker engines)")
        missing = [t for t in ("nsenter", "dockerd", "containerd", "sysctl") if not shutil.which(t)]
        if missing:
            raise LabError(f"missing {', '.join(missing)} (apt-get install docker.io util-linux procps)")

    def _preflight_names(self, plan: Plan) -> None:
        from skiff.lab import netlab
        from skiff.lab.plan import overlaps
        taken = [n for n in plan.netns_names if netlab.netns_exists(n)]
        if netlab.link_exists(plan.host_link):
            taken.append(f"link {plan.host_link}")
        if os.path.exists(plan.run_dir):
            taken.append(plan.run_dir)
        if taken:
            raise LabError(f"{', '.join(taken)} already exist(s) and belong to no lab in "
                           f"{self.lab_dir}: another lab with prefix {plan.prefix!r}? "
                           f"(use --prefix, or `skiff lab down --lab-dir` of that lab)")
        clash = overlaps(plan.subnet, netlab.root_networks())
        if clash:
            raise LabError(f"subnet {plan.subnet} overlaps {', '.join(clash)} on this machine; "
                           f"choose another with --subnet")

    def _up_loopback(self, replicas, api_base_port, raft_base_port, host, timeout_s):
        started = time.monotonic()
        cp = ControlPlane(self.lab_dir, replicas=replicas, host=host,
                          api_base_port=api_base_port, raft_base_port=raft_base_port)
        state = new_state("loopback", cp, replicas, host)
        self.save(state)
        say(f"lab directory {self.lab_dir}")
        cp.write_configs()
        for name in cp.names:
            cp.start(name)
            self.record_pids(cp)
            say(f"started control-plane replica {name} pid={cp.pids[name]} "
                f"api={cp.api_address(name)} raft={cp.raft_address(name)}")
        say("waiting for a Raft leader and the built-in namespaces ...")
        try:
            cp.wait_ready(timeout_s)
        except TimeoutError as exc:
            raise LabError(f"{exc}; logs in {os.path.join(self.lab_dir, 'logs')}") from exc
        leader = cp.leader()
        write_client_config(self.lab_dir, cp.endpoints, cp)
        self._mark_complete()
        elapsed = time.monotonic() - started
        say("")
        say(f"skiff lab is up ({elapsed:.1f}s): {replicas} control-plane replicas, 0 nodes")
        say(f"  endpoints : {','.join(cp.endpoints)}")
        say(f"  leader    : {leader}")
        say(f"  config    : {user_config_path()}  (the CLI uses it; or SKIFF_SERVER=...)")
        say(f"  logs      : {os.path.join(self.lab_dir, 'logs')}")
        say("  try       : skiff cluster status; skiff get ns; skiff chaos kill-controlplane leader")
        return cp

    def _mark_complete(self) -> None:
        state = self.load()
        state["complete"] = True
        self.save(state)

    # ------------------------------------------------------------ down

    def down(self, quiet: bool = False) -> None:
        report = (lambda _m: None) if quiet else say
        state = self.load()
        if state is None:
            if os.path.isdir(self.lab_dir) and not os.listdir(self.lab_dir):
                os.rmdir(self.lab_dir)
            report(f"no lab in {self.lab_dir}")
            return
        plan = self.plan(state)
        nodes = self.nodes(state) if plan else {}
        # Agents get SIGTERM together, then a short grace, then kill -9 of what is left.
        for node in nodes.values():
            procs.kill_all(node.agent_pids(), signal.SIGTERM)
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and any(n.agent_pids() for n in nodes.values()):
            time.sleep(0.05)
        for node in nodes.values():
            node.kill_agent()
        cp = self.controlplane(state)
        try:
            cp.stop_all()
            report(f"stopped control-plane replicas {', '.join(cp.names)}")
            for name, node in nodes.items():
                killed = node.power_cut()
                report(f"stopped {name}: agent, engine and containers ({len(killed)} processes)")
        finally:
            if plan:
                from skiff.lab.upstream_dns import LabDns
                LabDns(plan).stop(self.dns_pid(state))
        if plan:
            self._remove_made(plan, state, report)
        cfg = user_config_path()
        try:
            with open(cfg, encoding="utf-8") as f:
                if (yaml.safe_load(f) or {}).get("lab") == self.lab_dir:
                    os.remove(cfg)
        except (OSError, AttributeError, yaml.YAMLError):
            pass
        left = mounts.unmount_under(self.lab_dir)
        left += mounts.rmtree_one_fs(self.lab_dir)
        if left:
            raise LabError(f"could not remove (still mounted?): {', '.join(left)}")
        report(f"removed {self.lab_dir}")

    def _remove_made(self, plan: Plan, state: dict, report) -> None:
        """Undo what was recorded, newest first; each step tolerates a missing object."""
        from skiff.lab import netlab
        for d in (plan.run_dir, self.lab_dir):
            left = mounts.unmount_under(d)
            if left:
                raise LabError(f"mounts left under {d}: {', '.join(left)}")
        errors = []
        made = state.get("made", [])
        # The host veth first: veth peers of a deleted namespace vanish asynchronously.
        order = [x for x in made if x[0] == "link"] + [x for x in reversed(made) if x[0] != "link"]
        for kind, name in order:
            try:
                if kind == "link":
                    netlab.remove_link(name)
                elif kind == "netns":
                    netlab.remove_netns(name)
                elif kind == "dir":
                    left = mounts.rmtree_one_fs(name)
                    if left:
                        errors.append(f"{name}: still mounted: {', '.join(left)}")
            except OSError as exc:
                errors.append(f"{kind} {name}: {exc}")
        if errors:
            raise LabError("; ".join(errors))
        report(f"removed namespaces, links and {plan.run_dir} ({len(made)} objects)")

    # ------------------------------------------------------------ status

    def status(self) -> str:
        return status_text(self)

    # ------------------------------------------------------------ chaos on nodes

    def kill_node(self, name: str) -> set[int]:
        """A power cut: kill -9 the node's agent, engine, containerd, shims and containers,
        then pull its cable (link down on the lab bridge)."""
        from skiff.lab import netlab
        state, plan, node = self.node(name)
        killed = node.power_cut()
        netlab.set_port(plan, node.m, up=False)
        return killed

    def start_node(self, name: str, timeout_s: float = 60.0) -> dict:
        """Cable in, engine up (its old containers are dead: the agent cleans them up),
        then the agent if the lab runs agents."""
        from skiff.lab import netlab
        from skiff.lab.node import NodeError
        state, plan, node = self.node(name)
        netlab.set_port(plan, node.m, up=True)
        out = {"enginePid": node.start_engine()}
        try:
            out["engineVersion"] = node.wait_engine(timeout_s)
        except NodeError as exc:
            raise LabError(str(exc)) from None
        if state.get("agents"):
            try:
                out["agentPid"] = node.start_agent()
                node.wait_agent(timeout_s)
            except NodeError as exc:
                raise LabError(str(exc)) from None
        return out

    def kill_agent(self, name: str) -> set[int]:
        _state, _plan, node = self.node(name)
        return node.kill_agent()

    def start_agent(self, name: str) -> int:
        from skiff.lab.node import NodeError
        state, _plan, node = self.node(name)
        if not node.engine_alive():
            raise LabError(f"{name} is powered off (skiff chaos start-node {name})")
        try:
            if not os.path.exists(node.paths.agent_config):
                cp = self.controlplane(state)
                node.write_agent_config(cp.endpoints, {**(agent_network(self.plan(state)) if state.get("network")
                                                          else {}), **cp.join_tls(name)})
            pid = node.start_agent()
            node.wait_agent()
        except NodeError as exc:
            raise LabError(str(exc)) from None
        state["agents"] = True
        self.save(state)
        return pid
