"""downwardAPI and projected volumes on the node (nodeagent/podsync/projected.py): the files
rendered from a pod (table-driven), the AtomicWriter layout, the rewrite when labels change,
and the projected ServiceAccount tokens (per audience, renewed at 80 % of their life)."""

import os

import grpc
import pytest

from nodeagent.podsync import projected, satoken, volumes
from skiff import client as clientmod
from skiff.api import codec
from skiff.api import objects_pb2 as pb
from skiff.api import service_pb2 as api


def a_pod(labels=None, annotations=None):
    return codec.decode(pb.Pod, {
        "metadata": {"name": "web", "namespace": "team", "uid": "uid-1",
                     "labels": labels if labels is not None else {"app": "web", "tier": "fe"},
                     "annotations": annotations or {}},
        "spec": {"nodeName": "n1", "serviceAccountName": "robot",
                 "containers": [{"name": "web", "image": "busybox",
                                 "resources": {"limits": {"cpu": "1500m", "memory": "64Mi"},
                                               "requests": {"cpu": "250m"}}}],
                 "volumes": []}})


def vol(doc):
    return codec.decode(pb.Volume, dict(doc, name="v"))


CM = pb.ConfigMap(data={"color": "blue", "size": "L"}, binary_data={"logo": b"\x89PNG"})
SECRET = pb.Secret(data={"user": b"admin", "pass": b"s3cret"})


def sources(**kw):
    objects = {("configmap", "app"): CM, ("secret", "db"): SECRET}
    return projected.Sources(
        get_configmap=lambda ns, name: objects.get(("configmap", name)),
        get_secret=lambda ns, name: objects.get(("secret", name)),
        token=lambda pod, audience, exp: f"jwt:{pod.spec.service_account_name}:{audience}:{exp}",
        host_ip="10.0.0.1", pod_ip="10.244.0.7", allocatable={"cpu": "4", "memory": "8Gi"}, **kw)


def field(path, field_path, **extra):
    return dict({"path": path, "fieldRef": {"fieldPath": field_path}}, **extra)


def resource(path, res, divisor="", **extra):
    ref = {"containerName": "web", "resource": res}
    if divisor:
        ref["divisor"] = divisor
    return dict({"path": path, "resourceFieldRef": ref}, **extra)


RENDER = [
    # (case, volume source, {path: (content, mode)})
    ("labels", {"downwardAPI": {"items": [field("labels", "metadata.labels")]}},
     {"labels": (b'app="web"\ntier="fe"', 0o644)}),
    ("name, namespace, uid", {"downwardAPI": {"items": [field("n", "metadata.name"), field("ns", "metadata.namespace"),
                                                        field("u", "metadata.uid")]}},
     {"n": (b"web", 0o644), "ns": (b"team", 0o644), "u": (b"uid-1", 0o644)}),
    ("one label, node, pod IP", {"downwardAPI": {"items": [field("t", "metadata.labels['tier']"),
                                                           field("node", "spec.nodeName"),
                                                           field("ip", "status.podIP"),
                                                           field("host", "status.hostIP")]}},
     {"t": (b"fe", 0o644), "node": (b"n1", 0o644), "ip": (b"10.244.0.7", 0o644), "host": (b"10.0.0.1", 0o644)}),
    ("limits with divisors, mode", {"downwardAPI": {"defaultMode": 0o400, "items": [
        resource("cpu", "limits.cpu"), resource("cpu_m", "limits.cpu", "1m"),
        resource("mem", "limits.memory", "1Mi", mode=0o444), resource("req", "requests.cpu", "1m"),
        resource("reqmem", "requests.memory")]}},
     {"cpu": (b"2", 0o400), "cpu_m": (b"1500", 0o400), "mem": (b"64", 0o444), "req": (b"250", 0o400),
      "reqmem": (b"67108864", 0o400)}),
    ("projected: all four kinds", {"projected": {"sources": [
        {"secret": {"name": "db", "items": [{"key": "user", "path": "db/user"}]}},
        {"configMap": {"name": "app"}},
        {"downwardAPI": {"items": [field("name", "metadata.name")]}},
        {"serviceAccountToken": {"audience": "vault", "expirationSeconds": 600, "path": "token"}}]}},
     {"db/user": (b"admin", 0o644), "color": (b"blue", 0o644), "size": (b"L", 0o644), "logo": (b"\x89PNG", 0o644),
      "name": (b"web", 0o644), "token": (b"jwt:robot:vault:600", 0o644)}),
    ("projected: defaultMode, item mode, default lifetime", {"projected": {"defaultMode": 0o440, "sources": [
        {"secret": {"name": "db", "items": [{"key": "pass", "path": "p", "mode": 0o400}]}},
        {"serviceAccountToken": {"path": "t"}}]}},
     {"p": (b"s3cret", 0o400), "t": (b"jwt:robot::3600", 0o440)}),
    ("projected: optional missing sources", {"projected": {"sources": [
        {"secret": {"name": "nope", "optional": True}},
        {"configMap": {"name": "app", "optional": True, "items": [{"key": "absent", "path": "a"},
                                                                  {"key": "size", "path": "s"}]}}]}},
     {"s": (b"L", 0o644)}),
]


