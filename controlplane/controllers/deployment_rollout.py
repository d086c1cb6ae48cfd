"""Rollout arithmetic of the Deployment controller (pure; Kubernetes' pkg/controller/deployment).

Every function works on a `Sizes` view: the ReplicaSets of one Deployment, with the
replicas the planner has decided so far (`want`), so one sync can take several
steps the way Kubernetes' controller does (clean up unhealthy old pods, then scale
old ReplicaSets down, each step seeing the sizes the previous one left).

The rules, with the Kubernetes function each follows:
- fenceposts (ResolveFenceposts): maxSurge resolves against spec.replicas rounding
  UP, maxUnavailable rounding DOWN; if both come out 0, maxUnavailable is 1;
  MaxUnavailable is never more than spec.replicas; both are 0 for Recreate;
- new RS (NewRSNewReplicas, reconcileNewReplicaSet): the new RS grows up to
  replicas+maxSurge pods in total (sum of spec.replicas of every RS; skiff takes an
  RS's status.replicas where that is larger, so an old RS's pods still waiting to be
  deleted are not overlooked) and never past spec.replicas; if it is above
  spec.replicas it is scaled down to it;
- old RSs (reconcileOldReplicaSets): with minAvailable = replicas - maxUnavailable,
  at most allPods - minAvailable - (new RS's unavailable pods) old pods may go; the
  old RSs' unhealthy pods (spec.replicas - status.availableReplicas) go first,
  oldest RS first (cleanupUnhealthyReplicas), then available old pods, but only
  while the available pods (status.availableReplicas summed, each RS counting at most
  its size: see available()) stay above minAvailable
  (scaleDownOldReplicaSetsForRollingUpdate);
- Recreate (rolloutRecreate): every old RS to 0; the new RS is created and scaled to
  spec.replicas only when no pod of an old RS is left that is not Succeeded/Failed
  (a terminating pod still counts: its containers may still run);
- proportional scaling (scale, GetProportion): when spec.replicas changes while
  several RSs have pods, the new size replicas+maxSurge is shared out in
  proportion to each RS's size over its max-replicas annotation (the
  replicas+maxSurge it was sized for), rounded to the nearest integer; what is
  left over goes to the largest RS (the newest of equal sizes when adding, the
  oldest when removing).
"""

from dataclasses import dataclass, field

from skiff.api import objects_pb2 as pb
from skiff.api.intstr import scaled_value

DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"


# ---------------------------------------------------------------- fenceposts

def desired_replicas(d: pb.Deployment) -> int:
    return d.spec.replicas if d.spec.HasField("replicas") else 1


def is_rolling(d: pb.Deployment) -> bool:
    return d.spec.strategy.type in ("RollingUpdate", "")


def resolve_fenceposts(d: pb.Deployment) -> tuple:
    """(maxSurge, maxUnavailable) of a RollingUpdate Deployment, as ResolveFenceposts does."""
    replicas = desired_replicas(d)
    ru = d.spec.strategy.rolling_update
    surge = max(0, scaled_value(ru.max_surge, replicas, round_up=True, default="25%"))
    unavailable = max(0, scaled_value(ru.max_unavailable, replicas, round_up=False, default="25%"))
    if surge == 0 and unavailable == 0:
        unavailable = 1  # Kubernetes: a rollout must be able to make progress
    return surge, unavailable


def max_surge(d: pb.Deployment) -> int:
    return resolve_fenceposts(d)[0] if is_rolling(d) else 0


def max_unavailable(d: pb.Deployment) -> int:
    """At most spec.replicas; 0 for Recreate and for a Deployment scaled to 0."""
    replicas = desired_replicas(d)
    if not is_rolling(d) or replicas == 0:
        return 0
    return min(resolve_fenceposts(d)[1], replicas)


# ---------------------------------------------------------------- the working view

def annotated_int(rs: pb.ReplicaSet, key: str):
    try:
        return int(rs.metadata.annotations[key])
    except (KeyError, ValueError):
        return None


