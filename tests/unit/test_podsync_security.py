"""The node agent's securityContext steps outside the pure mapping: fsGroup ownership of a
pod's volumes (emptyDir, configMap, secret) and of its ServiceAccount token directory,
and the applier's start refusal (runAsNonRoot on a root image, a missing Localhost profile)."""

import os
import stat

import pytest

from nodeagent.podsync import satoken, volumes
from nodeagent.podsync.apply import StartError
from skiff.api import objects_pb2 as pb
from tests.unit.test_podsync_apply import FakeRuntime, applier
from tests.unit.test_podsync_plan import make_pod

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another group needs root")
GID = 4242


def mode_and_gid(path):
    st = os.stat(path)
    return stat.S_IMODE(st.st_mode), st.st_gid


def pod_with_volumes(fs_group=None):
    pod = make_pod()
    if fs_group is not None:
        pod.spec.security_context.fs_group = fs_group
    pod.spec.volumes.add(name="scratch").empty_dir.SetInParent()
    cm = pod.spec.volumes.add(name="conf").config_map
    cm.name = "cm"
    sec = pod.spec.volumes.add(name="creds").secret
    sec.secret_name = "s"
    sec.default_mode = 0o400
    return pod


def prepare(tmp_path, pod):
    cm = pb.ConfigMap(data={"app.conf": "x=1"})
    secret = pb.Secret(data={"password": b"p"})
    return volumes.prepare(str(tmp_path), pod, lambda ns, n: cm, lambda ns, n: secret)


@root_only
def test_fs_group_owns_the_volumes_as_kubelet_sets_them(tmp_path):
    paths = prepare(tmp_path, pod_with_volumes(GID))
    assert mode_and_gid(paths["scratch"]) == (0o2777, GID)                  # rw for the group, setgid
    assert mode_and_gid(paths["conf"]) == (0o2755, GID)                     # read-only volume: r-x
    assert mode_and_gid(os.path.join(paths["conf"], "app.conf")) == (0o644, GID)
    assert mode_and_gid(os.path.join(paths["creds"], "password")) == (0o440, GID)  # 0400 | group read
    # a second pass (another container's start) keeps the setgid bit and group
    paths = prepare(tmp_path, pod_with_volumes(GID))
    assert mode_and_gid(paths["scratch"]) == (0o2777, GID)


def test_without_fs_group_volumes_stay_as_they_were(tmp_path):
    paths = prepare(tmp_path, pod_with_volumes())
    assert mode_and_gid(paths["scratch"])[0] == 0o777
    assert mode_and_gid(os.path.join(paths["creds"], "password"))[0] == 0o400


@root_only
def test_fs_group_owns_the_service_account_token(tmp_path):
    class Token:
        token = "jwt"
        expiration_seconds = 3600

    pod = make_pod()
    pod.spec.automount_service_account_token = True
    pod.spec.security_context.fs_group = GID
    tokens = satoken.PodTokens(str(tmp_path), lambda *a: Token())
    path = tokens.ensure(pod)
    assert mode_and_gid(path) == (0o2755, GID)
    assert mode_and_gid(os.path.join(path, "token")) == (0o644, GID)


class ImageUsers(FakeRuntime):
    def __init__(self, users):
        super().__init__(images=set(users))
        self.users = users

    def image_user(self, ref):
        self.calls.append(("image_user", ref))
        return self.users.get(ref, "")


def test_run_as_non_root_on_a_root_image_is_a_create_container_config_error():
    rt = ImageUsers({"root:1": "", "app:1": "1000"})
    a, _ = applier(rt)
    pod = make_pod(image="root:1")
    pod.spec.security_context.run_as_non_root = True
    with pytest.raises(StartError) as err:
        a._security_inputs(pod, pod.spec.containers[0])
    assert err.value.reason == "CreateContainerConfigError"
    assert err.value.message == ('container has runAsNonRoot and image will run as root '
                                 f'(pod: "p_ns({pod.metadata.uid})", container: a)')
    pod.spec.containers[0].image = "app:1"
    assert a._security_inputs(pod, pod.spec.containers[0]) == ("1000", "")


def test_the_image_is_not_inspected_without_a_reason():
    rt = ImageUsers({})
    a, _ = applier(rt)
    pod = make_pod()
    pod.spec.security_context.run_as_user = 1000
    pod.spec.security_context.run_as_non_root = True
    assert a._security_inputs(pod, pod.spec.containers[0]) == ("", "")
    assert rt.calls == []


def test_a_missing_localhost_profile_stops_the_start():
    a, _ = applier(ImageUsers({}))
    pod = make_pod()
    pod.spec.containers[0].security_context.seccomp_profile.type = "Localhost"
    pod.spec.containers[0].security_context.seccomp_profile.localhost_profile = "nope.json"
    with pytest.raises(StartError) as err:
        a._security_inputs(pod, pod.spec.containers[0])
    assert err.value.reason == "CreateContainerConfigError" and "cannot load seccomp profile" in err.value.message
