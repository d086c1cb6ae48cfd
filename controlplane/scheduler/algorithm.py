"""One scheduling decision: filter every node, rank the feasible ones, pick the best.

schedule() is a pure function of (pod, node infos): the same inputs always give
the same node, because ties are broken by node name. When no node fits, the
Decision carries Kubernetes' FitError message, built from the reason each
node was filtered for:

    0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient cpu.

Kubernetes' format: "<count> <reason>" for every distinct reason, the strings
sorted (Go's sort.Strings, i.e. by the whole "<count> <reason>" text), joined by
", ", after "0/<all nodes> nodes are available: ", with a final ".".
"""

from collections import Counter
from dataclasses import dataclass, field

from controlplane.scheduler import filters, scores
from skiff.api import objects_pb2 as pb

NO_NODES = "no nodes available to schedule pods"


@dataclass(frozen=True)
class Decision:
    node: str | None                                # the chosen node, None when nothing fits
    total_nodes: int
    filtered: dict = field(default_factory=dict)    # node -> tuple of reasons it was filtered
    scores: dict = field(default_factory=dict)      # feasible node -> {ranker: weighted score}
    message: str = ""                               # the FitError text when node is None

    def explain(self) -> str:
        """One line for logs: why each node was filtered and how the feasible ones scored."""
        parts = [f"{n}:filtered({'; '.join(r)})" for n, r in sorted(self.filtered.items())]
        parts += [f"{n}:score={sum(s.values())}{dict(sorted(s.items()))}"
                  for n, s in sorted(self.scores.items())]
        return " ".join(parts)


def fit_error_message(total_nodes: int, filtered: dict) -> str:
    if total_nodes == 0:
        return NO_NODES
    histogram = Counter(reason for reasons in filtered.values() for reason in reasons)
    parts = sorted(f"{count} {reason}" for reason, count in histogram.items())
    return f"0/{total_nodes} nodes are available: {', '.join(parts)}."


def schedule(pod: pb.Pod, infos: dict) -> Decision:
    """Pick a node for pod among infos (name -> NodeInfo)."""
    feasible = []
    filtered = {}
    for name in sorted(infos):
        reasons = filters.check(pod, infos[name])
        if reasons:
            filtered[name] = tuple(reasons)
        else:
            feasible.append(infos[name])
    if not feasible:
        return Decision(None, len(infos), filtered, {}, fit_error_message(len(infos), filtered))
    ranked = scores.score(pod, feasible)
    best = min(ranked, key=lambda n: (-sum(ranked[n].values()), n))
    return Decision(best, len(infos), filtered, ranked, "")
