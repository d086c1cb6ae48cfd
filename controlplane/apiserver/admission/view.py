"""The read-only view of the cluster that admission plugins get.

A view answers from one replica's applied state: what that replica has applied
from the Raft log so far. It may be a little behind the log (another replica may
have committed a write this one has not applied yet), so a plugin may use it to
refuse early with a good message, but anything that must hold under concurrent
writes is checked again inside the replicated apply, where the order is total
(see docs/admission.md).

The store implements ClusterView over its index; DictView is a plain-dict view
for tests and tools.
"""

from typing import Optional, Protocol


class ClusterView(Protocol):
    """Read-only lookups in a replica's applied state. Kinds are Kind.name ("Pod")."""

    def get(self, kind: str, namespace: str, name: str) -> Optional[object]:
        """The typed object (pb.Pod, ...) or None; namespace "" for cluster-scoped kinds."""

    def list(self, kind: str, namespace: str = "") -> list:
        """Typed objects of kind in namespace; "" means all namespaces (or cluster-scoped)."""


class DictView:
    """A ClusterView over {(kind, namespace, name): typed message}.

    Invariant: returns the stored messages themselves; plugins never mutate what a
    view returns (the store's view hands out its committed objects the same way).
    """

    def __init__(self, objects: Optional[dict] = None):
        self.objects = dict(objects or {})

    @classmethod
    def of(cls, *msgs) -> "DictView":
        """A view holding msgs, keyed by their kind, namespace and name."""
        return cls({(m.DESCRIPTOR.name, m.metadata.namespace, m.metadata.name): m for m in msgs})

    def get(self, kind: str, namespace: str, name: str):
        return self.objects.get((kind, namespace, name))

    def list(self, kind: str, namespace: str = "") -> list:
        return [m for (k, ns, _), m in sorted(self.objects.items(), key=lambda item: item[0])
                if k == kind and (not namespace or ns == namespace)]
