import dataclasses

import pytest

from skiff.api import objects_pb2 as pb
from skiff.api import selectors
from skiff.api.selectors import (
    from_label_selector,
    from_map,
    parse,
    validate_dns1035_label,
    validate_dns1123_label,
    validate_dns1123_subdomain,
    validate_label_key,
    validate_label_value,
)

WEB = {"app": "web", "tier": "fe"}
DB = {"app": "db"}
NONE = {}


@pytest.mark.parametrize("text, matching, not_matching", [
    ("", [WEB, DB, NONE], []),
    ("app=web", [WEB], [DB, NONE]),
    ("app==web", [WEB], [DB, NONE]),
    ("app!=web", [DB, NONE], [WEB]),
    ("app in (web,db)", [WEB, DB], [NONE]),
    ("app notin (web)", [DB, NONE], [WEB]),
    ("tier", [WEB], [DB, NONE]),
    ("!tier", [DB, NONE], [WEB]),
    ("app=web,tier=fe", [WEB], [DB, NONE]),
    ("app=web,tier=be", [], [WEB, DB, NONE]),
    ("  app = web ,  tier  in ( fe , be )  ", [WEB], [DB, NONE]),
    ("app in(web)", [WEB], [DB]),
    ("app=", [{"app": ""}], [WEB, NONE]),
    ("example.com/role=x", [{"example.com/role": "x"}], [WEB]),
])
def test_parse_and_match(text, matching, not_matching):
    selector = parse(text)
    for labels in matching:
        assert selector.matches(labels), (text, labels)
    for labels in not_matching:
        assert not selector.matches(labels), (text, labels)


@pytest.mark.parametrize("text, canonical", [
    ("", ""),
    ("b=2,a=1", "a=1,b=2"),
    ("a==1", "a=1"),
    ("a in (z, y,x)", "a in (x,y,z)"),
    ("a notin (y,x)", "a notin (x,y)"),
    ("!b, a", "a,!b"),
    ("a=1,a=1", "a=1"),
    ("a!=1", "a!=1"),
])
def test_canonical_string_round_trips(text, canonical):
    selector = parse(text)
    assert str(selector) == canonical
    assert parse(str(selector)) == selector


@pytest.mark.parametrize("text, offending", [
    ("a b", "'b'"),
    ("a in ()", "at least one value"),
    ("a in (b", "missing ')'"),
    ("a in b", "expected '('"),
    ("=b", "'='"),
    ("a=b=c", "'='"),
    ("a,,b", "','"),
    (",", "','"),
    ("a=b,", "at the end"),
    ("!", "at the end"),
    ("a!", "'!'"),
    ("-bad=1", "invalid label key '-bad'"),
    ("a=-bad", "invalid value '-bad'"),
    ("a/b/c=1", "at most one '/'"),
    ("Bad_Prefix/a=1", "prefix part"),
    ("a=" + "x" * 64, "no more than 63"),
    ("a in (ok, -no)", "'-no'"),
])
def test_parse_rejects_naming_the_offending_part(text, offending):
    with pytest.raises(ValueError) as info:
        parse(text)
    assert offending in str(info.value)
    assert repr(text) in str(info.value)


def test_empty_selector():
    assert parse("").empty
    assert parse("   ").empty
    assert selectors.EVERYTHING.empty
    assert selectors.EVERYTHING.matches({"anything": "x"})
    assert not parse("a").empty


def test_selector_is_immutable_and_hashable():
    selector = parse("a=1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        selector.requirements = ()
    assert hash(selector) == hash(parse("a==1"))
    assert len({parse("a=1,b=2"), parse("b=2,a=1")}) == 1


def test_from_map():
    selector = from_map({"app": "web", "tier": "fe"})
    assert str(selector) == "app=web,tier=fe"
    assert selector.matches(WEB)
    assert not selector.matches(DB)
    assert from_map({}).empty  # callers decide what an empty map means
    with pytest.raises(ValueError, match="invalid label key"):
        from_map({"bad key": "x"})


def test_from_label_selector():
    ls = pb.LabelSelector(match_labels={"app": "web"})
    ls.match_expressions.add(key="tier", operator="In", values=["fe", "be"])
    ls.match_expressions.add(key="canary", operator="DoesNotExist")
    ls.match_expressions.add(key="env", operator="NotIn", values=["prod"])
    ls.match_expressions.add(key="app", operator="Exists")
    selector = from_label_selector(ls)
    assert str(selector) == "app=web,app,!canary,env notin (prod),tier in (be,fe)"
    assert parse(str(selector)) == selector
    assert selector.matches(WEB)
    assert not selector.matches({**WEB, "canary": "1"})
    assert not selector.matches({**WEB, "env": "prod"})
    assert not selector.matches(DB)


def test_empty_label_selector_matches_everything():
    selector = from_label_selector(pb.LabelSelector())
    assert selector.empty
    assert selector.matches(WEB) and selector.matches(NONE)


@pytest.mark.parametrize("operator, values, message", [
    ("Equals", ["a"], "unknown operator 'Equals'"),
    ("In", [], "at least one value"),
    ("Exists", ["a"], "takes no values"),
])
def test_from_label_selector_rejects(operator, values, message):
    ls = pb.LabelSelector()
    ls.match_expressions.add(key="k", operator=operator, values=values)
    with pytest.raises(ValueError, match=message):
        from_label_selector(ls)


@pytest.mark.parametrize("key", [
    "app", "a", "A", "app.kubernetes.io/name", "example.com/x_y-z.1", "k" * 63,
    "a" * 253 + "/b",
])
def test_valid_label_keys(key):
    assert validate_label_key(key) is None


@pytest.mark.parametrize("key, message", [
    ("", "non-empty"),
    ("/a", "prefix before '/' must be non-empty"),
    ("a/", "name part must be non-empty"),
    ("a/b/c", "at most one '/'"),
    ("-a", "start and end with an alphanumeric"),
    ("a-", "start and end with an alphanumeric"),
    ("a b", "alphanumeric"),
    ("k" * 64, "no more than 63"),
    ("Example.com/a", "prefix part"),
    ("a" * 254 + "/b", "prefix part"),
])
def test_invalid_label_keys(key, message):
    problem = validate_label_key(key)
    assert problem is not None and message in problem


@pytest.mark.parametrize("value, ok", [
    ("", True), ("web", True), ("Web_1.2-x", True), ("v" * 63, True),
    ("v" * 64, False), ("-web", False), ("web-", False), ("a b", False), ("a/b", False),
])
def test_label_values(value, ok):
    assert (validate_label_value(value) is None) == ok


@pytest.mark.parametrize("name, label1123, label1035, subdomain", [
    ("web", True, True, True),
    ("web-1", True, True, True),
    ("1web", True, False, True),
    ("web.example", False, False, True),
    ("Web", False, False, False),
    ("web-", False, False, False),
    ("-web", False, False, False),
    ("a" * 64, False, False, True),
    ("a" * 254, False, False, False),
    ("", False, False, False),
])
def test_dns_names(name, label1123, label1035, subdomain):
    assert (validate_dns1123_label(name) is None) == label1123
    assert (validate_dns1035_label(name) is None) == label1035
    assert (validate_dns1123_subdomain(name) is None) == subdomain
