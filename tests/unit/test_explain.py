"""`skiff api-resources` and `skiff explain`: rows from the kind registry, pages from
the proto definitions and their comments (skiff/api/descriptions.py)."""

import pytest

from skiff.api import kinds
from skiff.api import objects_pb2 as pb
from skiff.api.descriptions import DESCRIPTIONS
from skiff.cli import explain as ex
from skiff.cli import main as cli
from skiff.cli.errors import CliError


# ------------------------------------------------------------------ api-resources

def test_api_resources_rows_have_kubectls_columns_core_group_first():
    rows = ex.api_resource_rows()
    assert rows[0] == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    body = rows[1:]
    assert ["pods", "po", "v1", "true", "Pod"] in body
    assert ["nodes", "no", "v1", "false", "Node"] in body
    assert ["secrets", "", "v1", "true", "Secret"] in body
    assert ["deployments", "deploy", "apps/v1", "true", "Deployment"] in body
    assert sorted(r[4] for r in body) == sorted(k.name for k in kinds.KINDS)
    versions = [r[2] for r in body]
    assert versions == sorted(versions, key=lambda v: v != "v1"), "core group first"
    core = [r[0] for r in body if r[2] == "v1"]
    assert core == sorted(core)


def test_api_resources_filters_by_scope():
    assert [r[4] for r in ex.api_resource_rows(namespaced=False)[1:]] == [
        "Namespace", "Node", "ClusterRoleBinding", "ClusterRole"]
    assert all(r[3] == "true" for r in ex.api_resource_rows(namespaced=True)[1:])


