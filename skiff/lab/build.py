"""Building the multi-node lab (`skiff lab up --nodes N`), step by step: the lab network,
the lab's upstream resolver, the control-plane replicas, the nodes' engines and images,
then the agents, until every node is Ready.

Every kernel object is recorded in lab.json before it is made and every pid as soon as
it exists (through the Lab's save), so `skiff lab down` can undo a half-built lab.
"""

import concurrent.futures
import os
import time

from skiff import client as clientmod
from skiff.lab.base import LabError, new_state, say, user_config_path, write_client_config
from skiff.lab.controlplane import ControlPlane, services_for_subnet
from skiff.lab.node import NodeError, agent_command, node_ready, process_env
from skiff.lab.plan import BRIDGE, CLUSTER_CIDR, Plan
from skiff.lab.upstream_dns import LabDns


def agent_network(plan: Plan) -> dict:
    """Agent config of a nodes-mode lab: the agents own their node's namespace (they run
    the pod network there) and forward non-cluster DNS names to the lab's resolver."""
    return {"podNetwork": True, "dnsUpstream": LabDns(plan).upstream}


def up_nodes(lab, plan: Plan, api_port, raft_port, timeout_s, agents, network="host-gw",
             node_lease_s: int | None = None) -> ControlPlane:
    """Build and start the multi-node lab of `plan` for `lab` (skiff/lab/lab.py's Lab), recording
    every object in lab.json before it is made and every pid as soon as it exists.

    node_lease_s: the agents' nodeLeaseDurationS and the replicas' nodeMonitorGracePeriodS
    (None: their lab defaults, 5 s and 5 s; Kubernetes': 40 s and 40 s, 50 s since 1.32)."""
    from skiff.lab import images, netlab   # pyroute2 and the image builder: only when building
    t_all = time.monotonic()
    phases: dict[str, float] = {}
    cp = ControlPlane(lab.lab_dir, replicas=len(plan.replicas), api_base_port=api_port,
                      raft_base_port=raft_port, addresses=[m.address for m in plan.replicas],
                      netns=[m.netns for m in plan.replicas], host="",
                      network={"backend": network, "clusterCIDR": CLUSTER_CIDR},
                      services=services_for_subnet(plan.subnet),
                      controllers={"nodeMonitorGracePeriodS": node_lease_s} if node_lease_s else None)
    state = new_state("nodes", cp, len(plan.replicas), "")
    state.update({"plan": {"prefix": plan.prefix, "subnet": plan.subnet,
                           "nodes": len(plan.nodes), "replicas": len(plan.replicas)},
                  "network": dict(cp.network),   # the replicas' network: section
                  "made": [], "nodes": {m.name: {} for m in plan.nodes}})
    lab.save(state)

    def record(kind, name):
        state["made"].append([kind, name])
        lab.save(state)

    say(f"lab directory {lab.lab_dir} (prefix {plan.prefix}, subnet {plan.subnet})")
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
    say(f"network: namespace {plan.lab_netns} bridge {BRIDGE} gateway {plan.gateway}; "
        f"host {plan.host_address} on {plan.host_link}; "
        f"{len(plan.members)} machine namespaces ({phases['network']:.1f}s)")
    dns = LabDns(plan)
    state["dns"] = {"pid": dns.start(env=process_env())}
    lab.save(state)
    try:
        dns.wait(state["dns"]["pid"])
    except RuntimeError as exc:
        raise LabError(str(exc)) from None
    say(f"dns: the lab's upstream resolver on {dns.upstream} (zone lab.: "
        f"{', '.join(m.name for m in plan.members)}, host, gateway) pid={state['dns']['pid']}")

    # -- control plane (starts in the background)
    t_cp = time.monotonic()
    cp.write_configs()
    for m in plan.replicas:
        cp.start(m.name)
        state["controlplane"]["pids"] = dict(cp.pids)
        lab.save(state)
        say(f"control plane: {m.name} in {m.netns} api={cp.api_address(m.name)} "
            f"raft={cp.raft_address(m.name)} pid={cp.pids[m.name]}")

    # -- engines (start in the background), images, then wait + load per node
    t_eng = time.monotonic()
    nodes = lab.nodes(state)
    for m in plan.nodes:
        pid = nodes[m.name].start_engine()
        say(f"engine: {m.name} in {m.netns} address {m.address} pid={pid} "
            f"socket {nodes[m.name].paths.socket}")
    t = time.monotonic()
    try:
        archives = images.build_all(os.path.join(lab.lab_dir, "images"))
    except images.ImageBuildError as exc:
        raise LabError(f"building the lab images: {exc}") from exc
    phases["images built"] = time.monotonic() - t
    say(f"images: built {', '.join(archives)} ({phases['images built']:.1f}s)")

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
                say(f"engine: {name} answers (docker {version}, {ready_s:.1f}s); "
                    f"loaded {', '.join(sorted(tags))} ({loaded_s:.1f}s)")
        except (NodeError, OSError) as exc:
            raise LabError(str(exc)) from exc
        except Exception as exc:  # docker SDK errors while loading
            raise LabError(f"loading images: {exc}") from exc
    phases["engines + image load"] = time.monotonic() - t_eng

    say("control plane: waiting for a Raft leader and the built-in namespaces ...")
    try:
        cp.wait_ready(timeout_s)
    except TimeoutError as exc:
        raise LabError(f"{exc}; logs in {os.path.join(lab.lab_dir, 'logs')}") from exc
    leader = cp.leader()
    phases["control plane"] = time.monotonic() - t_cp
    say(f"control plane: ready, leader {leader} ({phases['control plane']:.1f}s)")
    write_client_config(lab.lab_dir, cp.endpoints, cp)

    # -- agents
    agent_note = ""
    if agents is False:
        agent_note = "not started (--no-agents)"
    elif agent_command() is None:
        if agents:
            raise LabError("--agents: skiff-agent is not installed (nodeagent/main.py is missing)")
        agent_note = "not started: skiff-agent does not exist yet (nodeagent/main.py)"
    if agent_note:
        say(f"agents: {agent_note}")
        state["agents"] = False
    else:
        state["agents"] = True
        t = time.monotonic()
        for name, node in nodes.items():
            node.write_agent_config(cp.endpoints, dict(agent_network(plan), **cp.join_tls(name), **(
                {"nodeLeaseDurationS": node_lease_s} if node_lease_s else {})))
            pid = node.start_agent()
            say(f"agent: {name} pid={pid} config {node.paths.agent_config}")
        lab.save(state)
        say("agents: waiting for every node to be Ready ...")
        wait_nodes_ready(lab.lab_dir, cp, list(nodes), timeout_s)
        phases["agents -> nodes Ready"] = time.monotonic() - t
    state["complete"] = True
    lab.save(state)
    elapsed = time.monotonic() - t_all
    _summary(lab.lab_dir, plan, cp, leader, nodes, state, phases, elapsed, agent_note)
    return cp


