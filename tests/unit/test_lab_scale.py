"""`skiff lab up`'s deadlines and engine parallelism as functions of nodes and CPUs (pure)."""

import pytest

from skiff.lab.scale import Waits, engine_parallelism, waits


@pytest.mark.parametrize("nodes,cpus,base,want", [
    # the default lab keeps its --timeout in every phase, on any machine
    (3, 2, 90.0, Waits(engine_s=90.0, controlplane_s=90.0, nodes_ready_s=90.0)),
    (3, 64, 90.0, Waits(engine_s=90.0, controlplane_s=90.0, nodes_ready_s=90.0)),
    (1, 2, 90.0, Waits(engine_s=90.0, controlplane_s=90.0, nodes_ready_s=90.0)),
    # more nodes per CPU: only "every node Ready" grows (AGENT_START_CPU_S per extra node / CPUs)
    (10, 2, 90.0, Waits(engine_s=90.0, controlplane_s=90.0, nodes_ready_s=90.0 + 7 * 10.0 / 2)),
    (20, 2, 90.0, Waits(engine_s=90.0, controlplane_s=90.0, nodes_ready_s=90.0 + 17 * 10.0 / 2)),
    (20, 8, 90.0, Waits(engine_s=90.0, controlplane_s=90.0, nodes_ready_s=90.0 + 17 * 10.0 / 8)),
    # an explicit --timeout is the base the growth is added to
    (20, 2, 30.0, Waits(engine_s=30.0, controlplane_s=30.0, nodes_ready_s=30.0 + 17 * 10.0 / 2)),
    # a CPU count of 0 (unknown) counts as one CPU
    (5, 0, 90.0, Waits(engine_s=90.0, controlplane_s=90.0, nodes_ready_s=90.0 + 2 * 10.0)),
])
def test_waits(nodes, cpus, base, want):
    assert waits(nodes, cpus, base) == want


def test_waits_never_shrink_with_more_nodes_or_fewer_cpus():
    for cpus in (1, 2, 4, 16):
        budgets = [waits(n, cpus, 90.0).nodes_ready_s for n in range(1, 41)]
        assert budgets == sorted(budgets)
    for n in (3, 10, 20):
        budgets = [waits(n, c, 90.0).nodes_ready_s for c in (16, 8, 4, 2, 1)]
        assert budgets == sorted(budgets)


@pytest.mark.parametrize("nodes,cpus,want", [
    (1, 2, 1),     # never more than there are nodes
    (3, 2, 3),
    (20, 2, 4),    # 2 per CPU
    (20, 1, 2),    # at least 2 when there are nodes for it
    (20, 0, 2),    # unknown CPU count: as one CPU
    (20, 16, 20),
    (0, 2, 1),     # at least 1 (a pool needs a worker)
])
def test_engine_parallelism(nodes, cpus, want):
    assert engine_parallelism(nodes, cpus) == want
