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
import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
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


class EndpointsLeaving:
    """Watches the Service's Endpoints; the wall time each pod left its ready addresses."""

    def __init__(self, c, ns, name):
        items, rv = c.list("endpoints", ns, field_selector=f"metadata.name={name}")
        self.current = self._names(items[0]) if items else set()
        self.left = {}
        self._stop = threading.Event()
        threading.Thread(target=self._run, args=(c, ns, name, rv), daemon=True).start()

    @staticmethod
    def _names(ep):
        return {a.target_ref.name for s in ep.subsets for a in s.addresses}

    def _run(self, c, ns, name, rv):
        for typ, ep, _ in c.watch("endpoints", ns, resource_version=rv, field_selector=f"metadata.name={name}"):
            if self._stop.is_set():
                return
            now = time.time()
            names = self._names(ep) if typ != "DELETED" else set()
            for gone in self.current - names:
                self.left.setdefault(gone, now)
            self.current = names

    def stop(self):
        self._stop.set()


_LOG_TIME = re.compile(r"^time=(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def _log_time(line):
    m = _LOG_TIME.match(line)
    return datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp() if m else None


def sigterm_margins(lab_dir, ns, left) -> list:
    """Per old pod: when its stop began minus when the client's node (node1) had rules without it.

    From the agents' logs (one host, one clock): the first `proxy_rules_applied` of node1 after
    the pod left the Endpoints (watched), and on the pod's node `container_stopped` minus its
    duration_s (the stop began then, just before the Killing event: the preStop hook, else
    SIGTERM). Positive: the rules were first."""
    logs = os.path.join(lab_dir, "logs")
    applied = []
    stops = {}
    for fname in sorted(os.listdir(logs)):
        if not fname.endswith("-agent.log"):
            continue
        with open(os.path.join(logs, fname), errors="replace") as f:
            for line in f:
                t = _log_time(line)
                if t is None:
                    continue
                if fname == "node1-agent.log" and "event=proxy_rules_applied" in line:
                    applied.append(t)
                m = re.search(rf"event=container_stopped pod={re.escape(ns)}/(\S+) container=httpd .* "
                              r"duration_s=([0-9.]+)", line)
                if m:
                    stops[m.group(1)] = t - float(m.group(2))
    margins = []
    for pod, t_left in left.items():
        if pod not in stops:
            continue
        rules = next((t for t in applied if t >= t_left), None)
        if rules is not None:
            margins.append(round(stops[pod] - rules, 3))
    return margins


def run_variant(cli, c, slug, name, replicas, pre_stop_s, lab_dir) -> dict:
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
    leaving = EndpointsLeaving(c, ns, "web")
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
        leaving.stop()
    time.sleep(1.0)   # the agents' log lines of the last stops
    margins = sigterm_margins(lab_dir, ns, leaving.left)
    result = {"variant": name, "replicas": replicas, "pre_stop_s": pre_stop_s, "rollout_s": round(took, 1),
              "requests": ok + failed, "failed": failed, "failed_during_rollout": during[1],
              "most_pods": sampler.most_pods, "fewest_ready": sampler.fewest_ready,
              "errors": sorted({e for _, e in loop.errors})[:5], "ready_drops": sampler.drops[:10],
              "sigterm_after_rules_s": margins}
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
    print("\nThe container's stop began (the preStop hook, else SIGTERM) this long after the client node's "
          "rules dropped the pod (s; negative: the stop came first):")
    for r in results:
        m = r["sigterm_after_rules_s"]
        if m:
            print(f"- {r['variant']}: {len(m)} pods, min {min(m):.3f}, median {statistics.median(m):.3f}, "
                  f"max {max(m):.3f}, the stop first for {sum(1 for x in m if x < 0)}")
        else:
            print(f"- {r['variant']}: n/a (no matching log lines)")
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
        results = [run_variant(cli, c, "prestop", "preStop 2 s", args.replicas, 2, session.lab_dir),
                   run_variant(cli, c, "no-prestop", "no preStop", args.replicas, 0, session.lab_dir)]
        c.close()
    report(results, args, started_load, args.nodes)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
