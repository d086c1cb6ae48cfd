"""Environment resolution ($(VAR) expansion, valueFrom, envFrom) and container specs -> Docker."""

import pytest

from nodeagent.podsync import env as envmod
from nodeagent.podsync import volumes
from nodeagent.runtime import labels as L
from nodeagent.runtime import spec as specmod
from skiff.api import objects_pb2 as pb


@pytest.mark.parametrize("text,expected", [
    ("$(A)", "alpha"),
    ("x-$(A)-$(B)-y", "x-alpha-beta-y"),
    ("$$(A)", "$(A)"),               # escaped reference
    ("$$", "$"),
    ("$(MISSING)", "$(MISSING)"),    # unknown: left as written
    ("$(A", "$(A"),                  # incomplete
    ("a$b", "a$b"),                  # not a reference
    ("cost: 5$", "cost: 5$"),
    ("$()", "$()"),
    ("$($(A))", "$($(A))"),          # the name is "$(A" - unknown, left as is
    ("", ""),
])
def test_expand(text, expected):
    assert envmod.expand(text, {"A": "alpha", "B": "beta"}) == expected


def pod_with(container_setup):
    pod = pb.Pod()
    pod.metadata.name = "web-1"
    pod.metadata.namespace = "shop"
    pod.metadata.uid = "u-1"
    pod.metadata.labels["app"] = "web"
    pod.metadata.annotations["team"] = "blue"
    pod.spec.node_name = "node7"
    pod.status.pod_ip = ""
    c = pod.spec.containers.add(name="c", image="skiff/busybox:latest")
    container_setup(c)
    return pod, c


def cm(name, **data):
    m = pb.ConfigMap()
    m.metadata.name = name
    m.data.update(data)
    return m


def secret(name, **data):
    s = pb.Secret()
    s.metadata.name = name
    for k, v in data.items():
        s.data[k] = v.encode()
    return s


OBJECTS = {("shop", "cfg"): cm("cfg", MODE="fast", LEVEL="3", **{"bad key": "x"}),
           ("shop", "creds"): secret("creds", password="s3cret", user="admin")}


def get_cm(ns, name):
    obj = OBJECTS.get((ns, name))
    return obj if isinstance(obj, pb.ConfigMap) else None


def get_secret(ns, name):
    obj = OBJECTS.get((ns, name))
    return obj if isinstance(obj, pb.Secret) else None


def resolve(setup, **kw):
    pod, c = pod_with(setup)
    return envmod.resolve_env(pod, c, get_cm, get_secret, host_ip="10.0.0.7", **kw), pod, c


def test_values_expand_earlier_variables_only():
    def setup(c):
        c.env.add(name="A", value="1")
        c.env.add(name="B", value="$(A)-$(C)")    # C comes later: not expanded
        c.env.add(name="C", value="3")
        c.env.add(name="A", value="$(A)$(A)")     # redefinition sees the earlier A, keeps its place
    env, _, _ = resolve(setup)
    assert env == [("A", "11"), ("B", "1-$(C)"), ("C", "3")]


def test_value_from_sources():
    def setup(c):
        c.env.add(name="MODE").value_from.config_map_key_ref.CopyFrom(pb.ConfigMapKeySelector(name="cfg", key="MODE"))
        c.env.add(name="PW").value_from.secret_key_ref.CopyFrom(pb.SecretKeySelector(name="creds", key="password"))
        for name, path in [("NAME", "metadata.name"), ("NS", "metadata.namespace"), ("UID", "metadata.uid"),
                           ("APP", "metadata.labels['app']"), ("TEAM", "metadata.annotations['team']"),
                           ("NODE", "spec.nodeName"), ("HOST_IP", "status.hostIP"), ("POD_IP", "status.podIP")]:
            c.env.add(name=name).value_from.field_ref.field_path = path
        c.env.add(name="MSG", value="$(NAME) on $(NODE) says $(MODE)")
    env, _, _ = resolve(setup)
    assert dict(env) == {"MODE": "fast", "PW": "s3cret", "NAME": "web-1", "NS": "shop", "UID": "u-1",
                         "APP": "web", "TEAM": "blue", "NODE": "node7", "HOST_IP": "10.0.0.7", "POD_IP": "",
                         "MSG": "web-1 on node7 says fast"}


