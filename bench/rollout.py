"""Rolling update of a 30-replica Deployment on a lab of its own: how long it takes and how many
client requests fail during it, with and without a preStop sleep.

Each variant gets a fresh namespace with the web Deployment (busybox httpd, tcpSocket
readiness probe every 1 s, never on node1), a ClusterIP Service and a client pod on node1
(tests/e2e/rollout_kit.py). Once every replica is available, the client pod calls the
ClusterIP in a loop (one wget at a time, 2 s timeout) and a watch samples the pod counts;
then `skiff set image` starts the rollout and `skiff rollout status` waits for its end.
The time is from `set image` to `rollout status` returning. Strategy: maxSurge 25 %
(8 of 30), maxUnavailable 0.

Variants: `preStop 2 s` (the container sleeps 2 s after its pod is deleted, so every
node's Service rules can drop it before it stops) and `no preStop` (SIGTERM at once: the
requests that fail are the ones that reach a pod between its deletion and the rules
update). A benchmark: it reports, it never fails on a figure.

    sudo .venv/bin/python bench/rollout.py [--replicas 30] [--keep] [--json FILE]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.labkit import SKIFF, LabSession, install_sigterm, load_avg, log  # noqa: E402
from tests.e2e.rollout_kit import V2, ClientLoop, PodSampler, cluster_ip, retagged_busybox, web_manifests  # noqa: E402

import yaml  # noqa: E402


class Cli:
    def __init__(self, env):
        self.env = env

    def run(self, *args, input=None, timeout=600):
        r = subprocess.run(SKIFF + [str(a) for a in args], input=input, capture_output=True, text=True,
                           env=self.env, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"skiff {' '.join(map(str, args))} failed: {r.stdout}{r.stderr}")
        return r.stdout

    def popen(self, *args):
        return subprocess.Popen(SKIFF + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=self.env)


def run_variant(cli, c, slug, name, replicas, pre_stop_s) -> dict:
    ns = f"bench-{slug}"
    cli.run("apply", "-f", "-", input=yaml.safe_dump_all(web_manifests(ns, replicas, "25%", 0, pre_stop_s=pre_stop_s)))
    cli.run("rollout", "status", "deployment/web", "-n", ns, "--timeout", "10m", timeout=700)
    deadline = time.monotonic() + 120
    while c.get("pods", "client", ns).status.phase != "Running":
        if time.monotonic() > deadline:
            raise TimeoutError("client pod not running")
        time.sleep(0.5)
    loop = ClientLoop(cli.popen, cli.run, ns, cluster_ip(c, ns, "web"))
    sampler = PodSampler(c, ns, "app=web")
    try:
        loop.wait_requests(20)
        log(f"{name}: rolling out {replicas} replicas")
        t0 = time.monotonic()
        cli.run("set", "image", "deployment/web", "-n", ns, f"httpd={V2}")
        cli.run("rollout", "status", "deployment/web", "-n", ns, "--timeout", "10m", timeout=700)
        took = time.monotonic() - t0
        during = (loop.ok, loop.failed)
        loop.wait_requests(loop.ok + loop.failed + 20)
    finally:
        ok, failed = loop.stop()
        sampler.stop()
    result = {"variant": name, "replicas": replicas, "pre_stop_s": pre_stop_s, "rollout_s": round(took, 1),
              "requests": ok + failed, "failed": failed, "failed_during_rollout": during[1],
              "most_pods": sampler.most_pods, "fewest_ready": sampler.fewest_ready,
              "errors": sorted({e for _, e in loop.errors})[:5], "ready_drops": sampler.drops[:10]}
    log(f"{name}: {result}")
    cli.run("delete", "namespace", ns)
    return result


def report(results, args, started_load, nodes):
    surge = -(-args.replicas * 25 // 100)
    print(f"\n## Rolling update of {args.replicas} replicas (maxSurge 25 % = {surge}, maxUnavailable 0), "
          f"{nodes} nodes, {os.cpu_count()} CPUs, load {started_load} -> {load_avg()}\n")
    print("| variant | rollout time | requests | failed | most pods (limit) | fewest ready (limit) |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['variant']} | {r['rollout_s']} s | {r['requests']} | {r['failed']} | "
              f"{r['most_pods']} ({args.replicas + surge}) | {r['fewest_ready']} ({args.replicas}) |")
    for r in results:
        if r["errors"]:
            print(f"\n{r['variant']}: errors seen: {'; '.join(r['errors'])}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--replicas", type=int, default=30)
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--keep", action="store_true", help="keep the lab afterwards")
    p.add_argument("--json", default=None, help="write the raw results here")
    args = p.parse_args()
    install_sigterm()
    started_load = load_avg()
    with LabSession("rollout", keep=args.keep) as session:
        log(f"lab up: {session.up(args.nodes):.1f} s")
        cli = Cli(session.env)
        with tempfile.TemporaryDirectory(prefix="skiff-bench-img-") as tmp:
            cli.run("lab", "load", retagged_busybox(os.path.join(tmp, "v2.tar")), "--lab-dir", session.lab_dir)
        c = session.client()
        results = [run_variant(cli, c, "prestop", "preStop 2 s", args.replicas, 2),
                   run_variant(cli, c, "no-prestop", "no preStop", args.replicas, 0)]
        c.close()
    report(results, args, started_load, args.nodes)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
