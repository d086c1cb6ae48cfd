"""ReplicationController (v1): the original way to keep a number of identical pods running.

A ReplicaSet with an equality-only selector (a plain label map) that, unlike a
ReplicaSet's, may change after creation. Kubernetes' defaulting
(SetDefaults_ReplicationController): an empty selector becomes the template's labels,
and so do empty metadata.labels; replicas defaults to 1. The ReplicaSet controller
runs it (controlplane/controllers/replicationcontroller.py).
"""

from skiff.api import objects_pb2 as pb
from skiff.api import selectors
from skiff.api.defaults import default_pod_spec
from skiff.api.kinds.registry import Kind, register
from skiff.api.kinds.workloads import _containers, validate_template
from skiff.api.validation import non_negative, required, validate_labels


def _defaults(rc: pb.ReplicationController) -> None:
    labels = dict(rc.spec.template.metadata.labels)
    if labels:
        if not rc.spec.selector:
            rc.spec.selector.update(labels)
        if not rc.metadata.labels:
            rc.metadata.labels.update(labels)
    if not rc.spec.HasField("replicas"):
        rc.spec.replicas = 1
    default_pod_spec(rc.spec.template.spec)


def _validate(rc: pb.ReplicationController, errs) -> None:
    spec = rc.spec
    if spec.HasField("replicas"):
        non_negative(errs, "spec.replicas", spec.replicas)
    non_negative(errs, "spec.minReadySeconds", spec.min_ready_seconds)
    selector = None
    if not spec.selector:
        required(errs, "spec.selector", "a ReplicationController needs a selector (or template labels "
                 "to default it from)")
    else:
        before = len(errs)
        validate_labels(spec.selector, "spec.selector", errs)
        if len(errs) == before:
            selector = selectors.from_map(spec.selector)
    validate_template(spec.template, selector, "ReplicationController", errs)


def _row(rc):
    want = rc.spec.replicas if rc.spec.HasField("replicas") else 1
    names, images = _containers(rc.spec.template)
    shown = ",".join(f"{k}={v}" for k, v in sorted(rc.spec.selector.items())) or "<none>"
    return ([str(want), str(rc.status.replicas), str(rc.status.ready_replicas)], [names, images, shown])


REPLICATION_CONTROLLER = register(Kind(
    "ReplicationController", "v1", "replicationcontrollers", ("rc",), True, pb.ReplicationController,
    "replication_controller", True,
    defaults=_defaults, validate=_validate,
    scale=True, owns=("Pod",),
    columns=("DESIRED", "CURRENT", "READY", "AGE"), wide_columns=("CONTAINERS", "IMAGES", "SELECTOR"),
    row=_row,
    in_get_all=True,
))
