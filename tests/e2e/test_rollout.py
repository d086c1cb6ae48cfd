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
