"""Secrets encrypted at rest: the encryption config file, the AES-GCM envelope, and the store's
sealing (controlplane/store/encryption.py, sealing.py): what reaches the state machine (and so
the Raft log, journal and dump), what reads hand out, comparisons on decrypted content, key
rotation with its rewrite, and a replica missing a key."""

import base64
import pickle
import re

import pytest
import yaml

from controlplane import config as cfgmod
from controlplane.store import encryption as enc
from controlplane.store.commands import Apply, Create, Delete, Update
from controlplane.store.encryption import DecryptError
from controlplane.store.raft import StoreConsumer
from controlplane.store.sealing import SEALED_KEY, Sealer
from controlplane.store.store import Store
from controlplane.store.reader import StoreReader
from skiff import encryption_config
from skiff.api import kinds
from skiff.api import objects_pb2 as pb
from tests.unit.statehelp import NOW, env

K1 = base64.b64encode(b"1" * 32).decode()
K2 = base64.b64encode(b"2" * 16).decode()
VALUE = b"hunter2-unique-8f1c"


def config(*providers):
    return {"apiVersion": "apiserver.config.k8s.io/v1", "kind": "EncryptionConfiguration",
            "resources": [{"resources": ["secrets"], "providers": list(providers)}]}


def aesgcm(*keys):
    return {"aesgcm": {"keys": [{"name": n, "secret": s} for n, s in keys]}}


IDENTITY = {"identity": {}}


def encryption(*providers):
    return enc.parse(config(*providers), "enc.yaml")


# ---------------------------------------------------------------- the config file

def test_first_provider_and_its_first_key_encrypt_every_key_decrypts():
    e = encryption(aesgcm(("key2", K2), ("key1", K1)), IDENTITY)
    assert e.write == ("aesgcm", "key2") and e.key_names == ("key2", "key1") and e.identity
    assert encryption(IDENTITY, aesgcm(("key1", K1))).write == ("identity", "")
    assert not encryption(aesgcm(("key1", K1))).identity


@pytest.mark.parametrize("doc, field", [
    (config(aesgcm(("k", K1)), {"aescbc": {"keys": [{"name": "a", "secret": K1}]}}),
     "resources[0].providers[1].aescbc: not supported yet"),
    (config({"secretbox": {"keys": []}}), "resources[0].providers[0].secretbox: not supported yet"),
    (config({"kms": {}}), "resources[0].providers[0].kms: not supported yet"),
    ({**config(IDENTITY), "resources": [{"resources": ["secrets", "configmaps"], "providers": [IDENTITY]}]},
     "resources[0].resources[1]: 'configmaps': not supported yet"),
    (config(aesgcm(("k", "not base64!"))), "resources[0].providers[0].aesgcm.keys[0].secret: must be base64"),
    (config(aesgcm(("k", base64.b64encode(b"short").decode()))), "resources[0].providers[0].aesgcm.keys[0].secret: must decode to 16, 24 or 32 bytes, got 5"),
    (config(aesgcm(("k", K1), ("k", K2))), "resources[0].providers[0].aesgcm.keys[1].name: Duplicate value"),
    (config(aesgcm(("a:b", K1))), "resources[0].providers[0].aesgcm.keys[0].name: Required value: a non-empty name without ':'"),
    (config(), "resources[0].providers: Required value"),
    ({**config(IDENTITY), "apiVersion": "v1"}, "apiVersion: must be apiserver.config.k8s.io/v1"),
    ({**config(IDENTITY), "kind": "Other"}, "kind: must be EncryptionConfiguration"),
    (config({"identity": {"x": 1}}), "resources[0].providers[0].identity: takes no settings"),
])
def test_invalid_config_is_refused_naming_the_field(doc, field):
    with pytest.raises(enc.EncryptionConfigError, match="^" + re.escape("enc.yaml: " + field)):
        enc.parse(doc, "enc.yaml")


