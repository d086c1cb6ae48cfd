"""Benchmark: scheduling throughput, pods bound per second, on a lab of N nodes (default 20).

Starts its own lab (root; `skiff lab up --nodes N --node-lease-duration 300`, removed on exit)
and measures how fast the scheduler binds a batch of pending pods (default 300), for each
variant, interleaved round by round so every variant sees the same machine:

  baseline          plain pods (no requests, no affinity)
  anti-affinity     preferred pod anti-affinity on kubernetes.io/hostname (weight 100),
                    so all of them still fit
  spread-anyway     topologySpreadConstraints maxSkew 1 on kubernetes.io/hostname,
                    whenUnsatisfiable ScheduleAnyway
  spread-strict     the same with DoNotSchedule and maxSkew 2 (always satisfiable: the
                    scheduler can always place a pod on a least-loaded node)

A variant admission refuses (the affinity and spread fields are refused until the
scheduler honours them) is reported as "refused by admission" and skipped.

Only binding is measured, not container start. A round:
  1. every node is cordoned, then the batch is created (the scheduler marks each pod
     Unschedulable: setup, not measured);
  2. the agents are paused (SIGSTOP by the pids the lab recorded; the node grace period is
     --node-lease-duration, far longer than a round, so no node turns NotReady), so they
     start no container and take no CPU from the control plane;
  3. t0: every node is uncordoned (in parallel); a watch records when each pod is first seen
     with spec.nodeName set; the round's figure is batch / (last bind - t0);
  4. the pods are force-deleted (grace 0: the paused agents hold nothing), the agents resumed.
The table shows the median over the rounds and the ratio to the baseline's median of the same
run. Anchor: kube-scheduler's 90-300 pods/s at 5,000 nodes (scheduler_perf).

    .venv/bin/python bench/scheduling.py [--nodes 20] [--pods 300] [--rounds 3] [--json FILE] [--keep]
"""

import argparse
import concurrent.futures
import json
import os
import signal
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from labkit import LabSession, install_sigterm, load_avg, log  # noqa: E402

from skiff import client as clientmod  # noqa: E402
from skiff.api import objects_pb2 as pb  # noqa: E402
from skiff.lab import images  # noqa: E402

NS = "default"
HOSTNAME = "kubernetes.io/hostname"
WRITERS = 16
VARIANTS = ("baseline", "anti-affinity", "spread-anyway", "spread-strict")


def bench_pod(variant: str, i: int) -> pb.Pod:
    p = pb.Pod(metadata=pb.ObjectMeta(name=f"skiff-sched-{variant}-{i}", namespace=NS,
                                      labels={"app": "skiff-sched", "variant": variant}))
    p.spec.termination_grace_period_seconds = 0
    p.spec.containers.add(name="app", image=images.BUSYBOX_IMAGE, image_pull_policy="Never",
                          command=["sleep", "3600"])
    sel = pb.LabelSelector(match_labels={"variant": variant})
    if variant == "anti-affinity":
        term = p.spec.affinity.pod_anti_affinity.preferred_during_scheduling_ignored_during_execution.add(weight=100)
        term.pod_affinity_term.topology_key = HOSTNAME
        term.pod_affinity_term.label_selector.CopyFrom(sel)
    elif variant.startswith("spread-"):
        strict = variant == "spread-strict"
        c = p.spec.topology_spread_constraints.add(max_skew=2 if strict else 1, topology_key=HOSTNAME,
                                                   when_unsatisfiable="DoNotSchedule" if strict else "ScheduleAnyway")
        c.label_selector.CopyFrom(sel)
    return p


def refusal(c, variant: str) -> str:
    """"" when the API accepts the variant's pod (a server-side dry run), else why not."""
    try:
        c.create(bench_pod(variant, 0), dry_run=True)
        return ""
    except clientmod.ApiError as exc:
        return str(exc)


