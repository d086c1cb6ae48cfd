"""Mutating admission plugins: they complete the object before it is judged.

Each is a function of Attributes that changes attrs.obj in place, or refuses.
"""

from skiff.api import defaults
from skiff.api.assigned import carry_over_assigned
from skiff.api.errors import FieldError
from skiff.api.wellknown import now_rfc3339

from controlplane.apiserver.admission.chain import CREATE, AdmissionError, Attributes, MutatingPlugin


def normalize_identity(a: Attributes) -> None:
    """apiVersion/kind set and consistent with the kind; namespace "default" when a
    namespaced object names none, "" for cluster-scoped ones; on create, the
    fields the store assigns (uid, creationTimestamp, generation,
    deletionTimestamp) cleared, and a resourceVersion refused."""
    kind, msg = a.kind, a.obj
    meta = msg.metadata
    if msg.api_version and msg.api_version != kind.api_version:
        raise AdmissionError(FieldError(
            "apiVersion", f'{kind.name} is served as "{kind.api_version}", not "{msg.api_version}"'))
    if msg.kind and msg.kind != kind.name:
        raise AdmissionError(FieldError("kind", f'expected "{kind.name}", got "{msg.kind}"'))
    msg.api_version = kind.api_version
    msg.kind = kind.name
    if kind.namespaced:
        if not meta.namespace:
            meta.namespace = "default"
    else:
        meta.namespace = ""
    if a.operation == CREATE and a.old is None:
        if meta.resource_version:
            raise AdmissionError(FieldError(
                "metadata.resourceVersion", "must not be set on objects to be created"))
        meta.ClearField("uid")
        meta.ClearField("creation_timestamp")
        meta.ClearField("generation")
        meta.ClearField("deletion_timestamp")


def carry_over(a: Attributes) -> None:
    """Keep what the cluster assigned (a pod's node, a Service's clusterIP and
    nodePorts) when a re-applied manifest leaves it out. Against this replica's
    copy of old here; the replicated apply does it again against the stored one."""
    if a.old is not None:
        carry_over_assigned(a.kind, a.obj, a.old)


def apply_defaults(a: Attributes) -> None:
    """Kubernetes' defaults (restartPolicy, protocol TCP, probe periods, ...)."""
    defaults.apply_defaults(a.kind, a.obj)


def stamp(a: Attributes) -> None:
    """The times the API server assigns on a write (a Node's NoExecute taints' timeAdded:
    Kind.stamp). Here, before the log, so every replica applies the same time."""
    if a.kind.stamp is not None:
        a.kind.stamp(a.obj, a.old, now_rfc3339())


NORMALIZE_IDENTITY = MutatingPlugin("NormalizeIdentity", normalize_identity)
CARRY_OVER_ASSIGNED = MutatingPlugin("CarryOverAssigned", carry_over)
DEFAULTS = MutatingPlugin("Defaults", apply_defaults)
STAMP = MutatingPlugin("Stamp", stamp)
