"""`skiff lab status`: what the lab's record says it made, and what of it runs now."""

from skiff import client as clientmod
from skiff.lab.controlplane import ControlPlane


def status_text(lab) -> str:
    """`skiff lab status` of `lab` (skiff/lab/lab.py's Lab): every machine, link and process."""
    state = lab.load()
    if state is None:
        return f"no lab in {lab.lab_dir}"
    cp = lab.controlplane(state)
    plan = lab.plan(state)
    if plan is None:
        lines = [f"lab {lab.lab_dir}"]
        for name in cp.names:
            running = cp.is_running(name)
            lines.append(f"  {name}  {'running' if running else 'stopped'}  "
                         f"pid={cp.pids.get(name, '-')}  api={cp.api_address(name)}")
        return "\n".join(lines)
    from skiff.lab import netlab   # pyroute2: only for a lab with a network
    roles = _roles(cp)
    lines = [f"lab {lab.lab_dir}  prefix={plan.prefix} subnet={plan.subnet} "
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
    for name, node in lab.nodes(state).items():
        eng = f"pid={node.engine_pid() or '-'} {'running' if node.engine_alive() else 'stopped'}"
        agent = (f"pid={node.agent_pid() or '-'} {'running' if node.agent_alive() else 'stopped'}"
                 if state.get("agents") else "not started")
        rows.append((name, node.m.netns, node.m.address, netlab.port_state(plan, node.m),
                     eng, agent))
    lines += _table(rows)
    lines.append(f"dns: {plan.gateway}:53 (zone lab.) pid={lab.dns_pid(state) or '-'} "
                 f"{'running' if lab.dns_alive(state) else 'stopped'}")
    return "\n".join(lines)


def _roles(cp: ControlPlane) -> dict:
    c = cp.client(call_timeout_s=1.0, failover_budget_s=1.0)
    try:
        return {r.name: r.role for r in c.cluster_status().replicas if r.reachable}
    except clientmod.ApiError:
        return {}
    finally:
        c.close()


def _table(rows) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
