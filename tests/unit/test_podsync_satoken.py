"""The agent's ServiceAccount credentials (nodeagent/podsync/satoken.py): the files a pod
gets, the bind into its containers, the refresh at 80 % of a token's life, and what
happens when the control plane cannot give a token."""

import os

import grpc
import pytest

from nodeagent.podsync import satoken, volumes
from skiff import client as clientmod
from skiff.api import objects_pb2 as pb
from skiff.api import service_pb2 as api
from skiff.satoken import MOUNT_PATH

T0 = 1_800_000_000.0


class Clock:
    def __init__(self):
        self.t = T0

    def __call__(self):
        return self.t


class FakeApi:
    def __init__(self, lifetime_s=3607):
        self.calls = []
        self.lifetime_s = lifetime_s
        self.error = None
        self.issued = 0

    def __call__(self, namespace, account, pod, uid, expiration_s):
        self.calls.append((namespace, account, pod, uid, expiration_s))
        if self.error is not None:
            raise self.error
        self.issued += 1
        return api.TokenResponse(token=f"token-{self.issued}", expiration_seconds=self.lifetime_s)


def a_pod(automount=True, account="robot", uid="uid-1"):
    p = pb.Pod(metadata=pb.ObjectMeta(name="web", namespace="team", uid=uid))
    c = p.spec.containers.add(name="web", image="nginx")
    p.spec.service_account_name = account
    if automount is not None:
        p.spec.automount_service_account_token = automount
    return p, c


def read(path, name):
    with open(os.path.join(path, name), encoding="utf-8") as f:
        return f.read()


@pytest.fixture
def env(tmp_path):
    clock, fake = Clock(), FakeApi()
    tokens = satoken.PodTokens(str(tmp_path), fake, ca_bundle=lambda: b"CA PEM", clock=clock)
    return tokens, fake, clock, str(tmp_path)


def test_the_pod_gets_token_ca_and_namespace_mounted_read_only(env):
    tokens, fake, _, data = env
    pod, c = a_pod()
    mounts = [("/data", "/x", False)]
    tokens.mount(pod, c, mounts)
    path = satoken.token_dir(data, "uid-1")
    assert mounts[-1] == (MOUNT_PATH, path, True)
    assert path.startswith(volumes.pod_dir(data, "uid-1"))   # removed with the pod's directory
    assert (read(path, "token"), read(path, "ca.crt"), read(path, "namespace")) == ("token-1", "CA PEM", "team")
    assert fake.calls == [("team", "robot", "web", "uid-1", 3607)]
    tokens.mount(pod, c, [])          # a second container: the same token, no new request
    assert len(fake.calls) == 1


@pytest.mark.parametrize("automount, own_mount", [(False, False), (True, True)])
def test_no_mount_when_the_pod_opts_out_or_the_container_mounts_its_own(env, automount, own_mount):
    tokens, fake, _, _ = env
    pod, c = a_pod(automount=automount)
    mounts = [(MOUNT_PATH, "/own", True)] if own_mount else []
    tokens.mount(pod, c, mounts)
    assert mounts == ([(MOUNT_PATH, "/own", True)] if own_mount else [])
    assert fake.calls == []


def test_a_pod_without_the_field_mounts(env):
    tokens, fake, _, _ = env
    pod, c = a_pod(automount=None)     # created before admission decided it
    mounts = []
    tokens.mount(pod, c, mounts)
    assert len(mounts) == 1


def test_refreshed_at_80_percent_of_its_life(env):
    tokens, fake, clock, data = env
    pod, c = a_pod()
    tokens.mount(pod, c, [])
    path = satoken.token_dir(data, "uid-1")
    clock.t = T0 + 0.79 * 3607
    wait_s = tokens.refresh()
    assert len(fake.calls) == 1 and read(path, "token") == "token-1"
    assert 0 < wait_s <= 0.01 * 3607 + 1
    clock.t = T0 + 0.81 * 3607
    tokens.refresh()
    assert len(fake.calls) == 2 and read(path, "token") == "token-2"


def test_a_failed_refresh_keeps_the_old_token_and_retries(env):
    tokens, fake, clock, data = env
    pod, c = a_pod()
    tokens.mount(pod, c, [])
    fake.error = clientmod.Unavailable("no replica")
    clock.t = T0 + 3000
    tokens.refresh()
    assert read(satoken.token_dir(data, "uid-1"), "token") == "token-1"
    fake.error = None
    tokens.refresh()
    assert read(satoken.token_dir(data, "uid-1"), "token") == "token-2"


def test_a_first_token_that_cannot_be_had_fails_the_mount(env):
    tokens, fake, _, _ = env
    fake.error = clientmod.NotFound('serviceaccounts "robot" not found')
    pod, c = a_pod()
    with pytest.raises(volumes.VolumeError, match='failed to fetch token: serviceaccounts "robot" not found'):
        tokens.mount(pod, c, [])
    fake.error = None                  # the account appears: the retried start mounts
    mounts = []
    tokens.mount(pod, c, mounts)
    assert mounts


def test_a_control_plane_without_a_signing_key_gives_files_without_token(env):
    tokens, fake, clock, data = env
    fake.error = clientmod.ApiError("this control plane issues no ServiceAccount tokens: "
                                    "its config has no serviceAccounts.keyFile", grpc.StatusCode.FAILED_PRECONDITION)
    pod, c = a_pod()
    mounts = []
    tokens.mount(pod, c, mounts)
    path = satoken.token_dir(data, "uid-1")
    assert sorted(os.listdir(path)) == ["ca.crt", "namespace"]
    clock.t = T0 + 10 ** 5
    tokens.refresh()
    assert len(fake.calls) == 1        # not asked again


def test_forgotten_once_the_pod_directory_is_gone(env):
    tokens, _, _, data = env
    pod, c = a_pod()
    tokens.mount(pod, c, [])
    assert tokens.tracked() == ["uid-1"]
    volumes.cleanup(data, "uid-1")
    tokens.refresh()
    assert tokens.tracked() == []


def test_a_restarted_agent_renews_the_tokens_it_finds_on_disk(env, tmp_path):
    tokens, fake, clock, data = env
    pod, c = a_pod()
    tokens.mount(pod, c, [])
    restarted = satoken.PodTokens(data, fake, clock=clock)   # adopts the pod: no container start
    restarted.refresh()
    assert restarted.tracked() == ["uid-1"]
    assert fake.calls[-1] == ("team", "robot", "web", "uid-1", 3607)
    assert read(satoken.token_dir(data, "uid-1"), "token") == "token-2"
    assert "serviceaccount.json" not in os.listdir(satoken.token_dir(data, "uid-1"))   # not in the mount
