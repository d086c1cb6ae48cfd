"""Benchmark: the pod network and Services, per backend (host-gw, then vxlan), with real pods.

For each backend it starts its own 3-node lab (random prefix and subnet), then measures:
  1. TCP throughput pod -> pod across nodes, through the ClusterIP vs straight to the
     server pod's IP (same pods, same run): `dd if=/dev/zero bs=64k count=N | nc IP 5001`
     in the client pod (node1) to `nc -ll -p 5001 -e dd of=/dev/null bs=64k` in the server pod
     (node2), timed inside the pod with /proc/uptime (10 ms ticks; N is calibrated so a
     transfer takes about 2.5 s); median of --rounds; ratio ClusterIP/direct (aim >= 0.95);
  2. connection rate (median of --rounds, interleaved): --conns sequential HTTP/1.0 requests with busybox nc to busybox httpd
     in the server pod, ClusterIP vs direct (each includes an nc fork+exec, as in any shell
     loop); connections/s and the ratio;
  3. rule propagation: a Deployment behind a Service scaled 3 -> 4 and back, --prop-rounds
     times; per node a thread polls `iptables-save -t nat` in the node's netns every ~20 ms
     for the service's DNAT destinations; reported: scale command -> new endpoint in the
     rules of ALL nodes (includes pod start and readiness), Endpoints object changed -> rules
     on all nodes (the proxy's own part), and scale down -> endpoint gone on all nodes;
  4. DNS: --lookups `nslookup <svc>` in a loop inside the client pod, total / N, next to a
     loop of `true` and a loop of `busybox true` (process start) for comparison.

The lab is torn down after each backend, also on errors, Ctrl-C and SIGTERM.

    .venv/bin/python bench/network_services.py [--backends host-gw,vxlan] [--rounds 3]
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import yaml  # noqa: E402

from skiff.lab.lab import Lab  # noqa: E402
from skiff.lab.netlab import pick_free_prefix_and_subnet  # noqa: E402

SKIFF = [sys.executable, "-m", "skiff.cli.main"]
NS = "bench-net"
IMAGE = "skiff/busybox:latest"
HTTPD = ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"]


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


class Cli:
    def __init__(self, lab_dir, config):
        self.lab_dir = lab_dir
        self.env = dict(os.environ, SKIFF_CONFIG=config)

    def run(self, *args, input=None, timeout=120, check=True):
        r = subprocess.run(SKIFF + [str(a) for a in args], env=self.env, input=input, capture_output=True,
                           text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"skiff {' '.join(map(str, args))} failed rc={r.returncode}: "
                               f"stdout={r.stdout[-1000:]!r} stderr={r.stderr[-1000:]!r}")
        return r.stdout

    def json(self, *args):
        return json.loads(self.run(*args, "-o", "json"))

    def sh(self, pod, script, timeout=300):
        return self.run("exec", "-n", NS, pod, "--", "sh", "-c", script, timeout=timeout)


def container(name, command, **extra):
    return {"name": name, "image": IMAGE, "imagePullPolicy": "Never", "command": command, **extra}


def manifests():
    server = {"apiVersion": "v1", "kind": "Pod",
              "metadata": {"name": "server", "namespace": NS, "labels": {"app": "server"}},
              "spec": {"nodeName": "node2", "terminationGracePeriodSeconds": 1, "containers": [
                  container("sink", ["nc", "-ll", "-p", "5001", "-e", "dd", "of=/dev/null", "bs=64k"],
                            ports=[{"name": "sink", "containerPort": 5001}]),
                  container("httpd", HTTPD, ports=[{"name": "http", "containerPort": 8080}],
                            readinessProbe={"tcpSocket": {"port": 8080}, "periodSeconds": 1})]}}
    client = {"apiVersion": "v1", "kind": "Pod",
              "metadata": {"name": "client", "namespace": NS, "labels": {"app": "client"}},
              "spec": {"nodeName": "node1", "terminationGracePeriodSeconds": 1,
                       "containers": [container("c", ["sleep", "100000"])]}}
    prop = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "prop", "namespace": NS},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "prop"}},
                     "template": {"metadata": {"labels": {"app": "prop"}},
                                  "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                                      container("httpd", HTTPD, ports=[{"name": "http", "containerPort": 8080}],
                                                readinessProbe={"tcpSocket": {"port": 8080},
                                                                "periodSeconds": 1})]}}}}

    def svc(name, app, ports):
        return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS},
                "spec": {"selector": {"app": app}, "ports": ports}}

    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
            svc("server", "server", [{"name": "sink", "port": 5001, "targetPort": 5001},
                                     {"name": "http", "port": 80, "targetPort": 8080}]),
            svc("prop", "prop", [{"name": "http", "port": 80, "targetPort": 8080}]),
            server, client, prop]


def pods(cli, selector):
    items = cli.json("get", "po", "-n", NS, "-l", selector)["items"]
    out = {}
    for p in items:
        st = p.get("status", {})
        if p["metadata"].get("deletionTimestamp") or not st.get("podIP"):
            continue
        if st.get("phase") == "Running":
            out[p["metadata"]["name"]] = (st["podIP"], any(c["type"] == "Ready" and c["status"] == "True"
                                                           for c in st.get("conditions", [])))
    return out


def wait(pred, timeout_s, what, every_s=0.5):
    deadline = time.monotonic() + timeout_s
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(every_s)


UPTIME = "cut -d' ' -f1 /proc/uptime"


def timed(cli, pod, body, timeout=300):
    """Run body in the pod between two /proc/uptime reads; returns (seconds, output)."""
    out = cli.sh(pod, f"echo T0=$({UPTIME}); {body}; echo T1=$({UPTIME})", timeout=timeout)
    t0 = float(re.search(r"T0=([\d.]+)", out).group(1))
    t1 = float(re.search(r"T1=([\d.]+)", out).group(1))
    return t1 - t0, out


def transfer(cli, ip, count):
    secs, out = timed(cli, "client", f"dd if=/dev/zero bs=64k count={count} 2>/dev/null | nc {ip} 5001; "
                                     "echo rc=$?")
    if "rc=0" not in out:
        raise RuntimeError(f"transfer to {ip} failed: {out}")
    return secs


def measure_throughput(cli, direct_ip, cluster_ip, rounds):
    # Calibrate N on the direct path so one transfer takes about 2.5 s.
    count = 200
    for _ in range(4):
        secs = transfer(cli, direct_ip, count)
        if secs >= 1.0:
            break
        count *= 4
    count = max(200, int(count * 2.5 / max(secs, 0.01)))
    mb = count * 65536 / 1e6
    res = {"direct": [], "clusterIP": []}
    for _ in range(rounds):
        for label, ip in (("direct", direct_ip), ("clusterIP", cluster_ip)):
            secs = transfer(cli, ip, count)
            res[label].append(mb / secs)
    log(f"throughput count={count} ({mb:.0f} MB): {res}")
    return count, res


def measure_connrate(cli, ip, port, n):
    body = (f"f=0; i=0; while [ $i -lt {n} ]; do "
            f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {ip} {port} | grep -q . || f=$((f+1)); "
            "i=$((i+1)); done; echo F=$f")
    secs, out = timed(cli, "client", body)
    fails = int(re.search(r"F=(\d+)", out).group(1))
    return n / secs, fails


class RulePoller:
    """One thread per node: every ~20 ms reads the node's nat table and records the set of DNAT
    destinations of the service's endpoint chains, with the time it was read."""

    def __init__(self, netns_paths, label, interval_s=0.02):
        self.pat = re.compile(r'--comment "' + re.escape(label) + r'[^"]*".*-j DNAT --to-destination ([\d.]+):')
        self.interval_s = interval_s
        self.current = {n: (0.0, frozenset()) for n in netns_paths}
        self.read_s = []
        self._stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(n, p), daemon=True)
                        for n, p in netns_paths.items()]
        for t in self.threads:
            t.start()

    def _run(self, node, netns):
        while not self._stop.is_set():
            t = time.monotonic()
            out = subprocess.run(["nsenter", f"--net={netns}", "iptables-save", "-t", "nat"], capture_output=True,
                                 text=True).stdout
            self.current[node] = (time.monotonic(), frozenset(self.pat.findall(out)))
            self.read_s.append(time.monotonic() - t)
            self._stop.wait(self.interval_s)

    def wait_all(self, pred, since, timeout_s=60):
        """Time at which every node's rules (read after `since`) first satisfied pred."""
        first = {}
        deadline = time.monotonic() + timeout_s
        while len(first) < len(self.current):
            for node, (t, ips) in list(self.current.items()):
                if node not in first and t > since and pred(ips):
                    first[node] = t
            if time.monotonic() > deadline:
                raise TimeoutError(f"rules not updated on {set(self.current) - set(first)}: {self.current}")
            time.sleep(0.005)
        return max(first.values())

    def stop(self):
        self._stop.set()
        for t in self.threads:
            t.join(5)


