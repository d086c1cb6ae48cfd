"""Drift detection of the Service rules (nodeagent/proxy/drift.py): a table of tamperings."""

import pytest

from nodeagent.proxy import drift
from nodeagent.proxy import render as r
from tests.unit.test_proxy_render import SCENARIOS

JUMPS = r.jump_rules()


def saved_form(text: str) -> str:
    """What iptables-save prints after `iptables-restore text` on empty tables: per table
    the declarations (with counters), the built-in chains' rules (our jumps), then the
    rules of our chains, MARK and probabilities spelt its way."""
    out, table = [], None
    for line in text.splitlines():
        if line.startswith("*"):
            table, decls, rules = line[1:], [], []
        elif line.startswith(":"):
            decls.append(line.split()[0] + " - [0:0]")
        elif line.startswith("-X "):
            decls.remove(":" + line.split()[1] + " - [0:0]")
        elif line.startswith("-A "):
            line = line.replace("--or-mark 0x4000", "--set-xmark 0x4000/0x4000")
            rules.append(line.replace("--xor-mark 0x4000", "--set-xmark 0x4000/0x0"))
        elif line == "COMMIT":
            jumps = [drift.jump_line(chain, spec) for t, chain, spec in JUMPS if t == table]
            out += [f"*{table}"] + decls + jumps + rules + ["COMMIT"]
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_intact_rules_have_no_drift(name):
    services, endpoints, node, existing = SCENARIOS[name]
    text = r.render(services, endpoints, node, existing)
    assert drift.drifted(saved_form(text), text, JUMPS) == []


TEXT = r.render(*SCENARIOS[sorted(SCENARIOS)[0]])
SAVED = saved_form(TEXT)
A_RULE = next(ln for ln in SAVED.splitlines() if ln.startswith("-A SKIFF-SERVICES"))
A_JUMP = drift.jump_line(JUMPS[0][1], JUMPS[0][2])


@pytest.mark.parametrize("what,tamper,found", [
    ("a rule deleted", lambda s: s.replace(A_RULE + "\n", "", 1), "rules differ"),
    ("a rule added", lambda s: s.replace(A_RULE, A_RULE + "\n-A SKIFF-SERVICES -j DROP", 1), "rules differ"),
    ("a jump deleted", lambda s: s.replace(A_JUMP + "\n", "", 1), "jump to SKIFF-SERVICES missing"),
    ("a chain flushed and deleted", lambda s: "\n".join(
        ln for ln in s.splitlines() if "SKIFF-MARK-MASQ" not in ln or ln.startswith("*")) + "\n", "missing"),
    ("a table flushed", lambda s: s.split("*nat")[0], "missing"),
    ("a foreign SKIFF- chain", lambda s: s.replace("*nat\n", "*nat\n:SKIFF-SVC-STALE - [0:0]\n"), "not ours"),
])
def test_tampering_is_drift(what, tamper, found):
    assert SAVED != tamper(SAVED), what
    problems = drift.drifted(tamper(SAVED), TEXT, JUMPS)
    assert any(found in p for p in problems), (what, problems)


def test_other_software_and_a_jump_moved_down_are_not_drift():
    other = SAVED.replace("*nat\n", "*nat\n:DOCKER - [0:0]\n-A DOCKER -j RETURN\n-A PREROUTING -j DOCKER\n")
    assert drift.drifted(other, TEXT, JUMPS) == []


def test_normalize_and_jump_line():
    assert drift.normalize("-A X -m statistic --mode random --probability 0.33333333349 -j Y") == \
        "-A X -m statistic --mode random --probability 0.333333 -j Y"
    assert drift.jump_line("PREROUTING", ["-m", "comment", "--comment", "skiff service portals", "-j", "S"]) == \
        '-A PREROUTING -m comment --comment "skiff service portals" -j S'


# ---------------------------------------------------------------- the proxier's repair verdicts

class ScriptedIptables:
    """The iptables seam: records restores; save() is never parsed (drift.drifted is scripted)."""
    def __init__(self):
        self.restores = 0

    def save(self):
        return ""

    def restore(self, text):
        self.restores += 1

    def ensure_jump(self, table, chain, spec):
        pass


@pytest.mark.parametrize("name, after_each_attempt, unverifiable", [
    # the same drift after every re-apply: the kernel saves this text its own way
    ("same drift every attempt", [["nat/X: differ"]] * 3, True),
    # someone flushed again while we checked, then deleted chains: a concurrent writer
    ("drift changes between attempts", [["nat/X: differ"], ["nat/X: differ"], ["nat/SKIFF-SERVICES: missing"]], False),
    ("repaired on the second attempt", [["nat/X: differ"], []], False),
])
def test_repair_marks_a_text_unverifiable_only_when_the_same_drift_remains(monkeypatch, name, after_each_attempt,
                                                                            unverifiable):
    from nodeagent.proxy import proxier as mod
    from skiff.informer import InformerFactory
    from tests.unit.test_reconcile import FakeClient

    ipt = ScriptedIptables()
    px = mod.Proxier(None, "n1", announce=False, iptables=ipt, monitor=False,
                     informers=InformerFactory(FakeClient({})))
    assert px.sync() and ipt.restores == 1                      # first sync: applied, not checked
    checks = iter([["nat/X: differ"]] + after_each_attempt)     # the drift seen, then after each re-apply
    monkeypatch.setattr(mod.drift, "drifted", lambda saved, text, jumps: next(checks))
    assert px.sync()
    assert ipt.restores == 1 + len(after_each_attempt) and px.drift_repairs == 1
    assert (px._unverifiable == px._last_text) is unverifiable
    # An unverifiable text is not checked again (no re-apply loop); any other one is.
    monkeypatch.setattr(mod.drift, "drifted", lambda saved, text, jumps: ["nat/Y: differ"])
    px.sync()
    assert px.drift_repairs == (1 if unverifiable else 2)
