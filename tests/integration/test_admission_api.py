"""Admission through a real 3-replica control plane: what a client is told.

The unit tests (tests/unit/test_admission_chain.py) cover the chain itself; this
checks the answers a client gets back over gRPC: the status and the message.
"""

import pytest

from skiff import client as clientmod
from skiff.api import objects_pb2 as pb


def a_pod(name, namespace="default"):
    p = pb.Pod(metadata=pb.ObjectMeta(name=name, namespace=namespace))
    p.spec.containers.add(name="main", image="busybox")
    return p


def test_object_in_a_missing_namespace_is_not_found(client):
    """Kubernetes' answer, whether admission (NamespaceLifecycle) or the
    replicated apply gives it: NOT_FOUND, `namespaces "x" not found`."""
    with pytest.raises(clientmod.NotFound, match='namespaces "no-such-ns" not found'):
        client.create(a_pod("p", namespace="no-such-ns"))
    with pytest.raises(clientmod.NotFound, match='namespaces "no-such-ns" not found'):
        client.apply(a_pod("p", namespace="no-such-ns"))


def test_fields_not_supported_yet_are_refused_with_their_path(client):
    pod = a_pod("affine")
    pod.spec.priority = 1
    pod.spec.volumes.add(name="data").persistent_volume_claim.claim_name = "db"
    with pytest.raises(clientmod.Invalid) as exc:
        client.create(pod)
    message = str(exc.value)
    assert "spec.priority: Forbidden: not supported yet by skiff" in message
    assert "spec.volumes[0].persistentVolumeClaim: Forbidden: not supported yet by skiff" in message
    with pytest.raises(clientmod.NotFound):
        client.get("pod", "affine")          # nothing was stored

    d = pb.Deployment(metadata=pb.ObjectMeta(name="web", namespace="default"))
    d.spec.selector.match_labels["app"] = "web"
    d.spec.template.metadata.labels["app"] = "web"
    d.spec.template.spec.containers.add(name="main", image="busybox")
    d.spec.template.spec.volumes.add(name="data").persistent_volume_claim.claim_name = "db"
    with pytest.raises(clientmod.Invalid, match=r"spec\.template\.spec\.volumes\[0\]\.persistentVolumeClaim: "
                                                r"Forbidden: not supported yet by skiff"):
        client.apply(d)
    d.spec.template.spec.ClearField("volumes")
    client.apply(d)
    client.delete("deploy", "web")
