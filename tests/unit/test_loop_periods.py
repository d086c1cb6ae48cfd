"""Every periodic loop states its period and its idle cost (issue 8's audit rule).

A module that builds a reconcile loop (Loop, BoundedFrequencyRunner, LeaderSupervisor)
must say in its module docstring how often it runs ("period" or "every ...") and what
that costs ("cost"), so a reader sees at a glance what an idle cluster pays for it, and a
new loop cannot land without saying so. Found by reading the source (ast), not by name.
"""

import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGES = ("skiff", "controlplane", "nodeagent")
LOOP_BUILDERS = {"Loop", "BoundedFrequencyRunner", "LeaderSupervisor"}
PERIOD = re.compile(r"\bperiod|\bevery\b", re.I)
COST = re.compile(r"\bcost", re.I)
PENDING: set = set()   # modules owned by a rewrite in flight, if any


def _loop_modules():
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith("skiff/reconcile/") or rel.endswith("_pb2.py") or rel.endswith("_pb2_grpc.py"):
                continue   # the toolkit itself (its periods are the caller's), generated stubs
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Call):
                    fn = node.func
                    name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else ""
                    if name in LOOP_BUILDERS:
                        yield rel, ast.get_docstring(tree) or ""
                        break


LOOPS = list(_loop_modules())


def test_the_loops_are_found():
    found = {rel for rel, _ in LOOPS}
    assert {"controlplane/controllers/gc.py", "controlplane/scheduler/scheduler.py", "controlplane/main.py",
            "nodeagent/node.py", "nodeagent/proxy/proxier.py"} <= found


@pytest.mark.parametrize("rel, doc", [pytest.param(r, d, id=r) for r, d in LOOPS if r not in PENDING])
def test_every_loop_module_states_its_period_and_cost(rel, doc):
    assert PERIOD.search(doc), f"{rel}: its docstring does not say how often its loop runs (period / every ...)"
    assert COST.search(doc), f"{rel}: its docstring does not say what a pass costs when idle (cost)"
