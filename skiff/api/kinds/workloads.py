"""Workload controllers' kinds (apps/v1): ReplicaSet and Deployment."""

from skiff.api import objects_pb2 as pb
from skiff.api.kinds.registry import Kind, register

REPLICA_SET = register(Kind(
    "ReplicaSet", "apps/v1", "replicasets", ("rs",), True, pb.ReplicaSet, "replica_set", True,
    scale=True, owns=("Pod",), in_get_all=True,
))

DEPLOYMENT = register(Kind(
    "Deployment", "apps/v1", "deployments", ("deploy",), True, pb.Deployment, "deployment", True,
    scale=True, owns=("ReplicaSet",), in_get_all=True,
))
