"""Garbage collection decisions, pure.

plan() follows Kubernetes' garbage collector (pkg/controller/garbagecollector:
attemptToDeleteItem, orphanDependents, processDeletingDependentsItem) for the three
propagation policies of skiff/api/deletion.py. Owners are classified per reference:
- absent: its uid is in no cache (gone, or a new object of the same name);
- waiting: present, being deleted in the foreground (deletionTimestamp + the
  `foregroundDeletion` finalizer): its dependents go first;
- solid: present otherwise (an owner being orphaned is solid: its dependents stay).
Then:
- a dependent (not itself being deleted) with no solid owner is deleted: in the
  foreground when a waiting owner asked for it and it has dependents of its own (so
  the chain is removed bottom-up), else in the background. Deleting a Deployment in
  the background therefore deletes its ReplicaSets, whose pods then go the same way,
  one level per pass;
- a dependent with a solid owner keeps it, but loses its references to waiting owners
  (so a shared dependent does not block their deletion);
- an owner with the `orphan` finalizer: every dependent loses its reference to it, then
  the finalizer goes (the store then removes the owner); dependents never see the owner
  gone while still pointing at it, so they are never collected;
- an owner with `foregroundDeletion` loses the finalizer once no dependent with
  blockOwnerDeletion points at it any more (dependents being deleted still block).
orphaned_pods(): pods bound to a node that does not exist, once they have been
seen that way for a quarantine period (a node just created may not be in the
cache yet; Kubernetes' pod GC waits 40 s for the same reason).
The caller confirms each action with a live read before it writes.
"""

from dataclasses import dataclass

from controlplane.controllers.podutil import key_of
from skiff.api import deletion

DELETE, UNREF, FINALIZE = "delete", "unref", "finalize"


@dataclass(frozen=True)
class GcAction:
    verb: str                  # DELETE, UNREF (drop ownerReferences), FINALIZE (drop a finalizer)
    kind: str                  # the object's kind name
    obj: object                # the cached object (never modified)
    policy: str = ""           # DELETE: deletion.BACKGROUND or deletion.FOREGROUND
    owner_uids: tuple = ()     # UNREF: the owners whose references go
    finalizer: str = ""        # FINALIZE: which one


def plan(objects, known_uids) -> list:
    """objects: [(kind name, object)] from the caches; known_uids: every uid that exists
    (these objects' and others', e.g. Nodes'). Actions in the order to apply them:
    dependents first, then owners' finalizers (an orphan's only after its unrefs)."""
    by_uid = {o.metadata.uid: o for _, o in objects}
    referrers: dict = {}          # owner uid -> [(kind, dependent, ref)]
    for kind, o in objects:
        for ref in o.metadata.owner_references:
            referrers.setdefault(ref.uid, []).append((kind, o, ref))

    def waiting(uid):
        owner = by_uid.get(uid)
        return owner is not None and deletion.waiting_for_dependents(owner.metadata)

    actions = []
    for kind, o in objects:
        refs = o.metadata.owner_references
        if not refs or o.metadata.deletion_timestamp:
            continue
        solid = [r for r in refs if r.uid in known_uids and not waiting(r.uid)]
        waiting_refs = [r for r in refs if waiting(r.uid)]
        if solid:
            if waiting_refs:
                actions.append(GcAction(UNREF, kind, o, owner_uids=tuple(r.uid for r in waiting_refs)))
            continue
        foreground = bool(waiting_refs) and o.metadata.uid in referrers
        actions.append(GcAction(DELETE, kind, o, policy=deletion.FOREGROUND if foreground else deletion.BACKGROUND))

    for kind, owner in objects:
        meta = owner.metadata
        deps = referrers.get(meta.uid, [])
        if deletion.orphaning(meta):
            for dep_kind, dep, _ in deps:
                actions.append(GcAction(UNREF, dep_kind, dep, owner_uids=(meta.uid,)))
            actions.append(GcAction(FINALIZE, kind, owner, finalizer=deletion.FINALIZER_ORPHAN))
        elif deletion.waiting_for_dependents(meta):
            if not any(ref.block_owner_deletion for _, _, ref in deps):
                actions.append(GcAction(FINALIZE, kind, owner, finalizer=deletion.FINALIZER_FOREGROUND))
    return actions


def dangling(objects, known_uids) -> list:
    """Objects with owners, none of which is in known_uids, and not already being deleted
    (the background case of plan(), for callers without kinds)."""
    return [a.obj for a in plan([("", o) for o in objects], known_uids) if a.verb == DELETE]


def orphaned_pods(pods, node_names, first_missing: dict, now_s: float, quarantine_s: float):
    """(keys of pods to force-delete, the updated first_missing map {pod key: first seen}).

    A pod qualifies when its spec.nodeName names no known node and has done so
    for longer than quarantine_s; first_missing carries those first sightings
    from pass to pass (entries of pods that recovered or vanished are dropped).
    """
    seen = {}
    delete = []
    for pod in pods:
        node = pod.spec.node_name
        if not node or node in node_names:
            continue
        key = key_of(pod)
        since = first_missing.get(key, now_s)
        seen[key] = since
        if now_s - since > quarantine_s:
            delete.append(key)
    return delete, seen