def test_new_config_parses_with_a_fresh_key_each_time():
    a, b = (enc.parse(yaml.safe_load(encryption_config.new_config("main"))) for _ in range(2))
    assert a.write == ("aesgcm", "main") and a.identity
    assert a.seal(b"x", b"aad") != b.seal(b"x", b"aad")


def test_replica_config_reads_the_file_relative_to_itself(tmp_path):
    (tmp_path / "pw").write_text("p" * 20)
    assert encryption_config.write_new(str(tmp_path / "enc.yaml"))
    assert not encryption_config.write_new(str(tmp_path / "enc.yaml"))     # never overwritten
    assert (tmp_path / "enc.yaml").stat().st_mode & 0o777 == 0o600
    doc = {"name": "cp1", "dataDir": str(tmp_path / "d"), "apiAddress": "127.0.0.1:1",
           "raftAddress": "127.0.0.1:2", "raftPasswordFile": str(tmp_path / "pw"),
           "encryptionConfigFile": "enc.yaml"}
    (tmp_path / "cp.yaml").write_text(yaml.safe_dump(doc))
    cfg = cfgmod.load(str(tmp_path / "cp.yaml"))
    assert cfg.encryption.write == ("aesgcm", "key1")
    assert cfg.encryption_config_file == str(tmp_path / "enc.yaml")
    assert "encryptionConfigFile" in cfgmod.dump(cfg, str(tmp_path / "pw"))
    (tmp_path / "enc.yaml").write_text(yaml.safe_dump(config({"secretbox": {}})))
    with pytest.raises(cfgmod.ConfigError, match="encryptionConfigFile: .*secretbox: not supported yet"):
        cfgmod.load(str(tmp_path / "cp.yaml"))
    del doc["encryptionConfigFile"]
    (tmp_path / "cp.yaml").write_text(yaml.safe_dump(doc))
    assert cfgmod.load(str(tmp_path / "cp.yaml")).encryption is None


# ---------------------------------------------------------------- the envelope

def test_envelope_is_prefix_nonce_ciphertext_and_tag():
    e = encryption(aesgcm(("key1", K1)))
    sealed = e.seal(VALUE, b"secrets/default/s")
    prefix = b"k8s:enc:aesgcm:v1:key1:"
    assert sealed.startswith(prefix)
    assert len(sealed) == len(prefix) + 12 + len(VALUE) + 16
    assert VALUE not in sealed
    assert e.seal(VALUE, b"secrets/default/s")[len(prefix):][:12] != sealed[len(prefix):][:12]   # nonce
    assert e.open(sealed, b"secrets/default/s", "x") == VALUE
    assert e.is_current(sealed) and not e.is_current(None)


def test_a_value_moved_to_another_secret_does_not_decrypt():
    e = encryption(aesgcm(("key1", K1)))
    sealed = e.seal(VALUE, b"secrets/default/s")
    with pytest.raises(DecryptError, match="does not decrypt with aesgcm key 'key1'"):
        e.open(sealed, b"secrets/default/other", "x")


def test_wrong_or_missing_key_fails_loudly_naming_key_and_file():
    sealed = encryption(aesgcm(("key1", K1))).seal(VALUE, b"a")
    other_secret_same_name = encryption(aesgcm(("key1", base64.b64encode(b"9" * 32).decode())))
    with pytest.raises(DecryptError, match="does not decrypt with aesgcm key 'key1' of enc.yaml"):
        other_secret_same_name.open(sealed, b"a", "secret \"default/s\"")
    with pytest.raises(DecryptError, match=r"secret \"default/s\": .*aesgcm key 'key1', which this "
                                           r"replica's encryption config \(enc.yaml\) does not list "
                                           r"\(it lists key2\)"):
        encryption(aesgcm(("key2", K2))).open(sealed, b"a", 'secret "default/s"')
    with pytest.raises(DecryptError, match="truncated"):
        encryption(aesgcm(("key1", K1))).open(sealed[:30], b"a", "x")
    with pytest.raises(DecryptError, match="provider 'secretbox'"):
        encryption(aesgcm(("key1", K1))).open(b"k8s:enc:secretbox:v1:k:xxxx", b"a", "x")


