"""What the cluster assigned to an object and a re-applied manifest leaves out.

Pure and deterministic: the API server uses it for admission, and the replicated
apply uses it again against the stored object (a replica's own copy may be stale).
Each kind says what it keeps in its registry record (Kind.carry_over).
"""


def carry_over_assigned(kind, new, old) -> None:
    """Keep what the cluster assigned when a manifest leaves it out (a pod's node,
    a Service's clusterIP and nodePorts): kubectl's merge keeps them, and so do we."""
    if kind.carry_over is not None:
        kind.carry_over(new, old)
