"""`skiff taint`: kubectl's taint syntax, its refusals and how a node's taints change."""

import pytest

from skiff.api import objects_pb2 as pb
from skiff.cli.errors import CliError
from skiff.cli.main import build_parser
from skiff.cli.taint_cmds import new_taints, parse_taint, parse_taints


def t(key, value="", effect="NoSchedule", added=""):
    return pb.Taint(key=key, value=value, effect=effect, time_added=added)


PARSE_CASES = [
    ("k=v:NoExecute", t("k", "v", "NoExecute")),
    ("k:NoSchedule", t("k", "", "NoSchedule")),
    ("example.com/k=v:PreferNoSchedule", t("example.com/k", "v", "PreferNoSchedule")),
    ("k", t("k", "", "")),
]


@pytest.mark.parametrize("spec,want", PARSE_CASES)
def test_parse_taint(spec, want):
    assert parse_taint(spec) == want


REFUSED = [
    ("k=v:Sometimes", "invalid taint effect: Sometimes, unsupported taint effect"),
    ("k=v=w:NoSchedule", "invalid taint spec: k=v=w:NoSchedule"),
    ("a:b:c", "invalid taint spec: a:b:c"),
    ("=v:NoSchedule", "invalid taint spec: =v:NoSchedule"),
    ("bad key!=v:NoSchedule", "invalid taint spec: bad key!=v:NoSchedule"),
]


@pytest.mark.parametrize("spec,message", REFUSED)
def test_parse_taint_refusals(spec, message):
    with pytest.raises(CliError) as exc:
        parse_taint(spec)
    assert str(exc.value).startswith(message)


def test_parse_taints_splits_adds_and_removals():
    add, remove = parse_taints(["a=1:NoExecute", "b:NoSchedule-", "c-"])
    assert add == [t("a", "1", "NoExecute")]
    assert remove == [t("b", "", "NoSchedule"), t("c", "", "")]
    with pytest.raises(CliError, match="invalid taint spec: a=1"):
        parse_taints(["a=1"])                                   # an effect is needed to add
    with pytest.raises(CliError, match="duplicated taints"):
        parse_taints(["a=1:NoExecute", "a=2:NoExecute"])
    with pytest.raises(CliError, match="can not both modify and remove"):
        parse_taints(["a=1:NoExecute", "a-"])


CHANGE_CASES = [
    # (id, current, add, remove, overwrite, want op, want taints)
    ("add", [t("x")], [t("k", "v", "NoExecute")], [], False, "tainted", [t("x"), t("k", "v", "NoExecute")]),
    ("remove by key and effect", [t("k", "v", "NoExecute"), t("k", "v")], [], [t("k", "", "NoExecute")], False,
     "untainted", [t("k", "v")]),
    ("remove every effect of a key", [t("k", "v", "NoExecute"), t("k", "v"), t("x")], [], [t("k", "", "")], False,
     "untainted", [t("x")]),
    ("overwrite a value: modified, a new taint (no timeAdded kept)", [t("k", "v", "NoExecute", added="T")],
     [t("k", "w", "NoExecute")], [], True, "modified", [t("k", "w", "NoExecute")]),
    ("overwrite with the same value keeps timeAdded", [t("k", "v", "NoExecute", added="T")],
     [t("k", "v", "NoExecute")], [], True, "modified", [t("k", "v", "NoExecute", added="T")]),
    ("add and remove others: modified", [t("x")], [t("k", "v")], [t("x", "", "")], False, "modified", [t("k", "v")]),
]


@pytest.mark.parametrize("case", CHANGE_CASES, ids=[c[0] for c in CHANGE_CASES])
def test_new_taints(case):
    _, current, add, remove, overwrite, op, want = case
    assert new_taints("n1", current, add, remove, overwrite) == (op, want)


def test_new_taints_refusals():
    with pytest.raises(CliError) as exc:
        new_taints("n1", [t("k", "v", "NoExecute")], [t("k", "w", "NoExecute")], [], False)
    assert str(exc.value) == ("node n1 already has k=w:NoExecute taint(s) with same effect(s) "
                              "and --overwrite is false")
    with pytest.raises(CliError) as exc:
        new_taints("n1", [t("k")], [], [t("k", "", "NoExecute")], False)
    assert str(exc.value) == 'taint "k:NoExecute" not found'


def test_the_command_is_wired():
    args = build_parser().parse_args(["taint", "nodes", "n1", "k=v:NoExecute", "--overwrite"])
    assert args.names == ["nodes", "n1", "k=v:NoExecute"] and args.overwrite
