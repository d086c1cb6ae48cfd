"""Pod events routed to the controllers that own pods (ReplicaSet, ReplicationController,
DaemonSet): Kubernetes' resolveControllerRef + getPodReplicaSets, in one place.

A pod event wakes its controller (by its controller ownerReference) or, for an orphan,
every owner in its namespace whose selector matches it (one of them may adopt it). A
deleted pod is also reported to the owner's Expectations, so a delete the owner asked
for counts as seen. Handlers only enqueue keys (the reconcile pattern).
"""

from controlplane.controllers.podutil import controller_ref, key_of


class PodOwnerHandlers:
    """add/update/delete handlers for a pods informer, for owners of kind `kind_name` kept
    in the `owners` informer; `selector_of(owner)` gives an owner's selector (it may raise
    ValueError on a bad one, which then matches nothing)."""

    def __init__(self, kind_name: str, owners, selector_of, loop, expectations):
        self.kind_name = kind_name
        self.owners = owners
        self.selector_of = selector_of
        self.loop = loop
        self.expectations = expectations

    def attach(self, pods) -> None:
        pods.add_handler(self.added, self.updated, self.deleted)

    def owners_of(self, pod) -> list:
        """Keys of the owners that care about pod: its controller, or if it is an orphan,
        every owner in its namespace whose selector matches it."""
        ref = controller_ref(pod.metadata)
        if ref is not None:
            return [f"{pod.metadata.namespace}/{ref.name}"] if ref.kind == self.kind_name else []
        keys = []
        for owner in self.owners.list(pod.metadata.namespace):
            try:
                if self.selector_of(owner).matches(pod.metadata.labels):
                    keys.append(key_of(owner))
            except ValueError:
                continue
        return keys

    def added(self, pod):
        for key in self.owners_of(pod):
            self.loop.enqueue(key)

    def updated(self, old, new):
        for key in set(self.owners_of(old)) | set(self.owners_of(new)):
            self.loop.enqueue(key)

    def deleted(self, pod):
        for key in self.owners_of(pod):
            self.expectations.observed_deleted(key, pod.metadata.name)
            self.loop.enqueue(key)