class BindWatcher:
    """One watch on the namespace's pods: the monotonic time each pod is first seen bound."""

    def __init__(self, c, rv):
        self.bound = {}
        self.cond = threading.Condition()
        self._streams = []
        self._stop = False
        self.thread = threading.Thread(target=self._run, args=(c, rv), daemon=True)
        self.thread.start()

    def _run(self, c, rv):
        for typ, p, _ in c.watch("pods", namespace=NS, resource_version=rv, on_stream=self._streams.append):
            if self._stop:
                return
            if typ != "DELETED" and p.spec.node_name:
                with self.cond:
                    self.bound.setdefault(p.metadata.name, time.monotonic())
                    self.cond.notify_all()

    def wait(self, names, timeout_s):
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while not all(n in self.bound for n in names):
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = [n for n in names if n not in self.bound]
                    raise TimeoutError(f"not bound in time: {missing[:5]} ({len(missing)})")
                self.cond.wait(left)
            return {n: self.bound[n] for n in names}

    def stop(self):
        """End the watch now (a stale watcher decoding the next round's events would cost CPU)."""
        self._stop = True
        for stream in self._streams:
            stream.cancel()
        self.thread.join(5.0)


def parallel(fn, items):
    with concurrent.futures.ThreadPoolExecutor(max_workers=WRITERS) as pool:
        for f in [pool.submit(fn, x) for x in items]:
            f.result()


def set_unschedulable(c, names, value: bool):
    def one(name):
        for _ in range(50):
            node = c.get("nodes", name, "")
            if node.spec.unschedulable == value:
                return
            node.spec.unschedulable = value
            try:
                c.update(node)
                return
            except clientmod.Conflict:
                time.sleep(0.02)
        raise RuntimeError(f"could not set unschedulable={value} on {name}")
    parallel(one, names)


def signal_agents(session, sig) -> None:
    """SIGSTOP / SIGCONT the lab's agents, by the pids the lab recorded (this run started them)."""
    for node in session.lab.nodes(session.state()).values():
        pid = node.agent_pid()
        if pid and node.agent_alive():
            os.kill(pid, sig)


def live_pods(c):
    items, _ = c.list("pods", namespace=NS, label_selector="app=skiff-sched")
    return items


def delete_all(c, timeout_s):
    parallel(lambda p: _force_delete(c, p), live_pods(c))
    deadline = time.monotonic() + timeout_s
    while live_pods(c):
        if time.monotonic() > deadline:
            raise TimeoutError("bench pods not deleted")
        time.sleep(0.1)


def _force_delete(c, p):
    try:
        c.delete("pods", p.metadata.name, NS, uid=p.metadata.uid, grace_period_seconds=0)
    except (clientmod.NotFound, clientmod.Conflict):
        pass


