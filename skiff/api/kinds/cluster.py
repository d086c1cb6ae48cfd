"""Cluster-scoped kinds of the core group: Namespace and Node."""

from skiff.api import objects_pb2 as pb
from skiff.api.kinds.registry import Kind, StoreHooks, register

NAMESPACE = register(Kind(
    "Namespace", "v1", "namespaces", ("ns",), False, pb.Namespace, "namespace", True,
    # Kubernetes empties a namespace in a controller; skiff removes its objects in the
    # same replicated step as the namespace itself (one event per object).
    store=StoreHooks(cascade_namespace=True),
))

NODE = register(Kind(
    "Node", "v1", "nodes", ("no",), False, pb.Node, "node", True,
    quantity_fields=("skiff.api.NodeStatus.capacity", "skiff.api.NodeStatus.allocatable"),
))
