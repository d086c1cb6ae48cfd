"""`--dry-run=client` against a real 3-replica control plane: apply and delete read
the live object to say what would happen; nothing is ever written."""

import uuid

import pytest

from skiff import client as clientmod
from skiff.api import objects_pb2 as pb
from skiff.cli import main as cli
from tests.helpers import settled_namespace

# the CLI calls made here use the cluster's admin certificate
pytestmark = pytest.mark.usefixtures("cli_config")


@pytest.fixture
def ns(client):
    name = f"skiff-dry-{uuid.uuid4().hex[:6]}"
    client.create(pb.Namespace(metadata=pb.ObjectMeta(name=name)))
    yield settled_namespace(client, name)
    client.delete("namespaces", name, "")


def _skiff(cluster, capsys, *argv):
    code = cli.main([*argv, "--server", ",".join(cluster.endpoints)])
    out = capsys.readouterr()
    return code, out.out, out.err


def _configmap_file(tmp_path, name, ns, value):
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n"
                    f"  namespace: {ns}\ndata:\n  key: {value!r}\n")
    return str(path)


def _store_version(client, ns):
    return client.list("configmaps", namespace=ns, linearizable=True)[1]


def test_apply_client_dry_run_of_a_new_object_stores_nothing(cluster, client, ns, tmp_path, capsys):
    before = _store_version(client, ns)
    code, out, err = _skiff(cluster, capsys, "apply", "--dry-run=client",
                            "-f", _configmap_file(tmp_path, "cfg", ns, "a"))
    assert (code, out) == (0, "configmap/cfg created (dry run)\n"), err
    with pytest.raises(clientmod.NotFound):
        client.get("configmaps", "cfg", ns, linearizable=True)
    assert _store_version(client, ns) == before


def test_apply_client_dry_run_of_an_existing_object_says_configured_and_changes_nothing(
        cluster, client, ns, tmp_path, capsys):
    live = client.create(pb.ConfigMap(metadata=pb.ObjectMeta(name="cfg", namespace=ns),
                                      data={"key": "a"}))
    code, out, err = _skiff(cluster, capsys, "apply", "--dry-run=client",
                            "-f", _configmap_file(tmp_path, "cfg", ns, "b"))
    assert (code, out) == (0, "configmap/cfg configured (dry run)\n"), err
    now = client.get("configmaps", "cfg", ns, linearizable=True)
    assert dict(now.data) == {"key": "a"}
    assert now.metadata.resource_version == live.metadata.resource_version


def test_create_client_dry_run_of_an_invalid_object_fails_like_the_write(
        cluster, client, ns, tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  namespace: {ns}\n"
                    "data:\n  'bad key!': x\n")
    code, out, err = _skiff(cluster, capsys, "create", "--dry-run=client", "-f", str(path))
    assert code == 1 and out == ""
    assert 'ConfigMap "cfg" is invalid' in err and "data[bad key!]" in err
    # The real write refuses it for the same field.
    code, _, real_err = _skiff(cluster, capsys, "create", "-f", str(path))
    assert code == 1 and "data[bad key!]" in real_err


def test_delete_client_dry_run_keeps_the_object_and_fails_for_a_missing_one(
        cluster, client, ns, capsys):
    live = client.create(pb.ConfigMap(metadata=pb.ObjectMeta(name="cfg", namespace=ns)))
    code, out, err = _skiff(cluster, capsys, "delete", "configmap", "cfg", "-n", ns,
                            "--dry-run=client")
    assert (code, out) == (0, "configmap/cfg deleted (dry run)\n"), err
    kept = client.get("configmaps", "cfg", ns, linearizable=True)
    assert kept.metadata.resource_version == live.metadata.resource_version
    code, out, err = _skiff(cluster, capsys, "delete", "configmap", "nope", "-n", ns,
                            "--dry-run=client")
    assert code == 1 and "NotFound" in err
