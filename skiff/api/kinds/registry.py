"""The kind registry: one Kind record per API kind, holding everything skiff knows about it.

A kind's module (skiff/api/kinds/<family>.py) builds its Kind and calls register();
everything generic — the codec, admission, the state machine, the CLI's tables and
`describe`, garbage collection, `drain`, `api-resources`/`explain` — reads the record
instead of branching on the kind's name (kube-apiserver's `pkg/registry/*/strategy.go`
is the model). docs/adding-a-kind.md is the recipe.

Invariants:
- names are unique: a kind's name, plural, resource and short names resolve to it alone;
- every hook is optional (None = nothing special) and pure: the store hooks run inside
  the replicated apply, so they read only their arguments and never raise on bad input
  (they return an error string instead);
- the registry is filled at import time of skiff.api.kinds and never changes afterwards.
"""

from dataclasses import dataclass, field
from typing import Callable

from skiff.api import objects_pb2 as pb
from skiff.api.errors import FieldError, ValidationError
from skiff.api.selectors import validate_dns1123_subdomain


@dataclass(frozen=True)
class StoreHooks:
    """What the replicated apply does for a kind beyond generic create/update/delete.

    allocate(new, old_or_None, others, settings) -> error text or None
        Assign what the cluster allocates (a Service's clusterIP, nodePorts, LB ingress)
        or derives from the new object's uid (a Job's generated selector: metadata.uid
        is set before the hook runs on create) on create and on spec update; mutates
        `new` only. `others` are the stored objects
        of the same kind except this one; `settings` is the plain data the proposer put
        in the command (see settings_section).
    settings_section
        The proposer's config section whose alloc_settings() rides in every write of this
        kind, so that every replica allocates from the command, not from its own file.
    keep_on_status_write(merged, old)
        Restore what a status write must not change (a Service's status.loadBalancer
        belongs to the allocator).
    graceful_delete_s(obj, requested_s_or_None) -> int
        > 0: a delete marks the object deleting with that grace period instead of
        removing it (a bound pod: its node stops it first); 0: remove now.
    cascade_namespace
        Deleting this object (a Namespace) removes every object in the namespace it names,
        in the same step.
    reseal(merged, new)
        Copy the fields the store keeps encrypted at rest (a Secret's data and annotations)
        from new into merged, nothing else: the store's re-encryption with a new key
        (subresource "encryption", controlplane/store/sealing.py).
    status_from_controller_only
        A create stores no status (Kubernetes' PrepareForCreate): the status belongs to the
        kind's controller and to checks that trust it (a PodDisruptionBudget's
        disruptionsAllowed, which evictions spend), so a manifest cannot bring its own.
    """

    allocate: Callable | None = None
    settings_section: str = ""
    keep_on_status_write: Callable | None = None
    graceful_delete_s: Callable | None = None
    cascade_namespace: bool = False
    status_from_controller_only: bool = False
    reseal: Callable | None = None


@dataclass(frozen=True)
class Kind:
    # identity
    name: str             # Pod
    api_version: str      # v1, apps/v1
    plural: str           # pods
    short_names: tuple    # ("po",)
    namespaced: bool
    message: type         # objects_pb2.Pod
    envelope_field: str   # the Object oneof field: "pod"
    has_spec: bool        # metadata.generation tracks spec changes
    # admission (decode -> defaults -> validate [-> validate_update]); errs is a list of FieldError
    defaults: Callable | None = None          # fn(msg) -> None, fills what Kubernetes defaults
    validate: Callable | None = None          # fn(msg, errs) -> None: the kind's own rules (metadata is generic)
    validate_update: Callable | None = None   # fn(new, old, errs) -> None, immutability rules
    carry_over: Callable | None = None        # fn(new, old) -> None: keep what the cluster assigned
    stamp: Callable | None = None             # fn(new, old, now) -> None: times the API server stamps on a
    #                               write (before the log: the replicated apply never re-runs it)
    name_rule: Callable = validate_dns1123_subdomain  # fn(name) -> error detail or None
    # schema
    quantity_fields: tuple = ()   # proto full names of quantity-valued string fields (bare numbers allowed)
    field_selectors: dict = field(default_factory=dict)  # selector path -> fn(msg) -> str, beyond
    #                               metadata.name / metadata.namespace, which every kind has (fields.py)
    scale: bool = False           # has a scale subresource (spec.replicas): `skiff scale`
    owns: tuple = ()              # kind names whose objects it owns through ownerReferences (GC)
    daemon: bool = False          # owns one pod per node: `drain` leaves its pods (--ignore-daemonsets)
    # presentation (CLI)
    columns: tuple = ()           # table headers after NAME (NAMESPACE comes first with -A); "AGE"
    #                               stands where the age goes: the printer fills it, row gives the rest
    wide_columns: tuple = ()      # extra headers with -o wide
    row: Callable | None = None   # fn(msg) -> (values, wide_values), one per column except AGE
    table: Callable | None = None  # fn(items, all_namespaces, headers, now) -> str: a table of the
    #                               kind's own (Events: oldest first); --show-labels uses columns/row
    describe: Callable | None = None  # fn(msg) -> str: a section `describe` prints after metadata
    describe_omits: tuple = ()    # top-level fields `describe` never dumps (a Secret's data values)
    in_get_all: bool = False      # listed by `skiff get all` (ordered as kubectl: by group, then plural)
    # the replicated apply
    store: StoreHooks = StoreHooks()

    @property
    def group(self) -> str:
        return self.api_version.split("/")[0] if "/" in self.api_version else ""

    @property
    def resource(self) -> str:
        """kubectl's name for the resource: pods, deployments.apps."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


KINDS: list = []
BY_NAME: dict = {}
_BY_FIELD: dict = {}
_BY_MESSAGE: dict = {}
_WORDS: dict = {}


def register(kind: Kind) -> Kind:
    """Add a kind; a name, plural or short name already taken is a programming error."""
    words = {kind.name.lower(), kind.plural, kind.resource, *kind.short_names}
    if kind.group:
        words.add(f"{kind.name.lower()}.{kind.group}")
    taken = sorted(w for w in words if w in _WORDS)
    if taken or kind.name in BY_NAME:
        raise ValueError(f"kind {kind.name}: names already registered: {taken or [kind.name]}")
    if kind.message.DESCRIPTOR.fields_by_name.get("metadata") is None:
        raise ValueError(f"kind {kind.name}: message has no metadata")
    KINDS.append(kind)
    BY_NAME[kind.name] = kind
    _BY_FIELD[kind.envelope_field] = kind
    _BY_MESSAGE[kind.message.DESCRIPTOR.full_name] = kind
    for w in words:
        _WORDS[w] = kind
    return kind


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


def get_all() -> list:
    """The kinds `skiff get all` lists, in kubectl's order: the core group first, then the
    other groups alphabetically, plural names alphabetically within a group (pods, services,
    daemonsets, deployments, replicasets, statefulsets, ..., cronjobs, jobs)."""
    return sorted((k for k in KINDS if k.in_get_all), key=lambda k: (k.group, k.plural))


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
