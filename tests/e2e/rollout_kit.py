"""What the rollout e2e test and bench/rollout.py share: the web Deployment behind a
ClusterIP with a client pod on another node, a second image tag made without a
registry, a client loop that counts failed requests, and a sampler of pod counts
fed by a watch.

- The web pods run busybox httpd (answers its pod name; it stops at once on SIGTERM, as
  an application should) with a tcpSocket readiness probe every second, optionally a
  preStop `sleep`, and never on node1; the client
  pod runs on node1, so every request crosses nodes through the Service rules.
- The "new version" is the same busybox image under another tag
  (`skiff/busybox:v2`), written as a docker-save archive and streamed to every node
  with `skiff lab load`, as a user would load an image they built.
- ClientLoop runs an HTTP GET (busybox nc) against the ClusterIP in a loop inside the
  client pod (`skiff exec`), one request at a time, 2 s timeout each, until told to
  stop; a line per request ("ok <pod>" / "fail <error>").
- PodSampler watches the Deployment's pods and after every event records how many
  are active (no deletionTimestamp, not finished) and how many of those are Ready:
  the figures maxSurge and maxUnavailable bound.
"""

import io
import json
import os
import tarfile
import threading
import time

from skiff.lab import images

V1, V2 = "skiff/busybox:latest", "skiff/busybox:v2"
# httpd runs under a shell that stops it on SIGTERM: as PID 1 of its container httpd itself
# would ignore SIGTERM (no handler) and serve on until the grace period's SIGKILL, which
# would hide every termination race this kit is there to measure.
SERVER = ["sh", "-c", "hostname > /tmp/index.html; httpd -f -p 8080 -h /tmp & pid=$!; "
          "trap 'kill $pid; exit 0' TERM; wait $pid"]


def retagged_busybox(path: str, tag: str = V2) -> str:
    """Write the lab's busybox image as a docker-save archive tagged `tag`; returns path."""
    src = tarfile.open(fileobj=io.BytesIO(images.busybox_archive()))
    repo, _, version = tag.partition(":")
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as out:
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else None
            if member.name == "manifest.json":
                manifest = json.loads(data)
                manifest[0]["RepoTags"] = [tag]
                data = json.dumps(manifest).encode()
            elif member.name == "repositories":
                layer = next(iter(next(iter(json.loads(data).values())).values()))
                data = json.dumps({repo: {version: layer}}).encode()
            if data is not None:
                member.size = len(data)
                out.addfile(member, io.BytesIO(data))
            else:
                out.addfile(member)
    return path


def web_manifests(ns: str, replicas: int, surge, unavailable, pre_stop_s: int = 0, grace_s: int = 10,
                  name: str = "web") -> list:
    """Namespace, the web Deployment, its ClusterIP Service and the client pod on node1."""
    container = {"name": "httpd", "image": V1, "imagePullPolicy": "Never", "command": SERVER,
                 "ports": [{"name": "http", "containerPort": 8080}],
                 "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}
    if pre_stop_s:
        container["lifecycle"] = {"preStop": {"exec": {"command": ["sleep", str(pre_stop_s)]}}}
    web = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
           "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                    "strategy": {"type": "RollingUpdate",
                                 "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
                    "template": {"metadata": {"labels": {"app": name}},
                                 "spec": {"terminationGracePeriodSeconds": grace_s,
                                          "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                                              "nodeSelectorTerms": [{"matchExpressions": [{
                                                  "key": "kubernetes.io/hostname", "operator": "NotIn",
                                                  "values": ["node1"]}]}]}}},
                                          "containers": [container]}}}}
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
           "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}
    client = {"apiVersion": "v1", "kind": "Pod",
              "metadata": {"name": "client", "namespace": ns, "labels": {"app": "client"}},
              "spec": {"nodeName": "node1", "terminationGracePeriodSeconds": 1,
                       "containers": [{"name": "c", "image": V1, "imagePullPolicy": "Never",
                                       "command": ["sleep", "100000"]}]}}
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}, web, svc, client]


