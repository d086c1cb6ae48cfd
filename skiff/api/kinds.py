"""The registry of API kinds: names, short names, scope, and their messages.

One table answers every "which kind is this word" question for the CLI and the
API server, and converts between a typed object and the Object envelope.
"""

from dataclasses import dataclass

from skiff.api import objects_pb2 as pb
from skiff.api.errors import FieldError, ValidationError


@dataclass(frozen=True)
class Kind:
    name: str             # Pod
    api_version: str      # v1, apps/v1
    plural: str           # pods
    short_names: tuple    # ("po",)
    namespaced: bool
    message: type         # objects_pb2.Pod
    envelope_field: str   # the Object oneof field: "pod"
    has_spec: bool        # generation tracks spec changes

    @property
    def group(self) -> str:
        return self.api_version.split("/")[0] if "/" in self.api_version else ""

    @property
    def resource(self) -> str:
        """kubectl's name for the resource: pods, deployments.apps."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


KINDS = [
    Kind("Namespace", "v1", "namespaces", ("ns",), False, pb.Namespace, "namespace", True),
    Kind("Node", "v1", "nodes", ("no",), False, pb.Node, "node", True),
    Kind("Pod", "v1", "pods", ("po",), True, pb.Pod, "pod", True),
    Kind("Service", "v1", "services", ("svc",), True, pb.Service, "service", True),
    Kind("Endpoints", "v1", "endpoints", ("ep",), True, pb.Endpoints, "endpoints", False),
    Kind("ConfigMap", "v1", "configmaps", ("cm",), True, pb.ConfigMap, "config_map", False),
    Kind("Secret", "v1", "secrets", (), True, pb.Secret, "secret", False),
    Kind("ReplicaSet", "apps/v1", "replicasets", ("rs",), True, pb.ReplicaSet, "replica_set", True),
    Kind("Deployment", "apps/v1", "deployments", ("deploy",), True, pb.Deployment, "deployment", True),
    Kind("Event", "v1", "events", ("ev",), True, pb.Event, "event", False),
]

BY_NAME = {k.name: k for k in KINDS}
_BY_FIELD = {k.envelope_field: k for k in KINDS}
_BY_MESSAGE = {k.message.DESCRIPTOR.full_name: k for k in KINDS}
_WORDS = {}
for _k in KINDS:
    for _w in (_k.name.lower(), _k.plural, _k.resource, *_k.short_names,
               f"{_k.name.lower()}.{_k.group}" if _k.group else _k.name.lower()):
        _WORDS[_w] = _k


def lookup(word: str) -> Kind:
    """Resolve what a user typed (po, pods, Pod, deploy, deployments.apps) to a Kind."""
    kind = _WORDS.get(word.lower())
    if kind is None:
        raise KeyError(f'the server doesn\'t have a resource type "{word}"'
                       f" (known: {', '.join(sorted(k.plural for k in KINDS))})")
    return kind


def for_manifest(api_version, kind_name, path: str = "") -> Kind:
    """The Kind for a manifest's apiVersion/kind, or a ValidationError naming the field."""
    if not kind_name or not isinstance(kind_name, str):
        raise ValidationError(FieldError(f"{path}kind", "required: every object needs a kind"))
    kind = BY_NAME.get(kind_name)
    if kind is None:
        raise ValidationError(FieldError(
            f"{path}kind", f'unknown kind "{kind_name}" (known: {", ".join(sorted(BY_NAME))})'))
    if api_version != kind.api_version:
        raise ValidationError(FieldError(
            f"{path}apiVersion",
            f'{kind_name} is served as apiVersion "{kind.api_version}", not "{api_version}"'))
    return kind


def of_message(msg) -> Kind:
    return _BY_MESSAGE[msg.DESCRIPTOR.full_name]


def wrap(msg) -> pb.Object:
    """Typed object -> Object envelope."""
    env = pb.Object()
    getattr(env, of_message(msg).envelope_field).CopyFrom(msg)
    return env


def encode(msg) -> bytes:
    """Serialize with map entries in key order. Plain SerializeToString orders
    map entries (labels, annotations, data) by a hash seeded per process, so two
    replicas would encode one object differently."""
    return msg.SerializeToString(deterministic=True)


def unwrap(env: pb.Object):
    """Object envelope -> (Kind, typed object); ValidationError when empty."""
    which = env.WhichOneof("object")
    if which is None:
        raise ValidationError(FieldError("object", "empty object envelope"))
    return _BY_FIELD[which], getattr(env, which)


def key_of(kind: Kind, msg) -> tuple:
    """The store key: (kind name, namespace or "", name)."""
    ns = msg.metadata.namespace if kind.namespaced else ""
    return (kind.name, ns, msg.metadata.name)
