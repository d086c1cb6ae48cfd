"""Deployment rollouts on the real lab, through the CLI: zero downtime during `skiff set
image`, `rollout status|history|undo|pause|resume|restart`. One 3-node lab for the module.

Zero downtime: 6 web replicas (readiness probe, a 2 s preStop sleep, never on node1)
behind a ClusterIP; a client pod on node1 calls it in a loop while `skiff set image`
rolls out a new tag (the same busybox under `skiff/busybox:v2`, loaded with `skiff lab
load`). No request may fail, and the pod counts sampled from a watch stay within
replicas+maxSurge pods and replicas-maxUnavailable ready ones (maxSurge 25% of 6 = 2,
rounded up; maxUnavailable 25% of 6 = 1, rounded down).
"""

import re

import pytest
import yaml

from skiff import client as clientmod
from tests.e2e.conftest import nodes_lab
from tests.e2e.rollout_kit import V1, V2, ClientLoop, PodSampler, cluster_ip, retagged_busybox, web_manifests
from tests.helpers import wait_until

NS = "rollout"
REPLICAS, MAX_SURGE, MAX_UNAVAILABLE = 6, 2, 1


@pytest.fixture(scope="module")
def lab(request, tmp_path_factory):
    with nodes_lab(request, "rollout", 3) as cli:
        archive = retagged_busybox(str(tmp_path_factory.mktemp("rollout-img") / "busybox-v2.tar"))
        cli.run("lab", "load", archive, timeout=180)
        cli.run("apply", "-f", "-", input=yaml.safe_dump_all(
            web_manifests(NS, REPLICAS, "25%", "25%", pre_stop_s=2)))
        cli.run("rollout", "status", "deployment/web", "-n", NS, "--timeout", "3m", timeout=200)
        wait_until(lambda: "Running" in cli.out("get", "pod", "client", "-n", NS), 120, "the client pod running")
        cli.client = clientmod.Client.from_config(config_path=cli.config)
        yield cli
        cli.client.close()


def images_of_pods(lab, selector="app=web"):
    pods, _ = lab.client.list("pods", NS, label_selector=selector)
    return sorted(p.spec.containers[0].image for p in pods if not p.metadata.deletion_timestamp)


def test_set_image_rolls_out_with_zero_downtime(lab):
    loop = ClientLoop(lab.popen, lab.run, NS, cluster_ip(lab.client, NS, "web"))
    sampler = PodSampler(lab.client, NS, "app=web")
    try:
        loop.wait_requests(20)
        assert lab.out("set", "image", "deployment/web", "-n", NS, f"httpd={V2}").strip() == \
            "deployment.apps/web image updated"
        out = lab.out("rollout", "status", "deployment/web", "-n", NS, "--timeout", "3m", timeout=200)
        assert out.strip().splitlines()[-1] == 'deployment "web" successfully rolled out'
        assert re.search(r'Waiting for deployment "web" rollout to finish: \d+ (out of 6 new replicas have been '
                         r'updated|old replicas are pending termination|of 6 updated replicas are available)',
                         out), out
        wait_until(lambda: images_of_pods(lab) == [V2] * REPLICAS, 60, "6 v2 pods, no old one left")
        before_stop = loop.ok
        loop.wait_requests(loop.ok + loop.failed + 20)
    finally:
        ok, failed = loop.stop()
        sampler.stop()
    assert failed == 0, f"{failed} of {ok + failed} requests failed: {loop.errors[:5]}"
    assert ok >= 50 and before_stop > 20, f"only {ok} requests made"
    assert sampler.most_pods <= REPLICAS + MAX_SURGE, \
        f"{sampler.most_pods} pods at once (replicas {REPLICAS} + maxSurge {MAX_SURGE})"
    print(f"requests ok={ok} failed={failed} most_pods={sampler.most_pods} fewest_ready={sampler.fewest_ready} "
          f"samples={len(sampler.samples)}")
    assert sampler.fewest_ready >= REPLICAS - MAX_UNAVAILABLE, \
        f"only {sampler.fewest_ready} ready pods (replicas {REPLICAS} - maxUnavailable {MAX_UNAVAILABLE}): " \
        f"{sampler.drops}"
    assert len(sampler.samples) > 20, "the watch saw the rollout"


