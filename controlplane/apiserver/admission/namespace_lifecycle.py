"""NamespaceLifecycle: no object goes into a namespace that does not exist or is going away.

Kubernetes' plugin of the same name, and like it, it runs first, before defaults
and validation, so a write to a missing namespace is answered `namespaces "x"
not found` whatever else is wrong with the object.

This is the "checked in admission, re-checked in the apply" pattern: the view is
a replica's applied state and may be a little behind, so the replicated apply
checks existence again (controlplane/store/state.py) in the log's total order,
where a namespace deleted concurrently is seen. Admission only gives the early,
cheap answer.
"""

from skiff.api.errors import FieldError

from controlplane.apiserver.admission.chain import CREATE, AdmissionError, Attributes, MutatingPlugin


def terminating(ns) -> bool:
    """A namespace being deleted: Kubernetes marks it with a deletionTimestamp and
    phase Terminating while its contents go. (skiff deletes a namespace and its
    contents in one apply today, so a replica sees this only once namespaces get
    finalizers; the rule is here so that it holds then.)"""
    return bool(ns.metadata.deletion_timestamp) or ns.status.phase == "Terminating"


def admit(a: Attributes) -> None:
    if not a.kind.namespaced:
        return
    ns = a.view.get("Namespace", "", a.namespace)
    if ns is None:
        raise AdmissionError(FieldError("", f'namespaces "{a.namespace}" not found'), code="not_found")
    if a.operation == CREATE and terminating(ns):
        raise AdmissionError(
            FieldError("", f"unable to create new content in namespace {a.namespace} "
                           "because it is being terminated"),
            code="forbidden")


NAMESPACE_LIFECYCLE = MutatingPlugin("NamespaceLifecycle", admit, needs_view=True)
