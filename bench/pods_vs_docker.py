"""Benchmark: pod start through skiff vs `docker run` of the same containers, same engines, one run.

Starts a 3-node lab (root), then prints:
  1. pod start latency, create -> Running in the API (all containers running), p50/p99 over
     N pods created one at a time, next to the time to start the same pause + app
     containers with the Docker API directly on the same node engines (the raw baseline),
     and the ratio (aim <= 1.3);
  2. time for a 60-replica Deployment to be all Running, next to its raw floor: the same
     60 pause + app pairs started through the Docker API on the same three engines, all
     engines at once, AGENT_SYNC_WORKERS at a time per engine (the agent's parallelism);
  3. node kill -> all replacements Running, with its timeline (Node NotReady, first pod
     marked for deletion, every replacement created, bound, Running) and its floor: the
     lab's grace period + eviction timeout + the raw start of the replacements on the two
     surviving engines;
  4. resident memory (RSS) of the agents and of the control-plane replicas.

    .venv/bin/python bench/pods_vs_docker.py [--pods 30] [--replicas 60]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from labkit import (CLK_TCK, SKIFF, LabSession, RunningWatcher, install_sigterm, load_avg, log,  # noqa: E402
                    machine_busy_ticks, pct, process_table, raw_floor_parallel, remove_raw, rss_mib, running,
                    start_raw_pair, tree_ticks)
from timeline import PodTimeline, format_table, stage_table  # noqa: E402

from skiff.api import objects_pb2 as pb  # noqa: E402
from skiff.lab import images  # noqa: E402

AGENT_SYNC_WORKERS = 8   # nodeagent's AgentConfig.sync_workers default: the floor's per-engine parallelism
LAB_GRACE_S, LAB_EVICTION_S = 5.0, 5.0   # controlplane/config.py ControllersConfig defaults (the lab's)


def pod(name, node):
    p = pb.Pod(metadata=pb.ObjectMeta(name=name, namespace="default", labels={"bench": "start"}))
    p.spec.node_name = ""
    p.spec.node_selector["kubernetes.io/hostname"] = node
    p.spec.termination_grace_period_seconds = 1
    p.spec.containers.add(name="app", image=images.BUSYBOX_IMAGE, image_pull_policy="Never",
                          command=["sleep", "3600"])
    return p


def docker_baseline(engines, n):
    """Sequentially: pause container + app joined to it, as the agent does; time to both started."""
    out = []
    for i in range(n):
        t0 = time.monotonic()
        start_raw_pair(engines[i % len(engines)], i)
        out.append(time.monotonic() - t0)
    remove_raw(engines)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pods", type=int, default=30)
    ap.add_argument("--replicas", type=int, default=60)
    ap.add_argument("--keep", action="store_true", help="leave the lab up")
    ap.add_argument("--json", help="also write the figures and both per-pod timelines to this file")
    args = ap.parse_args()
    install_sigterm()
    session = LabSession("pods", keep=args.keep)
    lab_dir, env, root = session.lab_dir, session.env, session.root
    results = {}
    load_start = load_avg()
    timelines = {}
    with session:
        results["lab up (s)"] = session.up(3)
        lab = session.lab
        nodes = [m.name for m in session.plan().nodes]
        engines = list(session.engines().values())
        c = session.client()

        raw = docker_baseline(engines, args.pods)
        _, rv = c.list("pods", namespace="default")
        watcher = RunningWatcher(c, rv)
        starts = []
        for i in range(args.pods):
            name = f"start-{i}"
            t = time.monotonic()
            c.create(pod(name, nodes[i % len(nodes)]))
            watcher.wait([name], 60)
            starts.append(watcher.seen[name] - t)
        for i in range(args.pods):
            c.delete("pods", f"start-{i}", grace_period_seconds=1)

        deploy = pb.Deployment(metadata=pb.ObjectMeta(name="bench", namespace="default"))
        deploy.spec.replicas = args.replicas
        deploy.spec.selector.match_labels["app"] = "bench"
        tmpl = deploy.spec.template
        tmpl.metadata.labels["app"] = "bench"
        tmpl.spec.termination_grace_period_seconds = 1
        tmpl.spec.containers.add(name="app", image=images.BUSYBOX_IMAGE, image_pull_policy="Never",
                                 command=["sleep", "3600"])

        def all_running(tl, exclude_node=None):
            """Every live pod Running (off exclude_node) and as many as the replicas; from the
            timeline's state (the watch), with its lock held: no list calls while measuring."""
            live = [p for p in tl.pods.values() if not p.metadata.deletion_timestamp]
            ok = [p for p in live if running(p) and p.spec.node_name != exclude_node]
            return len(ok) == args.replicas and len(live) == args.replicas

        per_engine = args.replicas // len(engines)
        floors = {}
        try:
            floors["deploy"] = raw_floor_parallel(engines, per_engine, AGENT_SYNC_WORKERS)
        finally:
            remove_raw(engines)
        victim = nodes[1]
        survivors = [eng for name, eng in session.engines().items() if name != victim]
        try:   # the replacements of one node's pods, started on the two other engines
            floors["kill"] = raw_floor_parallel(survivors, per_engine // len(survivors), AGENT_SYNC_WORKERS)
        finally:
            remove_raw(engines)
        try:   # the same, every pair at once: does more parallelism than the agent's buy anything?
            floors["kill all at once"] = raw_floor_parallel(survivors, per_engine // len(survivors),
                                                            max(1, per_engine // len(survivors)))
        finally:
            remove_raw(engines)

        items, rv = c.list("pods", namespace="default", label_selector="app=bench")
        done = {}
        deploy_tl = PodTimeline(c, rv, "app=bench", items=items,
                                on_event=lambda tl, now: done.setdefault("at", now) if all_running(tl) else None)
        t, t_wall = time.monotonic(), time.time()
        c.create(deploy)
        deploy_tl.wait_for(lambda tl: "at" in done, 600)
        took = done["at"] - t_wall
        deploy_tl.settle(2.0)
        for name in nodes:
            deploy_tl.add_agent_log(session.plan().node_paths(name).agent_log, t_wall)
        timelines["deployment"] = (deploy_tl, list(deploy_tl.marks), t_wall)
        results[f"{args.replicas}-replica Deployment all Running (s)"] = took
        results[f"  raw floor: {per_engine * len(engines)} pairs, {AGENT_SYNC_WORKERS}/engine (s)"] = floors["deploy"]
        results["  ratio to the floor (aim <= 1.3)"] = took / floors["deploy"]

        items, rv = c.list("pods", namespace="default", label_selector="app=bench")
        doomed = {p.metadata.name for p in items if p.spec.node_name == victim}
        marks, cpu = {}, {}
        t_wall = time.time()

        def milestones(tl, now):   # the first moment each one is true, noted in the watch thread
            fresh = [p for n, p in tl.pods.items() if n not in doomed]
            if "first eviction" not in marks and (doomed - set(tl.pods) or any(
                    tl.pods[n].metadata.deletion_timestamp for n in doomed if n in tl.pods)):
                marks["first eviction"] = now - t_wall
                cpu["from"] = (process_table(), machine_busy_ticks(), time.monotonic())
            if "replacements created" not in marks and len(fresh) >= args.replicas:
                marks["replacements created"] = now - t_wall
            if "replacements bound" not in marks and len(fresh) >= args.replicas and all(
                    p.spec.node_name for p in fresh):
                marks["replacements bound"] = now - t_wall
            if "all Running" not in marks and all_running(tl, exclude_node=victim):
                cpu["to"] = (process_table(), machine_busy_ticks(), time.monotonic())
                marks["all Running"] = now - t_wall

        kill_tl = PodTimeline(c, rv, "app=bench", items=items, on_event=milestones)
        t_wall = time.time()
        subprocess.run(SKIFF + ["chaos", "kill-node", victim, "--lab-dir", lab_dir], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        while "all Running" not in marks:   # the node's NotReady: one small get every 0.1 s until seen
            if "NotReady" not in marks:
                node = c.get("nodes", victim)
                if not any(x.type == "Ready" and x.status == "True" for x in node.status.conditions):
                    marks["NotReady"] = time.time() - t_wall
            if time.time() - t_wall > 300:
                raise TimeoutError(f"node kill: not all Running after 300 s: {marks}")
            time.sleep(0.1)
        kill_tl.settle(2.0)
        for name in nodes:
            if name != victim:
                kill_tl.add_agent_log(session.plan().node_paths(name).agent_log, t_wall)
        timelines["node kill"] = (kill_tl, [n for n in kill_tl.marks if n not in doomed], t_wall)
        if os.environ.get("NK_SAVE_LOGS"):
            log(f"logs saved to {session.save_logs('nodekill')}")
        results[f"node kill -> all {args.replicas} Running elsewhere (s)"] = marks["all Running"]
        for k in ("NotReady", "first eviction", "replacements created", "replacements bound"):
            results[f"  {k} at (s)"] = marks.get(k, float("nan"))
        kill_floor = LAB_GRACE_S + LAB_EVICTION_S + floors["kill"]
        results[f"  floor: grace {LAB_GRACE_S:.0f} + eviction {LAB_EVICTION_S:.0f} + raw start of "
                f"{per_engine} pairs on 2 engines (s)"] = kill_floor
        results[f"  raw start of those {per_engine} pairs alone, {AGENT_SYNC_WORKERS}/engine (s)"] = floors["kill"]
        results[f"  raw start of those {per_engine} pairs alone, all at once (s)"] = floors["kill all at once"]
        results["  bound -> all Running, skiff (s)"] = marks["all Running"] - marks.get("replacements bound",
                                                                                        float("nan"))

        state = lab.load()
        if "from" in cpu and "to" in cpu:   # who used the CPUs from the first eviction to all Running
            (t0, (b0, a0), m0), (t1, (b1, a1), m1) = cpu["from"], cpu["to"]
            secs = m1 - m0
            groups = {"control plane (3 replicas)": list(state["controlplane"]["pids"].values()),
                      "agents (2 survivors)": [int(r.get("agentPid") or 0) for n, r in state["nodes"].items()
                                               if n != victim],
                      "engines (2 dockerd+containerd, not the shims)": [
                          int(r.get("enginePid") or 0) for n, r in state["nodes"].items() if n != victim]}
            for label, pids in groups.items():
                used = sum(tree_ticks(pid, t1) - tree_ticks(pid, t0) for pid in pids) / CLK_TCK
                results[f"  CPU first eviction -> all Running: {label} (cores)"] = used / secs
            results["  CPU first eviction -> all Running: machine busy (cores of 2)"] = \
                (b1 - b0) / max(1, a1 - a0) * (os.cpu_count() or 1)
        agent_rss = [rss_mib(rec.get("agentPid", 0)) for n, rec in state.get("nodes", {}).items() if n != victim]
        cp_rss = [rss_mib(pid) for pid in state["controlplane"]["pids"].values()]

        print("\n| metric | skiff | docker (raw) | ratio |")
        print("|---|---:|---:|---:|")
        for label, q in (("p50", 50), ("p99", 99)):
            s, r = pct(starts, q), pct(raw, q)
            print(f"| pod start {label}, {args.pods} pods, create -> Running (ms) | {s * 1000:.0f} | "
                  f"{r * 1000:.0f} | {s / r:.2f} |")
        print(f"| pod start mean (ms) | {statistics.mean(starts) * 1000:.0f} | {statistics.mean(raw) * 1000:.0f} | "
              f"{statistics.mean(starts) / statistics.mean(raw):.2f} |")
        for k, v in results.items():
            print(f"| {k} | {v:.2f} | | |")
        print(f"| agent RSS per node (MiB) | {statistics.mean(agent_rss):.0f} | | |")
        print(f"| control-plane replica RSS (MiB) | {statistics.mean(cp_rss):.0f} (max {max(cp_rss):.0f}) | | |")
        print(f"\npod start p50 ratio skiff/docker (aim <= 1.3): {pct(starts, 50) / pct(raw, 50):.2f}")
        tables = {}
        for title, (tl, names, t0) in timelines.items():
            tables[title] = stage_table(tl.marks, names, t0)
            print(format_table(tables[title], f"{title}: per-pod timeline, {len(names)} pods, times from "
                                              f"{'the create' if title == 'deployment' else 'the kill'}"))
        print(f"\nload average (1/5/15 min) at the start: {load_start}; at the end: {load_avg()}")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"load_start": load_start, "load_end": load_avg(), "starts_s": starts, "raw_s": raw,
                           "results": results, "stages": tables,
                           "marks": {title: {n: tl.marks.get(n, {}) for n in names}
                                     for title, (tl, names, _) in timelines.items()}}, f, indent=1)
            log(f"written {args.json}")
        print(json.dumps({"starts_s": starts, "raw_s": raw, **results}), file=open(os.path.join(root, "r.json"), "w"))
        c.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
