"""Garbage collection decisions, pure.

- dangling(): objects whose ownerReferences all name uids that do not exist
  (Kubernetes deletes a dependent once none of its owners is left). Deleting a
  Deployment therefore deletes its ReplicaSets, whose pods then go the same way:
  background cascading deletion, one level per pass;
- orphaned_pods(): pods bound to a node that does not exist, once they have been
  seen that way for a quarantine period (a node just created may not be in the
  cache yet; Kubernetes' pod GC waits 40 s for the same reason).
The caller confirms with a live read before it deletes anything.
"""

from controlplane.controllers.podutil import key_of


def dangling(objects, known_uids) -> list:
    """Objects with owners, none of which is in known_uids, and not already being deleted."""
    out = []
    for obj in objects:
        refs = obj.metadata.owner_references
        if not refs or obj.metadata.deletion_timestamp:
            continue
        if all(ref.uid not in known_uids for ref in refs):
            out.append(obj)
    return out


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
