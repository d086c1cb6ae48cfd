"""Store commands are named, picklable types; positional tuples from older journals still replay."""

import pickle

import pytest

from controlplane.store import commands as c
from controlplane.store.state import StoreState
from skiff.api import objects_pb2 as pb
from tests.unit.statehelp import NOW, env


NS = env(pb.Namespace(metadata=pb.ObjectMeta(name="default")))
CM = env(pb.ConfigMap(metadata=pb.ObjectMeta(name="a", namespace="default"), data={"k": "v"}))


@pytest.mark.parametrize("cmd", [
    c.Create("r1", CM, NOW, "u1"),
    c.Create("r1", CM, NOW, "u1", {"cidr": "10.96.0.0/12", "nodePorts": (30000, 32767), "lbPool": ()}),
    c.Update("r2", CM, "status", "7"),
    c.Update("r2", CM, "binding", "", None, NOW),
    c.Apply("r3", CM, NOW, "u3"),
    c.Delete("r4", ("ConfigMap", "default", "a"), "3", "uid", 5, NOW),
    c.Barrier("r5"),
    c.Batch((c.Barrier("a"), c.Create("b", CM, NOW, "u"))),
])
def test_commands_pickle_round_trip_and_are_frozen(cmd):
    assert pickle.loads(pickle.dumps(cmd)) == cmd
    with pytest.raises(AttributeError):
        cmd.request_id = "other"


@pytest.mark.parametrize("legacy,named", [
    (("create", "r", CM, NOW, "u"), c.Create("r", CM, NOW, "u")),
    (("create", "r", CM, NOW, "u", {"cidr": "x"}), c.Create("r", CM, NOW, "u", {"cidr": "x"})),
    (("update", "r", CM, "status", "4"), c.Update("r", CM, "status", "4")),
    (("apply", "r", CM, NOW, "u"), c.Apply("r", CM, NOW, "u")),
    # a delete without the grace tail removed at once (grace 0), not the kind's default
    (("delete", "r", ["Pod", "default", "p"], "", ""), c.Delete("r", ("Pod", "default", "p"), "", "", 0, "")),
    (("delete", "r", ("Pod", "default", "p"), "", "", None, NOW),
     c.Delete("r", ("Pod", "default", "p"), "", "", None, NOW)),
    (("barrier", "r"), c.Barrier("r")),
    (("batch", "", [("barrier", "a"), ("create", "b", CM, NOW, "u")]),
     c.Batch((c.Barrier("a"), c.Create("b", CM, NOW, "u")))),
    (("frobnicate", "r"), ("frobnicate", "r")),      # unknown: left for the state to refuse
])
def test_legacy_tuples_decode_to_named_commands(legacy, named):
    assert c.from_legacy(legacy) == named


def test_a_legacy_journal_replays_to_the_same_state_as_named_commands():
    legacy = [("create", "n", NS, NOW, "un"), ("create", "a", CM, NOW, "ua"),
              ("batch", "", [("delete", "d", ("ConfigMap", "default", "a"), "", ""), ("barrier", "b")])]
    named = [c.Create("n", NS, NOW, "un"), c.Create("a", CM, NOW, "ua"),
             c.Batch((c.Delete("d", ("ConfigMap", "default", "a"), "", "", 0), c.Barrier("b")))]
    old, new = StoreState(), StoreState()
    assert [old.apply(x) for x in legacy] == [new.apply(x) for x in named]
    assert old.objects == new.objects and old.rv == new.rv == 3 and old.requests == new.requests


def test_unknown_commands_are_refused_never_raised():
    st = StoreState()
    assert st.apply(("frobnicate", "r"))[:2] == ("error", "invalid")
    assert st.apply(object())[:2] == ("error", "invalid")
    assert st.apply(c.Create("r", b"\xff garbage", NOW, "u"))[:2] == ("error", "internal")
    assert st.rv == 0 and not st.objects


def test_payload_size_counts_the_object_bytes_only():
    assert c.payload_size(c.Create("r", b"x" * 10, NOW, "u")) == 10
    assert c.payload_size(c.Delete("r", ("Pod", "default", "p"))) == 0
    assert c.payload_size(c.Barrier("r")) == 0