# ---------------------------------------------------------------- the store

class LocalStore(Store):
    """Store's sealing and rewrite over a local state machine (no Raft)."""

    def __init__(self, encryption_):
        StoreReader.__init__(self, StoreConsumer(100), Sealer(encryption_))
        self.consumer.apply(Create("ns", env(pb.Namespace(metadata=pb.ObjectMeta(name="default"))),
                                   NOW, "u0"), _doApply=True)

    def _replicate(self, cmd, timeout_s, wait_s=0.0):
        return self.consumer.apply(cmd, _doApply=True)

    def rekey(self, encryption_):
        """A restart with another encryption config: same state, new sealer."""
        self.sealer = Sealer(encryption_)

    def raw(self, name="s"):
        return self.stored(("Secret", "default", name)).secret


def secret(name="s", data=None, string_data=None, annotations=None, immutable=None, labels=None):
    s = pb.Secret(metadata=pb.ObjectMeta(name=name, namespace="default", annotations=annotations or {},
                                         labels=labels or {}),
                  type="Opaque", data=data if data is not None else {"password": VALUE},
                  string_data=string_data or {})
    if immutable is not None:
        s.immutable = immutable
    return s


def obj(result):
    assert result[0] == "ok", result
    e = pb.Object()
    e.ParseFromString(result[2])
    return e.secret


def no_clear_text(blob: bytes):
    assert VALUE not in blob and base64.b64encode(VALUE) not in blob


KEY1 = aesgcm(("key1", K1))


def test_what_the_state_machine_gets_and_keeps_holds_no_clear_text():
    store = LocalStore(encryption(KEY1))
    sent = []
    store._replicate = lambda cmd, t, wait_s=0.0: sent.append(pickle.dumps(cmd)) or store.consumer.apply(cmd, _doApply=True)
    last_applied = "kubectl.kubernetes.io/last-applied-configuration"
    created = obj(store.propose(Create("c", env(secret(annotations={last_applied: VALUE.decode()},
                                                            string_data={"token": "tok-" + VALUE.decode()})),
                                       NOW, "u1"), 5))
    # The client sees what it wrote (stringData folded into data, as Kubernetes' defaulting does).
    assert dict(created.data) == {"password": VALUE, "token": b"tok-" + VALUE}
    assert created.metadata.annotations[last_applied] == VALUE.decode() and not created.string_data
    stored = store.raw()
    assert list(stored.data) == [SEALED_KEY] and not stored.metadata.annotations
    assert stored.data[SEALED_KEY].startswith(b"k8s:enc:aesgcm:v1:key1:")
    store.propose(Delete("d", ("Secret", "default", "s")), 5)
    for blob in sent + [pickle.dumps(store.consumer.state)]:   # the log's entries; the dump
        no_clear_text(blob)


def test_reads_open_secrets_get_list_watch_view_dry_run():
    store = LocalStore(encryption(KEY1))
    rv0 = store.resource_version()
    store.propose(Create("c", env(secret()), NOW, "u1"), 5)
    assert kinds.unwrap(store.get(("Secret", "default", "s")))[1].data["password"] == VALUE
    [listed], _ = store.list("Secret")
    assert listed.secret.data["password"] == VALUE
    [change] = store.watch("Secret", rv0).next(0.01)
    assert change.object.secret.data["password"] == VALUE
    assert store.view().get("Secret", "default", "s").data["password"] == VALUE
    dry = store.dry_run(Update("x", env(secret(data={"password": b"new"}))))
    assert dry[1] == "updated" and obj(dry).data["password"] == b"new"
    assert store.raw().data[SEALED_KEY] == store.raw().data[SEALED_KEY]      # nothing stored
    assert kinds.unwrap(store.get(("Secret", "default", "s")))[1].data["password"] == VALUE