class EndpointsWatcher:
    """A watch on the service's Endpoints (client library, no CLI process start in the way):
    records when each set of ready addresses was first seen."""

    def __init__(self, c, name):
        self.history = []          # (monotonic, frozenset of ips)
        self.cond = threading.Condition()
        items, rv = c.list("endpoints", namespace=NS)
        for ep in items:
            if ep.metadata.name == name:
                self._record(ep)
        self.name = name
        threading.Thread(target=self._run, args=(c, rv), daemon=True).start()

    def _record(self, ep):
        ips = frozenset(a.ip for s in ep.subsets for a in s.addresses)
        with self.cond:
            if not self.history or self.history[-1][1] != ips:
                self.history.append((time.monotonic(), ips))
                self.cond.notify_all()

    def _run(self, c, rv):
        for typ, ep, _ in c.watch("endpoints", namespace=NS, resource_version=rv):
            if ep.metadata.name == self.name and typ != "DELETED":
                self._record(ep)

    def wait(self, pred, since, timeout_s=120):
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while True:
                for t, ips in self.history:
                    if t >= since and pred(ips):
                        return t, ips
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"endpoints not as expected: {self.history[-3:]}")
                self.cond.wait(left)


def scale(c, name, replicas):
    from skiff.client import Conflict
    while True:
        d = c.get("deployments", name, namespace=NS)
        d.spec.replicas = replicas
        try:
            c.update(d)
            return
        except Conflict:
            continue


