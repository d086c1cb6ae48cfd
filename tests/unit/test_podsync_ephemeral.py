"""Local ephemeral storage limits on the node (the kubelet's localStorageEviction): the
pure judgement with the kubelet's messages, the planner killing an evicted pod at once,
the status saying Failed / Evicted with the DisruptionTarget condition, and `du`."""

import os

import pytest

from nodeagent.podsync import ephemeral
from nodeagent.podsync.diskusage import du_bytes, measure
from nodeagent.podsync.ephemeral import Usage, canonical, judge, pod_limit, watched
from nodeagent.podsync.plan import plan
from nodeagent.podsync.status import compute_status
from skiff.api import objects_pb2 as pb
from tests.unit.test_podsync_plan import NOW, UID, ctr, kinds_of, sandbox

MI = 1024 * 1024


def spod(limits=None, requests=None, init_limits=None, volumes=()):
    """limits/requests: {container: quantity}; volumes: (name, sizeLimit, medium)."""
    pod = pb.Pod(metadata=pb.ObjectMeta(name="p", namespace="default", uid=UID))
    for name in ("c", "d"):
        c = pod.spec.containers.add(name=name, image="busybox")
        if limits and name in limits:
            c.resources.limits["ephemeral-storage"] = limits[name]
        if requests and name in requests:
            c.resources.requests["ephemeral-storage"] = requests[name]
    for name, value in (init_limits or {}).items():
        pod.spec.init_containers.add(name=name, image="busybox").resources.limits["ephemeral-storage"] = value
    for name, size, medium in volumes:
        v = pod.spec.volumes.add(name=name)
        v.empty_dir.size_limit = size
        v.empty_dir.medium = medium
    return pod


POD_MSG = "Pod ephemeral local storage usage exceeds the total limit of containers {}. "
CTR_MSG = 'Container {} exceeded its local ephemeral storage limit "{}". '
VOL_MSG = 'Usage of EmptyDir volume "{}" exceeds the limit "{}". '

JUDGE_CASES = [
    ("nothing limited", spod(), Usage({"c": 100 * MI}), None),
    ("requests alone limit nothing", spod(requests={"c": "1Mi"}), Usage({"c": 100 * MI}), None),
    ("within the limit", spod(limits={"c": "10Mi"}), Usage({"c": 9 * MI}), None),
    ("exactly the limit is allowed", spod(limits={"c": "10Mi"}), Usage({"c": 10 * MI}), None),
    ("one byte over: the pod's total first", spod(limits={"c": "10Mi"}), Usage({"c": 10 * MI + 1}),
     POD_MSG.format("10Mi")),
    ("a container without a limit counts in the pod's total", spod(limits={"c": "10Mi"}),
     Usage({"c": 6 * MI, "d": 6 * MI}), POD_MSG.format("10Mi")),
    ("the pod's limit sums its containers'", spod(limits={"c": "10Mi", "d": "10Mi"}),
     Usage({"c": 6 * MI, "d": 6 * MI}), None),
    ("a container over its own limit, the pod within the sum", spod(limits={"c": "10Mi", "d": "30Mi"}),
     Usage({"c": 11 * MI, "d": 1 * MI}), CTR_MSG.format("c", "10Mi")),
    ("the sum is formatted canonically", spod(limits={"c": "512Ki", "d": "512Ki"}),
     Usage({"c": 2 * MI}), POD_MSG.format("1Mi")),
    ("decimal limits stay decimal", spod(limits={"c": "5M", "d": "5M"}), Usage({"c": 11 * 10 ** 6}),
     POD_MSG.format("10M")),
    ("an init container's larger limit is the pod's", spod(limits={"c": "10Mi"}, init_limits={"i": "50Mi"}),
     Usage({"c": 9 * MI, "i": 30 * MI}), None),
    ("emptyDir usage counts in the pod's total", spod(limits={"c": "10Mi"}, volumes=[("data", "", "")]),
     Usage({"c": 1 * MI}, {"data": 10 * MI}), POD_MSG.format("10Mi")),
    ("an emptyDir over its sizeLimit, before the pod", spod(limits={"c": "10Mi"},
                                                              volumes=[("data", "10240Ki", "")]),
     Usage({"c": 1 * MI}, {"data": 20 * MI}), VOL_MSG.format("data", "10Mi")),
    ("an emptyDir within its sizeLimit", spod(volumes=[("data", "10Mi", "")]), Usage({}, {"data": 10 * MI}), None),
    ("memory-backed emptyDirs are the kernel's (tmpfs size)", spod(volumes=[("m", "1Mi", "Memory")]),
     Usage({}, {}), None),
]


@pytest.mark.parametrize("name,pod,usage,expected", JUDGE_CASES, ids=[c[0] for c in JUDGE_CASES])
def test_judge(name, pod, usage, expected):
    assert judge(pod, usage) == expected


