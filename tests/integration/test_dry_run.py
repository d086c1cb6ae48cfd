"""Server-side dry run (WriteRequest.dry_run, DeleteRequest.dry_run) on a real
3-replica control plane: the replica runs the whole admission chain and the
store's checks, answers as the real write would ("created", "configured",
"unchanged", the defaulted object, the same errors), and stores nothing: no
object appears or goes, no resourceVersion moves."""

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
    name = f"skiff-sdry-{uuid.uuid4().hex[:6]}"
    client.create(pb.Namespace(metadata=pb.ObjectMeta(name=name)))
    yield settled_namespace(client, name)
    client.delete("namespaces", name, "")


def _cm(name, ns, **data):
    return pb.ConfigMap(metadata=pb.ObjectMeta(name=name, namespace=ns), data=data)


def _deployment(name, ns, container="web"):
    d = pb.Deployment(metadata=pb.ObjectMeta(name=name, namespace=ns))
    d.spec.selector.match_labels["app"] = name
    d.spec.template.metadata.labels["app"] = name
    d.spec.template.spec.containers.add(name=container, image="nginx:1.25")
    return d


def _store_version(client, ns):
    """The store-wide resourceVersion, read through the log (a barrier moves nothing)."""
    return client.list("configmaps", namespace=ns, linearizable=True)[1]


def _absent(client, kind, name, ns):
    with pytest.raises(clientmod.NotFound):
        client.get(kind, name, ns, linearizable=True)


def test_create_dry_run_answers_with_the_admitted_object_and_stores_nothing(client, ns):
    before = _store_version(client, ns)
    out = client.create(_cm("cfg", ns, key="a"), dry_run=True)
    assert out.metadata.name == "cfg" and dict(out.data) == {"key": "a"}
    _absent(client, "configmaps", "cfg", ns)
    assert _store_version(client, ns) == before
    # The whole admission chain ran: the answer carries the defaults.
    d = client.create(_deployment("web", ns), dry_run=True)
    assert d.spec.replicas == 1 and d.spec.strategy.type == "RollingUpdate"
    assert d.spec.template.spec.restart_policy == "Always"
    _absent(client, "deployments", "web", ns)
    assert _store_version(client, ns) == before


def test_apply_dry_run_reports_created_configured_unchanged_and_changes_nothing(client, ns):
    before = _store_version(client, ns)
    out, result = client.apply(_cm("cfg", ns, key="a"), dry_run=True)
    assert result == "created" and out.metadata.name == "cfg"
    _absent(client, "configmaps", "cfg", ns)
    assert _store_version(client, ns) == before

    live, _ = client.apply(_cm("cfg", ns, key="a"))
    before = _store_version(client, ns)
    out, result = client.apply(_cm("cfg", ns, key="b"), dry_run=True)
    assert result == "configured" and dict(out.data) == {"key": "b"}
    now = client.get("configmaps", "cfg", ns, linearizable=True)
    assert dict(now.data) == {"key": "a"}
    assert now.metadata.resource_version == live.metadata.resource_version
    _, result = client.apply(_cm("cfg", ns, key="a"), dry_run=True)
    assert result == "unchanged"
    assert _store_version(client, ns) == before


def test_delete_dry_run_keeps_the_object_and_fails_like_the_delete(client, ns):
    live = client.create(_cm("cfg", ns, key="a"))
    before = _store_version(client, ns)
    out = client.delete("configmaps", "cfg", ns, dry_run=True)
    assert out is not None and out.metadata.name == "cfg"
    kept = client.get("configmaps", "cfg", ns, linearizable=True)
    assert kept.metadata.resource_version == live.metadata.resource_version
    assert _store_version(client, ns) == before
    with pytest.raises(clientmod.NotFound):
        client.delete("configmaps", "nope", ns, dry_run=True)
    with pytest.raises(clientmod.Conflict):
        client.delete("configmaps", "cfg", ns, resource_version="1", dry_run=True)
    client.get("configmaps", "cfg", ns, linearizable=True)


def test_dry_run_of_an_invalid_or_conflicting_write_fails_like_the_write(client, ns):
    before = _store_version(client, ns)
    for write in (client.create, lambda o, dry_run: client.apply(o, dry_run=dry_run)):
        with pytest.raises(clientmod.Invalid) as err:
            write(_deployment("bad", ns, container="Web_1"), dry_run=True)
        assert "spec.template.spec.containers[0].name" in err.value.message
    _absent(client, "deployments", "bad", ns)
    assert _store_version(client, ns) == before
    client.create(_cm("cfg", ns, key="a"))
    before = _store_version(client, ns)
    with pytest.raises(clientmod.AlreadyExists):
        client.create(_cm("cfg", ns, key="b"), dry_run=True)
    with pytest.raises(clientmod.NotFound):  # the namespace must exist, as for a real create
        client.create(_cm("cfg", f"{ns}-missing"), dry_run=True)
    assert _store_version(client, ns) == before
    assert dict(client.get("configmaps", "cfg", ns).data) == {"key": "a"}


def test_cli_server_dry_run_prints_kubectls_wording(cluster, client, ns, tmp_path, capsys):
    path = tmp_path / "cfg.yaml"
    path.write_text(f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  namespace: {ns}\n"
                    "data:\n  key: a\n")
    server = ["--server", ",".join(cluster.endpoints)]
    assert cli.main(["apply", "--dry-run=server", "-f", str(path), *server]) == 0
    assert capsys.readouterr().out == "configmap/cfg created (server dry run)\n"
    assert cli.main(["create", "--dry-run=server", "-f", str(path), *server]) == 0
    assert capsys.readouterr().out == "configmap/cfg created (server dry run)\n"
    _absent(client, "configmaps", "cfg", ns)
    client.create(_cm("cfg", ns, key="a"))
    assert cli.main(["apply", "--dry-run=server", "-f", str(path), *server]) == 0
    assert capsys.readouterr().out == "configmap/cfg unchanged (server dry run)\n"
    assert cli.main(["delete", "configmap", "cfg", "-n", ns, "--dry-run=server", *server]) == 0
    assert capsys.readouterr().out == "configmap/cfg deleted (server dry run)\n"
    client.get("configmaps", "cfg", ns, linearizable=True)
