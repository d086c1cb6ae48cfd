"""Secrets encrypted at rest on a real 3-replica control plane (the lab's encryption config):
no replica's data directory (journal, dump, anything) holds a Secret's value, in clear or
base64, while Get and Watch return it; a key rotation re-encrypts every Secret so the old key
can go; a replica missing the key fails loudly instead of serving garbage."""

import base64
import os
import threading
import uuid

import grpc
import pytest
import yaml

from skiff import client as clientmod
from skiff.api import objects_pb2 as pb
from skiff.cli import secrets_cmds
from skiff.encryption_config import new_key
from tests.helpers import files_holding, remove, wait_until
from tests.integration.conftest import dump_logs, make_cluster

# Small compaction thresholds: the replicas write their dump (raft.dump) within the test.
RAFT = {"compactionMinEntries": 30, "compactionMinTimeS": 1}


@pytest.fixture(scope="module")
def cp(request):
    cluster = make_cluster("secrets-enc", raft=RAFT)
    yield cluster
    if request.session.testsfailed:
        dump_logs(cluster)
    cluster.stop_all()
    remove(cluster.lab_dir)


@pytest.fixture
def client(cp):
    c = cp.client()
    yield c
    c.close()


def data_dirs(cp):
    return [cp.data_dir(name) for name in cp.names]


def make_secret(name, value: bytes, immutable=False):
    s = pb.Secret(metadata=pb.ObjectMeta(name=name, namespace="default"), type="Opaque")
    s.data["password"] = value
    s.string_data["token"] = "tok-" + value.decode()
    if immutable:
        s.immutable = True
    return s


def dumps_written(cp) -> bool:
    return all(os.path.exists(os.path.join(cp.data_dir(n), "raft.dump")) for n in cp.names)


def test_no_data_dir_holds_the_value_while_get_and_watch_return_it(cp, client):
    value = f"skiff-secret-{uuid.uuid4().hex}".encode()
    control = f"skiff-clear-{uuid.uuid4().hex}".encode()     # a ConfigMap's value: stored in clear
    _, rv = client.list("Secret", namespace="default")
    events = []
    stop = threading.Event()

    def watch():
        for typ, obj, _ in client.watch("Secret", namespace="default", resource_version=rv, timeout_s=30):
            events.append((typ, obj))
            if stop.is_set() or obj.metadata.name == "db":
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    client.create(make_secret("db", value))
    client.create(pb.ConfigMap(metadata=pb.ObjectMeta(name="control", namespace="default"),
                               data={"v": control.decode()}))
    got = client.get("Secret", "db")
    assert got.data["password"] == value and got.data["token"] == b"tok-" + value
    with pytest.raises(clientmod.Invalid, match="unknown subresource"):   # the store's own, not the API's
        client.update(got, subresource="encryption")
    watcher.join(30)
    stop.set()
    assert [(t, o.data["password"]) for t, o in events] == [("ADDED", value)]
    # Enough further writes that every replica compacts its log into a dump.
    for i in range(80):
        client.apply(pb.ConfigMap(metadata=pb.ObjectMeta(name="filler", namespace="default"),
                                  data={"i": str(i)}))
        if i > 40 and dumps_written(cp):
            break
    wait_until(lambda: dumps_written(cp), 30, "every replica wrote raft.dump")
    # A second Secret and control after the dumps: in the journals only.
    value2 = f"skiff-secret-{uuid.uuid4().hex}".encode()
    control2 = f"skiff-clear-{uuid.uuid4().hex}".encode()
    client.create(make_secret("db2", value2))
    client.create(pb.ConfigMap(metadata=pb.ObjectMeta(name="control2", namespace="default"),
                               data={"v": control2.decode()}))
    client.get("Secret", "db2", linearizable=True)
    secret_needles = [v for x in (value, value2) for v in (x, base64.b64encode(x), b"tok-" + x)]
    wait_until(lambda: all(files_holding(data_dirs(cp), [control, control2], cp.lab_dir).values()), 10,
               "the control values on disk")
    found = files_holding(data_dirs(cp), [control, control2, *secret_needles], cp.lab_dir)
    # The grep sees what is on disk: the ConfigMaps' values in the dumps and the journals.
    assert any(f.endswith("raft.dump") for f in found[control]), found[control]
    assert any(f.endswith("raft.journal") for f in found[control2]), found[control2]
    assert {n: found[n] for n in secret_needles} == {n: [] for n in secret_needles}