@pytest.mark.parametrize("case,source,want", RENDER, ids=[c[0] for c in RENDER])
def test_render(case, source, want):
    assert projected.render(a_pod(), vol(source), sources()) == want


RENDER_ERRORS = [
    ({"projected": {"sources": [{"secret": {"name": "nope"}}]}}, 'secret "nope" not found'),
    ({"projected": {"sources": [{"configMap": {"name": "nope"}}]}}, 'configmap "nope" not found'),
    ({"projected": {"sources": [{"configMap": {"name": "app", "items": [{"key": "x", "path": "x"}]}}]}},
     'configmap "app" has no key "x"'),
    ({"downwardAPI": {"items": [resource("x", "limits.cpu") | {"resourceFieldRef": {
        "containerName": "side", "resource": "limits.cpu"}}]}}, "no container named 'side'"),
]


@pytest.mark.parametrize("source,text", RENDER_ERRORS, ids=[t for _, t in RENDER_ERRORS])
def test_render_errors_name_the_volume_and_source(source, text):
    with pytest.raises(volumes.VolumeError) as exc:
        projected.render(a_pod(), vol(source), sources())
    assert text in str(exc.value)


def test_a_token_source_without_a_token_maker_fails_to_mount():
    src = sources()
    src.token = None
    with pytest.raises(volumes.VolumeError, match="issues no ServiceAccount tokens"):
        projected.render(a_pod(), vol({"projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}), src)


@pytest.mark.parametrize("labels,text", [
    ({}, ""),
    ({"b": "2", "a": "1"}, 'a="1"\nb="2"'),
    ({"q": 'say "hi"\\', "tab": "a\tb", "ü": "grün"}, 'q="say \\"hi\\"\\\\"\ntab="a\\tb"\nü="grün"'),
    ({"ctl": "\x01", "nl": "a\nb"}, 'ctl="\\x01"\nnl="a\\nb"'),
])
def test_format_map_is_kubelets(labels, text):
    """key="value" sorted, values quoted as Go's %q, no final newline (fieldpath.FormatMap)."""
    assert projected.format_map(labels) == text


# ---------------------------------------------------------------- writing


def test_write_makes_kubelets_layout(tmp_path):
    path = str(tmp_path / "v")
    assert projected.write(path, {"a": (b"1", 0o600), "d/b": (b"2", 0o644)})
    assert sorted(n for n in os.listdir(path) if not n.startswith("..")) == ["a", "d"]
    assert os.readlink(os.path.join(path, "..data")).startswith("..20")
    assert os.readlink(os.path.join(path, "a")) == "..data/a"
    assert os.readlink(os.path.join(path, "d")) == "..data/d"
    assert (tmp_path / "v" / "d" / "b").read_bytes() == b"2"
    assert os.stat(os.path.join(path, "a")).st_mode & 0o777 == 0o600
    assert projected.read(path) == {"a": (b"1", 0o600), "d/b": (b"2", 0o644)}


def test_write_swaps_versions_and_drops_old_files(tmp_path):
    path = str(tmp_path / "v")
    projected.write(path, {"a": (b"1", 0o644), "gone": (b"x", 0o644)})
    first = os.readlink(os.path.join(path, "..data"))
    assert not projected.write(path, {"a": (b"1", 0o644), "gone": (b"x", 0o644)})    # unchanged: untouched
    assert os.readlink(os.path.join(path, "..data")) == first
    assert projected.write(path, {"a": (b"2", 0o644)})
    assert os.readlink(os.path.join(path, "..data")) != first
    assert sorted(n for n in os.listdir(path) if not n.startswith("..")) == ["a"]
    assert [n for n in os.listdir(path) if n.startswith("..2")] == [os.readlink(os.path.join(path, "..data"))]
    assert (tmp_path / "v" / "a").read_bytes() == b"2"
    assert projected.write(path, {"a": (b"2", 0o400)})       # a mode change is a change
    assert os.stat(os.path.join(path, "a")).st_mode & 0o777 == 0o400


def test_write_refuses_paths_outside_the_volume(tmp_path):
    with pytest.raises(volumes.VolumeError):
        projected.write(str(tmp_path / "v"), {"../escape": (b"x", 0o644)})


def test_volumes_prepare_dispatches_and_mounts_read_only(tmp_path):
    pod = a_pod()
    pod.spec.volumes.append(vol({"downwardAPI": {"items": [field("labels", "metadata.labels")]}}))
    pv = projected.ProjectedVolumes(str(tmp_path), lambda ns, n: None, lambda ns, n: None)
    paths = volumes.prepare(str(tmp_path), pod, None, None, projected=pv.prepare)
    assert open(os.path.join(paths["v"], "labels")).read() == 'app="web"\ntier="fe"'
    c = pod.spec.containers[0]
    c.volume_mounts.add(name="v", mount_path="/etc/podinfo")
    assert volumes.container_mounts(pod, c, paths) == [("/etc/podinfo", paths["v"], True)]


def test_refresh_rewrites_changed_labels_and_leaves_the_rest(tmp_path):
    pod = a_pod()
    pod.spec.volumes.append(vol({"downwardAPI": {"items": [field("labels", "metadata.labels"),
                                                           field("name", "metadata.name")]}}))
    pv = projected.ProjectedVolumes(str(tmp_path), lambda ns, n: None, lambda ns, n: None)
    assert pv.refresh(pod) == 0                      # not prepared yet: nothing written
    path = pv.prepare(pod, pod.spec.volumes[0])
    assert pv.refresh(pod) == 0
    pod.metadata.labels["tier"] = "be"
    pod.metadata.labels["new"] = "yes"
    assert pv.refresh(pod) == 1
    assert open(os.path.join(path, "labels")).read() == 'app="web"\nnew="yes"\ntier="be"'
    assert open(os.path.join(path, "name")).read() == "web"


def test_refresh_reads_objects_at_most_every_ttl_and_keeps_files_on_failure(tmp_path):
    t = [0.0]
    reads = []
    objects = {"app": pb.ConfigMap(data={"k": "1"})}

    def get_cm(ns, name):
        reads.append(name)
        return objects.get(name)

    pod = a_pod()
    pod.spec.volumes.append(vol({"projected": {"sources": [{"configMap": {"name": "app"}}]}}))
    pv = projected.ProjectedVolumes(str(tmp_path), get_cm, lambda ns, n: None, clock=lambda: t[0], object_ttl_s=60)
    path = pv.prepare(pod, pod.spec.volumes[0])
    objects["app"] = pb.ConfigMap(data={"k": "2"})
    assert pv.refresh(pod) == 0 and len(reads) == 1          # within the TTL: the cached read
    t[0] = 61.0
    assert pv.refresh(pod) == 1 and len(reads) == 2
    assert open(os.path.join(path, "k")).read() == "2"
    del objects["app"]
    t[0] = 200.0
    assert pv.refresh(pod) == 0                              # gone: the old files stay
    assert open(os.path.join(path, "k")).read() == "2"
    with pytest.raises(volumes.VolumeError, match='configmap "app" not found'):
        pv.prepare(a_pod_with_uid(pod, "uid-2"), pod.spec.volumes[0])


def a_pod_with_uid(pod, uid):
    other = pb.Pod()
    other.CopyFrom(pod)
    other.metadata.uid = uid
    return other


# ---------------------------------------------------------------- projected tokens


class FakeApi:
    def __init__(self):
        self.calls = []
        self.error = None

    def __call__(self, namespace, account, pod, uid, expiration_s, audiences=()):
        self.calls.append((namespace, account, pod, uid, expiration_s, tuple(audiences)))
        if self.error is not None:
            raise self.error
        return api.TokenResponse(token=f"token-{len(self.calls)}", expiration_seconds=expiration_s)


def test_projected_tokens_per_audience_renewed_at_80_percent(tmp_path):
    now = [1000.0]
    fake = FakeApi()
    tokens = satoken.PodTokens(str(tmp_path), fake, clock=lambda: now[0])
    pod = a_pod()
    assert tokens.projected_token(pod, "vault", 600) == "token-1"
    assert fake.calls == [("team", "robot", "web", "uid-1", 600, ("vault",))]
    assert tokens.projected_token(pod, "", 3600) == "token-2"      # the API's audience: none named
    assert fake.calls[-1][-1] == ()
    now[0] += 479
    assert tokens.projected_token(pod, "vault", 600) == "token-1"
    now[0] += 1                                                    # 480 s = 80 % of 600
    assert tokens.projected_token(pod, "vault", 600) == "token-3"
    fake.error = clientmod.ApiError(grpc.StatusCode.UNAVAILABLE, "down")
    now[0] += 500                                                  # due, refused, still valid: kept
    assert tokens.projected_token(pod, "vault", 600) == "token-3"
    now[0] += 200                                                  # expired: the mount fails
    with pytest.raises(volumes.VolumeError, match="failed to fetch token for audience 'vault'"):
        tokens.projected_token(pod, "vault", 600)
    tokens.forget("uid-1")
    fake.error = None
    assert tokens.projected_token(pod, "", 3600) == "token-6"      # forgotten with the pod


def test_fs_group_owns_the_files_and_a_rewrite_is_not_needed_again(tmp_path):
    gid = os.getgid() + 1 if os.geteuid() == 0 else os.getgid()
    path = str(tmp_path / "v")
    assert projected.write(path, {"a": (b"1", 0o400), "d/b": (b"2", 0o600)}, gid)
    for name in ("a", "d/b", "d"):
        st = os.stat(os.path.join(path, name))
        assert st.st_gid == gid
    assert os.stat(os.path.join(path, "a")).st_mode & 0o777 == 0o440
    assert os.stat(os.path.join(path, "d/b")).st_mode & 0o777 == 0o640
    assert not projected.write(path, {"a": (b"1", 0o400), "d/b": (b"2", 0o600)}, gid)   # no rewrite every sync
