"""Benchmark: a DaemonSet rollout on a lab of N nodes (default 20), and template updates.

Starts its own lab (root; `skiff lab up --nodes N`, removed on exit), then prints:
  1. create -> a pod Running on every node (first, p50 and last node);
  2. a template update with maxUnavailable 1 (Kubernetes' default: one node at a time)
     -> every node runs a Running pod of the new template, none of the old;
  3. the same with maxUnavailable 25% (rounded up: ceil(N / 4) nodes at a time);
  4. a template update with maxSurge 1 / maxUnavailable 0 (new pod first, old one after).
Pods are busybox `sleep` with terminationGracePeriodSeconds 1 and no readiness probe
(Ready as soon as the container runs), so the figures are the controller's pacing plus
pod start and stop, not an application's.

    .venv/bin/python bench/daemonset.py [--nodes 20] [--json FILE] [--keep]
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from labkit import LabSession, install_sigterm, load_avg, log, pct, running  # noqa: E402

from skiff import client as clientmod  # noqa: E402
from skiff.api import objects_pb2 as pb  # noqa: E402
from skiff.lab import images  # noqa: E402

HASH = "controller-revision-hash"


def daemonset(version: str) -> pb.DaemonSet:
    ds = pb.DaemonSet(metadata=pb.ObjectMeta(name="bench", namespace="default"))
    ds.spec.selector.match_labels["app"] = "bench"
    tmpl = ds.spec.template
    tmpl.metadata.labels["app"] = "bench"
    tmpl.spec.termination_grace_period_seconds = 1
    c = tmpl.spec.containers.add(name="app", image=images.BUSYBOX_IMAGE, image_pull_policy="Never",
                                 command=["sleep", "3600"])
    c.env.add(name="VERSION", value=version)
    return ds


def live(c):
    items, _ = c.list("pods", namespace="default", label_selector="app=bench")
    return [p for p in items if not p.metadata.deletion_timestamp]


def wait_rollout(c, nodes, revision_of, timeout_s):
    """Poll every 50 ms until every node has exactly one Running pod of the revision revision_of()
    names (None until the controller has created one) and nothing else runs. Returns
    {node: seconds until its new pod was first seen Running}."""
    t0 = time.monotonic()
    first_seen, created = {}, {}
    while time.monotonic() - t0 < timeout_s:
        pods = live(c)
        rev = revision_of(pods)
        for p in pods:
            if rev and p.metadata.labels.get(HASH) == rev:
                created.setdefault(p.spec.node_name, time.monotonic() - t0)
                if running(p):
                    first_seen.setdefault(p.spec.node_name, time.monotonic() - t0)
        done = (rev is not None and len(pods) == len(nodes)
                and sorted(p.spec.node_name for p in pods) == sorted(nodes)
                and all(p.metadata.labels.get(HASH) == rev and running(p) for p in pods))
        if done:
            starts = [first_seen[n] - created[n] for n in first_seen]
            return first_seen, {"created_all_s": max(created.values()), "start_p50_s": pct(starts, 50),
                                "start_max_s": max(starts)}
        time.sleep(0.05)
    raise TimeoutError(f"rollout not done in {timeout_s}s: {len(first_seen)}/{len(nodes)} nodes")


def update(c, version, unavailable=None, surge=None):
    """Change the template (VERSION) and the rolling-update knobs, compare-and-swap."""
    for _ in range(50):
        ds = c.get("daemonsets", "bench", "default")
        ds.spec.template.spec.containers[0].env[0].value = version
        ru = ds.spec.update_strategy.rolling_update
        if unavailable is not None:
            ru.max_unavailable.Clear()
            if isinstance(unavailable, str):
                ru.max_unavailable.str_val = unavailable
            else:
                ru.max_unavailable.int_val = unavailable
        if surge is not None:
            ru.max_surge.Clear()
            ru.max_surge.int_val = surge
        try:
            return c.update(ds)
        except clientmod.Conflict:
            time.sleep(0.05)
    raise RuntimeError("could not update the DaemonSet")


def new_revision(old: str):
    def revision_of(pods):
        revs = {p.metadata.labels.get(HASH) for p in pods} - {old, None}
        return revs.pop() if len(revs) == 1 else None
    return revision_of


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=20)
    ap.add_argument("--timeout", type=float, default=600.0, help="per phase, seconds")
    ap.add_argument("--settle", type=float, default=20.0,
                    help="seconds to let the freshly started agents settle before the DaemonSet is created")
    ap.add_argument("--json", default="", help="write the raw figures to this file")
    ap.add_argument("--keep", action="store_true", help="leave the lab up")
    args = ap.parse_args()
    install_sigterm()
    results = {"nodes": args.nodes, "cpus": os.cpu_count(), "load_before": load_avg()}
    with LabSession("daemonset", keep=args.keep) as session:
        log(f"lab up --nodes {args.nodes}")
        results["lab up (s)"] = session.up(args.nodes, timeout_s=args.timeout)
        nodes = [m.name for m in session.plan().nodes]
        c = session.client()

        def ready_nodes():
            items, _ = c.list("nodes")
            return [n.metadata.name for n in items
                    if any(cd.type == "Ready" and cd.status == "True" for cd in n.status.conditions)]
        deadline = time.monotonic() + args.timeout
        while sorted(ready_nodes()) != sorted(nodes) and time.monotonic() < deadline:
            time.sleep(0.5)

        time.sleep(args.settle)
        results["load_at_create"] = load_avg()
        log(f"create (load {results['load_at_create']})")
        t = time.monotonic()
        c.create(daemonset("1"))
        seen, split = wait_rollout(c, nodes, lambda pods: next((p.metadata.labels.get(HASH) for p in pods), None),
                                   args.timeout)
        results["create"] = {"first_s": min(seen.values()), "p50_s": pct(list(seen.values()), 50),
                             "all_s": time.monotonic() - t, **split}
        log(f"create: {results['create']}")
        rev = live(c)[0].metadata.labels[HASH]

        phases = (("maxUnavailable 1", "2", 1, 0), ("maxUnavailable 25%", "3", "25%", 0),
                  ("maxSurge 1, maxUnavailable 0", "4", 0, 1))
        for label, version, unavailable, surge in phases:
            log(f"update: {label}")
            t = time.monotonic()
            update(c, version, unavailable, surge)
            seen, split = wait_rollout(c, nodes, new_revision(rev), args.timeout)
            results[f"update {label}"] = {"first_s": min(seen.values()), "p50_s": pct(list(seen.values()), 50),
                                          "all_s": time.monotonic() - t, **split}
            log(f"update {label}: {results[f'update {label}']}")
            rev = live(c)[0].metadata.labels[HASH]
        results["load_after"] = load_avg()
        c.close()

    n = args.nodes
    print(f"\nDaemonSet on {n} nodes ({results['cpus']} CPUs, load {results['load_before']} before the lab, "
          f"{results['load_at_create']} at create, {results['load_after']} at the end; "
          f"lab up {results['lab up (s)']:.0f} s)\n")
    print("| phase | first node Running (s) | half the nodes (s) | all nodes (s) | last new pod created (s) "
          "| pod created -> Running p50 / max (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    for key in ("create", *(k for k in results if k.startswith("update "))):
        r = results[key]
        print(f"| {key} | {r['first_s']:.1f} | {r['p50_s']:.1f} | {r['all_s']:.1f} | {r['created_all_s']:.1f} "
              f"| {r['start_p50_s']:.1f} / {r['start_max_s']:.1f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
