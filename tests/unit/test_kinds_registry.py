"""The kind registry: every registered kind is complete and consistent, and no code outside
skiff/api/kinds/ branches on a kind's name (docs/adding-a-kind.md is the recipe)."""

import ast
import pathlib

import pytest

from skiff.api import codec, fields, kinds
from skiff.api import objects_pb2 as pb
from skiff.api.defaults import apply_defaults
from skiff.api.validation import validate, validate_update

ROOT = pathlib.Path(__file__).resolve().parents[2]
KINDS = [pytest.param(k, id=k.name) for k in kinds.KINDS]


def _field_at(descriptor, path: str):
    """The field descriptor at a camelCase path (spec.nodeName) of a message, or None."""
    field = None
    for part in path.split("."):
        if descriptor is None:
            return None
        field = {f.json_name: f for f in descriptor.fields}.get(part)
        if field is None:
            return None
        descriptor = field.message_type
    return field


def _reachable(descriptor, seen=None) -> set:
    """Full names of the fields reachable from a message."""
    seen = set() if seen is None else seen
    if descriptor.full_name in seen:
        return set()
    seen.add(descriptor.full_name)
    out = set()
    for f in descriptor.fields:
        out.add(f.full_name)
        if f.message_type is not None:
            out |= _reachable(f.message_type, seen)
    return out


def test_names_resolve_to_their_kind_alone():
    for kind in kinds.KINDS:
        words = {kind.name, kind.name.lower(), kind.plural, kind.resource, *kind.short_names}
        for word in words:
            assert kinds.lookup(word) is kind, word
    assert len({k.envelope_field for k in kinds.KINDS}) == len(kinds.KINDS)
    assert len({k.message.DESCRIPTOR.full_name for k in kinds.KINDS}) == len(kinds.KINDS)


def test_a_taken_name_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        kinds.register(kinds.Kind("Pod2", "v1", "pods2", ("po",), True, pb.Pod, "pod", True))


@pytest.mark.parametrize("kind", KINDS)
def test_identity(kind):
    assert kind.message.DESCRIPTOR.name == kind.name
    assert pb.Object.DESCRIPTOR.fields_by_name[kind.envelope_field].message_type is kind.message.DESCRIPTOR
    assert kind.plural == kind.plural.lower() and kind.plural.endswith("s")
    assert kind.has_spec == ("spec" in kind.message.DESCRIPTOR.fields_by_name)


@pytest.mark.parametrize("kind", KINDS)
def test_presentation_is_complete(kind):
    assert "AGE" in kind.columns, "columns name where AGE goes"
    assert kind.row is not None
    values, wide = kind.row(kind.message())
    assert len(values) == len(kind.columns) - 1, "a value for every column but AGE"
    assert len(wide) == len(kind.wide_columns)
    assert all(isinstance(v, str) for v in list(values) + list(wide))
    if kind.describe is not None:
        assert isinstance(kind.describe(kind.message()), str)
    for omitted in kind.describe_omits:
        assert _field_at(kind.message.DESCRIPTOR, omitted) is not None, omitted


@pytest.mark.parametrize("kind", KINDS)
def test_admission_hooks_run_on_a_bare_object(kind):
    """Every kind validates; defaults then validation run on an empty object without raising,
    and an object validated against itself as an update is fine."""
    assert kind.validate is not None
    msg = kind.message()
    msg.metadata.name = "x"
    if kind.namespaced:
        msg.metadata.namespace = "default"
    apply_defaults(kind, msg)
    assert (msg.api_version, msg.kind) == (kind.api_version, kind.name)
    assert isinstance(validate(kind, msg), list)
    assert validate_update(kind, msg, msg) == []
    assert kind.name_rule("a-b") is None and kind.name_rule("A_B") is not None


@pytest.mark.parametrize("kind", KINDS)
def test_schema_fields_exist(kind):
    reachable = _reachable(kind.message.DESCRIPTOR)
    for name in kind.quantity_fields:
        assert name in reachable, f"{name} is not a field of {kind.name}"
        assert name in codec.quantity_fields()
    for path, getter in fields.supported(kind).items():
        field = _field_at(kind.message.DESCRIPTOR, path)
        assert field is not None and field.message_type is None, f"{kind.name}: {path}"
        assert getter(kind.message()) == ""
    for owned in kind.owns:
        assert owned in kinds.BY_NAME, f"{kind.name} owns unknown kind {owned}"
    if kind.scale:
        assert _field_at(kind.message.DESCRIPTOR, "spec.replicas") is not None


@pytest.mark.parametrize("kind", KINDS)
def test_store_hooks_are_consistent(kind):
    hooks = kind.store
    if hooks.settings_section:
        assert hooks.allocate, "settings ride in a write only for an allocator"
    if hooks.cascade_namespace:
        assert not kind.namespaced


def test_get_all_is_kubectls_order():
    assert [k.plural for k in kinds.get_all()] == ["pods", "replicationcontrollers", "services", "daemonsets",
                                                  "deployments", "replicasets", "statefulsets", "cronjobs", "jobs"]


def test_field_selectors_per_kind():
    pod = pb.Pod(metadata=pb.ObjectMeta(name="a", namespace="ns"))
    pod.spec.node_name = "n1"
    sel = fields.parse("spec.nodeName=n1,metadata.name!=b", kinds.lookup("pods"))
    assert sel.matches(pod)
    assert not fields.parse("metadata.namespace=other", kinds.lookup("pods")).matches(pod)
    assert fields.parse(" ", kinds.lookup("pods")) is None
    with pytest.raises(ValueError, match=r"field label not supported: spec.nodeName \(services support: "
                                         r"metadata.name, metadata.namespace\)"):
        fields.parse("spec.nodeName=n1", kinds.lookup("services"))
    with pytest.raises(ValueError, match="expected field=value"):
        fields.parse("spec.nodeName", kinds.lookup("pods"))


# ---------------------------------------------------------------- no per-kind branches outside the kinds

def _kind_names(node) -> list:
    """The registered kind names a constant, or a tuple/list/set of constants, holds."""
    elts = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
    return [e.value for e in elts if isinstance(e, ast.Constant) and e.value in kinds.BY_NAME]


def per_kind_branches(source: str) -> list:
    """(line, text) of every `<x>.name ==/!=/in/not in <kind name(s)>` comparison and every
    dict literal keyed by kind names, in a module's source."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare) and isinstance(node.left, ast.Attribute) and node.left.attr == "name":
            if any(_kind_names(c) for c in node.comparators):
                found.append((node.lineno, ast.unparse(node)))
        elif isinstance(node, ast.Dict):
            keys = [k for k in node.keys if k is not None and _kind_names(k)]
            if keys:
                found.append((node.lineno, f"dict keyed by kind names: {[k.value for k in keys]}"))
    return found


def test_the_branch_finder_finds_branches():
    src = ('if kind.name == "Pod": pass\nif k.name in ("Deployment", "ReplicaSet"): pass\n'
           'T = {"Pod": 1, "Service": 2}\nif c.name == "app": pass\n')
    assert [line for line, _ in per_kind_branches(src)] == [1, 2, 3]


def test_no_per_kind_branch_outside_the_kind_modules():
    offenders = []
    for top in ("skiff", "controlplane", "nodeagent"):
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith("skiff/api/kinds/") or rel.endswith("_pb2.py") or rel.endswith("_pb2_grpc.py"):
                continue
            offenders += [f"{rel}:{line}: {text}" for line, text in per_kind_branches(path.read_text())]
    assert offenders == [], "a kind's behaviour belongs in its registry record:\n" + "\n".join(offenders)