def test_value_from_is_not_expanded():
    OBJECTS[("shop", "raw")] = cm("raw", V="$(NAME)")
    try:
        def setup(c):
            c.env.add(name="NAME", value="x")
            c.env.add(name="V").value_from.config_map_key_ref.CopyFrom(pb.ConfigMapKeySelector(name="raw", key="V"))
        env, _, _ = resolve(setup)
        assert dict(env)["V"] == "$(NAME)"
    finally:
        del OBJECTS[("shop", "raw")]


def test_env_from_with_prefix_and_env_overrides():
    def setup(c):
        c.env_from.add(prefix="CFG_", config_map_ref=pb.ConfigMapEnvSource(name="cfg"))
        c.env_from.add(secret_ref=pb.SecretEnvSource(name="creds"))
        c.env.add(name="user", value="override")
        c.env.add(name="BOTH", value="$(CFG_MODE)/$(user)")
    env, _, _ = resolve(setup)
    assert env == [("CFG_LEVEL", "3"), ("CFG_MODE", "fast"), ("password", "s3cret"), ("user", "override"),
                   ("BOTH", "fast/override")]  # "CFG_bad key" is not a variable name: skipped


@pytest.mark.parametrize("setup,message", [
    (lambda c: c.env.add(name="X").value_from.config_map_key_ref.CopyFrom(
        pb.ConfigMapKeySelector(name="nope", key="k")), 'configmap "nope" not found'),
    (lambda c: c.env.add(name="X").value_from.config_map_key_ref.CopyFrom(
        pb.ConfigMapKeySelector(name="cfg", key="nokey")), "couldn't find key nokey in ConfigMap shop/cfg"),
    (lambda c: c.env.add(name="X").value_from.secret_key_ref.CopyFrom(
        pb.SecretKeySelector(name="nope", key="k")), 'secret "nope" not found'),
    (lambda c: c.env.add(name="X").value_from.secret_key_ref.CopyFrom(
        pb.SecretKeySelector(name="creds", key="nokey")), "couldn't find key nokey in Secret shop/creds"),
    (lambda c: c.env_from.add(config_map_ref=pb.ConfigMapEnvSource(name="nope")), 'configmap "nope" not found'),
    (lambda c: c.env_from.add(secret_ref=pb.SecretEnvSource(name="nope")), 'secret "nope" not found'),
])
def test_missing_sources_are_errors(setup, message):
    with pytest.raises(envmod.EnvError) as err:
        resolve(setup)
    assert str(err.value) == message
    assert err.value.reason == "CreateContainerConfigError"


def test_optional_missing_sources_are_left_out():
    def setup(c):
        c.env.add(name="A").value_from.config_map_key_ref.CopyFrom(
            pb.ConfigMapKeySelector(name="nope", key="k", optional=True))
        c.env.add(name="B").value_from.secret_key_ref.CopyFrom(
            pb.SecretKeySelector(name="creds", key="nokey", optional=True))
        c.env_from.add(config_map_ref=pb.ConfigMapEnvSource(name="nope", optional=True))
        c.env.add(name="C", value="$(A)")
    env, _, _ = resolve(setup)
    assert env == [("C", "$(A)")]


def test_command_and_args_are_expanded_with_the_final_environment():
    def setup(c):
        c.env.add(name="GREETING", value="hello")
        c.command.extend(["sh", "-c", "echo $(GREETING) $$(GREETING) $(NOPE)"])
        c.args.extend(["$(GREETING)"])
    env, _, c = resolve(setup)
    assert envmod.command_and_args(c, env) == (["sh", "-c", "echo hello $(GREETING) $(NOPE)"], ["hello"])