def test_history_undo_and_revisions(lab):
    """After the first test: revision 1 (v1) and 2 (v2). Undo goes back to v1 as revision 3,
    reusing the first ReplicaSet; --to-revision 2 brings v2 back."""
    out = lab.out("rollout", "history", "deployment/web", "-n", NS)
    lines = out.strip().splitlines()
    assert lines[0] == "deployment.apps/web"
    assert re.split(r"\s{2,}", lines[1]) == ["REVISION", "CHANGE-CAUSE"]
    assert [line.split()[0] for line in lines[2:]] == ["1", "2"]
    rss_before = {r.metadata.name for r in lab.client.list("replicasets", NS)[0]}

    assert lab.out("rollout", "undo", "deployment/web", "-n", NS).strip() == "deployment.apps/web rolled back"
    lab.run("rollout", "status", "deployment/web", "-n", NS, "--timeout", "3m", timeout=200)
    wait_until(lambda: images_of_pods(lab) == [V1] * REPLICAS, 60, "back to v1")
    d = lab.client.get("deployments", "web", NS)
    assert d.metadata.annotations["deployment.kubernetes.io/revision"] == "3"
    assert {r.metadata.name for r in lab.client.list("replicasets", NS)[0]} == rss_before
    lines = lab.out("rollout", "history", "deployment/web", "-n", NS).strip().splitlines()
    assert [line.split()[0] for line in lines[2:]] == ["2", "3"]

    out = lab.out("rollout", "undo", "deployment/web", "-n", NS, "--to-revision", "3")
    assert out.strip() == "deployment.apps/web skipped rollback (current template already matches revision 3)"
    r = lab.run("rollout", "undo", "deployment/web", "-n", NS, "--to-revision", "9", check=False)
    assert r.returncode == 1 and "unable to find specified revision 9 in history" in r.stderr
    shown = lab.out("rollout", "history", "deployment/web", "-n", NS, "--revision", "2")
    assert "deployment.apps/web with revision #2" in shown and f"Image:\t{V2}" in shown


def test_pause_resume_and_restart(lab):
    assert lab.out("rollout", "pause", "deployment/web", "-n", NS).strip() == "deployment.apps/web paused"
    assert lab.out("rollout", "pause", "deployment/web", "-n", NS).strip() == "deployment.apps/web already paused"
    lab.run("set", "image", "deployment/web", "-n", NS, f"httpd={V2}")

    def paused_observed():
        d = lab.client.get("deployments", "web", NS)
        cond = next((c for c in d.status.conditions if c.type == "Progressing"), None)
        return (d.status.observed_generation == d.metadata.generation and cond is not None
                and cond.reason == "DeploymentPaused")
    wait_until(paused_observed, 30, "the paused Deployment observed")
    assert images_of_pods(lab) == [V1] * REPLICAS, "a paused Deployment rolls nothing out"
    r = lab.run("rollout", "restart", "deployment/web", "-n", NS, check=False)
    assert r.returncode == 1 and "can't restart paused deployment (run rollout resume first)" in r.stderr
    r = lab.run("rollout", "status", "deployment/web", "-n", NS, "--watch=false")
    assert "Waiting for deployment" in r.stdout

    assert lab.out("rollout", "resume", "deployment/web", "-n", NS).strip() == "deployment.apps/web resumed"
    lab.run("rollout", "status", "deployment/web", "-n", NS, "--timeout", "3m", timeout=200)
    wait_until(lambda: images_of_pods(lab) == [V2] * REPLICAS, 60, "resumed: v2 rolled out")

    before = {p.metadata.name for p in lab.client.list("pods", NS, label_selector="app=web")[0]}
    assert lab.out("rollout", "restart", "deployment/web", "-n", NS).strip() == "deployment.apps/web restarted"
    lab.run("rollout", "status", "deployment/web", "-n", NS, "--timeout", "3m", timeout=200)
    d = lab.client.get("deployments", "web", NS)
    assert "kubectl.kubernetes.io/restartedAt" in d.spec.template.metadata.annotations

    def replaced():
        pods = [p for p in lab.client.list("pods", NS, label_selector="app=web")[0]
                if not p.metadata.deletion_timestamp]
        return len(pods) == REPLICAS and not before & {p.metadata.name for p in pods}
    wait_until(replaced, 60, "every pod replaced by the restart")