def measure_propagation(cli, plan, rounds):
    from skiff.client import Client
    c = Client.from_config(config_path=cli.env["SKIFF_CONFIG"])
    poller = RulePoller({m.name: m.netns_path for m in plan.nodes}, f"{NS}/prop:")
    up_total, up_proxy, down_total, down_proxy = [], [], [], []
    try:
        watcher = EndpointsWatcher(c, "prop")
        _, base = watcher.wait(lambda ips: len(ips) == 3, 0)
        poller.wait_all(lambda ips: ips == base, time.monotonic())
        for r in range(rounds):
            t0 = time.monotonic()
            scale(c, "prop", 4)
            t_ep, eps = watcher.wait(lambda ips: len(ips) == 4, t0)
            new = eps - base
            t_rules = poller.wait_all(lambda ips: new <= ips, t0)
            up_total.append(t_rules - t0)
            up_proxy.append(t_rules - t_ep)
            t0 = time.monotonic()
            scale(c, "prop", 3)
            t_ep, base = watcher.wait(lambda ips: len(ips) == 3, t0)
            gone = eps - base
            t_rules = poller.wait_all(lambda ips: not (gone & ips) and len(ips) == 3, t0)
            down_total.append(t_rules - t0)
            down_proxy.append(t_rules - t_ep)
            log(f"propagation round {r + 1}: up {up_total[-1]:.2f}s (ep->rules {up_proxy[-1]:.2f}s), "
                f"down {down_total[-1]:.2f}s (ep->rules {down_proxy[-1]:.2f}s)")
            # Let the scaled-down pod finish terminating before the next round.
            wait(lambda: len(pods(cli, "app=prop")) == 3, 60, "3 prop pods")
    finally:
        poller.stop()
        c.close()
    return {"up_total": up_total, "up_ep_to_rules": up_proxy, "down_total": down_total,
            "down_ep_to_rules": down_proxy, "iptables_save_read_s": statistics.median(poller.read_s or [0])}