@pytest.mark.parametrize("pod,expected", [
    (spod(), False), (spod(requests={"c": "1Gi"}), False), (spod(limits={"d": "1Gi"}), True),
    (spod(init_limits={"i": "1Gi"}), True), (spod(volumes=[("data", "", "")]), False),
    (spod(volumes=[("data", "1Gi", "")]), True), (spod(volumes=[("m", "1Gi", "Memory")]), False),
])
def test_only_pods_with_a_limit_are_watched(pod, expected):
    assert watched(pod) == expected


@pytest.mark.parametrize("value,binary,text", [
    (10 * MI, True, "10Mi"), (1536 * 1024, True, "1536Ki"), (3 * 1024 ** 3, True, "3Gi"), (1000, True, "1000"),
    (10 ** 7, False, "10M"), (1500, False, "1500"), (0, True, "0"),
])
def test_canonical(value, binary, text):
    assert canonical(value, binary) == text


def test_pod_limit_is_none_without_limits():
    assert pod_limit(spod()) is None
    assert pod_limit(spod(limits={"c": "1Gi", "d": "1Gi"})) == (2 * 1024 ** 3, "2Gi")


def test_pod_limit_adds_sidecars_to_the_apps_as_kubernetes_pod_limits():
    pod = spod(limits={"c": "10Mi"})
    side = pod.spec.init_containers.add(name="side", image="busybox", restart_policy="Always")
    side.resources.limits["ephemeral-storage"] = "10Mi"
    assert pod_limit(pod) == (20 * MI, "20Mi")          # app + sidecar, not max(app, sidecar)
    init = pod.spec.init_containers.add(name="init", image="busybox")
    init.resources.limits["ephemeral-storage"] = "15Mi"
    assert pod_limit(pod) == (25 * MI, "25Mi")          # init beside the sidecar before it: 15 + 10
    assert pod_limit(spod(init_limits={"i": "30Mi"}, limits={"c": "10Mi"})) == (30 * MI, "30Mi")


def running(pod):
    return [sandbox(pod=pod), ctr(pod, "c"), ctr(pod, "d")]


def test_plan_kills_an_evicted_pod_at_once():
    pod = spod(limits={"c": "10Mi"})
    actions = plan(pod, running(pod), NOW, evicted=True)
    assert kinds_of(actions) == [("kill", "c", "Evicted"), ("kill", "d", "Evicted"), ("kill", "POD", "StopSandbox")]
    assert [a.grace_s for a in actions[:2]] == [0, 0]
    assert plan(pod, running(pod), NOW) == []


def test_status_of_an_evicted_pod():
    pod = spod(limits={"c": "10Mi"})
    msg = POD_MSG.format("10Mi")
    status = compute_status(pod, running(pod), NOW, evicted=msg)
    assert (status.phase, status.reason, status.message) == ("Failed", "Evicted", msg)
    cond = [c for c in status.conditions if c.type == "DisruptionTarget"]
    assert [(c.status, c.reason, c.message) for c in cond] == [("True", "TerminationByKubelet", msg)]
    # written once, it stays: the terminal phase and the condition are kept as they are
    pod.status.CopyFrom(status)
    again = compute_status(pod, [], NOW + 60)
    assert (again.phase, again.reason, again.message) == ("Failed", "Evicted", msg)
    assert [c for c in again.conditions if c.type == "DisruptionTarget"] == cond
    other = spod()
    assert compute_status(other, running(other), NOW).phase == "Running"


def test_du_counts_allocated_blocks_once_per_file(tmp_path):
    d = tmp_path / "vol"
    (d / "sub").mkdir(parents=True)
    with open(d / "sub" / "big", "wb") as f:
        f.write(os.urandom(3 * MI))
    os.link(d / "sub" / "big", d / "hardlink")
    os.symlink("/usr", d / "outside")
    used = du_bytes(str(d))
    assert 3 * MI <= used < 3 * MI + 64 * 1024
    assert du_bytes(str(tmp_path / "missing")) == 0


class FakeRuntime:
    def disk_usage(self, uid):
        assert uid == UID
        return {"c": 5 * MI}


def test_measure_adds_disk_backed_empty_dirs_only(tmp_path):
    pod = spod(limits={"c": "10Mi"}, volumes=[("data", "", ""), ("mem", "", "Memory")])
    vol = tmp_path / "pods" / UID / "volumes" / "data"
    vol.mkdir(parents=True)
    (vol / "f").write_bytes(b"x" * (2 * MI))
    usage = measure(FakeRuntime(), str(tmp_path), pod)
    assert usage.containers == {"c": 5 * MI}
    assert list(usage.volumes) == ["data"] and usage.volumes["data"] >= 2 * MI
    assert ephemeral.judge(pod, usage) is None
