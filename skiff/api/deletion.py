"""Deletion semantics shared by the API, the store and the garbage collector: propagation
policies and the finalizers that carry them. Pure.

Kubernetes' rules (apiserver's registry/rest/delete.go, the garbage collector):
- propagationPolicy Background (the default): the owner goes now; the garbage collector
  deletes its dependents afterwards;
- Foreground: the owner stays, with deletionTimestamp and the `foregroundDeletion`
  finalizer, until every dependent whose ownerReference has blockOwnerDeletion is gone;
  the garbage collector deletes the dependents, then removes the finalizer;
- Orphan: the owner stays with the `orphan` finalizer until the garbage collector has
  removed the ownerReferences to it from its dependents; then it goes and they stay.
An object with finalizers is never removed by a delete: it is marked (deletionTimestamp)
and removed when an update empties its finalizers. No finalizer may be added to an object
being deleted.
"""

BACKGROUND, FOREGROUND, ORPHAN = "Background", "Foreground", "Orphan"
POLICIES = (FOREGROUND, BACKGROUND, ORPHAN)   # kubectl's order in its error message

FINALIZER_FOREGROUND = "foregroundDeletion"
FINALIZER_ORPHAN = "orphan"
_GC_FINALIZERS = {FOREGROUND: FINALIZER_FOREGROUND, ORPHAN: FINALIZER_ORPHAN}


def check_policy(policy: str) -> str | None:
    """An error text for a propagation policy the API does not know; "" is the default."""
    if policy and policy not in POLICIES:
        return (f'propagationPolicy: Unsupported value: "{policy}": supported values: '
                + ", ".join(f'"{p}"' for p in POLICIES))
    return None


def finalizers_for(existing, policy: str) -> list:
    """The finalizers an object has after a delete with policy ("" keeps them as they are).

    Foreground and Orphan add their finalizer and drop the other one; an explicit
    Background drops both (Kubernetes lets a later delete change the policy)."""
    out = list(existing)
    if not policy:
        return out
    out = [f for f in out if f not in (FINALIZER_FOREGROUND, FINALIZER_ORPHAN)]
    wanted = _GC_FINALIZERS.get(policy)
    if wanted:
        out.append(wanted)
    return out


def waiting_for_dependents(meta) -> bool:
    """Being deleted in the foreground: its dependents go first."""
    return bool(meta.deletion_timestamp) and FINALIZER_FOREGROUND in meta.finalizers


def orphaning(meta) -> bool:
    """Being deleted with its dependents left behind (they lose their reference to it)."""
    return bool(meta.deletion_timestamp) and FINALIZER_ORPHAN in meta.finalizers
