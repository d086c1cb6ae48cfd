"""ServiceAccount tokens: issuing and authenticating (controlplane/apiserver/sa_tokens.py).

Real ES256 keys, a fake clock and a dict of stored objects: a token authenticates as
system:serviceaccount:NS:NAME while its account (and bound pod) exist with the uids it
names, and not when it is expired, signed by another key, for another audience or issuer,
or its account or pod is gone or re-created.
"""

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from controlplane.apiserver.sa_tokens import (
    ServiceAccountsConfig, TokenAuthenticator, TokenError, parse_config)
from controlplane.config import ConfigError
from skiff.api import objects_pb2 as pb
from skiff.api.identity import AUTHENTICATED, SA_GROUP

NOW = 1_800_000_000.0


class Clock:
    def __init__(self):
        self.t = NOW

    def __call__(self):
        return self.t


def _sa(name="robot", ns="team", uid="sa-uid-1"):
    return pb.ServiceAccount(metadata=pb.ObjectMeta(name=name, namespace=ns, uid=uid))


def _pod(name="web", ns="team", uid="pod-uid-1", account="robot", deletion=""):
    return pb.Pod(metadata=pb.ObjectMeta(name=name, namespace=ns, uid=uid, deletion_timestamp=deletion),
                  spec=pb.PodSpec(service_account_name=account, node_name="node1"))


class World:
    def __init__(self, *objs):
        self.objects = {(o.DESCRIPTOR.name, o.metadata.namespace, o.metadata.name): o for o in objs}

    def get(self, kind, ns, name):
        return self.objects.get((kind, ns, name))

    def put(self, o):
        self.objects[(o.DESCRIPTOR.name, o.metadata.namespace, o.metadata.name)] = o

    def remove(self, kind, ns, name):
        self.objects.pop((kind, ns, name), None)


def _auth(world, clock=None, key=None, settings=None):
    return TokenAuthenticator(settings or ServiceAccountsConfig(key_file="x"),
                              key or ec.generate_private_key(ec.SECP256R1()), world.get, clock or Clock())


def test_a_bound_token_authenticates_as_the_account():
    world = World(_sa(), _pod())
    auth = _auth(world)
    token, exp = auth.issue("team", "robot", pod_name="web", pod_uid="pod-uid-1", expiration_s=3607)
    assert exp == int(NOW) + 3607
    identity = auth.authenticate(token)
    assert identity.user == "system:serviceaccount:team:robot"
    assert set(identity.groups) == {SA_GROUP, f"{SA_GROUP}:team", AUTHENTICATED}
    assert not identity.is_master


def test_the_claims_are_kubernetes_ones():
    world = World(_sa(), _pod())
    auth = _auth(world)
    token, _ = auth.issue("team", "robot", pod_name="web")
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert header["alg"] == "ES256" and header["kid"] == auth.kid
    assert claims["iss"] == "https://kubernetes.default.svc.cluster.local"
    assert claims["aud"] == ["https://kubernetes.default.svc.cluster.local"]
    assert claims["sub"] == "system:serviceaccount:team:robot"
    assert claims["kubernetes.io"] == {"namespace": "team",
                                       "serviceaccount": {"name": "robot", "uid": "sa-uid-1"},
                                       "pod": {"name": "web", "uid": "pod-uid-1"}}
    assert claims["exp"] - claims["iat"] == 3600   # the default lifetime


def test_an_expired_token_is_refused():
    clock = Clock()
    world = World(_sa(), _pod())
    auth = _auth(world, clock)
    token, _ = auth.issue("team", "robot", pod_name="web", expiration_s=600)
    clock.t = NOW + 599
    assert auth.authenticate(token) is not None
    clock.t = NOW + 600 + 61      # past exp and the 60 s leeway
    assert auth.authenticate(token) is None


def test_a_token_signed_with_another_key_is_refused():
    world = World(_sa(), _pod())
    mine, theirs = _auth(world), _auth(world)
    token, _ = theirs.issue("team", "robot", pod_name="web")
    assert mine.authenticate(token) is None
    assert mine.authenticate(token[:-4] + "AAAA") is None
    assert mine.authenticate("not-a-jwt") is None


def test_a_deleted_or_recreated_account_invalidates_its_tokens():
    world = World(_sa(), _pod())
    auth = _auth(world)
    token, _ = auth.issue("team", "robot", pod_name="web")
    world.remove("ServiceAccount", "team", "robot")
    assert auth.authenticate(token) is None
    world.put(_sa(uid="sa-uid-2"))        # same name, a new object
    assert auth.authenticate(token) is None


