"""The ReplicationController controller: the ReplicaSet controller run on ReplicationControllers.

Kubernetes runs both kinds with one controller (pkg/controller/replication wraps the
ReplicaSet controller); here too: ReplicaSetController with the RC informer, whose
kind it takes for ownerReferences and adoption, and plan_replicaset(), which reads
an RC's selector map (replicaset_plan.selector_of). Same events (SuccessfulCreate,
SuccessfulDelete), same status fields, resync as the ReplicaSet loop's.
"""

from controlplane.controllers.replicaset import ReplicaSetController


def replication_controller_controller(client, rcs, pods, recorder, workers: int = 1) -> ReplicaSetController:
    """The loop for ReplicationControllers (rcs: their informer)."""
    return ReplicaSetController(client, rcs, pods, recorder, workers=workers, name="replicationcontroller")