def measure_dns(cli, n):
    # busybox nslookup asks A and AAAA and walks the search list for the AAAA (NODATA) too:
    # it prints the A answer and still exits 1 ("can't find server.cluster.local"), so the
    # short-name loop checks the answer text instead of the exit status.
    out = cli.sh("client", "cat /etc/resolv.conf; nslookup server; echo rc=$?")
    log(f"resolv.conf + one lookup:\n{out}")
    res = {}
    for label, cmd in (("nslookup server", "nslookup server 2>&1 | grep -q 'Address: 10\\.' || f=$((f+1))"),
                       ("nslookup server (no output check)", "nslookup server >/dev/null 2>&1"),
                       ("nslookup server.bench-net.svc.cluster.local",
                        "nslookup server.bench-net.svc.cluster.local >/dev/null 2>&1 || f=$((f+1))"),
                       ("nslookup node2.lab (forwarded to the lab resolver)",
                        "nslookup node2.lab 2>&1 | grep -q 'Address: 10\\.' || f=$((f+1))"),
                       ("busybox true (process start)", "busybox true"),
                       ("true (shell builtin)", "true")):
        secs, out = timed(cli, "client", f"f=0; i=0; while [ $i -lt {n} ]; do {cmd}; i=$((i+1)); done; echo F=$f")
        res[label] = (secs / n, int(re.search(r"F=(\d+)", out).group(1)))
    return res


