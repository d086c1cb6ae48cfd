"""Benchmark: what an idle lab costs, per agent and per control-plane replica, as N grows.

For each N of --nodes (default 3,10,20; --quick: 3) it starts its own N-node lab (random prefix
and subnet, removed at the end, also on errors, Ctrl-C and SIGTERM) and measures:
  1. lab-up time (`skiff lab up --nodes N`, wall clock, and the phases `lab up` prints);
  2. idle: once the lab is settled, the CPU of each agent, each control-plane replica and each
     node's engine (dockerd + containerd) over a fixed window (--window, 30 s), read from /proc
     (utime+stime+cutime+cstime of the process and its live descendants at the start and the end
     of the window), and the whole machine's busy CPU from /proc/stat in the same window;
  3. the raw floor: --pods-per-node pause+app container pairs per node started through the Docker
     API on the same engines, all engines at once, at most the agent's sync workers (8) at a time
     per engine; time until all are started; then removed;
  4. the same number of pods through skiff: one Deployment of N x --pods-per-node replicas,
     create -> every pod Running in the API; the ratio to the floor;
  5. with those pods: settled again, the same CPU window.
In each window also: the Raft log entries a second (the leader's commit index, from
`cluster status`, at the start and the end) and which replica led (its CPU row: "leader").
--node-lease-duration S runs the lab with that node Lease duration and grace period (`skiff
lab up --node-lease-duration`; Kubernetes' 40 s against the lab's 5 s).

"Settled" = every Node Ready, every bench pod Running, and no pod event in any namespace for
--settle seconds (default 10), waited for at most --settle-timeout (then measured anyway and
marked "not settled"). It is a benchmark: it reports, it never fails on a figure.

    .venv/bin/python bench/idle_cost.py [--nodes 3,10,20] [--quick] [--window 30] [--json FILE]
                                        [--node-lease-duration 40]
    .venv/bin/python bench/idle_cost.py --report a.json b.json   # one table from earlier runs
"""

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from labkit import (CLK_TCK, LabSession, RunningWatcher, install_sigterm, load_avg, log,  # noqa: E402
                    machine_busy_ticks, process_table, raw_floor_parallel, remove_raw, tree_ticks)

from skiff.api import objects_pb2 as pb  # noqa: E402
from skiff.lab import images  # noqa: E402
from skiff.lab.node import node_ready  # noqa: E402

AGENT_SYNC_WORKERS = 8   # nodeagent's AgentConfig.sync_workers default: the floor's per-engine parallelism
DEPLOYMENT = "idle"
SETTLED = ("settled = every Node Ready, every bench pod Running, and no pod event in any namespace "
           "for {settle:.0f} s (waited for at most {timeout:.0f} s)")


def deployment(replicas: int):
    d = pb.Deployment(metadata=pb.ObjectMeta(name=DEPLOYMENT, namespace="default"))
    d.spec.replicas = replicas
    d.spec.selector.match_labels["app"] = DEPLOYMENT
    t = d.spec.template
    t.metadata.labels["app"] = DEPLOYMENT
    t.spec.termination_grace_period_seconds = 1
    t.spec.containers.add(name="app", image=images.BUSYBOX_IMAGE, image_pull_policy="Never",
                          command=["sleep", "36000"])
    return d


def targets(session) -> dict[str, dict[str, int]]:
    """{"agent"|"cp"|"engine": {name: pid}} of the running lab."""
    state = session.state()
    nodes = state.get("nodes", {})
    return {"agent": {n: int(r.get("agentPid") or 0) for n, r in nodes.items()},
            "engine": {n: int(r.get("enginePid") or 0) for n, r in nodes.items()},
            "cp": {n: int(p) for n, p in state["controlplane"]["pids"].items()}}


def raft_position(c) -> tuple[str, int]:
    """(the leader's name, its commit index) from `cluster status`; ("", -1) if unknown."""
    try:
        for r in c.cluster_status().replicas:
            if r.role == "leader":
                return r.name, r.commit_index
    except Exception as exc:  # noqa: BLE001 - reported as unknown
        log(f"cluster status: {exc}")
    return "", -1


