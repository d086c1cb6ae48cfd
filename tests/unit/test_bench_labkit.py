"""bench/labkit.py's CPU attribution: a process tree's ticks from a /proc snapshot (pure)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))

from labkit import pct, tree_ticks  # noqa: E402

# pid: (ppid, ticks): 10 -> 11 -> 12, 10 -> 13; 20 unrelated; 1 is everyone's ancestor
TABLE = {1: (0, 1000), 10: (1, 5), 11: (10, 7), 12: (11, 11), 13: (10, 13), 20: (1, 17)}


@pytest.mark.parametrize("root,want", [
    (10, 5 + 7 + 11 + 13),    # the process and every live descendant
    (11, 7 + 11),             # a subtree only: not its parent or siblings
    (12, 11),                 # a leaf
    (20, 17),                 # an unrelated process alone
    (99, 0),                  # gone: nothing
])
def test_tree_ticks(root, want):
    assert tree_ticks(root, TABLE) == want


def test_tree_ticks_survives_a_pid_loop():
    # a recycled pid read mid-scan can make a cycle in the snapshot; each pid counts once
    assert tree_ticks(30, {30: (31, 1), 31: (30, 2)}) == 3


@pytest.mark.parametrize("values,q,want", [
    ([3, 1, 2], 50, 2), ([1, 2, 3, 4], 50, 3), ([5], 99, 5), (list(range(101)), 99, 99),
])
def test_pct(values, q, want):
    assert pct(values, q) == want
