"""Admission: what the API server does to an object before proposing it.

An ordered chain of plugins, mutating then validating, as in kube-apiserver
(docs/admission.md describes each plugin and which checks the replicated apply
makes again). Nothing that fails here reaches the Raft log.

  mutating:   NormalizeIdentity -> NamespaceLifecycle (view) -> CarryOverAssigned -> Defaults
              -> ServiceAccount (view) -> Stamp
  validating: Validation -> ValidateUpdate -> NotSupportedYet -> ObjectSize

Entry point: admit(kind, msg, old=..., creating=..., view=...). view is a
ClusterView (view.py) over the replica's applied state; without one (bootstrap,
client-side tools) the plugins that need it are skipped.
"""

from typing import Optional

from skiff.api.assigned import carry_over_assigned  # noqa: F401 - re-exported
from skiff.api.kinds import Kind

from controlplane.apiserver.admission.chain import (  # noqa: F401 - the package's interface
    CREATE, UPDATE, AdmissionError, Attributes, Chain, MutatingPlugin, ValidatingPlugin)
from controlplane.apiserver.admission.mutating import CARRY_OVER_ASSIGNED, DEFAULTS, NORMALIZE_IDENTITY, STAMP
from controlplane.apiserver.admission.namespace_lifecycle import NAMESPACE_LIFECYCLE
from controlplane.apiserver.admission.serviceaccount import SERVICE_ACCOUNT_PLUGIN
from controlplane.apiserver.admission.validating import (  # noqa: F401 - MAX_OBJECT_BYTES re-exported
    MAX_OBJECT_BYTES, NOT_SUPPORTED_YET, OBJECT_SIZE, VALIDATE_UPDATE, VALIDATION)
from controlplane.apiserver.admission.view import ClusterView, DictView  # noqa: F401

# The order matters: identity first (everything after reads the namespace);
# NamespaceLifecycle before defaults and validation, as in Kubernetes, so a write
# to a missing namespace gets NotFound whatever else is wrong with it; carry-over
# before defaults (a defaulted empty clusterIP would hide the assigned one).
# Next: LimitRange joins the mutating plugins, ResourceQuota the validating ones.
DEFAULT_CHAIN = Chain(
    mutating=(NORMALIZE_IDENTITY, NAMESPACE_LIFECYCLE, CARRY_OVER_ASSIGNED, DEFAULTS, SERVICE_ACCOUNT_PLUGIN,
              STAMP),
    validating=(VALIDATION, VALIDATE_UPDATE, NOT_SUPPORTED_YET, OBJECT_SIZE),
)

_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' generateName alphabet


def admit(kind: Kind, msg, *, old=None, creating: bool, view: Optional[ClusterView] = None,
          chain: Chain = DEFAULT_CHAIN) -> None:
    """Run the admission chain on msg in place: normalize, default and validate it,
    or raise AdmissionError (a ValidationError; its .code names the API status).

    creating: the write makes a new object (CREATE); otherwise it replaces old
    (UPDATE; old None for a status write, whose spec is the stored one)."""
    attrs = Attributes(kind=kind, obj=msg, old=old, operation=CREATE if creating else UPDATE, view=view)
    chain.run(attrs)


def generated_name(prefix: str, random_bytes: bytes) -> str:
    """generateName + 5 characters, like Kubernetes (the caller supplies the randomness)."""
    return prefix + "".join(_ALPHABET[b % len(_ALPHABET)] for b in random_bytes[:5])
