"""The pure parts of `skiff label/annotate/wait` and `delete --cascade`, as kubectl parses them."""

import pytest

from skiff.api import objects_pb2 as pb
from skiff.cli import main, meta_cmds, wait_cmds
from skiff.cli.errors import CliError


@pytest.mark.parametrize("words, resources, pairs", [
    (["pod", "web", "a=b", "c-"], ["pod", "web"], ["a=b", "c-"]),
    (["pod/web", "a="], ["pod/web"], ["a="]),
    (["deploy", "x", "k=v=w"], ["deploy", "x"], ["k=v=w"]),
])
def test_split_args(words, resources, pairs):
    assert meta_cmds.split_args(words) == (resources, pairs)


def test_resources_must_come_first():
    with pytest.raises(CliError, match="before"):
        meta_cmds.split_args(["pod", "a=b", "web"])


@pytest.mark.parametrize("pairs, sets, remove", [
    (["a=b", "c-"], {"a": "b"}, ["c"]),
    (["a="], {"a": ""}, []),
])
def test_parse_labels(pairs, sets, remove):
    assert meta_cmds.parse_labels(pairs) == (sets, remove)


@pytest.mark.parametrize("pairs, message", [
    (["a=b=c"], "invalid label spec: a=b=c"),
    (["a=-x-"], 'invalid label value: "a=-x-"'),
    (["a=b", "a-"], "can not both modify and remove a label in the same command"),
])
def test_parse_labels_refuses(pairs, message):
    with pytest.raises(CliError, match=message):
        meta_cmds.parse_labels(pairs)


def test_annotation_values_may_hold_equals_signs():
    assert meta_cmds.parse_annotations(["url=http://x/?a=b", "old-"]) == ({"url": "http://x/?a=b"}, ["old"])
    with pytest.raises(CliError, match="invalid annotation spec"):
        meta_cmds.parse_annotations(["=v"])


@pytest.mark.parametrize("old, new, msg", [
    ({}, {"a": "b"}, "labeled"),
    ({"a": "b"}, {"a": "c"}, "labeled"),
    ({"a": "b"}, {}, "unlabeled"),
    ({"a": "b"}, {"c": "d"}, "label(s) changed"),
    ({"a": "b"}, {"a": "b"}, "not labeled"),
])
def test_label_change_message(old, new, msg):
    assert meta_cmds.label_change_message(old, new) == msg


def test_overwrite_errors_as_kubectl_words_them():
    clashes = meta_cmds.overwrite_conflicts({"tier": "fe", "same": "x"}, {"tier": "be", "same": "x", "new": "1"})
    assert clashes == [("tier", "fe")]
    assert meta_cmds._overwrite_error("labels", clashes) == \
        "'tier' already has a value (fe), and --overwrite is false"
    assert meta_cmds._overwrite_error("annotations", clashes) == \
        "--overwrite is false but found the following declared annotation(s): 'tier' already has a value (fe)"


@pytest.mark.parametrize("text, seconds", [
    ("30s", 30.0), ("1m30s", 90.0), ("500ms", 0.5), ("0", 0.0), ("2h", 7200.0), ("-1s", wait_cmds.WEEK_S),
])
def test_parse_duration(text, seconds):
    assert wait_cmds.parse_duration_s(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "s", "1x"])
def test_parse_duration_refuses(text):
    with pytest.raises(CliError, match="invalid duration"):
        wait_cmds.parse_duration_s(text)


def _deploy(conditions=(), replicas=3):
    d = pb.Deployment(metadata=pb.ObjectMeta(name="web"))
    d.status.replicas = replicas
    for ctype, status in conditions:
        d.status.conditions.add(type=ctype, status=status)
    return d


@pytest.mark.parametrize("spec, obj, met", [
    ("condition=Available", _deploy([("Available", "True")]), True),
    ("condition=available", _deploy([("Available", "True")]), True),
    ("condition=Available", _deploy([("Available", "False")]), False),
    ("condition=Available=false", _deploy([("Available", "False")]), True),
    ("condition=Available", _deploy(), False),
    ("jsonpath={.status.replicas}=3", _deploy(), True),
    ("jsonpath={.status.replicas}=2", _deploy(), False),
    ("jsonpath={.status.conditions[0].type}=Progressing", _deploy([("Progressing", "True")]), True),
    ("jsonpath={.status.nope}=x", _deploy(), False),
])
def test_wait_predicates(spec, obj, met):
    predicate, deleting = wait_cmds.parse_for(spec)
    assert not deleting and predicate(obj) is met


def test_wait_for_delete_and_refusals():
    assert wait_cmds.parse_for("delete") == (None, True)
    with pytest.raises(CliError, match="unrecognized condition"):
        wait_cmds.parse_for("ready")


def test_wait_names_objects_as_kubectl():
    from skiff.api import kinds
    assert wait_cmds._shown(kinds.lookup("deploy"), "web") == "deployment.apps/web"
    assert wait_cmds._shown(kinds.lookup("rc"), "web") == "replicationcontroller/web"


@pytest.mark.parametrize("value, policy", [
    (None, ""), ("background", "Background"), ("Foreground", "Foreground"), ("orphan", "Orphan"),
    ("true", "Background"), ("false", "Orphan"),
])
def test_cascade_policy(value, policy, capsys):
    assert main.cascade_policy(value) == policy
    if value in ("true", "false"):
        assert "is deprecated (boolean value)" in capsys.readouterr().err


def test_cascade_refuses_unknown_values():
    with pytest.raises(CliError, match=r'invalid cascade value \(sideways\). Must be "background"'):
        main.cascade_policy("sideways")


def test_parsers_accept_kubectls_forms():
    p = main.build_parser()
    a = p.parse_args(["label", "pod", "web", "a=b", "--overwrite", "-n", "x"])
    assert a.names == ["pod", "web", "a=b"] and a.overwrite and a.namespace == "x"
    a = p.parse_args(["wait", "--for=condition=Ready", "pod/x", "--timeout=5s"])
    assert a.for_ == "condition=Ready" and a.timeout == "5s"
    a = p.parse_args(["delete", "rs", "web", "--cascade=orphan"])
    assert a.cascade == "orphan" and not a.wait