# A pod that traps SIGTERM and prints the host's uptime (one kernel for the lab's nodes and
# this test: /proc/uptime is a clock both sides read), then lingers so its log can be read.
TRAP = ["sh", "-c", "trap 'cat /proc/uptime; sleep 5; exit 0' TERM; echo started; sleep 100000 & wait"]


def uptime_s() -> float:
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


def ready_ips(client, ns, name) -> set:
    try:
        ep = client.get("endpoints", name, ns)
    except clientmod.NotFound:
        return set()
    return {a.ip for s in ep.subsets for a in s.addresses}


def test_deleted_pod_leaves_the_endpoints_before_sigterm(lab):
    """Without a preStop hook, a deleted pod's SIGTERM comes only after its IP left the
    Endpoints and the proxiers had a sync interval to apply that (nodeagent/podsync/drain.py:
    settle 0.5 s + 0.5 s, capped at 2 s); Kubernetes' kubelet would send it at once."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "drain", "namespace": NS, "labels": {"app": "drain"}},
           "spec": {"nodeName": "node2", "terminationGracePeriodSeconds": 10,
                    "containers": [{"name": "c", "image": V1, "imagePullPolicy": "Never", "command": TRAP}]}}
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "drain", "namespace": NS},
           "spec": {"selector": {"app": "drain"}, "ports": [{"port": 80, "targetPort": 8080}]}}
    lab.run("apply", "-f", "-", input=yaml.safe_dump_all([svc, pod]))
    ip = wait_until(lambda: lab.client.get("pods", "drain", NS).status.pod_ip, 60, "the drain pod's IP")
    wait_until(lambda: ip in ready_ips(lab.client, NS, "drain"), 60, "the pod in the Service's Endpoints")
    wait_until(lambda: "started" in lab.out("logs", "drain", "-n", NS), 30, "the trap set")

    deleted_at = uptime_s()
    lab.client.delete("pods", "drain", NS)
    wait_until(lambda: ip not in ready_ips(lab.client, NS, "drain"), 10, "the pod gone from the Endpoints",
               interval_s=0.02)
    dropped_at = uptime_s()

    def term_line():
        r = lab.run("logs", "drain", "-n", NS, check=False)
        lines = r.stdout.split()
        return float(lines[1]) if r.returncode == 0 and len(lines) > 1 and lines[0] == "started" else None
    term_at = wait_until(term_line, 15, "SIGTERM trapped", interval_s=0.2)
    print(f"endpoints dropped {dropped_at - deleted_at:.2f}s after the delete, SIGTERM {term_at - dropped_at:.2f}s "
          f"after the drop")
    # Settle is 1 s after the agent saw the drop; this test sees it a little later than the agent.
    assert term_at - dropped_at >= 0.5, (deleted_at, dropped_at, term_at)
    assert term_at - deleted_at < 2.0 + 3.0, "the drain wait is capped (2 s) plus the agent's own latency"
    wait_until(lambda: "drain" not in lab.out("get", "pods", "-n", NS), 30, "the pod finalized")
    lab.run("delete", "service", "drain", "-n", NS)