def run_backend(backend, args):
    root = tempfile.mkdtemp(prefix=f"skiff-bench-net-{backend}-")
    cli = Cli(os.path.join(root, "lab"), os.path.join(root, "config"))
    prefix, subnet = pick_free_prefix_and_subnet()
    r = {"backend": backend}
    try:
        log(f"{backend}: lab up prefix={prefix} subnet={subnet}")
        t0 = time.monotonic()
        cli.run("lab", "up", "--nodes", 3, "--lab-dir", cli.lab_dir, "--prefix", prefix, "--subnet", subnet,
                "--network", backend, timeout=600)
        r["lab_up_s"] = time.monotonic() - t0
        plan = Lab(cli.lab_dir).plan()
        cli.run("apply", "-f", "-", input=yaml.safe_dump_all(manifests()))
        wait(lambda: (lambda s, c, p: s and s["server"][1] and c and len(p) == 3 and all(v[1] for v in p.values()))(
            pods(cli, "app=server"), pods(cli, "app=client"), pods(cli, "app=prop")), 180, "pods ready")
        server_ip = pods(cli, "app=server")["server"][0]
        svc = cli.json("get", "svc", "server", "-n", NS)
        cluster_ip = svc["spec"]["clusterIP"]
        r["server_ip"], r["cluster_ip"] = server_ip, cluster_ip
        log(f"{backend}: server pod {server_ip}, ClusterIP {cluster_ip}")
        # The ClusterIP path must work before it is timed.
        wait(lambda: "rc=0" in cli.sh("client", f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {cluster_ip} 80 "
                                                "| grep -q server; echo rc=$?"), 60, "ClusterIP answering")
        r["count"], r["tput"] = measure_throughput(cli, server_ip, cluster_ip, args.rounds)
        # Interleaved rounds, median: the machine's load moves a lot between two 3 s windows.
        rates = {"direct": [], "clusterIP": []}
        fails = {"direct": 0, "clusterIP": 0}
        for _ in range(args.rounds):
            for label, ip, port in (("direct", server_ip, 8080), ("clusterIP", cluster_ip, 80)):
                rate, failed = measure_connrate(cli, ip, port, args.conns)
                rates[label].append(rate)
                fails[label] += failed
        r["conn"] = {k: (statistics.median(v), fails[k], v) for k, v in rates.items()}
        log(f"conn rate: {r['conn']}")
        r["prop"] = measure_propagation(cli, plan, args.prop_rounds)
        r["dns"] = measure_dns(cli, args.lookups)
        log(f"dns: {r['dns']}")
    except BaseException as e:
        r["error"] = f"{type(e).__name__}: {e}"
        log(f"{backend}: FAILED {r['error']}")
        logs = os.path.join(cli.lab_dir, "logs")
        if os.path.isdir(logs):
            keep = os.path.join(tempfile.gettempdir(), f"skiff-bench-net-logs-{backend}-{int(time.time())}")
            shutil.copytree(logs, keep, dirs_exist_ok=True)
            log(f"{backend}: lab logs copied to {keep}")
        if isinstance(e, KeyboardInterrupt):
            raise
    finally:
        if args.keep:
            log(f"lab kept: {cli.lab_dir}")
        else:
            log(f"{backend}: lab down")
            subprocess.run(SKIFF + ["lab", "down", "--lab-dir", cli.lab_dir], env=cli.env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            shutil.rmtree(root, ignore_errors=True)
    return r


def report(results, args):
    cols = [r["backend"] for r in results]
    rows = []

    def row(label, fn):
        cells = []
        for r in results:
            try:
                cells.append(fn(r))
            except (KeyError, TypeError, ValueError, ZeroDivisionError):
                cells.append("n/a")
        rows.append(f"| {label} | " + " | ".join(cells) + " |")

    med = statistics.median
    row("lab up (s)", lambda r: f"{r['lab_up_s']:.1f}")
    row("transfer size (MB, 64 KiB blocks)", lambda r: f"{r['count'] * 65536 / 1e6:.0f}")
    row(f"TCP throughput direct pod IP, median of {args.rounds} (MB/s)",
        lambda r: f"{med(r['tput']['direct']):.0f} ({', '.join(f'{v:.0f}' for v in r['tput']['direct'])})")
    row(f"TCP throughput via ClusterIP, median of {args.rounds} (MB/s)",
        lambda r: f"{med(r['tput']['clusterIP']):.0f} ({', '.join(f'{v:.0f}' for v in r['tput']['clusterIP'])})")
    row("throughput ratio ClusterIP/direct (aim >= 0.95)",
        lambda r: f"{med(r['tput']['clusterIP']) / med(r['tput']['direct']):.2f}")
    for key, what in (("direct", "direct"), ("clusterIP", "via ClusterIP")):
        row(f"connections/s {what}, {args.conns} sequential nc, median of {args.rounds} (all; failed)",
            lambda r, key=key: f"{r['conn'][key][0]:.0f} ({', '.join(f'{v:.0f}' for v in r['conn'][key][2])}; "
                               f"{r['conn'][key][1]})")
    row("connection rate ratio ClusterIP/direct",
        lambda r: f"{r['conn']['clusterIP'][0] / r['conn']['direct'][0]:.2f}")
    n = args.prop_rounds
    row(f"scale 3->4 -> new endpoint in rules on all nodes, p50 / p99 (s), {n} rounds",
        lambda r: f"{pct(r['prop']['up_total'], 50):.2f} / {pct(r['prop']['up_total'], 99):.2f}")
    row("  of which Endpoints updated -> rules on all nodes, p50 / p99 (s) (aim p99 <= 1)",
        lambda r: f"{pct(r['prop']['up_ep_to_rules'], 50):.2f} / {pct(r['prop']['up_ep_to_rules'], 99):.2f}")
    row("scale 4->3 -> endpoint gone from rules on all nodes, p50 / p99 (s)",
        lambda r: f"{pct(r['prop']['down_total'], 50):.2f} / {pct(r['prop']['down_total'], 99):.2f}")
    row("  of which Endpoints updated -> rules on all nodes, p50 / p99 (s)",
        lambda r: f"{pct(r['prop']['down_ep_to_rules'], 50):.2f} / {pct(r['prop']['down_ep_to_rules'], 99):.2f}")
    row("iptables-save -t nat read, median (ms) (poll granularity)",
        lambda r: f"{r['prop']['iptables_save_read_s'] * 1000:.0f}")
    for key in ("nslookup server", "nslookup server (no output check)", "nslookup server.bench-net.svc.cluster.local",
                "nslookup node2.lab (forwarded to the lab resolver)",
                "busybox true (process start)", "true (shell builtin)"):
        row(f"`{key}` per iteration, {args.lookups} in a loop (ms) (failed)",
            lambda r, key=key: f"{r['dns'][key][0] * 1000:.1f} ({r['dns'][key][1]})")
    print("\n| metric | " + " | ".join(cols) + " |")
    print("|---|" + "---:|" * len(cols))
    print("\n".join(rows))
    for r in results:
        if "error" in r:
            print(f"\n{r['backend']}: FAILED: {r['error']}")
    print(f"\nCPUs: {os.cpu_count()}, load average at the end: {os.getloadavg()}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", default="host-gw,vxlan")
    ap.add_argument("--rounds", type=int, default=3, help="throughput rounds per path")
    ap.add_argument("--conns", type=int, default=200)
    ap.add_argument("--prop-rounds", type=int, default=10)
    ap.add_argument("--lookups", type=int, default=100)
    ap.add_argument("--json", help="write raw results here")
    ap.add_argument("--keep", action="store_true", help="leave each lab up (for debugging)")
    args = ap.parse_args()

    def on_term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_term)
    results = []
    for backend in args.backends.split(","):
        results.append(run_backend(backend, args))
    report(results, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=list)
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
