"""Revisions of a Deployment (pure; Kubernetes' deployment/util and sync.go).

- Every ReplicaSet of a Deployment carries deployment.kubernetes.io/revision. The new
  RS's revision is one more than the largest of the OLD RSs; an existing RS that
  becomes the new one again (a rollback to its template) gets that next number, and
  the number it had is appended to deployment.kubernetes.io/revision-history
  (SetNewReplicaSetAnnotations). A revision is never lowered.
- The Deployment carries the revision of its new RS (SetDeploymentRevision).
- The Deployment's own annotations (kubernetes.io/change-cause among them) are copied
  onto the new RS, except the ones that describe the RS itself or `apply`'s record
  (copyDeploymentAnnotationsToReplicaSet); copying only adds or overwrites.
- History (cleanupDeployment): when there are more old RSs (not being deleted) than
  spec.revisionHistoryLimit, the excess is taken from the lowest revisions, skipping
  any that still has replicas, pods, or a spec its controller has not observed yet.
"""

from skiff.api import objects_pb2 as pb

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
CHANGE_CAUSE = "kubernetes.io/change-cause"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
MAX_REV_HISTORY_CHARS = 2000   # Kubernetes' --deployment-controller revision history limit in characters

# Annotations that are the RS's own or apply's record, never copied between Deployment and RS
# (annotationsToSkip in both the controller and kubectl's rollback).
SKIP_ANNOTATIONS = frozenset({
    LAST_APPLIED, REVISION, REVISION_HISTORY,
    "deployment.kubernetes.io/desired-replicas", "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
})


def revision_of(obj) -> int:
    try:
        return int(obj.metadata.annotations.get(REVISION, "0"))
    except ValueError:
        return 0


def max_revision(rss) -> int:
    return max((revision_of(rs) for rs in rss), default=0)


def copy_deployment_annotations(d: pb.Deployment, rs: pb.ReplicaSet) -> bool:
    """Copy d's annotations onto rs (in place); True when rs changed."""
    changed = False
    for k, v in d.metadata.annotations.items():
        if k in SKIP_ANNOTATIONS or rs.metadata.annotations.get(k) == v:
            continue
        rs.metadata.annotations[k] = v
        changed = True
    return changed


def set_new_rs_revision(rs: pb.ReplicaSet, new_revision: int) -> bool:
    """Raise rs's revision to new_revision (in place), recording the one it had; True if changed."""
    ann = rs.metadata.annotations
    had = REVISION in ann
    old = revision_of(rs)
    if old >= new_revision:
        return False
    ann[REVISION] = str(new_revision)
    if had and old > 0:
        history = [h for h in ann.get(REVISION_HISTORY, "").split(",") if h]
        history.append(str(old))
        while len(",".join(history)) > MAX_REV_HISTORY_CHARS and len(history) > 1:
            history.pop(0)
        ann[REVISION_HISTORY] = ",".join(history)
    return True


def history_to_delete(d: pb.Deployment, old_rss) -> tuple:
    """Names of old RSs beyond revisionHistoryLimit (cleanupDeployment), lowest revision first."""
    if not d.spec.HasField("revision_history_limit"):
        return ()
    alive = [rs for rs in old_rss if not rs.metadata.deletion_timestamp]
    excess = len(alive) - d.spec.revision_history_limit
    if excess <= 0:
        return ()
    alive.sort(key=lambda rs: (revision_of(rs), rs.metadata.creation_timestamp, rs.metadata.name))
    out = []
    for rs in alive[:excess]:
        if rs.status.replicas != 0 or rs.spec.replicas != 0 \
                or rs.metadata.generation > rs.status.observed_generation:
            continue
        out.append(rs.metadata.name)
    return tuple(out)
