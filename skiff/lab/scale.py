"""How `skiff lab up`'s waits and parallelism grow with the number of nodes: pure functions of
(nodes, CPUs, the --timeout base), table-tested in tests/unit/test_lab_scale.py.

Why they must grow: on a small machine the phases whose work is per node compete for the same
CPUs. Twenty agents started together import, register and set up their pod network at the
same time, so "every node Ready" comes later the more nodes there are per CPU; a fixed budget
that fits 3 nodes fails a 20-node lab on 2 CPUs although nothing is wrong.

Invariants:
- a 3-node lab (the default) keeps exactly the --timeout it always had in every phase;
- a phase's budget never shrinks when nodes grow or CPUs shrink;
- the engines phase gives each engine its own full budget (engines start a few at a time,
  ENGINES_PER_CPU per CPU, so one engine's wait does not include the others' starts).
"""

from dataclasses import dataclass

REFERENCE_NODES = 3        # the default lab: --timeout is the budget of each of its phases
AGENT_START_CPU_S = 10.0   # CPU seconds budgeted per agent to start, register and report Ready
                           # (about 3x what one takes on an idle machine: Python imports, the
                           # pod network setup, the first sync)
ENGINES_PER_CPU = 2        # dockerd + containerd starts in flight per CPU


@dataclass(frozen=True)
class Waits:
    """Deadlines of `lab up`'s phases, in seconds."""
    engine_s: float          # one engine to answer and load the lab images (from its own start)
    controlplane_s: float    # a Raft leader and the built-in namespaces
    nodes_ready_s: float     # every agent started -> every Node Ready


def waits(nodes: int, cpus: int, base_s: float) -> Waits:
    """The phase deadlines of a lab of `nodes` nodes on `cpus` CPUs, given the --timeout base
    (the budget of each phase of a 3-node lab). Only "every node Ready" grows: by the CPU time
    of the agents beyond the reference lab's, spread over the CPUs."""
    cpus = max(1, cpus)
    extra_nodes = max(0, nodes - REFERENCE_NODES)
    return Waits(engine_s=base_s, controlplane_s=base_s,
                 nodes_ready_s=base_s + AGENT_START_CPU_S * extra_nodes / cpus)


def engine_parallelism(nodes: int, cpus: int) -> int:
    """How many engines `lab up` starts (and loads images into) at once: ENGINES_PER_CPU per CPU,
    at least 2, never more than there are nodes (and at least 1)."""
    return max(1, min(nodes, max(2, ENGINES_PER_CPU * max(1, cpus))))
