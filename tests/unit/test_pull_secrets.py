"""imagePullSecrets: the kubelet's keyring (which registry key matches which image, in which
order), reading a pod's secrets (a missing one is reported, not fatal), the applier handing
the matching credentials to the engine's pull, and Kubernetes' validation of the Secrets."""

import base64
import json

import pytest

from nodeagent.podsync import pullsecrets
from nodeagent.podsync.pullsecrets import Credential, Keyring, registry_key, repository, urls_match
from skiff.api import codec, defaults, kinds, validation
from skiff.api import objects_pb2 as pb
from tests.unit.test_podsync_apply import FakeRuntime, applier, make_pod


@pytest.mark.parametrize("image,repo", [
    ("busybox", "docker.io/library/busybox"),
    ("busybox:1.36", "docker.io/library/busybox"),
    ("team/app:v1", "docker.io/team/app"),
    ("127.0.0.1:5000/skiff/app:v1", "127.0.0.1:5000/skiff/app"),
    ("localhost/app", "localhost/app"),
    ("r.example.com/a/b@sha256:abc", "r.example.com/a/b"),
    ("r.example.com:443/a", "r.example.com:443/a"),
])
def test_repository_normalized_as_the_kubelet(image, repo):
    assert repository(image) == repo


@pytest.mark.parametrize("registry,key", [
    ("https://index.docker.io/v1/", "index.docker.io"),
    ("http://127.0.0.1:5000", "127.0.0.1:5000"),
    ("127.0.0.1:5000/v2/", "127.0.0.1:5000"),
    ("quay.io/team", "quay.io/team"),
    ("quay.io/team/", "quay.io/team"),
])
def test_registry_keys(registry, key):
    assert registry_key(registry) == key


MATCH = [
    # (key, repository, matches)
    ("127.0.0.1:5000", "127.0.0.1:5000/skiff/app", True),
    ("127.0.0.1:5000", "127.0.0.1:5001/skiff/app", False),      # the port must be equal
    ("127.0.0.1", "127.0.0.1:5000/skiff/app", False),
    ("r.example.com", "r.example.com/app", True),
    ("*.example.com", "r.example.com/app", True),
    ("*.example.com", "a.r.example.com/app", False),            # as many host parts
    ("*.example.com", "example.com/app", False),
    ("r.example.*", "r.example.org/app", True),
    ("quay.io/team", "quay.io/team/app", True),
    ("quay.io/team", "quay.io/other/app", False),               # the key's path is a prefix
    ("docker.io", "docker.io/library/busybox", True),
]


@pytest.mark.parametrize("key,repo,matches", MATCH)
def test_urls_match(key, repo, matches):
    assert urls_match(key, repo) is matches


def dockerconfigjson(auths, type_=pullsecrets.DOCKER_CONFIG_JSON, name="regcred"):
    s = pb.Secret(metadata=pb.ObjectMeta(name=name, namespace="default"), type=type_)
    if type_ == pullsecrets.DOCKER_CONFIG_JSON:
        s.data[".dockerconfigjson"] = json.dumps({"auths": auths}).encode()
    else:
        s.data[".dockercfg"] = json.dumps(auths).encode()
    return s


def basic(user, password):
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_most_specific_key_first_then_wildcards():
    ring = Keyring()
    ring.add_secret(dockerconfigjson({"*.example.com": basic("wild", "w"),
                                      "r.example.com": basic("exact", "e"),
                                      "r.example.com/team": basic("team", "t"),
                                      "other.org": basic("other", "o")}))
    users = [c.username for _, c in ring.lookup("r.example.com/team/app:v1")]
    assert users == ["team", "exact", "wild"]
    assert [c.username for _, c in ring.lookup("q.example.com/app")] == ["wild"]
    assert ring.lookup("nothing.net/app") == []


def test_both_secret_types_and_entry_shapes():
    ring = Keyring()
    ring.add_secret(dockerconfigjson({"https://r.example.com/v2/": {"username": "u1", "password": "p1"}}))
    ring.add_secret(dockerconfigjson({"r.example.com": basic("u2", "p:2")}, type_=pullsecrets.DOCKER_CFG))
    creds = [c for _, c in ring.lookup("r.example.com/app")]
    assert creds == [Credential("u1", "p1"), Credential("u2", "p:2")]   # secrets in the pod's order
    assert creds[0].auth_config("r.example.com") == {"serveraddress": "r.example.com",
                                                     "username": "u1", "password": "p1"}


