"""`skiff create job` (from an image, from a CronJob) and which pod `skiff logs job/NAME` reads."""

import shlex

import pytest

from skiff.api import objects_pb2 as pb
from skiff.cli import batch_cmds, logs_target, main


def parse(line):
    argv = shlex.split(line)
    cut = argv.index("--") if "--" in argv else len(argv)
    args = main.build_parser().parse_args(argv[:cut])
    args.command = argv[cut + 1:]
    return args


def test_create_job_parses_beside_create_f():
    args = parse("create job pi -n batch --image busybox -- sh -c 'echo hi'")
    assert (args.func, args.name, args.namespace, args.image, args.command) == (
        batch_cmds.cmd_create_job, "pi", "batch", "busybox", ["sh", "-c", "echo hi"])
    files = main.build_parser().parse_args(["create", "-f", "x.yaml"])
    assert files.filename == ["x.yaml"] and files.func is not batch_cmds.cmd_create_job


def test_job_from_image_is_kubectls():
    job = batch_cmds.job_from_image("pi", "default", "busybox", ["echo", "hi"])
    [c] = job.spec.template.spec.containers
    assert (c.name, c.image, list(c.command)) == ("pi", "busybox", ["echo", "hi"])
    assert job.spec.template.spec.restart_policy == "Never"


def test_job_from_cronjob_is_kubectls():
    cj = pb.CronJob(metadata=pb.ObjectMeta(name="nightly", namespace="ops", uid="cj-uid"))
    cj.spec.job_template.metadata.labels["team"] = "a"
    cj.spec.job_template.spec.backoff_limit = 2
    cj.spec.job_template.spec.template.spec.containers.add(name="c", image="busybox")
    job = batch_cmds.job_from_cronjob("nightly-manual", cj)
    assert (job.metadata.name, job.metadata.namespace) == ("nightly-manual", "ops")
    assert dict(job.metadata.annotations) == {"cronjob.kubernetes.io/instantiate": "manual"}
    assert dict(job.metadata.labels) == {"team": "a"}
    [ref] = job.metadata.owner_references
    assert (ref.kind, ref.name, ref.uid, ref.controller) == ("CronJob", "nightly", "cj-uid", True)
    assert job.spec == cj.spec.job_template.spec


class FakeClient:
    def __init__(self, obj, pods):
        self.obj, self.pods, self.selectors = obj, pods, []

    def get(self, kind, name, namespace):
        return self.obj

    def list(self, kind, namespace, label_selector=""):
        self.selectors.append(label_selector)
        return self.pods, "1"


def a_pod(name, phase="Running", node="n1", ready=False, created="2024-05-01T12:00:00Z", owner="job-uid"):
    p = pb.Pod(metadata=pb.ObjectMeta(name=name, creation_timestamp=created))
    p.metadata.owner_references.add(kind="Job", name="pi", uid=owner, controller=True)
    p.spec.node_name = node
    p.status.phase = phase
    if ready:
        p.status.conditions.add(type="Ready", status="True")
    return p


def a_job():
    job = pb.Job(metadata=pb.ObjectMeta(name="pi", namespace="default", uid="job-uid"))
    job.spec.selector.match_labels["batch.kubernetes.io/controller-uid"] = "job-uid"
    return job


@pytest.mark.parametrize("pods,expected", [
    ([a_pod("only", "Succeeded")], ("only", "")),
    ([a_pod("pending", "Pending"), a_pod("running", "Running")], ("running", "Found 2 pods, using pod/running")),
    ([a_pod("unbound", node=""), a_pod("done", "Succeeded")], ("done", "Found 2 pods, using pod/done")),
    ([a_pod("new", created="2024-05-01T12:00:09Z"), a_pod("old")], ("old", "Found 2 pods, using pod/old")),
    ([a_pod("ready", ready=True, created="2024-05-01T12:00:09Z"), a_pod("old")],
     ("ready", "Found 2 pods, using pod/ready")),
])
def test_logs_of_a_job_read_its_first_pod(pods, expected):
    c = FakeClient(a_job(), pods)
    assert logs_target.resolve(c, "job/pi", "default") == expected
    assert c.selectors == ["batch.kubernetes.io/controller-uid=job-uid"]


def test_logs_of_a_pod_by_name():
    assert logs_target.resolve(None, "web-1", "default") == ("web-1", "")
    assert logs_target.resolve(None, "pod/web-1", "default") == ("web-1", "")


def test_logs_of_a_deployment_read_a_pod_its_selector_matches():
    d = pb.Deployment(metadata=pb.ObjectMeta(name="web", uid="d-uid"))
    d.spec.selector.match_labels["app"] = "web"
    c = FakeClient(d, [a_pod("web-1", owner="rs-uid")])
    assert logs_target.resolve(c, "deploy/web", "default") == ("web-1", "")
    assert c.selectors == ["app=web"]


def test_logs_of_a_kind_with_a_plain_map_selector():
    from skiff.api import kinds
    if "ReplicationController" not in kinds.BY_NAME:
        pytest.skip("ReplicationController is not registered on this branch")
    rc = pb.ReplicationController(metadata=pb.ObjectMeta(name="old", uid="rc-uid"))
    rc.spec.selector["app"] = "old"
    c = FakeClient(rc, [a_pod("old-1", owner="rc-uid")])
    assert logs_target.resolve(c, "replicationcontrollers/old", "default") == ("old-1", "")
    assert c.selectors == ["app=old"]