@dataclass
class Sizes:
    """The RSs of a Deployment (new one last, or absent) and their planned spec.replicas.

    `rss` holds the objects as read (their status is what the RS controller saw);
    `want` maps RS name -> planned spec.replicas; `touched` names the RSs a step
    resized (or, in scale(), looked at), which get the replicas annotations."""
    new: pb.ReplicaSet | None
    old: list
    want: dict = field(default_factory=dict)
    touched: set = field(default_factory=set)

    def __post_init__(self):
        for rs in self.all():
            self.want.setdefault(rs.metadata.name, rs.spec.replicas)

    def all(self) -> list:
        return self.old + ([self.new] if self.new is not None else [])

    def size(self, rs) -> int:
        return self.want[rs.metadata.name]

    def total(self, rss=None) -> int:
        return sum(self.size(rs) for rs in (self.all() if rss is None else rss))

    def active(self, rss) -> list:
        return [rs for rs in rss if self.size(rs) > 0]

    def set(self, rs, n: int, touch: bool = False) -> bool:
        """Plan rs at n replicas; True if that changes its size. A changed (or touched)
        RS gets the Deployment's replicas annotations when it is written."""
        changed = self.want[rs.metadata.name] != n
        self.want[rs.metadata.name] = n
        if changed or touch:
            self.touched.add(rs.metadata.name)
        return changed


def _by_age(rss) -> list:
    return sorted(rss, key=lambda r: (r.metadata.creation_timestamp, r.metadata.name))


def available(sizes: "Sizes") -> int:
    """Available pods of the Deployment, an RS counting at most its planned size.

    Kubernetes sums status.availableReplicas. A ReplicaSet's status is computed from the
    pods it had before its last scale-down (its controller writes it right after asking
    for the deletions), so an old RS just scaled from 30 to 22 may still report 30
    available; summing that would let the next step remove pods that are already going,
    and the ready pods would dip below replicas - maxUnavailable. Capping at the size
    closes that window."""
    return sum(min(rs.status.available_replicas, sizes.size(rs)) for rs in sizes.all())


# ---------------------------------------------------------------- RollingUpdate

def new_rs_new_replicas(d: pb.Deployment, sizes: Sizes, new_size: int) -> int:
    """NewRSNewReplicas: the size the new RS may grow to in this step."""
    replicas = desired_replicas(d)
    if not is_rolling(d):
        return replicas
    max_total = replicas + max_surge(d)
    # An RS counts with the pods it still reports when that is more than its size: an old RS
    # just scaled down whose controller has not deleted the pods yet. Kubernetes counts the
    # sizes only, so for a moment there can be more than replicas+maxSurge pods.
    current = sum(max(sizes.size(rs), rs.status.replicas) for rs in sizes.all())
    if current >= max_total:
        return new_size
    return new_size + min(max_total - current, replicas - new_size)


def reconcile_new(d: pb.Deployment, sizes: Sizes) -> bool:
    """reconcileNewReplicaSet: True when the new RS's size changed."""
    new = sizes.new
    replicas = desired_replicas(d)
    n = sizes.size(new)
    if n == replicas:
        return False
    if n > replicas:
        return sizes.set(new, replicas)
    return sizes.set(new, new_rs_new_replicas(d, sizes, n))


def reconcile_old(d: pb.Deployment, sizes: Sizes) -> bool:
    """reconcileOldReplicaSets: True when an old RS's size changed."""
    old_active = sizes.active(sizes.old)
    if sizes.total(old_active) == 0:
        return False
    replicas = desired_replicas(d)
    min_available = replicas - max_unavailable(d)
    new = sizes.new
    new_unavailable = (sizes.size(new) - new.status.available_replicas) if new is not None else 0
    max_scaled_down = sizes.total() - min_available - new_unavailable
    if max_scaled_down <= 0:
        return False
    cleaned = _cleanup_unhealthy(sizes, old_active, max_scaled_down)
    scaled = _scale_down_available(d, sizes, old_active)
    return cleaned + scaled > 0


def _cleanup_unhealthy(sizes: Sizes, old_active, limit: int) -> int:
    """cleanupUnhealthyReplicas: scale old RSs down by their unavailable pods, oldest first."""
    done = 0
    for rs in _by_age(old_active):
        if done >= limit:
            break
        n = sizes.size(rs)
        if n == 0 or n == rs.status.available_replicas:
            continue
        cut = min(limit - done, n - rs.status.available_replicas)
        if cut <= 0:
            continue
        sizes.set(rs, n - cut)
        done += cut
    return done


def _scale_down_available(d: pb.Deployment, sizes: Sizes, old_active) -> int:
    """scaleDownOldReplicaSetsForRollingUpdate: old pods go while availability allows."""
    min_available = desired_replicas(d) - max_unavailable(d)
    avail = available(sizes)
    if avail <= min_available:
        return 0
    budget = avail - min_available
    done = 0
    for rs in _by_age(old_active):
        if done >= budget:
            break
        n = sizes.size(rs)
        if n == 0:
            continue
        cut = min(n, budget - done)
        sizes.set(rs, n - cut)
        done += cut
    return done