def test_same_content_is_unchanged_without_a_new_resource_version():
    store = LocalStore(encryption(KEY1))
    store.propose(Create("c", env(secret(labels={"a": "b"})), NOW, "u1"), 5)
    before = store.raw().data[SEALED_KEY]
    again = store.propose(Apply("a", env(secret(labels={"a": "b"})), NOW, "u2"), 5)
    assert again[1] == "unchanged" and store.raw().data[SEALED_KEY] == before
    changed = store.propose(Apply("b", env(secret(data={"password": b"other"}, labels={"a": "b"})), NOW, "u3"), 5)
    assert changed[1] == "configured" and obj(changed).data["password"] == b"other"
    assert store.raw().data[SEALED_KEY] != before
    relabel = store.propose(Update("c2", env(secret(data={"password": b"other"}, labels={"a": "c"}))), 5)
    assert relabel[1] == "updated" and obj(relabel).data["password"] == b"other"


def test_optimistic_concurrency_is_unchanged():
    store = LocalStore(encryption(KEY1))
    rv = obj(store.propose(Create("c", env(secret()), NOW, "u1"), 5)).metadata.resource_version
    store.propose(Update("u1", env(secret(data={"password": b"x"}))), 5)
    stale = secret(data={"password": b"y"})
    stale.metadata.resource_version = rv
    result = store.propose(Update("u2", env(stale), "", rv), 5)
    assert result[:2] == ("error", "conflict")


def test_immutable_secret_compares_on_decrypted_data():
    store = LocalStore(encryption(KEY1))
    store.propose(Create("c", env(secret(immutable=True)), NOW, "u1"), 5)
    assert store.propose(Apply("a", env(secret(immutable=True)), NOW, "u2"), 5)[1] == "unchanged"
    refused = store.propose(Apply("b", env(secret(data={"password": b"x"}, immutable=True)), NOW, "u3"), 5)
    assert refused[:2] == ("error", "invalid") and "immutable" in refused[2]


def test_rotation_rewrites_with_the_new_first_key_and_the_old_key_can_go():
    store = LocalStore(encryption(KEY1))
    store.propose(Create("c1", env(secret("s")), NOW, "u1"), 5)
    store.propose(Create("c2", env(secret("frozen", immutable=True)), NOW, "u2"), 5)
    store.propose(Create("c3", env(secret("empty", data={})), NOW, "u3"), 5)
    # Step 1: key2 added second (decrypt only): nothing is stale, a replace changes nothing.
    store.rekey(encryption(aesgcm(("key1", K1), ("key2", K2))))
    current = kinds.unwrap(store.get(("Secret", "default", "s")))[1]
    assert store.propose(Update("r0", env(current), "", current.metadata.resource_version), 5)[1] == "unchanged"
    # Step 2: key2 first; replacing each Secret by itself rewrites it with key2.
    store.rekey(encryption(aesgcm(("key2", K2), ("key1", K1))))
    for name in ("s", "frozen", "empty"):
        current = kinds.unwrap(store.get(("Secret", "default", name)))[1]
        result = store.propose(Update(f"r-{name}", env(current), "", current.metadata.resource_version), 5)
        if name == "empty":
            assert result[1] == "unchanged"       # nothing sealed, nothing to rewrite
            continue
        assert result[1] == "updated"
        assert int(obj(result).metadata.resource_version) > int(current.metadata.resource_version)
        assert obj(result).data["password"] == VALUE
        assert store.raw(name).data[SEALED_KEY].startswith(b"k8s:enc:aesgcm:v1:key2:")
    assert kinds.unwrap(store.get(("Secret", "default", "frozen")))[1].immutable
    # Step 3: key1 dropped: everything still reads.
    store.rekey(encryption(aesgcm(("key2", K2))))
    assert {s.secret.metadata.name: dict(s.secret.data) for s in store.list("Secret")[0]} == {
        "empty": {}, "frozen": {"password": VALUE}, "s": {"password": VALUE}}
    # A replica still on key1 only fails loudly instead of serving garbage.
    store.rekey(encryption(KEY1))
    with pytest.raises(DecryptError, match=r"secret \"default/s\": .*aesgcm key 'key2', which this replica"):
        store.get(("Secret", "default", "s"))
    with pytest.raises(DecryptError):
        store.list("Secret")