def test_resource_field_ref():
    def setup(c):
        c.resources.limits.update({"cpu": "500m", "memory": "64Mi"})
        c.env.add(name="CPU").value_from.resource_field_ref.resource = "limits.cpu"
        ref = c.env.add(name="MEM_MI").value_from.resource_field_ref
        ref.resource, ref.divisor = "limits.memory", "1Mi"
        c.env.add(name="REQ_CPU_M").value_from.resource_field_ref.CopyFrom(
            pb.ResourceFieldSelector(resource="requests.cpu", divisor="1m"))
        c.env.add(name="EPH").value_from.resource_field_ref.resource = "limits.ephemeral-storage"
    env, _, _ = resolve(setup, allocatable={"ephemeral-storage": "10Gi"})
    assert dict(env) == {"CPU": "1", "MEM_MI": "64", "REQ_CPU_M": "500", "EPH": str(10 * 2**30)}


# ------------------------------------------------------------------ container specs -> Docker


@pytest.mark.parametrize("limits,requests,expected", [
    ({}, {}, {"cpu_shares": 2}),
    ({"cpu": "500m"}, {}, {"cpu_period": 100000, "cpu_quota": 50000, "cpu_shares": 512}),
    ({"cpu": "2"}, {"cpu": "250m"}, {"cpu_period": 100000, "cpu_quota": 200000, "cpu_shares": 256}),
    ({"cpu": "1m"}, {}, {"cpu_period": 100000, "cpu_quota": 1000, "cpu_shares": 2}),   # at least 1 ms
    ({"memory": "64Mi"}, {}, {"cpu_shares": 2, "mem_limit": 67108864, "memswap_limit": 67108864}),
    ({"memory": "1G"}, {"memory": "500M"}, {"cpu_shares": 2, "mem_limit": 10**9, "memswap_limit": 10**9}),
])
def test_resources_to_docker(limits, requests, expected):
    r = pb.ResourceRequirements()
    r.limits.update(limits)
    r.requests.update(requests)
    assert specmod.resources_to_docker(r) == expected


@pytest.mark.parametrize("command,args,expected", [
    ([], [], (None, None)),                              # image ENTRYPOINT and CMD
    (["/bin/app"], [], (["/bin/app"], [])),              # command replaces both
    (["/bin/app"], ["-v"], (["/bin/app"], ["-v"])),
    ([], ["-v"], (None, ["-v"])),                        # image ENTRYPOINT, args replace CMD
])
def test_docker_command(command, args, expected):
    assert specmod.docker_command(command, args) == expected


def test_container_kwargs_join_the_sandbox():
    pod, c = pod_with(lambda c: (c.command.extend(["sh"]), c.resources.limits.update({"memory": "32Mi"}),
                                 setattr(c, "working_dir", "/work")))
    pod.spec.share_process_namespace = True
    labels = specmod.make_labels(pod, "node7", "c", L.KIND_APP, "v1:abc", 2, 3, 30)
    kw = specmod.container_kwargs(pod, c, name="skiff_c_x", labels=labels, sandbox_id="SB", env=[("A", "1")],
                                  command=["sh"], args=[], mounts=[("/data", "/host/data", False),
                                                                   ("/etc/hosts", "/host/hosts", True)])
    assert kw["network_mode"] == kw["ipc_mode"] == kw["pid_mode"] == "container:SB"
    assert kw["entrypoint"] == ["sh"] and kw["command"] == []
    assert kw["environment"] == ["A=1"] and kw["working_dir"] == "/work"
    assert kw["mem_limit"] == 32 * 2**20
    assert [(m["Target"], m["Source"], m["ReadOnly"]) for m in kw["mounts"]] == \
        [("/data", "/host/data", False), ("/etc/hosts", "/host/hosts", True)]
    assert labels == {L.MANAGED: "true", L.NODE: "node7", L.POD_UID: "u-1", L.POD_NAME: "web-1",
                      L.POD_NAMESPACE: "shop", L.CONTAINER_NAME: "c", L.CONTAINER_KIND: "app",
                      L.SPEC_HASH: "v1:abc", L.RESTART_COUNT: "2", L.ATTEMPT: "3", L.TERMINATION_GRACE: "30"}
    sb = specmod.sandbox_kwargs(pod, name="skiff_POD_x", labels={}, image="skiff/pause:latest")
    assert (sb["network_mode"], sb["ipc_mode"], sb["hostname"]) == ("none", "shareable", "web-1")
    pod.spec.hostname = "custom"
    assert specmod.sandbox_kwargs(pod, name="n", labels={}, image="i")["hostname"] == "custom"
    pod.spec.host_network = True
    sb = specmod.sandbox_kwargs(pod, name="n", labels={}, image="i")
    assert sb["network_mode"] == "host" and "hostname" not in sb