def restart_all(cp, text: str):
    """Every replica restarted, one at a time, with the encryption config `text`."""
    with open(cp.encryption_config_path, "w", encoding="utf-8") as f:
        f.write(text)
    for name in cp.names:
        cp.kill(name)
        cp.start(name)
        cp.wait_ready(60)


def config_with(*keys) -> str:
    return yaml.safe_dump({
        "apiVersion": "apiserver.config.k8s.io/v1", "kind": "EncryptionConfiguration",
        "resources": [{"resources": ["secrets"],
                       "providers": [{"aesgcm": {"keys": [{"name": n, "secret": s} for n, s in keys]}},
                                     {"identity": {}}]}]})


def test_rotation_reencrypts_and_the_old_key_can_go(cp, client):
    with open(cp.encryption_config_path, encoding="utf-8") as f:
        old = yaml.safe_load(f)["resources"][0]["providers"][0]["aesgcm"]["keys"][0]
    key1, key2 = (old["name"], old["secret"]), ("key2", new_key())
    values = {f"r{i}": f"skiff-rot-{uuid.uuid4().hex}".encode() for i in range(3)}
    for i, (name, value) in enumerate(values.items()):
        client.create(make_secret(name, value, immutable=i == 0))
    every = {s.metadata.name: s.data["password"] for s in client.list("Secret")[0]}
    # Kubernetes' procedure: the new key on every replica first (decrypt only), then first.
    restart_all(cp, config_with(key1, key2))
    restart_all(cp, config_with(key2, key1))
    c = cp.client()
    try:
        rewritten, current, failed = secrets_cmds.reencrypt(c)
        assert (rewritten, current, failed) == (len(every), 0, 0)
        assert secrets_cmds.reencrypt(c) == (0, len(every), 0)      # all current now
    finally:
        c.close()
    restart_all(cp, config_with(key2))                               # the old key dropped
    c = cp.client()
    try:
        assert {s.metadata.name: s.data["password"] for s in c.list("Secret")[0]} == every
        assert c.get("Secret", "r0").immutable
        # Writes still work and compare on decrypted content.
        _, result = c.apply(make_secret("r1", values["r1"]))
        assert result == "unchanged"
    finally:
        c.close()
    found = files_holding(data_dirs(cp), [v for x in values.values() for v in (x, base64.b64encode(x))], cp.lab_dir)
    assert all(not files for files in found.values()), found


def test_a_replica_missing_the_key_fails_loudly(cp):
    with open(cp.encryption_config_path, encoding="utf-8") as f:
        good = f.read()
    value = f"skiff-loud-{uuid.uuid4().hex}".encode()
    c = cp.client()
    try:
        c.create(make_secret("loud", value))
        c.get("Secret", "loud", linearizable=True)
    finally:
        c.close()
    # cp3 restarts with a config that has a different key of the same name.
    with open(cp.encryption_config_path, "w", encoding="utf-8") as f:
        f.write(config_with(("key2", new_key())))
    try:
        cp.kill("cp3")
        cp.start("cp3")
        cp.wait_ready(60)
        lone = cp.client([cp.api_address("cp3")])
        try:
            with pytest.raises(clientmod.ApiError) as err:
                lone.get("Secret", "loud")
            assert err.value.code == grpc.StatusCode.INTERNAL
            assert "does not decrypt with aesgcm key 'key2'" in str(err.value)
            with pytest.raises(clientmod.ApiError, match="does not decrypt"):
                lone.list("Secret")
            assert lone.get("ConfigMap", "control").data      # everything else still served
        finally:
            lone.close()
    finally:
        with open(cp.encryption_config_path, "w", encoding="utf-8") as f:
            f.write(good)
        cp.kill("cp3")
        cp.start("cp3")
        cp.wait_ready(60)
    lone = cp.client([cp.api_address("cp3")])
    try:
        assert lone.get("Secret", "loud").data["password"] == value
    finally:
        lone.close()