def one_round(session, c, nodes, variant, count, timeout_s) -> dict:
    set_unschedulable(c, nodes, True)
    # The scheduler reads nodes from its informer: give it a moment to see every cordon, or the
    # first pods may still be bound to a node it believes schedulable (seen once: one pod).
    time.sleep(1.0)
    parallel(lambda i: c.create(bench_pod(variant, i)), range(count))
    # Let the scheduler mark them Unschedulable (and back off) before the clock starts; a pod
    # bound anyway is left out of the round's figure (bound_before_t0).
    deadline = time.monotonic() + timeout_s
    while True:
        pods = live_pods(c)
        prebound = [p.metadata.name for p in pods if p.spec.node_name]
        unsched = [p.metadata.name for p in pods if not p.spec.node_name and any(
            cd.type == "PodScheduled" and cd.status == "False" for cd in p.status.conditions)]
        if len(unsched) + len(prebound) == count:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(unsched)}/{count} pods marked Unschedulable")
        set_unschedulable(c, nodes, True)
        time.sleep(0.2)
    names = unsched
    count = len(names)
    _, rv = c.list("pods", namespace=NS, label_selector="app=skiff-sched")
    watcher = BindWatcher(c, rv)
    signal_agents(session, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        set_unschedulable(c, nodes, False)
        uncordon_s = time.monotonic() - t0
        bound = watcher.wait(names, timeout_s)
        last = max(bound.values()) - t0
        times = sorted(t - t0 for t in bound.values())
        per_node = {}
        for p in live_pods(c):
            per_node[p.spec.node_name] = per_node.get(p.spec.node_name, 0) + 1
        watcher.stop()
        delete_all(c, timeout_s)
    finally:
        watcher.stop()
        signal_agents(session, signal.SIGCONT)
    return {"pods_per_s": count / last, "last_bind_s": last, "first_bind_s": times[0],
            "half_bound_s": times[len(times) // 2], "uncordon_s": uncordon_s,
            "per_node_min": min(per_node.values()), "per_node_max": max(per_node.values()),
            "nodes_used": len(per_node), "measured_pods": count, "bound_before_t0": len(prebound)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=20)
    ap.add_argument("--pods", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=600.0, help="per phase, seconds")
    ap.add_argument("--settle", type=float, default=20.0,
                    help="seconds to let the freshly started agents settle before measuring")
    ap.add_argument("--json", default="", help="write the raw figures to this file")
    ap.add_argument("--keep", action="store_true", help="leave the lab up")
    args = ap.parse_args()
    install_sigterm()
    results = {"nodes": args.nodes, "pods": args.pods, "rounds": args.rounds, "cpus": os.cpu_count(),
               "load_before": load_avg(), "variants": {}}
    with LabSession("scheduling", keep=args.keep) as session:
        log(f"lab up --nodes {args.nodes}")
        results["lab up (s)"] = session.up(args.nodes, timeout_s=args.timeout,
                                           extra_args=("--node-lease-duration", "300"))
        nodes = [m.name for m in session.plan().nodes]
        c = session.client(call_timeout_s=30.0)

        def ready_nodes():
            items, _ = c.list("nodes")
            return [n.metadata.name for n in items
                    if any(cd.type == "Ready" and cd.status == "True" for cd in n.status.conditions)]
        deadline = time.monotonic() + args.timeout
        while sorted(ready_nodes()) != sorted(nodes) and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(args.settle)
        runnable = []
        for v in VARIANTS:
            why = refusal(c, v)
            results["variants"][v] = {"refused": why, "rounds": []}
            if why:
                log(f"{v}: refused by admission: {why}")
            else:
                runnable.append(v)
        results["load_at_start"] = load_avg()
        try:
            for r in range(args.rounds):
                for v in runnable:
                    log(f"round {r + 1}/{args.rounds} {v} (load {load_avg()})")
                    figures = one_round(session, c, nodes, v, args.pods, args.timeout)
                    log(f"  {figures}")
                    results["variants"][v]["rounds"].append(figures)
        finally:
            set_unschedulable(c, nodes, False)
        results["load_after"] = load_avg()
        c.close()

    base = results["variants"]["baseline"]["rounds"]
    base_med = statistics.median(x["pods_per_s"] for x in base) if base else None
    print(f"\nScheduling throughput, {args.pods} pending pods on {args.nodes} nodes ({results['cpus']} CPUs, "
          f"load {results['load_before']} before the lab, {results['load_at_start']} at the start, "
          f"{results['load_after']} at the end); median of {args.rounds} rounds\n")
    print("| variant | pods bound/s (median) | rounds (pods/s) | last bind (s) | pods per node min-max "
          "| / baseline |")
    print("|---|---:|---|---:|---:|---:|")
    for v, res in results["variants"].items():
        if res["refused"]:
            print(f"| {v} | refused by admission | | | | |")
            continue
        rounds = res["rounds"]
        med = statistics.median(x["pods_per_s"] for x in rounds)
        res["median_pods_per_s"] = med
        spread = f"{min(x['per_node_min'] for x in rounds)}-{max(x['per_node_max'] for x in rounds)}"
        per_round = ", ".join(f"{x['pods_per_s']:.0f}" for x in rounds)
        print(f"| {v} | {med:.0f} | {per_round} "
              f"| {statistics.median(x['last_bind_s'] for x in rounds):.2f} | {spread} "
              f"| {med / base_med:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