# ------------------------------------------------------------------ volumes (files only, no mounts)


def test_hosts_file():
    pod, _ = pod_with(lambda c: None)
    pod.spec.host_aliases.add(ip="10.1.1.1", hostnames=["db", "db.local"])
    text = volumes.hosts_content(pod)
    lines = text.splitlines()
    assert "127.0.0.1\tlocalhost" in lines
    assert "::1\tlocalhost ip6-localhost ip6-loopback" in lines
    assert "127.0.1.1\tweb-1" in lines
    assert lines[-1] == "10.1.1.1\tdb\tdb.local"
    assert "10.244.1.5\tweb-1" in volumes.hosts_content(pod, "10.244.1.5").splitlines()


def test_container_mounts_sub_path_read_only_and_hosts(tmp_path):
    pod, c = pod_with(lambda c: None)
    pod.spec.volumes.add(name="data").empty_dir.SetInParent()
    pod.spec.volumes.add(name="conf").config_map.name = "cfg"
    c.volume_mounts.add(name="data", mount_path="/data")
    c.volume_mounts.add(name="data", mount_path="/logs", sub_path="logs", read_only=True)
    c.volume_mounts.add(name="conf", mount_path="/etc/conf")
    paths = {"data": str(tmp_path / "data"), "conf": str(tmp_path / "conf")}
    mounts = volumes.container_mounts(pod, c, paths, "/h/etc-hosts")
    assert mounts == [("/data", paths["data"], False), ("/logs", paths["data"] + "/logs", True),
                      ("/etc/conf", paths["conf"], True), ("/etc/hosts", "/h/etc-hosts", False)]
    c.volume_mounts.add(name="data", mount_path="/x", sub_path="../escape")
    with pytest.raises(volumes.VolumeError):
        volumes.container_mounts(pod, c, paths)


def test_prepare_writes_config_map_and_secret_files(tmp_path):
    pod, _ = pod_with(lambda c: None)
    v = pod.spec.volumes.add(name="conf")
    v.config_map.name = "cfg"
    v.config_map.items.add(key="MODE", path="sub/mode.txt", mode=0o600)
    pod.spec.volumes.add(name="creds").secret.secret_name = "creds"
    pod.spec.volumes.add(name="scratch").empty_dir.SetInParent()
    paths = volumes.prepare(str(tmp_path), pod, get_cm, get_secret)
    conf = paths["conf"]
    assert open(f"{conf}/sub/mode.txt").read() == "fast"
    assert oct(__import__("os").stat(f"{conf}/sub/mode.txt").st_mode & 0o777) == "0o600"
    assert sorted(__import__("os").listdir(paths["creds"])) == ["password", "user"]
    assert open(f"{paths['creds']}/password").read() == "s3cret"
    assert paths["scratch"].endswith("/pods/u-1/volumes/scratch")
    v2 = pod.spec.volumes.add(name="missing")
    v2.secret.secret_name = "nope"
    with pytest.raises(volumes.VolumeError, match='secret "nope" not found'):
        volumes.prepare(str(tmp_path), pod, get_cm, get_secret)
    volumes.cleanup(str(tmp_path), "u-1")
    assert volumes.pod_uids_on_disk(str(tmp_path)) == []
