"""DockerRuntime.create: one engine round trip (no inspect after the create), with the same
translation of the keyword arguments as docker-py's ContainerCollection.create."""

import docker
import pytest

from nodeagent.runtime.docker import DockerRuntime
from nodeagent.runtime.spec import container_kwargs, sandbox_kwargs
from skiff.api import objects_pb2 as pb


class Api(docker.APIClient):
    def __init__(self):
        super().__init__(base_url="unix:///nonexistent.sock", version="1.41")
        self.calls = []

    def create_container(self, **kw):
        self.calls.append(("create_container", kw))
        return {"Id": "c" * 64}

    def inspect_container(self, cid):
        self.calls.append(("inspect_container", cid))
        raise AssertionError("create must not inspect")


class Client:
    def __init__(self):
        self.api = Api()


def pod():
    p = pb.Pod(metadata=pb.ObjectMeta(name="web", namespace="ns", uid="u1"))
    p.spec.containers.add(name="app", image="busybox:latest", command=["sleep"], args=["3600"])
    return p


def test_a_container_is_created_with_one_call_and_its_host_config():
    c = Client()
    rt = DockerRuntime(c, "node1")
    p = pod()
    kw = container_kwargs(p, p.spec.containers[0], name="k8s_app", labels={"a": "b"}, sandbox_id="s" * 64,
                          env=[("X", "1")], command=["sleep"], args=["3600"], mounts=[("/etc/hosts", "/tmp/h", False)])
    assert rt.create(kw) == "c" * 64
    assert [n for n, _ in c.api.calls] == ["create_container"]
    sent = c.api.calls[0][1]
    assert sent["image"] == "busybox:latest" and sent["name"] == "k8s_app" and sent["labels"] == {"a": "b"}
    assert sent["entrypoint"] == ["sleep"] and sent["command"] == ["3600"] and sent["environment"] == ["X=1"]
    hc = sent["host_config"]
    assert hc["NetworkMode"] == "container:" + "s" * 64 and hc["IpcMode"] == "container:" + "s" * 64
    assert hc["Mounts"][0]["Target"] == "/etc/hosts" and hc["Mounts"][0]["Type"] == "bind"


def test_the_sandbox_keeps_its_hostname_network_none_and_shareable_ipc():
    c = Client()
    rt = DockerRuntime(c, "node1")
    rt.create(sandbox_kwargs(pod(), name="k8s_POD", labels={}, image="pause:3.9"))
    sent = c.api.calls[0][1]
    assert sent["hostname"] == "web" and sent["command"] is None
    assert sent["host_config"]["NetworkMode"] == "none" and sent["host_config"]["IpcMode"] == "shareable"


def test_a_name_conflict_returns_the_existing_container():
    c = Client()

    def conflict(**kw):
        import requests
        resp = requests.Response()
        resp.status_code = 409
        raise docker.errors.APIError("Conflict", response=resp)

    c.api.create_container = conflict
    c.api.inspect_container = lambda name: {"Id": "e" * 64}
    assert DockerRuntime(c, "node1").create({"image": "x", "name": "k8s_app"}) == "e" * 64


def test_other_engine_errors_are_raised():
    c = Client()

    def boom(**kw):
        import requests
        resp = requests.Response()
        resp.status_code = 500
        raise docker.errors.APIError("boom", response=resp)

    c.api.create_container = boom
    with pytest.raises(docker.errors.APIError):
        DockerRuntime(c, "node1").create({"image": "x", "name": "k8s_app"})