def cpu_window(procs: dict, window_s: float, c=None) -> dict:
    """% of one core per process tree over window_s, and the machine's busy cores; with a
    client c, also the Raft entries a second and the leader over the window."""
    leader0, commit0 = raft_position(c) if c is not None else ("", -1)
    t0, table0, busy0 = time.monotonic(), process_table(), machine_busy_ticks()
    load0 = load_avg()
    time.sleep(window_s)   # the measurement window itself
    t1, table1, busy1 = time.monotonic(), process_table(), machine_busy_ticks()
    dt = t1 - t0
    out = {"window_s": dt, "load_start": load0, "load_end": load_avg()}
    for group, pids in procs.items():
        out[group] = {name: 100.0 * (tree_ticks(pid, table1) - tree_ticks(pid, table0)) / CLK_TCK / dt
                      for name, pid in pids.items() if pid in table0 and pid in table1}
    busy, total = busy1[0] - busy0[0], busy1[1] - busy0[1]
    out["machine_busy_cores"] = (os.cpu_count() or 1) * busy / total if total else float("nan")
    if c is not None:
        leader1, commit1 = raft_position(c)
        if leader0 and leader0 == leader1 and commit0 >= 0:
            out["leader"] = leader1
            out["raft_entries_per_s"] = (commit1 - commit0) / dt
    return out


def nodes_ready(c, nodes: list[str]) -> int:
    """How many of the lab's Nodes are Ready right now (-1: the API did not answer)."""
    try:
        return sum(1 for n in c.list("node")[0] if n.metadata.name in nodes and node_ready(n))
    except Exception as exc:  # noqa: BLE001 - reported as -1
        log(f"listing nodes: {exc}")
        return -1


def settle(c, watcher, nodes: list[str], want_pods: int, settle_s: float, timeout_s: float) -> dict:
    """Until settled (see SETTLED) or timeout_s; returns {"settled": bool, "after_s": seconds}."""
    t = time.monotonic()
    deadline = t + timeout_s
    while True:
        ready = nodes_ready(c, nodes)
        pods = sum(1 for name in list(watcher.seen) if name.startswith(DEPLOYMENT + "-"))
        if ready == len(nodes) and pods >= want_pods and watcher.quiet_for() >= settle_s:
            return {"settled": True, "after_s": time.monotonic() - t}
        if time.monotonic() > deadline:
            log(f"settle: NOT settled after {timeout_s:.0f}s (ready {ready}/{len(nodes)}, pods {pods}/{want_pods}, "
                f"quiet {watcher.quiet_for():.1f}s)")
            return {"settled": False, "after_s": time.monotonic() - t}
        time.sleep(1.0)


def pods_phase(session, c, watcher, nodes, procs, args, r) -> None:
    """The raw floor, then the same pods through skiff, then the with-pods window (into r)."""
    n = len(nodes)
    total = n * args.pods_per_node
    # A saturated 2-CPU machine answers single Docker calls in over 60 s (the SDK's
    # usual timeout) while 160 run at once: the floor's calls wait up to 10 minutes.
    engines = list(session.engines(timeout_s=600.0).values())
    log(f"N={n}: raw floor, {total} pairs")
    try:
        r["raw_floor_s"] = raw_floor_parallel(engines, args.pods_per_node, AGENT_SYNC_WORKERS)
    except Exception as exc:  # noqa: BLE001 - reported; the skiff run still tells something
        r["raw_floor_error"] = f"{type(exc).__name__}: {exc}"
        log(f"N={n}: raw floor FAILED: {r['raw_floor_error']}")
    finally:
        remove_raw(engines)
    log(f"N={n}: {total} pods through skiff")
    t = time.monotonic()
    c.create(deployment(total))
    deadline = t + args.pods_timeout_base + args.pods_timeout_per_pod * total
    while True:
        seen = {k: v for k, v in list(watcher.seen.items()) if k.startswith(DEPLOYMENT + "-")}
        r["skiff_pods_error"] = f"{len(seen)}/{total} Running after {time.monotonic() - t:.0f}s"  # so far
        if len(seen) >= total:
            del r["skiff_pods_error"]
            r["skiff_pods_s"] = max(seen.values()) - t
            break
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    took = f"{r['skiff_pods_s']:.1f}s" if "skiff_pods_s" in r else r["skiff_pods_error"]
    floor = f"{r['raw_floor_s']:.1f}s" if "raw_floor_s" in r else r["raw_floor_error"]
    log(f"N={n}: skiff {took}, floor {floor}")
    r["pods_settle"] = settle(c, watcher, nodes, total, args.settle, args.settle_timeout)
    log(f"N={n}: with-pods window {args.window:.0f}s")
    r["pods"] = cpu_window(procs, args.window, c)
    r["pods"]["nodes_ready_end"] = nodes_ready(c, nodes)


