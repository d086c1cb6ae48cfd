"""The applier against a fake runtime: image pull policies, the stop sequence, finalizing."""

import pytest

from nodeagent.podsync.apply import Applier, StartError
from nodeagent.podsync.model import FinalizePod, KillContainer
from nodeagent.runtime.container import APP, SANDBOX, Observed
from nodeagent.runtime.docker import ImageError
from tests.unit.test_podsync_plan import UID, make_pod


class FakeRuntime:
    def __init__(self, images=(), pull_ok=False):
        self.images = set(images)
        self.pull_ok = pull_ok
        self.calls = []
        self.containers = {}

    def image_id(self, ref):
        return f"sha256:{ref}" if ref in self.images else ""

    def pull(self, ref, auth_configs=()):
        self.calls.append(("pull", ref))
        self.auths = list(auth_configs)
        if not self.pull_ok:
            raise ImageError("ErrImagePull", f'failed to pull image "{ref}": no registry')
        self.images.add(ref)

    def exec(self, cid, cmd, timeout_s=None):
        self.calls.append(("exec", cid, tuple(cmd), timeout_s))
        return 0, ""

    def stop(self, cid, timeout_s):
        self.calls.append(("stop", cid, timeout_s))

    def remove(self, cid):
        self.calls.append(("remove", cid))
        self.containers.pop(cid, None)

    def list(self, uid=""):
        return [o for o in self.containers.values() if not uid or o.pod_uid == uid]

    def get(self, cid):
        return self.containers.get(cid)


class Recorder:
    def __init__(self):
        self.events = []

    def event(self, obj, event_type, reason, message):
        self.events.append((event_type, reason, message))


def applier(runtime, **kw):
    rec = Recorder()
    return Applier(runtime=runtime, node_name="node1", data_dir="/nonexistent-skiff-test", pause_image="pause",
                   host_ip="10.0.0.1", recorder=rec, **kw), rec


def container(policy, image="img:1"):
    pod = make_pod(image=image)
    c = pod.spec.containers[0]
    c.image_pull_policy = policy
    return pod, c


def test_never_without_the_image_is_err_image_never_pull():
    a, rec = applier(FakeRuntime())
    pod, c = container("Never")
    with pytest.raises(StartError) as err:
        a._ensure_image(pod, c)
    assert err.value.reason == "ErrImageNeverPull"
    assert err.value.message == 'Container image "img:1" is not present with pull policy of Never'


@pytest.mark.parametrize("policy", ["Never", "IfNotPresent"])
def test_present_image_is_not_pulled(policy):
    rt = FakeRuntime(images={"img:1"})
    a, rec = applier(rt)
    a._ensure_image(*container(policy))
    assert rt.calls == []
    assert rec.events == [("Normal", "Pulled", 'Container image "img:1" already present on machine')]


def test_if_not_present_pulls_a_missing_image_and_reports_failure():
    rt = FakeRuntime()
    a, rec = applier(rt)
    with pytest.raises(StartError) as err:
        a._ensure_image(*container("IfNotPresent"))
    assert err.value.reason == "ErrImagePull" and rt.calls == [("pull", "img:1")]
    # The kubelet's ImagePullBackOff: not asked again at once, the last error kept in the message.
    rt.pull_ok = True
    with pytest.raises(StartError) as err:
        a._ensure_image(*container("IfNotPresent"))
    assert err.value.reason == "ImagePullBackOff" and rt.calls == [("pull", "img:1")]
    assert err.value.message == ('Back-off pulling image "img:1": ErrImagePull: '
                                 'failed to pull image "img:1": no registry')
    assert rec.events[-1][1:] == ("BackOff", 'Back-off pulling image "img:1"')
    a.pull_backoff.forget(UID)        # as if the back-off had run out
    a._ensure_image(*container("IfNotPresent"))
    assert rec.events[-1][1] == "Pulled" and rec.events[-1][2].startswith('Successfully pulled image "img:1"')


