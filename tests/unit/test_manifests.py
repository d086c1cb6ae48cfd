import io
import sys
import time

import pytest

from skiff.api import objects_pb2 as pb
from skiff.api.manifests import (
    MAX_BYTES,
    ManifestError,
    load_documents,
    load_located,
    load_objects,
    parse_object,
    read_sources,
)

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports:
        - containerPort: 80
"""

BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def error_of(text, source="deploy.yaml") -> str:
    with pytest.raises(ManifestError) as info:
        load_documents(text, source)
    return str(info.value)


# ---------------------------------------------------------------- documents

def test_single_document():
    [doc] = load_documents(DEPLOYMENT, "deploy.yaml")
    assert doc["kind"] == "Deployment"
    assert doc["spec"]["replicas"] == 3


def test_documents_are_numbered_in_stream_order_and_empty_ones_skipped():
    text = "---\n# only a comment\n---\n" + DEPLOYMENT + "---\n---\napiVersion: v1\nkind: Namespace\n"
    located = load_located(text, "all.yaml")
    assert [(where, doc["kind"]) for where, doc in located] == [
        ("all.yaml: document 2", "Deployment"), ("all.yaml: document 4", "Namespace")]


def test_empty_text_has_no_documents():
    assert load_documents("", "empty.yaml") == []
    assert load_documents("# nothing\n", "empty.yaml") == []
    assert load_documents(b"", "empty.yaml") == []


def test_bytes_with_bom_are_accepted():
    [doc] = load_documents("\ufeffapiVersion: v1\nkind: Namespace\n".encode("utf-8"), "ns.yaml")
    assert doc == {"apiVersion": "v1", "kind": "Namespace"}


def test_invalid_utf8():
    assert "not UTF-8" in error_of(b"kind: \xff\n", "bin.yaml")


def test_json_is_accepted():
    text = '{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}'
    assert load_documents(text, "ns.json") == [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}]


def test_tab_indented_json_is_accepted():
    text = '{\n\t"apiVersion": "v1",\n\t"kind": "Namespace"\n}\n'
    assert load_documents(text, "ns.json") == [{"apiVersion": "v1", "kind": "Namespace"}]


def test_json_duplicate_key():
    message = error_of('{\n\t"kind": "Pod",\n\t"kind": "Service"\n}', "x.json")
    assert message.startswith("x.json: document 1: ")
    assert 'duplicate key "kind"' in message


def test_json_syntax_error_names_line():
    message = error_of('{\n\t"kind": "Pod",\n\t"x": [1,\n}', "x.json")
    assert message.startswith("x.json: document 1: line 4")


def test_list_kind_is_flattened():
    text = """\
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Namespace, metadata: {name: a}}
- {apiVersion: v1, kind: Namespace, metadata: {name: b}}
"""
    located = load_located(text, "list.yaml")
    assert [(where, doc["metadata"]["name"]) for where, doc in located] == [
        ("list.yaml: document 1: items[0]", "a"), ("list.yaml: document 1: items[1]", "b")]


def test_list_items_must_be_objects():
    message = error_of("kind: List\nitems:\n- 3\n", "list.yaml")
    assert message.startswith("list.yaml: document 1: items[0]: expected a mapping")


def test_duplicate_key_names_key_and_lines():
    text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  name: b\n"
    message = error_of(text)
    assert message.startswith("deploy.yaml: document 1: line 5")
    assert 'duplicate key "name" (first defined on line 4)' in message


def test_duplicate_key_in_second_document():
    message = error_of("a: 1\n---\nb: 1\nb: 2\n")
    assert message.startswith("deploy.yaml: document 2: line 4")


def test_merge_keys_are_not_duplicates():
    text = "base: &base {a: 1, b: 2}\nderived:\n  <<: *base\n  b: 3\n"
    [doc] = load_documents(text, "merge.yaml")
    assert doc["derived"] == {"a": 1, "b": 3}


def test_billion_laughs_fails_fast():
    start = time.monotonic()
    message = error_of(BILLION_LAUGHS, "bomb.yaml")
    assert time.monotonic() - start < 1.0
    assert message.startswith("bomb.yaml: document 1: ")
    assert "aliases" in message and "limit" in message


def test_billion_laughs_in_mapping_merges_fails_fast():
    lines = ["a0: &a0 {k: v}"]
    for i in range(1, 12):
        refs = ", ".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} {{<<: [{refs}], k{i}: v}}")
    start = time.monotonic()
    message = error_of("\n".join(lines) + "\n", "bomb.yaml")
    assert time.monotonic() - start < 1.0
    assert "aliases" in message


def test_recursive_alias_is_rejected():
    message = error_of("a: &x [1, *x]\n", "loop.yaml")
    assert message.startswith("loop.yaml: document 1: line 1")
    assert "recursive alias" in message


@pytest.mark.parametrize("text", [
    "[" * 200_000 + "]" * 200_000,
    "- " * 200_000 + "x\n",
    "a:\n" + "".join(" " * i + "-\n" for i in range(1, 150)),
])
def test_deep_nesting_is_rejected_without_crashing(text):
    message = error_of(text, "deep.yaml")
    assert message.startswith("deep.yaml: document 1: line ")
    assert "nested more than 100 levels deep" in message


def test_modest_alias_use_is_fine():
    text = "env: &env [{name: A, value: '1'}, {name: B, value: '2'}]\nc1: {env: *env}\nc2: {env: *env}\n"
    [doc] = load_documents(text, "ok.yaml")
    assert doc["c1"]["env"] == doc["c2"]["env"]


def test_size_limit():
    big = "a: " + "x" * MAX_BYTES + "\n"
    message = error_of(big, "big.yaml")
    assert message.startswith("big.yaml: ") and "4 MiB" in message
    assert "4 MiB" in error_of(big.encode(), "big.yaml")


def test_syntax_error_names_document_and_line():
    message = error_of("a: 1\n---\nkind: Pod\nmetadata:\n  name: [x\n")
    assert message.startswith("deploy.yaml: document 2: line ")


def test_documents_must_be_mappings():
    message = error_of("a: 1\n---\n- just\n- a list\n")
    assert message.startswith("deploy.yaml: document 2: line 3: expected a mapping")
    assert "got list" in message


def test_timestamps_stay_strings():
    [doc] = load_documents("date: 2024-01-01\nwhen: 2024-01-01T10:00:00Z\n", "t.yaml")
    assert doc == {"date": "2024-01-01", "when": "2024-01-01T10:00:00Z"}


# ---------------------------------------------------------------- objects

def test_parse_object():
    [doc] = load_documents(DEPLOYMENT, "deploy.yaml")
    kind, msg = parse_object(doc, "deploy.yaml: document 1")
    assert kind.name == "Deployment"
    assert isinstance(msg, pb.Deployment)
    assert msg.spec.replicas == 3
    assert msg.spec.template.spec.containers[0].ports[0].container_port == 80


def parse_error(text: str) -> ManifestError:
    [doc] = load_documents(text, "x.yaml")
    with pytest.raises(ManifestError) as info:
        parse_object(doc, "x.yaml: document 1")
    return info.value


def test_unknown_kind():
    error = parse_error("apiVersion: v1\nkind: Widget\nmetadata: {name: w}\n")
    assert str(error).startswith("x.yaml: document 1: kind: ")
    assert 'unknown kind "Widget"' in str(error)


def test_missing_kind():
    error = parse_error("apiVersion: v1\nmetadata: {name: w}\n")
    assert str(error).startswith("x.yaml: document 1: kind: required")
    assert [e.path for e in error.errors] == ["kind"]


def test_missing_api_version():
    error = parse_error("kind: Pod\nmetadata: {name: w}\n")
    assert str(error) == 'x.yaml: document 1: apiVersion: required: Pod is served as apiVersion "v1"'



def test_wrong_api_version():
    error = parse_error(DEPLOYMENT.replace("apps/v1", "v1"))
    assert str(error).startswith("x.yaml: document 1: apiVersion: ")
    assert '"apps/v1"' in str(error)
    assert [e.path for e in error.errors] == ["apiVersion"]


def test_wrong_type_string_for_int():
    error = parse_error(DEPLOYMENT.replace("replicas: 3", 'replicas: "3"'))
    assert [e.path for e in error.errors] == ["spec.replicas"]
    assert str(error).startswith("x.yaml: document 1: spec.replicas: expected an integer, got string")


def test_wrong_type_deep_path():
    error = parse_error(DEPLOYMENT.replace("containerPort: 80", "containerPort: http"))
    assert [e.path for e in error.errors] == ["spec.template.spec.containers[0].ports[0].containerPort"]


def test_unknown_field():
    error = parse_error(DEPLOYMENT.replace("replicas: 3", "replica: 3"))
    assert [e.path for e in error.errors] == ["spec.replica"]
    assert "unknown field" in str(error)


def test_several_errors_are_all_listed():
    text = DEPLOYMENT.replace("replicas: 3", 'replicas: "3"').replace("containerPort: 80", "containerPort: x")
    error = parse_error(text)
    message = str(error)
    assert message.startswith("x.yaml: document 1: 2 errors:")
    assert "spec.replicas" in message and "spec.template.spec.containers[0].ports[0].containerPort" in message


def test_parse_object_requires_a_mapping():
    with pytest.raises(ManifestError, match="^x: expected a mapping"):
        parse_object(["a"], "x")


def test_load_objects():
    text = DEPLOYMENT + "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n"
    objects = load_objects(text, "all.yaml")
    assert [(where, kind.name, msg.metadata.name) for where, kind, msg in objects] == [
        ("all.yaml: document 1", "Deployment", "web"), ("all.yaml: document 2", "Namespace", "team")]


# ---------------------------------------------------------------- sources

def test_read_sources_files_and_directories(tmp_path):
    (tmp_path / "b.yaml").write_text("b: 1\n")
    (tmp_path / "a.json").write_text("{}")
    (tmp_path / "c.yml").write_text("c: 1\n")
    (tmp_path / "notes.txt").write_text("ignored")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "d.yaml").write_text("d: 1\n")
    single = tmp_path / "single.manifest"
    single.write_text("s: 1\n")

    flat = read_sources([str(tmp_path)])
    assert [where for where, _ in flat] == [str(tmp_path / n) for n in ("a.json", "b.yaml", "c.yml")]
    assert flat[1][1] == "b: 1\n"

    deep = read_sources([str(tmp_path)], recursive=True)
    assert [where for where, _ in deep] == [str(tmp_path / n) for n in ("a.json", "b.yaml", "c.yml", "sub/d.yaml")]

    # an explicitly named file is read whatever its extension
    assert read_sources([str(single)]) == [(str(single), "s: 1\n")]


def test_read_sources_missing_path(tmp_path):
    missing = str(tmp_path / "nope.yaml")
    with pytest.raises(ManifestError) as info:
        read_sources([missing])
    assert str(info.value).startswith(missing)
    assert "no such file or directory" in str(info.value)


def test_read_sources_too_large(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (MAX_BYTES + 1))
    with pytest.raises(ManifestError, match="4 MiB"):
        read_sources([str(big)])


def test_read_sources_stdin(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"kind: Namespace\n"), encoding="utf-8"))
    assert read_sources(["-"]) == [("<stdin>", "kind: Namespace\n")]
    monkeypatch.setattr(sys, "stdin", io.StringIO("kind: Pod\n"))
    assert read_sources(["-"]) == [("<stdin>", "kind: Pod\n")]