def run_n(n: int, args) -> dict:
    r = {"label": args.label, "nodes": n, "pods_per_node": args.pods_per_node, "cpus": os.cpu_count(),
         "load_start": load_avg(), "node_lease_duration_s": args.node_lease_duration or 5}
    log(f"N={n}: lab up (load {r['load_start']})")
    session = LabSession(f"idle{n}", keep=args.keep)
    try:
        with session:
            extra = ["--node-lease-duration", str(args.node_lease_duration)] if args.node_lease_duration else []
            r["lab_up_s"] = session.up(n, timeout_s=args.lab_timeout, extra_args=extra)
            r["lab_up_phases"] = session.up_phases()
            log(f"N={n}: lab up in {r['lab_up_s']:.1f}s ({r['lab_up_phases']})")
            c = session.client()
            nodes = [m.name for m in session.plan().nodes]
            _, rv = c.list("pods")
            watcher = RunningWatcher(c, rv, namespace="")
            procs = targets(session)
            r["idle_settle"] = settle(c, watcher, nodes, 0, args.settle, args.settle_timeout)
            log(f"N={n}: idle window {args.window:.0f}s")
            r["idle"] = cpu_window(procs, args.window, c)
            r["idle"]["nodes_ready_end"] = nodes_ready(c, nodes)
            if args.pods_per_node > 0:
                pods_phase(session, c, watcher, nodes, procs, args, r)
            watcher.stop()
            c.close()
            log(f"N={n}: lab down")
    except BaseException as exc:   # the lab is down already (LabSession); report what we have
        r["error"] = f"{type(exc).__name__}: {exc}"
        r["interrupted"] = isinstance(exc, KeyboardInterrupt)
        log(f"N={n}: FAILED: {r['error']}")
    r["load_end"] = load_avg()
    return r


# ------------------------------------------------------------------ report

def _med_max(values) -> str:
    values = list(values)
    return f"{statistics.median(values):.1f} ({max(values):.1f})" if values else "n/a"


def _leader_split(w) -> str:
    cp = w["cp"]
    leader = w["leader"]
    followers = " / ".join(f"{v:.1f}" for k, v in sorted(cp.items()) if k != leader)
    return f"{cp[leader]:.1f} / {followers} / {sum(cp.values()):.1f}"


