"""The shape of admission: plugins in a fixed order, mutating first, then validating.

As in kube-apiserver, an object on its way to the store passes every mutating
plugin in order (each may change it), then every validating plugin (none may
change it). A plugin sees an Attributes: the object, the stored object it
replaces (old), the operation, and a read-only view of the cluster.

Invariants:
- Mutating plugins run in order and stop at the first refusal (a later one may
  depend on an earlier one's change: defaults need a normalized namespace).
- Validating plugins all run and their FieldErrors accumulate, so a user sees
  every problem at once; a plugin marked only_if_valid runs only when no earlier
  validating plugin found an error (its check assumes a valid object). A path
  an earlier validating plugin has reported is not reported again by a later
  one (validation forbids activeDeadlineSeconds in a ReplicaSet's template; the
  not-supported-yet check would say so a second time).
- A plugin that needs a view is skipped when there is none (bootstrap, tools):
  its rule is either re-checked in the replicated apply or advisory.
"""

from dataclasses import dataclass
from typing import Callable, Optional

from skiff.api.errors import ValidationError
from skiff.api.kinds import Kind

CREATE = "CREATE"
UPDATE = "UPDATE"


class AdmissionError(ValidationError):
    """A refusal by admission. code says which API status it is: "invalid" (field
    errors, INVALID_ARGUMENT), "not_found" (NOT_FOUND) or "forbidden"
    (FAILED_PRECONDITION); the message of a non-invalid refusal is whole on its
    own (Kubernetes' `namespaces "x" not found`), with no "is invalid" preamble."""

    def __init__(self, errors, code: str = "invalid"):
        super().__init__(errors)
        self.code = code


@dataclass
class Attributes:
    """What a plugin is asked about. obj is the object being admitted (mutating
    plugins change it in place); old is the stored object it replaces, or None
    (a create, or a write whose caller supplied no old: a status write)."""
    kind: Kind
    obj: object
    old: Optional[object]
    operation: str                 # CREATE or UPDATE
    view: Optional[object] = None  # a ClusterView, or None

    @property
    def namespace(self) -> str:
        return self.obj.metadata.namespace

    @property
    def name(self) -> str:
        return self.obj.metadata.name


@dataclass(frozen=True)
class MutatingPlugin:
    """admit(attrs) changes attrs.obj in place, or raises AdmissionError."""
    name: str
    admit: Callable[[Attributes], None]
    needs_view: bool = False


@dataclass(frozen=True)
class ValidatingPlugin:
    """validate(attrs) returns a list of FieldErrors (empty: admitted); a refusal
    that is not about a field raises AdmissionError instead."""
    name: str
    validate: Callable[[Attributes], list]
    needs_view: bool = False
    only_if_valid: bool = False


@dataclass(frozen=True)
class Chain:
    mutating: tuple
    validating: tuple

    def names(self) -> list:
        return [p.name for p in self.mutating] + [p.name for p in self.validating]

    def run(self, attrs: Attributes) -> None:
        """Admit attrs.obj (changing it in place) or raise AdmissionError."""
        for plugin in self.mutating:
            if plugin.needs_view and attrs.view is None:
                continue
            plugin.admit(attrs)
        errors: list = []
        for plugin in self.validating:
            if plugin.needs_view and attrs.view is None:
                continue
            if plugin.only_if_valid and errors:
                continue
            reported = {e.path for e in errors}
            errors.extend(e for e in plugin.validate(attrs) if e.path not in reported)
        if errors:
            raise AdmissionError(errors)