def wait_nodes_ready(lab_dir: str, cp: ControlPlane, names: list[str], timeout_s: float) -> None:
    """Until every named Node is Ready in the API; LabError naming the others at the deadline."""
    deadline = time.monotonic() + timeout_s
    c = cp.client(call_timeout_s=2.0, failover_budget_s=2.0)
    pending = list(names)
    try:
        while True:
            for name in list(pending):
                try:
                    if node_ready(c.get("node", name)):
                        pending.remove(name)
                        say(f"node {name}: Ready")
                except clientmod.ApiError:
                    pass
            if not pending:
                return
            if time.monotonic() > deadline:
                logs = os.path.join(lab_dir, "logs")
                raise LabError(f"nodes not Ready after {timeout_s:.0f}s: {', '.join(pending)} "
                               f"(agent logs: {logs}/<node>-agent.log)")
            time.sleep(0.2)
    finally:
        c.close()


def _summary(lab_dir, plan, cp, leader, nodes, state, phases, elapsed, agent_note) -> None:
    logs = os.path.join(lab_dir, "logs")
    n1 = plan.nodes[0]
    p1 = plan.node_paths(n1.name)
    say("")
    say(f"skiff lab is up ({elapsed:.1f}s): {len(plan.replicas)} control-plane replicas, "
        f"{len(plan.nodes)} nodes, on {plan.subnet}")
    say("  control plane: " + ", ".join(
        f"{n} {cp.api_address(n)}" + (" (leader)" if n == leader else "") for n in cp.names))
    say("  nodes        : " + ", ".join(f"{m.name} {m.address}" for m in plan.nodes)
        + ("  (Ready)" if not agent_note else f"  (engines only; agents {agent_note})"))
    say(f"  host         : {plan.host_address} on {plan.host_link}; gateway {plan.gateway} "
        f"on bridge {BRIDGE} in netns {plan.lab_netns}")
    say(f"  config       : {user_config_path()}  (the CLI uses it; or SKIFF_SERVER=...)")
    say(f"  logs         : {logs}")
    say("  phases       : " + ", ".join(f"{k} {v:.1f}s" for k, v in phases.items()))
    say("  try          : skiff get nodes -o wide; skiff lab status; skiff cluster status")
    say(f"                 skiff chaos kill-node {plan.nodes[-1].name}; "
        f"skiff chaos kill-controlplane leader")
    say(f"                 docker -H {p1.docker_host} ps -a   ({n1.name}'s engine)")
    say(f"                 nsenter --net={n1.netns_path} ip addr")