def test_api_resources_command_needs_no_server(capsys, monkeypatch):
    monkeypatch.setenv("SKIFF_CONFIG", "/nonexistent/skiff-config")
    monkeypatch.delenv("SKIFF_SERVER", raising=False)
    assert cli.main(["api-resources"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    assert out[1 + [r[0] for r in ex.api_resource_rows()[1:]].index("pods")].split() == \
        ["pods", "po", "v1", "true", "Pod"]
    assert cli.main(["api-resources", "-o", "name"]) == 0
    names = capsys.readouterr().out.split()
    assert "deployments.apps" in names and "pods" in names and len(names) == len(kinds.KINDS)


# ------------------------------------------------------------------ explain pages

def test_explain_kind_page():
    page = ex.explain("pod")
    lines = page.splitlines()
    assert lines[:2] == ["KIND:     Pod", "VERSION:  v1"]
    assert "DESCRIPTION:" in lines and "FIELDS:" in lines
    assert "containers that share an IP" in page  # Pod's own comment in objects.proto
    fields = [ln.strip() for ln in lines[lines.index("FIELDS:") + 1:] if ln.startswith("   ")
              and not ln.startswith("     ")]
    assert fields == ["apiVersion\t<string>", "kind\t<string>", "metadata\t<Object>",
                      "spec\t<Object>", "status\t<Object>"]


def test_explain_apps_kind_shows_its_group_version():
    for word in ("deploy", "deployments", "deployments.apps", "Deployment"):
        assert ex.explain(word).splitlines()[:2] == ["KIND:     Deployment", "VERSION:  apps/v1"]
    page = ex.explain("deployments.apps.spec.strategy")
    assert "RESOURCE: strategy <Object>" in page
    assert "rollingUpdate\t<Object>" in page and "type\t<string>" in page
    assert "Recreate" in page


def test_explain_liveness_probe_teaches_something():
    page = ex.explain("pod.spec.containers.livenessProbe")
    assert "RESOURCE: livenessProbe <Object>" in page
    desc = page.split("DESCRIPTION:")[1].split("FIELDS:")[0]
    assert "restarts" in desc  # the field's description
    assert "exactly one" in desc and "handler" in desc  # then the Probe message's
    fields = page.split("FIELDS:")[1]
    for line in ("exec\t<Object>", "httpGet\t<Object>", "tcpSocket\t<Object>",
                 "initialDelaySeconds\t<integer>", "periodSeconds\t<integer>",
                 "failureThreshold\t<integer>", "successThreshold\t<integer>",
                 "timeoutSeconds\t<integer>"):
        assert f"   {line}\n" in fields
    assert "<empty>" not in page
    assert "(default 3)" in fields  # failureThreshold says its default


def test_explain_scalar_leaf_has_no_fields_section():
    page = ex.explain("po.spec.containers.image")
    assert "FIELD:    image <string>" in page
    assert "FIELDS:" not in page
    assert "The image to run" in page


@pytest.mark.parametrize("path, shown", [
    ("pod.metadata.labels", "labels <map[string]string>"),
    ("pod.spec.containers", "containers <[]Object>"),
    ("pod.spec.containers.command", "command <[]string>"),
    ("pod.spec.hostNetwork", "hostNetwork <boolean>"),
    ("pod.spec.terminationGracePeriodSeconds", "terminationGracePeriodSeconds <integer>"),
    ("pod.spec.containers.resources.limits", "limits <map[string]Quantity>"),
    ("pod.spec.volumes.emptyDir.sizeLimit", "sizeLimit <Quantity>"),
    ("pod.spec.containers.livenessProbe.httpGet.port", "port <IntOrString>"),
    ("svc.spec.ports.targetPort", "targetPort <IntOrString>"),
    ("svc.spec.clusterIP", "clusterIP <string>"),  # json_name, not cluster_ip / clusterIp
    ("node.spec.podCIDR", "podCIDR <string>"),
    ("secret.data", "data <map[string]string>"),
    ("deploy.spec.strategy.rollingUpdate.maxSurge", "maxSurge <IntOrString>"),
    ("deploy.spec.selector.matchExpressions", "matchExpressions <[]Object>"),
])
def test_field_types_as_kubectl_names_them(path, shown):
    assert shown in ex.explain(path)


def test_unknown_field_names_the_path_and_lists_the_valid_fields():
    with pytest.raises(CliError) as err:
        ex.explain("pod.spec.containers.livenesProbe")
    msg = str(err.value)
    assert '"pod.spec.containers.livenesProbe" does not exist' in msg
    assert "fields of pod.spec.containers are:" in msg
    listed = msg.split("are: ")[1].split(", ")
    assert listed == sorted(f.json_name for f in pb.Container.DESCRIPTOR.fields)
    with pytest.raises(CliError, match=r"fields of pod are: apiVersion, kind, metadata, spec, status"):
        ex.explain("pod.sepc")


def test_path_below_a_scalar_or_unknown_kind_is_an_error():
    with pytest.raises(CliError, match=r"pod.spec.containers.image is <string> and has no fields"):
        ex.explain("pod.spec.containers.image.tag")
    with pytest.raises(CliError, match=r'resource type "pdo"'):
        ex.explain("pdo.spec")
    with pytest.raises(CliError, match="invalid path"):
        ex.explain("pod..spec")


def test_explain_command_exit_codes(capsys):
    assert cli.main(["explain", "pod.spec.restartPolicy"]) == 0
    assert "OnFailure" in capsys.readouterr().out
    assert cli.main(["explain", "pod.spec.nope"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "restartPolicy" in err


def test_recursive_shows_the_tree_by_name_and_type():
    page = ex.explain("deploy.spec", recursive=True)
    fields = page.split("FIELDS:")[1].splitlines()
    assert "   template\t<Object>" in fields
    assert "      spec\t<Object>" in fields
    assert "            livenessProbe\t<Object>" in fields  # template.spec.containers.livenessProbe
    assert "               httpGet\t<Object>" in fields
    assert not any("Seconds to wait" in ln for ln in fields), "no descriptions with --recursive"


def _walk(message, path, seen=()):
    for f in message.fields:
        yield f, f"{path}.{f.json_name}"
        if ex._has_fields(f) and f.message_type.full_name not in seen:
            yield from _walk(f.message_type, f"{path}.{f.json_name}", seen + (f.message_type.full_name,))


def test_every_kind_and_every_field_path_explains():
    for kind in kinds.KINDS:
        for word in (kind.name.lower(), kind.plural, kind.resource, *kind.short_names):
            assert ex.explain(word).startswith(f"KIND:     {kind.name}\n")
        for field, path in _walk(kind.message.DESCRIPTOR, kind.name.lower()):
            page = ex.explain(path)
            assert f" {field.json_name} <" in page, path


# ------------------------------------------------------------------ descriptions

# The kinds a learner meets first: every field below them (containers, probes,
# ports, strategy...) must say what it is, so an undocumented field cannot be added.
_LEARNER_KINDS = ("Pod", "Service", "Deployment", "ReplicaSet", "ConfigMap", "Secret", "Namespace")


def test_every_field_a_learner_meets_has_a_description():
    missing = []
    for name in _LEARNER_KINDS:
        message = kinds.BY_NAME[name].message.DESCRIPTOR
        for field, path in _walk(message, name.lower()):
            if not DESCRIPTIONS.get(field.full_name):
                missing.append(f"{path} ({field.full_name})")
            if ex._has_fields(field) and not DESCRIPTIONS.get(field.message_type.full_name):
                missing.append(f"message {field.message_type.full_name}")
    assert not sorted(set(missing)), "write a comment above these in proto/skiff/api/objects.proto " \
        "and run python proto/generate.py:\n" + "\n".join(sorted(set(missing)))


def test_every_kind_and_its_top_level_fields_have_descriptions():
    for kind in kinds.KINDS:
        message = kind.message.DESCRIPTOR
        assert DESCRIPTIONS.get(message.full_name), message.full_name
        for field in message.fields:
            assert DESCRIPTIONS.get(field.full_name), field.full_name


def test_descriptions_are_single_paragraphs_without_proto_names():
    for name, text in DESCRIPTIONS.items():
        assert text == " ".join(text.split()), name
        assert "\n" not in text
    # Users write camelCase: a description speaks their language, not the proto's.
    snake = {f.name for m in pb.DESCRIPTOR.message_types_by_name.values() for f in m.fields
             if "_" in f.name}
    for name, text in DESCRIPTIONS.items():
        words = {w.strip(".,;:()\"'") for w in text.split()}
        assert not words & snake, f"{name}: {sorted(words & snake)}"
