"""The CLI's kind lists and per-kind decisions come from the registry."""

import argparse

import pytest

from skiff.api import kinds
from skiff.api import objects_pb2 as pb
from skiff.cli import drain, main, node_cmds
from skiff.cli.errors import CliError


def test_get_all_expands_to_kubectls_kinds_in_order():
    assert [(k.plural, n) for k, n in main._split_kind_names(["all"])] == [
        ("pods", None), ("replicationcontrollers", None), ("services", None), ("daemonsets", None),
        ("deployments", None), ("replicasets", None), ("statefulsets", None), ("cronjobs", None), ("jobs", None)]
    assert [k.plural for k, _ in main._split_kind_names(["cm,all"])][:2] == ["configmaps", "pods"]


def test_scale_refuses_a_kind_without_a_scale_subresource():
    args = argparse.Namespace(target=["svc/web"], replicas=2, namespace=None, server=None)
    with pytest.raises(CliError, match="cannot scale services: only replicasets and deployments and replicationcontrollers and statefulsets scale"):
        node_cmds.cmd_scale(args)


def test_drain_counts_controllers_that_own_pods():
    pod = pb.Pod(metadata=pb.ObjectMeta(name="p", namespace="ns"))
    pod.metadata.owner_references.add(kind="ReplicaSet", name="rs", uid="1", controller=True)
    assert drain._pod_controllers(pod) == [("ReplicaSet", kinds.lookup("rs"))]
    pod.metadata.owner_references[0].controller = False   # an owner, not the controller
    assert drain._pod_controllers(pod) == []
    stray = pb.Pod(metadata=pb.ObjectMeta(name="q", namespace="ns"))
    stray.metadata.owner_references.add(kind="Service", name="s", uid="2", controller=True)
    stray.metadata.owner_references.add(kind="Unknown", name="u", uid="3", controller=True)
    # Services own no pods; a kind skiff does not know gets the benefit of the doubt.
    assert drain._pod_controllers(stray) == [("Unknown", None)]