# ---------------------------------------------------------------- Recreate

def scale_down_old_for_recreate(sizes: Sizes) -> bool:
    changed = False
    for rs in sizes.active(sizes.old):
        changed |= sizes.set(rs, 0)
    return changed


def old_pods_running(sizes: Sizes, pods) -> bool:
    """oldPodsRunning: an old RS reports pods, or a pod it owns is not Succeeded/Failed yet
    (terminating pods included: Recreate promises the old containers are gone)."""
    if sum(rs.status.replicas for rs in sizes.old) > 0:
        return True
    old_uids = {rs.metadata.uid for rs in sizes.old}
    for pod in pods:
        if pod.status.phase in ("Succeeded", "Failed"):
            continue
        if any(ref.controller and ref.uid in old_uids for ref in pod.metadata.owner_references):
            return True
    return False


# ---------------------------------------------------------------- scaling (paused or resized)

def is_saturated(d: pb.Deployment, rs) -> bool:
    replicas = desired_replicas(d)
    return (rs is not None and annotated_int(rs, DESIRED_REPLICAS) == replicas
            and rs.spec.replicas == replicas and rs.status.available_replicas == replicas)


def is_scaling_event(d: pb.Deployment, sizes: Sizes) -> bool:
    """isScalingEvent: an active RS was sized for another spec.replicas than today's."""
    replicas = desired_replicas(d)
    for rs in sizes.active(sizes.all()):
        desired = annotated_int(rs, DESIRED_REPLICAS)
        if desired is not None and desired != replicas:
            return True
    return False


def _active_or_latest(sizes: Sizes):
    """FindActiveOrLatest: the only RS with pods, the newest if none has; None if several have."""
    if sizes.new is None and not sizes.old:
        return None
    newest_first = list(reversed(_by_age(sizes.old)))
    active = sizes.active(newest_first + ([sizes.new] if sizes.new is not None else []))
    if not active:
        return sizes.new if sizes.new is not None else newest_first[0]
    return active[0] if len(active) == 1 else None


def _round_half_away(x: float) -> int:
    return int(x + 0.5) if x >= 0 else -int(-x + 0.5)


def _fraction(d: pb.Deployment, rs, size: int) -> int:
    """getReplicaSetFraction: how much rs should grow (or shrink) for the new size."""
    replicas = desired_replicas(d)
    if replicas == 0:
        return -size
    target = replicas + max_surge(d)
    sized_for = annotated_int(rs, MAX_REPLICAS)
    if sized_for is None or sized_for == 0:
        sized_for = d.status.replicas or target
    return _round_half_away(size * target / sized_for) - size


def scale(d: pb.Deployment, sizes: Sizes) -> None:
    """scale(): resize the Deployment's RSs to spec.replicas without rolling anything out."""
    replicas = desired_replicas(d)
    only = _active_or_latest(sizes)
    if only is not None:
        if sizes.size(only) != replicas:
            sizes.set(only, replicas)
        return
    if is_saturated(d, sizes.new):
        for rs in sizes.active(sizes.old):
            sizes.set(rs, 0)
        return
    if not is_rolling(d):
        return
    active = sizes.active(sizes.all())
    allowed = replicas + max_surge(d) if replicas > 0 else 0
    to_add = allowed - sizes.total(active)
    if to_add == 0:
        return
    # Largest first; of equal sizes the newest first when adding (ReplicaSetsBySizeNewer),
    # the oldest first when removing (ReplicaSetsBySizeOlder). Two stable sorts.
    order = sorted(_by_age(active), key=lambda r: r.metadata.creation_timestamp, reverse=to_add > 0)
    order = sorted(order, key=lambda r: -sizes.size(r))
    added = 0
    target = {}
    for rs in order:
        n = sizes.size(rs)
        part = 0
        if n != 0 and to_add != added:
            frac = _fraction(d, rs, n)
            left = to_add - added
            part = min(frac, left) if to_add > 0 else max(frac, left)
        target[rs.metadata.name] = n + part
        added += part
    first = order[0].metadata.name
    target[first] = max(0, target[first] + to_add - added)
    for rs in order:
        sizes.set(rs, target[rs.metadata.name], touch=True)


def replicas_annotations(d: pb.Deployment) -> dict:
    """SetReplicasAnnotations: what every RS this Deployment sizes carries."""
    replicas = desired_replicas(d)
    return {DESIRED_REPLICAS: str(replicas), MAX_REPLICAS: str(replicas + max_surge(d))}
