"""--dry-run: local admission (skiff.api.local_admission) and the CLI flag; the
client dry run against a real control plane is in tests/integration/test_dry_run_client.py."""

import pytest

from skiff import client as clientmod
from skiff.api import kinds
from skiff.api import objects_pb2 as pb
from skiff.api.errors import ValidationError
from skiff.api.local_admission import admit_locally
from skiff.cli import main as cli

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: NAME
        image: nginx:1.25
"""


def _deployment(container="web"):
    d = pb.Deployment(metadata=pb.ObjectMeta(name="web"))
    d.spec.selector.match_labels["app"] = "web"
    d.spec.template.metadata.labels["app"] = "web"
    d.spec.template.spec.containers.add(name=container, image="nginx:1.25")
    return d


def test_admit_locally_normalizes_and_defaults_like_the_server():
    d = admit_locally(kinds.BY_NAME["Deployment"], _deployment())
    assert (d.api_version, d.kind, d.metadata.namespace) == ("apps/v1", "Deployment", "default")
    assert d.spec.replicas == 1 and d.spec.strategy.type == "RollingUpdate"
    assert d.spec.template.spec.restart_policy == "Always"
    assert d.spec.template.spec.containers[0].image_pull_policy == "IfNotPresent"
    ns = admit_locally(kinds.BY_NAME["Namespace"], pb.Namespace(metadata=pb.ObjectMeta(
        name="demo", namespace="stray")))
    assert ns.metadata.namespace == "" and ns.status.phase == "Active"


@pytest.mark.parametrize("mutate, path", [
    (lambda d: setattr(d.spec.template.spec.containers[0], "name", "Web_1"),
     "spec.template.spec.containers[0].name"),
    (lambda d: d.spec.template.metadata.labels.__setitem__("app", "other"), "spec.selector"),
    (lambda d: setattr(d, "kind", "Pod"), "kind"),
    (lambda d: setattr(d, "api_version", "v1"), "apiVersion"),
])
def test_admit_locally_refuses_what_the_server_refuses(mutate, path):
    d = _deployment()
    mutate(d)
    with pytest.raises(ValidationError) as err:
        admit_locally(kinds.BY_NAME["Deployment"], d)
    assert any(e.path.startswith(path) for e in err.value.errors), str(err.value)


@pytest.fixture
def no_server(monkeypatch):
    """Any attempt to reach a control plane fails the test."""
    def refuse(*a, **kw):
        raise AssertionError("a client dry run of create contacted the server")
    monkeypatch.setattr(clientmod.Client, "from_config", classmethod(refuse))
    monkeypatch.setattr(clientmod.Client, "__init__", refuse)


def _manifest(tmp_path, container="web"):
    path = tmp_path / "web.yaml"
    path.write_text(DEPLOYMENT.replace("NAME", container))
    return str(path)


def test_create_client_dry_run_admits_locally_without_a_server(tmp_path, capsys, no_server):
    assert cli.main(["create", "--dry-run=client", "-f", _manifest(tmp_path)]) == 0
    assert capsys.readouterr().out == "deployment.apps/web created (dry run)\n"


def test_create_client_dry_run_reports_an_invalid_object_by_field(tmp_path, capsys, no_server):
    assert cli.main(["create", "--dry-run=client", "-f", _manifest(tmp_path, "Web_1")]) == 1
    out = capsys.readouterr()
    assert out.out == ""
    assert 'Deployment "web" is invalid' in out.err and "(dry run)" in out.err
    assert 'spec.template.spec.containers[0].name: Invalid value: "Web_1"' in out.err


@pytest.mark.parametrize("argv, message", [
    (["create", "--dry-run", "-f", "x.yaml"], "--dry-run needs a value"),
    (["apply", "--dry-run=yes", "-f", "x.yaml"], 'Invalid dry-run value (yes). Must be "none", "server", or "client".'),
    (["delete", "--dry-run", "pod", "web"], "Invalid dry-run value (pod)"),
    (["delete", "pod", "web", "--dry-run"], "--dry-run needs a value"),
])
def test_dry_run_needs_a_known_value(argv, message, capsys, no_server):
    assert cli.main(argv) == 1
    assert message in capsys.readouterr().err


def test_client_dry_run_flag_values_reach_the_command():
    parser = cli.build_parser()
    for cmd in ("apply", "create", "delete"):
        extra = ["pod", "x"] if cmd == "delete" else ["-f", "x.yaml"]
        assert parser.parse_args([cmd, *extra]).dry_run == "none"
        assert parser.parse_args([cmd, "--dry-run=server", *extra]).dry_run == "server"
        assert parser.parse_args([cmd, "--dry-run", "client", *extra]).dry_run == "client"
