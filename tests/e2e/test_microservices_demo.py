"""microservices-demo's release manifests (Google's Online Boutique: 12 Deployments, their
Services and ServiceAccounts, every pod with a restricted securityContext) applied
UNCHANGED with `skiff apply -f` on a 2-node lab, and every container checked from inside
with `skiff exec` against what its securityContext asks for: user, group, groups (fsGroup),
capabilities (drop ALL: CapEff and CapBnd empty), no_new_privs, read-only root.

No registry is reachable, so each image the manifest names is the lab's busybox under that
name, with a default command that sleeps (skiff/lab/images.busybox_archive), loaded on every
node with `skiff lab load`. The pods need not become Ready (their grpc and tcp probes find no
server, and the liveness probes restart them now and then: checks retry until the container
answers). An image pinned by digest (loadgenerator's init container, busybox@sha256:...)
cannot be stood in for: a loaded image carries no registry digest, so that pod waits with
ErrImagePull, which is asserted too.

The manifest file is the corpus's, found via $SKIFF_CONFORMANCE_DIR or ../shared/conformance
next to the repository; the module is skipped when it is absent.
"""

import json
import os

import pytest
import yaml

from skiff.lab import images
from tests.e2e.conftest import nodes_lab
from tests.helpers import wait_until

MANIFEST = "gcp-microservices-demo__release__kubernetes-manifests.yaml"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NS = "default"                       # the manifest names none
SLEEP = ("sh", "-c", "trap 'exit 0' TERM; while :; do sleep 3600 & wait; done")
CHECK = ("id -u; id -g; id -G; grep -E '^(CapEff|CapBnd|NoNewPrivs):' /proc/self/status; "
         "awk '$2 == \"/\" {print \"RootMount:\", $4}' /proc/mounts; "
         "if touch /tmp/skiff-probe 2>/dev/null; then echo 'RootWrite: ok'; else echo 'RootWrite: refused'; fi")


def manifest_path() -> str:
    for d in (os.environ.get("SKIFF_CONFORMANCE_DIR", ""), os.path.join(REPO, "..", "shared", "conformance")):
        for candidate in (os.path.join(d, "manifests", MANIFEST), os.path.join(d, MANIFEST)):
            if d and os.path.isfile(candidate):
                return os.path.abspath(candidate)
    return ""


PATH = manifest_path()
pytestmark = pytest.mark.skipif(not PATH, reason=f"corpus file {MANIFEST} not found "
                                                 "(set SKIFF_CONFORMANCE_DIR)")