def test_clear_secrets_from_before_encryption_read_with_identity_and_get_sealed():
    store = LocalStore(None)                       # no encryption config: stored in clear
    store.propose(Create("c", env(secret()), NOW, "u1"), 5)
    assert store.raw().data["password"] == VALUE
    store.rekey(encryption(aesgcm(("key1", K1))))   # no identity provider: refused
    with pytest.raises(DecryptError, match="stored in clear, but .* lists no identity provider"):
        store.get(("Secret", "default", "s"))
    store.rekey(encryption(KEY1, IDENTITY))
    current = kinds.unwrap(store.get(("Secret", "default", "s")))[1]
    assert store.propose(Update("r", env(current), "", current.metadata.resource_version), 5)[1] == "updated"
    assert list(store.raw().data) == [SEALED_KEY]
    # And back to clear (Kubernetes' way to decrypt a cluster): identity first.
    store.rekey(encryption(IDENTITY, KEY1))
    current = kinds.unwrap(store.get(("Secret", "default", "s")))[1]
    assert store.propose(Update("r2", env(current), "", current.metadata.resource_version), 5)[1] == "updated"
    assert store.raw().data["password"] == VALUE


def test_rewrite_needs_the_version_it_decrypted():
    store = LocalStore(encryption(KEY1))
    store.propose(Create("c", env(secret()), NOW, "u1"), 5)
    rewrite = pb.Secret(metadata=pb.ObjectMeta(name="s", namespace="default"), data={"password": b"x"})
    result = store.consumer.apply(Update("w", env(rewrite), "encryption", ""), _doApply=True)
    assert result[:2] == ("error", "invalid")
    result = store.consumer.apply(Update("w2", env(rewrite), "encryption", "1"), _doApply=True)
    assert result[:2] == ("error", "conflict")


def test_only_secrets_are_sealed_other_writes_pass_as_they_are():
    sealer = Sealer(encryption(KEY1))
    cm = Create("c", env(pb.ConfigMap(metadata=pb.ObjectMeta(name="c", namespace="default"),
                                      data={"v": VALUE.decode()})), NOW, "u")
    assert sealer.seal_command(cm, lambda key: None) is cm
    empty = Create("e", env(pb.Secret(metadata=pb.ObjectMeta(name="e", namespace="default"))), NOW, "u")
    assert sealer.seal_command(empty, lambda key: None).object == empty.object    # nothing to hide
    sealed = sealer.seal_command(Create("s", env(secret()), NOW, "u"), lambda key: None)
    no_clear_text(sealed.object)


def test_watch_history_sealed_with_a_dropped_key_is_expired_not_garbage():
    from controlplane.store.reader import Expired
    store = LocalStore(encryption(KEY1))
    rv = store.resource_version()
    store.propose(Create("c", env(secret()), NOW, "u1"), 5)
    store.rekey(encryption(aesgcm(("key2", K2), ("key1", K1))))
    current = kinds.unwrap(store.get(("Secret", "default", "s")))[1]
    store.propose(Update("r", env(current), "", current.metadata.resource_version), 5)
    after = store.resource_version()
    store.rekey(encryption(aesgcm(("key2", K2))))
    with pytest.raises(Expired, match="re-list"):
        store.watch("Secret", rv).next(0.01)          # the create, sealed with key1
    assert store.watch("Secret", after - 1).next(0.01)[0].object.secret.data["password"] == VALUE