def report(results) -> None:
    cols = [f"{r.get('label', '')} N={r['nodes']}".strip()
            + (f" lease {r['node_lease_duration_s']} s" if r.get("node_lease_duration_s", 5) != 5 else "")
            for r in results]
    rows = []

    def row(label, fn):
        cells = []
        for r in results:
            try:
                cells.append(fn(r))
            except (KeyError, TypeError, ValueError, ZeroDivisionError, statistics.StatisticsError):
                cells.append("n/a")
        rows.append(f"| {label} | " + " | ".join(cells) + " |")

    def lab_cores(w):
        return sum(sum(w[g].values()) for g in ("agent", "cp", "engine")) / 100

    row("lab up (s)", lambda r: f"{r['lab_up_s']:.1f}")
    with_pods = any("pods" in r or "skiff_pods_s" in r or "raw_floor_s" in r for r in results)
    phases = (("idle", "idle"), ("pods", "{ppn} pods/node")) if with_pods else (("idle", "idle"),)
    for phase, what in phases:
        label = what.format(ppn=results[0].get("pods_per_node", "?"))
        row(f"{label}: settled after (s)",
            lambda r, p=phase: f"{r[p + '_settle']['after_s']:.0f}" + ("" if r[p + "_settle"]["settled"]
                                                                        else " NOT settled"))
        row(f"{label}: agent CPU, % of a core, median (max)", lambda r, p=phase: _med_max(r[p]["agent"].values()))
        row(f"{label}: control-plane replica CPU, % of a core, median (max)",
            lambda r, p=phase: _med_max(r[p]["cp"].values()))
        row(f"{label}: control-plane leader / each follower / three replicas, % of a core",
            lambda r, p=phase: _leader_split(r[p]))
        row(f"{label}: Raft log entries a second (the leader's commit index)",
            lambda r, p=phase: f"{r[p]['raft_entries_per_s']:.1f}")
        row(f"{label}: engine (dockerd+containerd) CPU per node, %, median (max)",
            lambda r, p=phase: _med_max(r[p]["engine"].values()))
        row(f"{label}: all agents / all replicas (cores)",
            lambda r, p=phase: f"{sum(r[p]['agent'].values()) / 100:.2f} / {sum(r[p]['cp'].values()) / 100:.2f}")
        row(f"{label}: lab total (agents+replicas+engines) (cores); per node",
            lambda r, p=phase: f"{lab_cores(r[p]):.2f}; {lab_cores(r[p]) / r['nodes']:.3f}")
        row(f"{label}: machine busy in the window (cores of {results[0].get('cpus')})",
            lambda r, p=phase: f"{r[p]['machine_busy_cores']:.2f}"
            + (" SATURATED" if r[p]["machine_busy_cores"] >= 0.95 * r["cpus"] else ""))
        row(f"{label}: Nodes Ready at the end of the window",
            lambda r, p=phase: f"{r[p]['nodes_ready_end']}/{r['nodes']}")
        row(f"{label}: load average at window start -> end",
            lambda r, p=phase: f"{r[p]['load_start'].split(' / ')[0]} -> {r[p]['load_end'].split(' / ')[0]}")
    if with_pods:
        row("pods: N x pods/node through skiff, create -> all Running (s)",
            lambda r: f"{r['skiff_pods_s']:.1f}" if "skiff_pods_s" in r else r["skiff_pods_error"])
        row("pods: raw floor, same pairs via the Docker API, same engines (s)",
            lambda r: f"{r['raw_floor_s']:.1f}" if "raw_floor_s" in r else r["raw_floor_error"][:60])
        row("pods: ratio skiff / floor (target <= 1.3 at N=20)", lambda r: f"{r['skiff_pods_s'] / r['raw_floor_s']:.2f}")
        row("agent CPU with pods / idle (medians)",
            lambda r: f"{statistics.median(r['pods']['agent'].values()) / statistics.median(r['idle']['agent'].values()):.2f}")
    base = results[0]

    def growth(r):   # against the first result with the same label and lease (the smallest lab of that run)
        b = next(x for x in results if x.get("label") == r.get("label")
                 and x.get("node_lease_duration_s", 5) == r.get("node_lease_duration_s", 5))
        return f"{lab_cores(r['idle']) / lab_cores(b['idle']):.2f} vs {r['nodes'] / b['nodes']:.2f}"
    row("idle lab total / that of the first lab of the same label and lease, vs N ratio", growth)
    row("machine load average at run start -> end (1 min)",
        lambda r: f"{r['load_start'].split(' / ')[0]} -> {r['load_end'].split(' / ')[0]}")
    print("\n| metric | " + " | ".join(cols) + " |")
    print("|---|" + "---:|" * len(cols))
    print("\n".join(rows))
    for r in results:
        if r.get("lab_up_phases"):
            print(f"\nN={r['nodes']} lab up phases: {r['lab_up_phases']}")
        if "error" in r:
            print(f"\nN={r['nodes']}: FAILED: {r['error']}")
    print(f"\nCPU figures are % of one core (100 = a whole core), from /proc over the window; "
          f"CPUs: {base.get('cpus')}. In a SATURATED window the processes got less than they asked "
          f"for: per-process figures there are a lower bound. The replica max is usually the leader.")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", default="3,10,20", help="comma-separated lab sizes, one lab each")
    ap.add_argument("--quick", action="store_true", help="--nodes 3 only")
    ap.add_argument("--window", type=float, default=30.0, help="CPU measurement window (s)")
    ap.add_argument("--pods-per-node", type=int, default=10, help="0: idle only, no pods, no floor")
    ap.add_argument("--settle", type=float, default=10.0, help="quiet seconds that make a lab settled")
    ap.add_argument("--settle-timeout", type=float, default=120.0)
    ap.add_argument("--lab-timeout", type=float, default=None, help="`lab up --timeout` (default: lab up's)")
    ap.add_argument("--pods-timeout-base", type=float, default=60.0)
    ap.add_argument("--pods-timeout-per-pod", type=float, default=2.0)
    ap.add_argument("--label", default="", help="a name for this run's columns (e.g. before, after)")
    ap.add_argument("--json", help="write the raw results here (after each N)")
    ap.add_argument("--report", nargs="+", metavar="JSON", help="only print the table of earlier --json files")
    ap.add_argument("--keep", action="store_true", help="leave each lab up (debugging)")
    ap.add_argument("--node-lease-duration", type=int, default=None, metavar="S",
                    help="the nodes' Lease duration and grace period (lab default 5; Kubernetes' 40)")
    args = ap.parse_args()
    if args.report:
        results = []
        for path in args.report:
            with open(path) as f:
                results += json.load(f)
        report(results)
        return 0
    install_sigterm()
    sizes = [3] if args.quick else [int(x) for x in args.nodes.split(",") if x.strip()]
    print(SETTLED.format(settle=args.settle, timeout=args.settle_timeout))
    results = []
    for n in sizes:
        results.append(run_n(n, args))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=1)
        if results[-1].get("interrupted"):
            break
    report(results)
    if any(r.get("interrupted") for r in results):
        return 130
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