def test_docker_hub_credentials_under_index_docker_io():
    ring = Keyring()
    ring.add_secret(dockerconfigjson({"https://index.docker.io/v1/": basic("hub", "h")}))
    assert [c.username for _, c in ring.lookup("busybox")] == ["hub"]
    assert ring.lookup("r.example.com/busybox") == []


def test_secrets_of_other_types_or_bad_data_add_nothing():
    ring = Keyring()
    opaque = pb.Secret(type="Opaque")
    opaque.data[".dockerconfigjson"] = b'{"auths": {"r.example.com": {"username": "u"}}}'
    broken = pb.Secret(type=pullsecrets.DOCKER_CONFIG_JSON)
    broken.data[".dockerconfigjson"] = b"not json"
    assert not ring.add_secret(opaque) and not ring.add_secret(broken)
    assert ring.lookup("r.example.com/app") == []


# ---------------------------------------------------------------- the applier

def pulling_pod(*secret_names, image="127.0.0.1:5000/skiff/app:v1"):
    pod = make_pod()
    pod.spec.containers[0].image = image
    pod.spec.containers[0].image_pull_policy = "Always"
    for name in secret_names:
        pod.spec.image_pull_secrets.add(name=name)
    return pod


def test_the_matching_credentials_reach_the_pull_and_a_missing_secret_is_reported():
    secrets = {"regcred": dockerconfigjson({"127.0.0.1:5000": basic("skiff", "s3cret"),
                                            "elsewhere.org": basic("no", "no")})}
    rt = FakeRuntime(pull_ok=True)
    ap, rec = applier(rt, get_secret=lambda ns, name: secrets.get(name))
    pod = pulling_pod("gone", "regcred")
    ap._ensure_image(pod, pod.spec.containers[0])
    assert rt.auths == [{"serveraddress": "127.0.0.1:5000", "username": "skiff", "password": "s3cret"}]
    assert ("Warning", "FailedToRetrieveImagePullSecret",
            "Unable to retrieve some image pull secrets (gone); attempting to pull the image may not "
            "succeed.") in rec.events
    assert rec.events[-1][1] == "Pulled"


def test_no_pull_secrets_pull_anonymously_without_reading_secrets():
    rt = FakeRuntime(pull_ok=True)
    ap, rec = applier(rt, get_secret=lambda ns, name: pytest.fail("no secret to read"))
    pod = pulling_pod()
    ap._ensure_image(pod, pod.spec.containers[0])
    assert rt.auths == [] and not any(e[1] == "FailedToRetrieveImagePullSecret" for e in rec.events)


# ---------------------------------------------------------------- Secret validation

def secret_errors(type_, data=None, string_data=None):
    doc = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "regcred", "namespace": "default"},
           "type": type_}
    if data is not None:
        doc["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    if string_data is not None:
        doc["stringData"] = string_data
    kind = kinds.BY_NAME["Secret"]
    msg = codec.decode(kind.message, doc)
    defaults.apply_defaults(kind, msg)
    return [str(e) for e in validation.validate(kind, msg)]


GOOD = '{"auths": {"127.0.0.1:5000": {"auth": "c2tpZmY6czNjcmV0"}}}'


@pytest.mark.parametrize("type_,key", [("kubernetes.io/dockerconfigjson", ".dockerconfigjson"),
                                       ("kubernetes.io/dockercfg", ".dockercfg")])
def test_registry_secrets_validated_as_kubernetes(type_, key):
    assert secret_errors(type_, {key: GOOD}) == []
    assert secret_errors(type_, string_data={key: GOOD}) == []
    assert secret_errors(type_, {key: "null"}) == []
    assert [e.split(":")[0] + ":" + e.split(":")[1] for e in secret_errors(type_, {"other": GOOD})] == \
        [f"data[{key}]: Required value"]
    [bad] = secret_errors(type_, {key: "{not json"})
    assert bad.startswith(f'data[{key}]: Invalid value: "<secret contents redacted>": ')
    assert "not json" not in bad
    assert secret_errors(type_, {key: "[1]"}) == [
        f'data[{key}]: Invalid value: "<secret contents redacted>": json: cannot unmarshal array into Go '
        'value of type map[string]interface {}']
