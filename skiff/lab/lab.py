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

import concurrent.futures
import json
import os
import shutil
import signal
import sys
import time

import yaml

from skiff.lab import mounts, procs
from skiff.lab.controlplane import ControlPlane, services_for_subnet
from skiff.lab.plan import CLUSTER_CIDR, DEFAULT_PREFIX, DEFAULT_SUBNET, BRIDGE, Plan, PlanError, make_plan

DEFAULT_LAB_DIR = os.environ.get("SKIFF_LAB_DIR", "/var/lib/skiff-lab")
STATE_FILE = "lab.json"


def agent_network(plan: Plan) -> dict:
    """Agent config of a nodes-mode lab: the agents own their node's namespace (they run
    the pod network there) and forward non-cluster DNS names to the lab's resolver."""
    from skiff.lab.upstream_dns import LabDns
    return {"podNetwork": True, "dnsUpstream": LabDns(plan).upstream}


def user_config_path() -> str:
    return os.environ.get("SKIFF_CONFIG") or os.path.expanduser("~/.skiff/config")


def _say(msg: str) -> None:
    print(msg, flush=True)


class LabError(RuntimeError):
    pass


class Lab:
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
            if self._dns_alive(state):
                out.append("dns")
        return out

    @staticmethod
    def _dns_pid(state: dict) -> int:
        """The lab resolver's pid as recorded in lab.json (0: none)."""
        return int((state.get("dns") or {}).get("pid") or 0)

    def _dns_alive(self, state: dict) -> bool:
        from skiff.lab.upstream_dns import LabDns
        plan = self.plan(state)
        return bool(plan) and LabDns(plan).alive(self._dns_pid(state))

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
           agents: bool | None = None, network: str = "host-gw") -> ControlPlane:
        """agents: None = start them if skiff-agent exists, False = never, True = required."""
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
            return self._up_nodes(plan, api_base_port, raft_base_port, timeout_s, agents, network)
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
        _say(f"cleaning up the remains of an earlier lab in {self.lab_dir}"
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

    def _new_state(self, mode: str, cp: ControlPlane, replicas: int, host: str) -> dict:
        me = os.getpid()
        return {"createdBy": "skiff lab up", "mode": mode, "complete": False,
                "tooling": {"pid": me, "start": procs.start_time(me)},
                "controlplane": {"replicas": replicas, "host": host,
                                 "apiBasePort": cp.api_base_port,
                                 "raftBasePort": cp.raft_base_port, "pids": {}}}

    def _up_loopback(self, replicas, api_base_port, raft_base_port, host, timeout_s):
        started = time.monotonic()
        cp = ControlPlane(self.lab_dir, replicas=replicas, host=host,
                          api_base_port=api_base_port, raft_base_port=raft_base_port)
        state = self._new_state("loopback", cp, replicas, host)
        self.save(state)
        _say(f"lab directory {self.lab_dir}")
        cp.write_configs()
        for name in cp.names:
            cp.start(name)
            self.record_pids(cp)
            _say(f"started control-plane replica {name} pid={cp.pids[name]} "
                 f"api={cp.api_address(name)} raft={cp.raft_address(name)}")
        _say("waiting for a Raft leader and the built-in namespaces ...")
        try:
            cp.wait_ready(timeout_s)
        except TimeoutError as exc:
            raise LabError(f"{exc}; logs in {os.path.join(self.lab_dir, 'logs')}") from exc
        leader = cp.leader()
        self._write_client_config(cp)
        self._mark_complete()
        elapsed = time.monotonic() - started
        _say("")
        _say(f"skiff lab is up ({elapsed:.1f}s): {replicas} control-plane replicas, 0 nodes")
        _say(f"  endpoints : {','.join(cp.endpoints)}")
        _say(f"  leader    : {leader}")
        _say(f"  config    : {user_config_path()}  (the CLI uses it; or SKIFF_SERVER=...)")
        _say(f"  logs      : {os.path.join(self.lab_dir, 'logs')}")
        _say("  try       : skiff cluster status; skiff get ns; skiff chaos kill-controlplane leader")
        return cp

    def _mark_complete(self) -> None:
        state = self.load()
        state["complete"] = True
        self.save(state)

    def _up_nodes(self, plan: Plan, api_port, raft_port, timeout_s, agents, network="host-gw"):
        from skiff.lab import images, netlab
        from skiff.lab.node import NodeError, agent_command

        t_all = time.monotonic()
        phases: dict[str, float] = {}
        cp = ControlPlane(self.lab_dir, replicas=len(plan.replicas), api_base_port=api_port,
                          raft_base_port=raft_port, addresses=[m.address for m in plan.replicas],
                          netns=[m.netns for m in plan.replicas], host="",
                          network={"backend": network, "clusterCIDR": CLUSTER_CIDR},
                          services=services_for_subnet(plan.subnet))
        state = self._new_state("nodes", cp, len(plan.replicas), "")
        state.update({"plan": {"prefix": plan.prefix, "subnet": plan.subnet,
                               "nodes": len(plan.nodes), "replicas": len(plan.replicas)},
                      "network": dict(cp.network),   # the replicas' network: section
                      "made": [], "nodes": {m.name: {} for m in plan.nodes}})
        self.save(state)

        def record(kind, name):
            state["made"].append([kind, name])
            self.save(state)

        _say(f"lab directory {self.lab_dir} (prefix {plan.prefix}, subnet {plan.subnet})")
        # -- network
        t = time.monotonic()
        record("dir", plan.run_dir)
        os.makedirs(plan.run_dir, exist_ok=True)
        try:
            netlab.build_segment(plan, record)
            for m in plan.replicas:
                netlab.add_member(plan, m, record, forwarding=False)
            for m in plan.nodes:
                netlab.add_member(plan, m, record, forwarding=True)
        except Exception as exc:  # pyroute2's NetlinkError is no OSError
            raise LabError(f"building the lab network: {exc!r}") from exc
        phases["network"] = time.monotonic() - t
        _say(f"network: namespace {plan.lab_netns} bridge {BRIDGE} gateway {plan.gateway}; "
             f"host {plan.host_address} on {plan.host_link}; "
             f"{len(plan.members)} machine namespaces ({phases['network']:.1f}s)")
        from skiff.lab.node import process_env
        from skiff.lab.upstream_dns import LabDns
        dns = LabDns(plan)
        state["dns"] = {"pid": dns.start(env=process_env())}
        self.save(state)
        try:
            dns.wait(state["dns"]["pid"])
        except RuntimeError as exc:
            raise LabError(str(exc)) from None
        _say(f"dns: the lab's upstream resolver on {dns.upstream} (zone lab.: "
             f"{', '.join(m.name for m in plan.members)}, host, gateway) pid={state['dns']['pid']}")

        # -- control plane (starts in the background)
        t_cp = time.monotonic()
        cp.write_configs()
        for m in plan.replicas:
            cp.start(m.name)
            state["controlplane"]["pids"] = dict(cp.pids)
            self.save(state)
            _say(f"control plane: {m.name} in {m.netns} api={cp.api_address(m.name)} "
                 f"raft={cp.raft_address(m.name)} pid={cp.pids[m.name]}")

        # -- engines (start in the background), images, then wait + load per node
        t_eng = time.monotonic()
        nodes = self.nodes(state)
        for m in plan.nodes:
            pid = nodes[m.name].start_engine()
            _say(f"engine: {m.name} in {m.netns} address {m.address} pid={pid} "
                 f"socket {nodes[m.name].paths.socket}")
        t = time.monotonic()
        try:
            archives = images.build_all(os.path.join(self.lab_dir, "images"))
        except images.ImageBuildError as exc:
            raise LabError(f"building the lab images: {exc}") from exc
        phases["images built"] = time.monotonic() - t
        _say(f"images: built {', '.join(archives)} ({phases['images built']:.1f}s)")

        def engine_ready(node):
            version = node.wait_engine(timeout_s)
            ready_s = time.monotonic() - t_eng
            tags = node.load_archives(archives.values())
            return node.name, version, ready_s, tags, time.monotonic() - t_eng

        with concurrent.futures.ThreadPoolExecutor(max_workers=len(nodes)) as pool:
            futures = [pool.submit(engine_ready, n) for n in nodes.values()]
            try:
                for fut in concurrent.futures.as_completed(futures):
                    name, version, ready_s, tags, loaded_s = fut.result()
                    _say(f"engine: {name} answers (docker {version}, {ready_s:.1f}s); "
                         f"loaded {', '.join(sorted(tags))} ({loaded_s:.1f}s)")
            except (NodeError, OSError) as exc:
                raise LabError(str(exc)) from exc
            except Exception as exc:  # docker SDK errors while loading
                raise LabError(f"loading images: {exc}") from exc
        phases["engines + image load"] = time.monotonic() - t_eng

        _say("control plane: waiting for a Raft leader and the built-in namespaces ...")
        try:
            cp.wait_ready(timeout_s)
        except TimeoutError as exc:
            raise LabError(f"{exc}; logs in {os.path.join(self.lab_dir, 'logs')}") from exc
        leader = cp.leader()
        phases["control plane"] = time.monotonic() - t_cp
        _say(f"control plane: ready, leader {leader} ({phases['control plane']:.1f}s)")
        self._write_client_config(cp)

        # -- agents
        agent_note = ""
        if agents is False:
            agent_note = "not started (--no-agents)"
        elif agent_command() is None:
            if agents:
                raise LabError("--agents: skiff-agent is not installed (nodeagent/main.py is missing)")
            agent_note = "not started: skiff-agent does not exist yet (nodeagent/main.py)"
        if agent_note:
            _say(f"agents: {agent_note}")
            state["agents"] = False
        else:
            state["agents"] = True
            t = time.monotonic()
            for name, node in nodes.items():
                node.write_agent_config(cp.endpoints, agent_network(plan))
                pid = node.start_agent()
                _say(f"agent: {name} pid={pid} config {node.paths.agent_config}")
            self.save(state)
            _say("agents: waiting for every node to be Ready ...")
            self.wait_nodes_ready(cp, list(nodes), timeout_s)
            phases["agents -> nodes Ready"] = time.monotonic() - t
        state["complete"] = True
        self.save(state)
        elapsed = time.monotonic() - t_all
        self._summary(plan, cp, leader, nodes, state, phases, elapsed, agent_note)
        return cp

    def wait_nodes_ready(self, cp: ControlPlane, names: list[str], timeout_s: float) -> None:
        from skiff import client as clientmod
        from skiff.lab.node import node_ready
        deadline = time.monotonic() + timeout_s
        c = cp.client(call_timeout_s=2.0, failover_budget_s=2.0)
        pending = list(names)
        try:
            while True:
                for name in list(pending):
                    try:
                        if node_ready(c.get("node", name)):
                            pending.remove(name)
                            _say(f"node {name}: Ready")
                    except clientmod.ApiError:
                        pass
                if not pending:
                    return
                if time.monotonic() > deadline:
                    logs = os.path.join(self.lab_dir, "logs")
                    raise LabError(f"nodes not Ready after {timeout_s:.0f}s: {', '.join(pending)} "
                                   f"(agent logs: {logs}/<node>-agent.log)")
                time.sleep(0.2)
        finally:
            c.close()

    def _summary(self, plan, cp, leader, nodes, state, phases, elapsed, agent_note) -> None:
        logs = os.path.join(self.lab_dir, "logs")
        n1 = plan.nodes[0]
        p1 = plan.node_paths(n1.name)
        _say("")
        _say(f"skiff lab is up ({elapsed:.1f}s): {len(plan.replicas)} control-plane replicas, "
             f"{len(plan.nodes)} nodes, on {plan.subnet}")
        _say("  control plane: " + ", ".join(
            f"{n} {cp.api_address(n)}" + (" (leader)" if n == leader else "") for n in cp.names))
        _say("  nodes        : " + ", ".join(f"{m.name} {m.address}" for m in plan.nodes)
             + ("  (Ready)" if not agent_note else f"  (engines only; agents {agent_note})"))
        _say(f"  host         : {plan.host_address} on {plan.host_link}; gateway {plan.gateway} "
             f"on bridge {BRIDGE} in netns {plan.lab_netns}")
        _say(f"  config       : {user_config_path()}  (the CLI uses it; or SKIFF_SERVER=...)")
        _say(f"  logs         : {logs}")
        _say("  phases       : " + ", ".join(f"{k} {v:.1f}s" for k, v in phases.items()))
        _say("  try          : skiff get nodes -o wide; skiff lab status; skiff cluster status")
        _say(f"                 skiff chaos kill-node {plan.nodes[-1].name}; "
             f"skiff chaos kill-controlplane leader")
        _say(f"                 docker -H {p1.docker_host} ps -a   ({n1.name}'s engine)")
        _say(f"                 nsenter --net={n1.netns_path} ip addr")

    def _write_client_config(self, cp: ControlPlane) -> None:
        doc = {"servers": cp.endpoints, "lab": self.lab_dir}
        text = yaml.safe_dump(doc, sort_keys=False)
        with open(os.path.join(self.lab_dir, "config"), "w", encoding="utf-8") as f:
            f.write(text)
        path = user_config_path()
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)

    # ------------------------------------------------------------ down

    def down(self, quiet: bool = False) -> None:
        say = (lambda _m: None) if quiet else _say
        state = self.load()
        if state is None:
            if os.path.isdir(self.lab_dir) and not os.listdir(self.lab_dir):
                os.rmdir(self.lab_dir)
            say(f"no lab in {self.lab_dir}")
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
            say(f"stopped control-plane replicas {', '.join(cp.names)}")
            for name, node in nodes.items():
                killed = node.power_cut()
                say(f"stopped {name}: agent, engine and containers ({len(killed)} processes)")
        finally:
            if plan:
                from skiff.lab.upstream_dns import LabDns
                LabDns(plan).stop(self._dns_pid(state))
        if plan:
            self._remove_made(plan, state, say)
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
        say(f"removed {self.lab_dir}")

    def _remove_made(self, plan: Plan, state: dict, say) -> None:
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
        say(f"removed namespaces, links and {plan.run_dir} ({len(made)} objects)")

    # ------------------------------------------------------------ status

    def status(self) -> str:
        state = self.load()
        if state is None:
            return f"no lab in {self.lab_dir}"
        cp = self.controlplane(state)
        plan = self.plan(state)
        if plan is None:
            lines = [f"lab {self.lab_dir}"]
            for name in cp.names:
                running = cp.is_running(name)
                lines.append(f"  {name}  {'running' if running else 'stopped'}  "
                             f"pid={cp.pids.get(name, '-')}  api={cp.api_address(name)}")
            return "\n".join(lines)
        from skiff.lab import netlab
        roles = self._roles(cp)
        lines = [f"lab {self.lab_dir}  prefix={plan.prefix} subnet={plan.subnet} "
                 f"host={plan.host_address}@{plan.host_link} gateway={plan.gateway}"
                 + ("" if state.get("complete") else "  (INCOMPLETE: `up` did not finish)"),
                 "control plane:"]
        rows = [("NAME", "NAMESPACE", "API", "LINK", "PID", "STATE", "ROLE")]
        for m in plan.replicas:
            running = cp.is_running(m.name)
            rows.append((m.name, m.netns, cp.api_address(m.name), netlab.port_state(plan, m),
                         str(cp.pids.get(m.name, "-")), "running" if running else "stopped",
                         roles.get(m.name, "-")))
        lines += _table(rows)
        lines.append("nodes:")
        rows = [("NAME", "NAMESPACE", "ADDRESS", "LINK", "ENGINE", "AGENT")]
        for name, node in self.nodes(state).items():
            eng = f"pid={node.engine_pid() or '-'} {'running' if node.engine_alive() else 'stopped'}"
            agent = (f"pid={node.agent_pid() or '-'} {'running' if node.agent_alive() else 'stopped'}"
                     if state.get("agents") else "not started")
            rows.append((name, node.m.netns, node.m.address, netlab.port_state(plan, node.m),
                         eng, agent))
        lines += _table(rows)
        lines.append(f"dns: {plan.gateway}:53 (zone lab.) pid={self._dns_pid(state) or '-'} "
                     f"{'running' if self._dns_alive(state) else 'stopped'}")
        return "\n".join(lines)

    @staticmethod
    def _roles(cp: ControlPlane) -> dict:
        from skiff import client as clientmod
        c = cp.client(call_timeout_s=1.0, failover_budget_s=1.0)
        try:
            return {r.name: r.role for r in c.cluster_status().replicas if r.reachable}
        except clientmod.ApiError:
            return {}
        finally:
            c.close()

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
                node.write_agent_config(self.controlplane(state).endpoints,
                                        agent_network(self.plan(state)) if state.get("network") else None)
            pid = node.start_agent()
            node.wait_agent()
        except NodeError as exc:
            raise LabError(str(exc)) from None
        state["agents"] = True
        self.save(state)
        return pid


def _table(rows) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def require_root() -> None:
    if os.geteuid() != 0:
        print("skiff lab: warning: not root; the control plane runs, nodes will need root",
              file=sys.stderr)
