"""One scheduling decision: filter every node, rank the feasible ones, pick the best.

schedule() is a pure function of (pod, node infos): the same inputs always give
the same node, because ties are broken by node name. When no node fits, the
Decision carries Kubernetes' FitError message, built from the reason each
node was filtered for:

    0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient cpu.

Kubernetes' format: "<count> <reason>" for every distinct reason, the strings
sorted (Go's sort.Strings, i.e. by the whole "<count> <reason>" text), joined by
", ", after "0/<all nodes> nodes are available: ", with a final ".".

node_detail() says which filter rejected which node, for `skiff describe pod`
(the scheduler appends it to the FailedScheduling event after the histogram):

    Rejected by: InterPodAffinity: node1, node2, node3 (node(s) didn't match pod
    anti-affinity rules); NodeResourcesFit: node4 (Insufficient cpu).

Bounded for big clusters: at most DETAIL_NODES names per (filter, reasons)
group ("node1, node2, ... and 15 more") and DETAIL_MAX_CHARS in all.

A Cycle holds what the cluster-wide checks (InterPodAffinity, PodTopologySpread)
compute once per pod from all node infos, as kube-scheduler's PreFilter/PreScore
do, so the per-node filter is a few lookups, not a walk over every pod.
"""

from collections import Counter
from dataclasses import dataclass, field

from controlplane.scheduler import filters, interpodaffinity, podtopologyspread, scores
from skiff.api import objects_pb2 as pb

NO_NODES = "no nodes available to schedule pods"
DETAIL_NODES = 5
DETAIL_MAX_CHARS = 800


class Cycle:
    """One pod's scheduling cycle: the node infos, namespace labels, and the
    cluster-wide precomputations, each computed on first use."""

    def __init__(self, pod: pb.Pod, infos: dict, ns_labels=None):
        self.pod = pod
        self.infos = infos
        self.ns_labels = ns_labels or {}
        self._cache: dict = {}

    def _get(self, name, compute):
        if name not in self._cache:
            self._cache[name] = compute()
        return self._cache[name]

    @property
    def affinity(self):
        return self._get("affinity", lambda: interpodaffinity.prefilter(self.pod, self.infos, self.ns_labels))

    @property
    def spread(self):
        return self._get("spread", lambda: podtopologyspread.prefilter(self.pod, self.infos))

    @property
    def affinity_scores(self):
        return self._get("affinity_scores",
                         lambda: interpodaffinity.topology_scores(self.pod, self.infos, self.ns_labels))


def _node_local(fn):
    return lambda pod, info, cycle: fn(pod, info)


# Every filter, in Kubernetes' order: (name, fn(pod, info, cycle) -> reasons); a node
# stops at the first that rejects it. The node-local ones come from filters.py.
FILTERS = tuple((name, _node_local(fn)) for name, fn in filters.FILTERS) + (
    ("PodTopologySpread", lambda pod, info, cycle: podtopologyspread.filter_node(cycle.spread, info)),
    ("InterPodAffinity", lambda pod, info, cycle: interpodaffinity.filter_node(cycle.affinity, info)),
)


def first_rejection(pod: pb.Pod, info, cycle: Cycle):
    """(filter name, reasons) of the first filter that rejects the node, or None."""
    for name, fn in FILTERS:
        reasons = fn(pod, info, cycle)
        if reasons:
            return name, tuple(reasons)
    return None


@dataclass(frozen=True)
class Decision:
    node: str | None                                # the chosen node, None when nothing fits
    total_nodes: int
    filtered: dict = field(default_factory=dict)    # node -> tuple of reasons it was filtered
    rejected_by: dict = field(default_factory=dict) # filtered node -> the filter's name
    scores: dict = field(default_factory=dict)      # feasible node -> {ranker: weighted score}
    message: str = ""                               # the FitError text when node is None

    @property
    def detail(self) -> str:
        """Which filter rejected which node (node_detail); "" when a node was chosen."""
        return node_detail(self.filtered, self.rejected_by) if self.node is None else ""

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


def _names(names: list) -> str:
    shown = ", ".join(names[:DETAIL_NODES])
    return shown + (f" and {len(names) - DETAIL_NODES} more" if len(names) > DETAIL_NODES else "")


def node_detail(filtered: dict, rejected_by: dict) -> str:
    """Which filter rejected which nodes and why (module doc); "" when none was."""
    groups: dict = {}
    for node in sorted(filtered):
        groups.setdefault((rejected_by.get(node, "?"), filtered[node]), []).append(node)
    parts = [f"{name}: {_names(nodes)} ({', '.join(reasons)})"
             for (name, reasons), nodes in sorted(groups.items())]
    if not parts:
        return ""
    text = "Rejected by: " + "; ".join(parts) + "."
    if len(text) > DETAIL_MAX_CHARS:
        text = text[:DETAIL_MAX_CHARS - 4].rstrip() + " ..."
    return text


def schedule(pod: pb.Pod, infos: dict, ns_labels=None) -> Decision:
    """Pick a node for pod among infos (name -> NodeInfo); ns_labels: namespace name ->
    labels, for affinity terms' namespaceSelector."""
    cycle = Cycle(pod, infos, ns_labels)
    feasible = []
    filtered = {}
    rejected_by = {}
    for name in sorted(infos):
        rejection = first_rejection(pod, infos[name], cycle)
        if rejection:
            rejected_by[name], filtered[name] = rejection
        else:
            feasible.append(infos[name])
    if not feasible:
        return Decision(None, len(infos), filtered, rejected_by, {}, fit_error_message(len(infos), filtered))
    ranked = scores.score(pod, feasible, cycle)
    best = min(ranked, key=lambda n: (-sum(ranked[n].values()), n))
    return Decision(best, len(infos), filtered, rejected_by, ranked, "")