def test_a_deleted_or_recreated_pod_invalidates_its_tokens():
    world = World(_sa(), _pod())
    auth = _auth(world)
    token, _ = auth.issue("team", "robot", pod_name="web")
    world.remove("Pod", "team", "web")
    assert auth.authenticate(token) is None
    world.put(_pod(uid="pod-uid-2"))
    assert auth.authenticate(token) is None


def test_a_pod_past_its_deletion_grace_no_longer_authenticates():
    clock = Clock()
    world = World(_sa(), _pod(deletion="2027-01-15T08:00:30Z"))   # NOW is 2027-01-15T08:00:00Z
    auth = _auth(world, clock)
    token, _ = auth.issue("team", "robot", pod_name="web")
    assert auth.authenticate(token) is not None      # still terminating: its containers may use it
    clock.t = NOW + 31
    assert auth.authenticate(token) is None


def test_another_audience_or_issuer_is_refused():
    world = World(_sa(), _pod())
    key = ec.generate_private_key(ec.SECP256R1())
    auth = _auth(world, key=key)
    token, _ = auth.issue("team", "robot", audiences=("vault",))
    assert auth.authenticate(token) is None
    other_issuer = _auth(world, key=key, settings=ServiceAccountsConfig(key_file="x", issuer="https://other"))
    token, _ = other_issuer.issue("team", "robot")
    assert auth.authenticate(token) is None


@pytest.mark.parametrize("kwargs, code, words", [
    (dict(name="nobody"), "not_found", 'serviceaccounts "nobody" not found'),
    (dict(pod_name="gone"), "not_found", 'pods "gone" not found'),
    (dict(pod_name="web", pod_uid="old-uid"), "conflict", "does not match the UID in record"),
    (dict(pod_name="other"), "invalid", 'to pod running with different serviceaccount name "default"'),
    (dict(expiration_s=599), "invalid", "may not specify a duration less than 600 seconds"),
])
def test_token_requests_kubernetes_refuses(kwargs, code, words):
    world = World(_sa(), _pod(), _pod(name="other", uid="u2", account="default"))
    auth = _auth(world)
    name = kwargs.pop("name", "robot")
    with pytest.raises(TokenError) as exc:
        auth.issue("team", name, **kwargs)
    assert exc.value.code == code and words in str(exc.value)


def test_a_long_request_is_cut_to_the_maximum():
    world = World(_sa())
    auth = _auth(world, settings=ServiceAccountsConfig(key_file="x", max_expiration_s=7200))
    _, exp = auth.issue("team", "robot", expiration_s=10 ** 6)
    assert exp == int(NOW) + 7200


@pytest.mark.parametrize("doc, words", [
    ({"keyFile": "/k", "bogus": 1}, "unknown field(s) bogus"),
    ({"minExpirationS": 0}, "minExpirationS must be"),
    ({"minExpirationS": 900, "maxExpirationS": 800}, "must not exceed"),
    ({"audiences": "api"}, "audiences must be a list"),
])
def test_config_section_errors_name_the_key(doc, words):
    with pytest.raises(ConfigError, match="serviceAccounts") as exc:
        parse_config(doc, "cp.yaml: serviceAccounts", ConfigError)
    assert words in str(exc.value)


def test_config_section_defaults():
    cfg = parse_config({"keyFile": "/etc/skiff/sa.key"}, "w", ConfigError)
    assert cfg.key_file == "/etc/skiff/sa.key"
    assert cfg.api_audiences == ("https://kubernetes.default.svc.cluster.local",)
    assert (cfg.min_expiration_s, cfg.max_expiration_s) == (600, 172800)


def test_the_replica_config_reads_and_writes_the_section(tmp_path):
    import yaml

    from controlplane import config as cpconfig
    from tests.helpers import write_replica_config
    path, pw = write_replica_config(tmp_path, "serviceAccounts:\n  keyFile: /etc/skiff/sa.key\n  minExpirationS: 60\n")
    cfg = cpconfig.load(path)
    assert cfg.service_accounts == ServiceAccountsConfig(key_file="/etc/skiff/sa.key", min_expiration_s=60)
    assert yaml.safe_load(cpconfig.dump(cfg, pw))["serviceAccounts"] == {"keyFile": "/etc/skiff/sa.key",
                                                                         "minExpirationS": 60}
    plain, _ = write_replica_config(tmp_path, file_name="plain.yaml")
    assert cpconfig.load(plain).service_accounts.key_file == ""      # no key: no tokens