def test_pull_backoff_doubles_to_five_minutes_and_clears_on_success():
    from nodeagent.podsync.pullbackoff import PullBackoff
    b = PullBackoff()
    delays = [b.failed("u", "img", "no", now=0.0) for _ in range(7)]
    assert delays == [10, 20, 40, 80, 160, 300, 300]
    assert b.waiting("u", "img", now=299.0).startswith('Back-off pulling image "img"')
    assert b.waiting("u", "img", now=300.0) is None
    assert b.waiting("other-pod", "img", now=1.0) is None
    b.succeeded("u", "img")
    assert b.failed("u", "img", "no", now=0.0) == 10


def test_always_falls_back_to_the_local_image_and_stops_asking_for_a_while():
    rt = FakeRuntime(images={"img:1"})
    a, rec = applier(rt)
    a._ensure_image(*container("Always"))
    assert rt.calls == [("pull", "img:1")]
    assert ("Warning", "Failed") in [(t, r) for t, r, _ in rec.events]
    assert "using the image already present on the machine" in rec.events[-1][2]
    a._ensure_image(*container("Always"))
    assert rt.calls == [("pull", "img:1")]  # no second attempt within the retry period
    assert rec.events[-1] == ("Normal", "Pulled", 'Container image "img:1" already present on machine')


def test_always_without_a_local_image_fails():
    a, _ = applier(FakeRuntime())
    with pytest.raises(StartError) as err:
        a._ensure_image(*container("Always"))
    assert err.value.reason == "ErrImagePull"


def test_kill_runs_pre_stop_then_stops_with_the_rest_of_the_grace_period():
    rt = FakeRuntime()
    a, rec = applier(rt)
    pod = make_pod()
    pod.spec.containers[0].lifecycle.pre_stop.exec.command.extend(["sh", "-c", "cleanup"])
    rt.containers["c1"] = Observed(id="c1", pod_uid=UID, container="a", kind=APP, sandbox_id="sb")
    out = a.apply(pod, UID, [KillContainer(container_id="c1", container="a", kind=APP, grace_s=10,
                                           reason="Deleting", message="Stopping container a", pre_stop=True),
                             KillContainer(container_id="sb", container="POD", kind=SANDBOX, grace_s=2)],
                  list(rt.containers.values()))
    assert not out.failed
    exec_call, stop_app, stop_sandbox = rt.calls
    assert exec_call[:3] == ("exec", "c1", ("sh", "-c", "cleanup")) and exec_call[3] == 10
    assert stop_app[:2] == ("stop", "c1") and 9 <= stop_app[2] <= 10
    assert stop_sandbox == ("stop", "sb", 2.0)
    assert rec.events == [("Normal", "Killing", "Stopping container a")]


def test_kill_with_grace_zero_skips_the_hook():
    rt = FakeRuntime()
    a, _ = applier(rt)
    pod = make_pod()
    pod.spec.containers[0].lifecycle.pre_stop.exec.command.append("true")
    a.apply(pod, UID, [KillContainer(container_id="c1", container="a", kind=APP, grace_s=0, pre_stop=True)], [])
    assert rt.calls == [("stop", "c1", 0.0)]


def test_parallel_kills_of_several_containers():
    rt = FakeRuntime()
    a, _ = applier(rt)
    pod = make_pod(apps=("a", "b"))
    kills = [KillContainer(container_id=f"c{i}", container=n, kind=APP, grace_s=5) for i, n in enumerate("ab")]
    out = a.apply(pod, UID, kills, [])
    assert out.changed and sorted(c[1] for c in rt.calls) == ["c0", "c1"]


def test_finalize_removes_containers_and_deletes_the_pod_in_the_api():
    rt = FakeRuntime()
    deleted = []
    a, _ = applier(rt, delete_pod=deleted.append)
    pod = make_pod()
    rt.containers["c1"] = Observed(id="c1", pod_uid=UID, container="a", kind=APP, state="exited")
    rt.containers["x"] = Observed(id="x", pod_uid="other", container="a", kind=APP, state="exited")
    a.start_errors[UID] = {"a": ("ErrImagePull", "x")}
    out = a.apply(pod, UID, [FinalizePod(delete_from_api=True)], [])
    assert out.finalized and rt.calls == [("remove", "c1")] and deleted == [pod]
    assert a.waiting_reasons(UID) == {}
    orphan = applier(rt, delete_pod=deleted.append)[0].apply(None, "other", [FinalizePod(delete_from_api=False)], [])
    assert orphan.finalized and deleted == [pod]  # an orphan is never deleted in the API