def documents() -> list:
    with open(PATH, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def deployments() -> list:
    return [d for d in documents() if d.get("kind") == "Deployment"]


def containers_of(dep) -> list:
    spec = dep["spec"]["template"]["spec"]
    return [("init", c) for c in spec.get("initContainers", [])] + [("app", c) for c in spec["containers"]]


def tagged_images() -> list:
    """Every image the manifest names that an engine can hold under that name (not by digest)."""
    return sorted({c["image"] for d in deployments() for _, c in containers_of(d) if "@" not in c["image"]})


@pytest.fixture(scope="module")
def lab(request, tmp_path_factory):
    with nodes_lab(request, "msdemo", 2) as cli:
        archive = str(tmp_path_factory.mktemp("skiff-msdemo") / "skiff-msdemo-images.tar")
        with open(archive, "wb") as f:
            f.write(images.busybox_archive(tags=tagged_images(), cmd=SLEEP))
        out = cli.out("lab", "load", archive, timeout=300)
        assert all(out.count(tag) >= 2 for tag in tagged_images()), out     # both nodes
        cli.applied = cli.run("apply", "-f", PATH, check=False, timeout=120)
        yield cli


def test_the_manifest_applies_unchanged(lab):
    r = lab.applied
    assert r.returncode == 0, r.stdout + r.stderr
    for d in deployments():
        assert f"deployment.apps/{d['metadata']['name']}" in r.stdout, r.stdout


def pod_of(lab, app: str) -> dict | None:
    pods = json.loads(lab.out("get", "po", "-n", NS, "-l", f"app={app}", "-o", "json")).get("items", [])
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    return live[0] if live else None


def expected(dep, container) -> dict:
    """What the pod's and the container's securityContext ask for (the container's win)."""
    psc = dep["spec"]["template"]["spec"].get("securityContext", {})
    csc = container.get("securityContext", {})
    want = {"uid": csc.get("runAsUser", psc.get("runAsUser")), "gid": csc.get("runAsGroup", psc.get("runAsGroup")),
            "groups": {str(g) for g in ([psc["fsGroup"]] if "fsGroup" in psc else []) +
                       psc.get("supplementalGroups", [])}}
    want["drop_all"] = "ALL" in csc.get("capabilities", {}).get("drop", [])
    want["no_new_privs"] = csc.get("allowPrivilegeEscalation") is False
    want["read_only"] = bool(csc.get("readOnlyRootFilesystem"))
    return want


def observe(lab, app: str, container: str):
    """The container's answers to CHECK, or None while it is not running."""
    pod = pod_of(lab, app)
    if pod is None:
        return None
    r = lab.run("exec", pod["metadata"]["name"], "-n", NS, "-c", container, "--", "sh", "-c", CHECK, check=False)
    if r.returncode != 0:
        return None
    lines = r.stdout.splitlines()
    fields = dict(line.split(":", 1) for line in lines[3:] if ":" in line)
    return {"uid": lines[0], "gid": lines[1], "groups": set(lines[2].split()),
            **{k.strip(): v.strip() for k, v in fields.items()}}


def test_every_container_runs_as_its_security_context_asks(lab):
    assert lab.applied.returncode == 0
    checked = []
    for dep in deployments():
        app = dep["metadata"]["name"]
        if any("@" in c["image"] for _, c in containers_of(dep)):
            continue          # a digest-pinned image: the pod cannot start here (see below)
        for kind, c in containers_of(dep):
            if kind == "init":
                continue      # init containers have exited
            want = expected(dep, c)
            got = wait_until(lambda: observe(lab, app, c["name"]), 240, f"{app}/{c['name']} answering exec",
                             interval_s=1.0)
            where = f"{app}/{c['name']}: {got}"
            assert int(got["uid"]) == want["uid"] and int(got["gid"]) == want["gid"], where
            assert want["groups"] <= got["groups"], where
            if want["drop_all"]:
                assert int(got["CapEff"], 16) == 0 and int(got["CapBnd"], 16) == 0, where
            assert got["NoNewPrivs"] == ("1" if want["no_new_privs"] else "0"), where
            if want["read_only"]:
                assert got["RootMount"].split(",")[0] == "ro" and got["RootWrite"] == "refused", where
            checked.append(f"{app}/{c['name']}")
    # every Deployment but the one whose init container's image is pinned by digest
    assert len(checked) == len(deployments()) - 1, checked


def test_a_digest_pinned_image_cannot_be_stood_in_for(lab):
    """loadgenerator's init container names busybox by digest: the loaded image has none,
    so the pod waits on the pull (no registry), and its main container never starts."""
    pinned = [(d["metadata"]["name"], c) for d in deployments() for _, c in containers_of(d) if "@" in c["image"]]
    assert [app for app, _ in pinned] == ["loadgenerator"]
    app, c = pinned[0]

    def waiting():
        pod = pod_of(lab, app)
        statuses = (pod or {}).get("status", {}).get("initContainerStatuses") or []
        w = statuses[0].get("state", {}).get("waiting", {}) if statuses else {}
        return w if w.get("reason") in ("ErrImagePull", "ImagePullBackOff") else None

    w = wait_until(waiting, 120, "loadgenerator's init container waiting on its pull", interval_s=1.0)
    assert c["image"] in w.get("message", ""), w