def loop_script(ip: str, prefix: str = "web-", stop_file: str = "/tmp/stop") -> str:
    """One HTTP request at a time with busybox nc (its wget -T crashes in Debian's static
    busybox); an answer is good when its last line is a pod name starting with prefix."""
    return (f"rm -f {stop_file}; while [ ! -f {stop_file} ]; do "
            f"r=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {ip} 80 2>&1 | tail -n 1); "
            f"case \"$r\" in {prefix}*) echo \"ok $r\";; *) echo \"fail $r\";; esac; "
            "done; echo finished")


class ClientLoop:
    """Requests from the client pod to ip:80 until stop(); counts ok and failed ones."""

    def __init__(self, popen, run, ns: str, ip: str):
        """popen(*args) / run(*args): start / run a `skiff` command (the e2e Cli or the bench's)."""
        self._run, self.ns = run, ns
        self.ok, self.failed, self.errors = 0, 0, []
        self.answered_by = set()
        self.proc = popen("exec", "-n", ns, "client", "--", "sh", "-c", loop_script(ip))
        self.finished = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            line = line.strip()
            if line.startswith("ok "):
                self.ok += 1
                self.answered_by.add(line[3:])
            elif line.startswith("fail"):
                self.failed += 1
                self.errors.append((time.monotonic(), line[5:]))
            elif line == "finished":
                self.finished.set()
        self.finished.set()

    def wait_requests(self, n: int, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while self.ok + self.failed < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"client loop made {self.ok + self.failed} requests, wanted {n}")
            self.finished.wait(0.1)

    def stop(self, timeout_s: float = 30) -> tuple:
        self._run("exec", "-n", self.ns, "client", "--", "touch", "/tmp/stop")
        self.finished.wait(timeout_s)
        try:
            self.proc.wait(timeout=10)
        except Exception:  # noqa: BLE001 - a stuck exec stream: end it
            self.proc.kill()
        return self.ok, self.failed


def _ready(pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


def _active(pod) -> bool:
    return not pod.metadata.deletion_timestamp and pod.status.phase not in ("Succeeded", "Failed")


class PodSampler:
    """Watches pods of `selector` in ns; after every event: (active pods, ready active pods)."""

    def __init__(self, client, ns: str, selector: str):
        items, rv = client.list("pods", ns, label_selector=selector)
        self.pods = {p.metadata.uid: p for p in items}
        self.samples = [self._sample()]
        self.drops = []     # (event, pod, why) for every event that lowered the ready count
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(client, ns, selector, rv), daemon=True)
        self.thread.start()

    def _sample(self) -> tuple:
        active = [p for p in self.pods.values() if _active(p)]
        return len(active), sum(1 for p in active if _ready(p))

    def _run(self, client, ns, selector, rv):
        for typ, pod, _ in client.watch("pods", ns, label_selector=selector, resource_version=rv):
            if self._stop.is_set():
                return
            before = self.pods.get(pod.metadata.uid)
            if typ == "DELETED":
                self.pods.pop(pod.metadata.uid, None)
            else:
                self.pods[pod.metadata.uid] = pod
            sample = self._sample()
            if sample[1] < self.samples[-1][1]:
                why = "deleted" if pod.metadata.deletion_timestamp and before is not None \
                    and not before.metadata.deletion_timestamp else "not ready"
                self.drops.append((typ, pod.metadata.name, why, sample))
            self.samples.append(sample)

    def stop(self):
        self._stop.set()

    @property
    def most_pods(self) -> int:
        return max(s[0] for s in self.samples)

    @property
    def fewest_ready(self) -> int:
        return min(s[1] for s in self.samples)


def cluster_ip(client, ns: str, name: str) -> str:
    return client.get("services", name, ns).spec.cluster_ip


def env_with_root(env: dict) -> dict:
    """env with this checkout first on PYTHONPATH (the CLI subprocesses run this code)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return dict(env, PYTHONPATH=os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p))
