"""Rollouts through the pure Deployment planner: RollingUpdate step by step, unhealthy pods
first, proportional scaling, Recreate, pause, revisions and rollbacks.

The step tables run the planner against a fake ReplicaSet controller that makes every
size real at once (status.replicas = spec.replicas) and makes the pods available when
the case's `ready` says so; each row lists the (old, new) sizes after every step that
changed something, which is the sequence Kubernetes' controller goes through.
"""

import datetime

import pytest

from controlplane.controllers.deployment_plan import POD_TEMPLATE_HASH, new_replica_set, plan_deployment
from controlplane.controllers.deployment_rollout import max_surge, max_unavailable
from controlplane.controllers.podutil import copy
from skiff.api import objects_pb2 as pb

NOW = datetime.datetime(2024, 5, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
DESIRED, MAX = "deployment.kubernetes.io/desired-replicas", "deployment.kubernetes.io/max-replicas"
REVISION, HISTORY = "deployment.kubernetes.io/revision", "deployment.kubernetes.io/revision-history"


def deploy(replicas=3, image="app:2", surge="25%", unavailable="25%", strategy="RollingUpdate", paused=False,
           history=10):
    d = pb.Deployment(metadata=pb.ObjectMeta(name="web", namespace="default", uid="d-uid", generation=2))
    d.spec.replicas = replicas
    d.spec.selector.match_labels["app"] = "web"
    d.spec.template.metadata.labels["app"] = "web"
    d.spec.template.spec.containers.add(name="main", image=image)
    d.spec.strategy.type = strategy
    d.spec.paused = paused
    d.spec.revision_history_limit = history
    d.spec.progress_deadline_seconds = 600
    if strategy == "RollingUpdate":
        for field, v in (("max_surge", surge), ("max_unavailable", unavailable)):
            target = getattr(d.spec.strategy.rolling_update, field)
            if isinstance(v, int):
                target.int_val = v
            else:
                target.str_val = v
    return d


def rs_of(d, image, size, revision, minute, available=None, sized_for=None):
    """An RS of d with another image (or d's own), created at 10:<minute>, fully reported."""
    src = copy(d)
    src.spec.template.spec.containers[0].image = image
    rs = new_replica_set(src, size, revision)
    rs.metadata.uid = f"uid-{image}"
    rs.metadata.creation_timestamp = f"2024-05-01T10:{minute:02d}:00Z"
    rs.status.replicas = size
    rs.status.ready_replicas = rs.status.available_replicas = size if available is None else available
    if sized_for is not None:
        desired, most = sized_for
        rs.metadata.annotations[DESIRED], rs.metadata.annotations[MAX] = str(desired), str(most)
    return rs


def image_of(rs):
    return rs.spec.template.spec.containers[0].image


def simulate(d, rss, ready=lambda rs: True, pods=(), max_steps=40):
    """Plan, apply, let the fake RS controller report, until a plan changes nothing.
    Returns the size tuples (in RS creation order) after each changing step, and d."""
    rss = [copy(rs) for rs in rss]
    steps, minute = [], 30
    for _ in range(max_steps):
        plan = plan_deployment(d, rss, NOW, pods=pods)
        if plan.create is None and not plan.update and not plan.delete:
            d.status.CopyFrom(plan.status)
            return steps, d, rss
        if plan.create is not None:
            created = copy(plan.create)
            created.metadata.uid = f"uid-{image_of(created)}"
            created.metadata.creation_timestamp = f"2024-05-01T10:{minute:02d}:00Z"
            minute += 1
            rss.append(created)
        for u in plan.update:
            rss = [copy(u) if rs.metadata.name == u.metadata.name else rs for rs in rss]
        rss = [rs for rs in rss if rs.metadata.name not in plan.delete]
        d.status.CopyFrom(plan.status)
        if plan.annotations is not None:
            d.metadata.annotations.clear()
            d.metadata.annotations.update(plan.annotations)
        for rs in rss:   # the ReplicaSet controller catches up
            rs.status.replicas = rs.spec.replicas
            rs.status.ready_replicas = rs.status.available_replicas = rs.spec.replicas if ready(rs) else 0
            rs.status.observed_generation = rs.metadata.generation
        steps.append(tuple(rs.spec.replicas for rs in rss))
    raise AssertionError(f"no steady state after {max_steps} steps: {steps}")


# ---------------------------------------------------------------- fenceposts

@pytest.mark.parametrize("replicas, surge, unavailable, want", [
    (10, "25%", "25%", (3, 2)),      # surge rounds up, unavailable down
    (4, "25%", "25%", (1, 1)),
    (3, "25%", "25%", (1, 0)),
    (30, "25%", 0, (8, 0)),          # the benchmark's settings
    (3, "0%", "10%", (0, 1)),        # both resolve to 0: maxUnavailable 1 (ResolveFenceposts)
    (3, 0, 5, (0, 3)),               # maxUnavailable never above replicas
    (0, "25%", "25%", (0, 0)),       # scaled to zero: nothing may be unavailable
])
def test_fenceposts(replicas, surge, unavailable, want):
    d = deploy(replicas=replicas, surge=surge, unavailable=unavailable)
    assert (max_surge(d), max_unavailable(d)) == want


def test_recreate_has_no_fenceposts():
    d = deploy(strategy="Recreate")
    assert (max_surge(d), max_unavailable(d)) == (0, 0)


# ---------------------------------------------------------------- RollingUpdate, step by step

ALWAYS = lambda rs: True  # noqa: E731
OLD_ONLY = lambda rs: image_of(rs) == "app:1"  # noqa: E731 - the new version never gets ready

ROLLING = [
    ("10 replicas, 25%/25%", 10, "25%", "25%", ALWAYS,
     [(8, 3), (8, 5), (3, 5), (3, 10), (0, 10)]),
    ("maxSurge 1, maxUnavailable 0: one extra pod at a time", 3, 1, 0, ALWAYS,
     [(3, 1), (2, 1), (2, 2), (1, 2), (1, 3), (0, 3)]),
    ("maxSurge 0, maxUnavailable 1: one missing pod at a time", 3, 0, 1, ALWAYS,
     [(2, 0), (2, 1), (1, 1), (1, 2), (0, 2), (0, 3)]),
    ("0% surge and 10% of 3 unavailable: both 0, so maxUnavailable 1", 3, "0%", "10%", ALWAYS,
     [(2, 0), (2, 1), (1, 1), (1, 2), (0, 2), (0, 3)]),
    ("30 replicas, 25% surge, 0 unavailable (the benchmark)", 30, "25%", 0, ALWAYS,
     [(30, 8), (22, 8), (22, 16), (14, 16), (14, 24), (6, 24), (6, 30), (0, 30)]),
    ("the new version never gets ready: stops within the budget", 10, "25%", "25%", OLD_ONLY,
     [(8, 3), (8, 5)]),
    ("maxUnavailable 0 and a new version that never gets ready: no old pod goes", 4, 1, 0, OLD_ONLY,
     [(4, 1)]),
]


@pytest.mark.parametrize("replicas, surge, unavailable, ready, want", [c[1:] for c in ROLLING],
                         ids=[c[0] for c in ROLLING])
def test_rolling_update_steps(replicas, surge, unavailable, ready, want):
    d = deploy(replicas=replicas, surge=surge, unavailable=unavailable)
    old = rs_of(d, "app:1", replicas, 1, 0, sized_for=(replicas, replicas + max_surge(d)))
    steps, d, rss = simulate(d, [old], ready)
    assert steps == want
    most, least = replicas + max_surge(d), replicas - max_unavailable(d)
    for sizes in steps:
        assert sum(sizes) <= most
    if ready is ALWAYS:
        assert d.metadata.annotations[REVISION] == "2"
        assert [c.reason for c in d.status.conditions if c.type == "Progressing"] == ["NewReplicaSetAvailable"]
        assert (d.status.updated_replicas, d.status.available_replicas) == (replicas, replicas)
    # Availability never dips below replicas - maxUnavailable along the way (old pods are
    # only removed when available new ones make up for them).
    new_name = rss[-1].metadata.name
    for sizes in steps:
        old_avail = sizes[0]
        new_avail = sizes[1] if ready(rss[-1]) else 0
        assert old_avail + new_avail >= least or new_name == ""


def test_unhealthy_old_pods_go_first_oldest_replicaset_first():
    """cleanupUnhealthyReplicas before scaleDownOldReplicaSetsForRollingUpdate: old2's three
    unavailable pods go first (they cost no availability), then available ones from the
    oldest RS, as far as minAvailable (8) allows."""
    d = deploy(replicas=10)
    old1 = rs_of(d, "app:0", 4, 1, 0)
    old2 = rs_of(d, "app:1", 6, 2, 1, available=3)
    new = rs_of(d, "app:2", 3, 3, 2)
    plan = plan_deployment(d, [old1, old2, new], NOW)
    assert dict(plan.scale) == {old1.metadata.name: 2, old2.metadata.name: 3}


def test_new_replicaset_above_replicas_is_scaled_down_first():
    d = deploy(replicas=3)
    old = rs_of(d, "app:1", 1, 1, 0)
    new = rs_of(d, "app:2", 5, 2, 1)
    assert plan_deployment(d, [old, new], NOW).scale == ((new.metadata.name, 3),)


def test_scaled_replicasets_carry_the_replicas_annotations():
    d = deploy(replicas=10)
    plan = plan_deployment(d, [rs_of(d, "app:1", 10, 1, 0)], NOW)
    assert (plan.create.metadata.annotations[DESIRED], plan.create.metadata.annotations[MAX]) == ("10", "13")
    (old,) = plan.update
    assert (old.spec.replicas, old.metadata.annotations[DESIRED], old.metadata.annotations[MAX]) == (8, "10", "13")


# ---------------------------------------------------------------- proportional scaling

PROPORTIONAL = [
    # Kubernetes' documented example: 10 -> 15 mid-rollout with maxSurge 3 adds 5 pods,
    # 3 to the old RS (8 of 13) and 2 to the new one (5 of 13).
    ("scale up mid-rollout", 15, (8, 5), (11, 7)),
    ("scale down mid-rollout: the older RS rounds first", 5, (8, 5), (5, 3)),
    ("scale to zero", 0, (8, 5), (0, 0)),
]


@pytest.mark.parametrize("replicas, before, after", [c[1:] for c in PROPORTIONAL],
                         ids=[c[0] for c in PROPORTIONAL])
def test_proportional_scaling(replicas, before, after):
    d = deploy(replicas=replicas, surge=3, unavailable=2)
    old = rs_of(d, "app:1", before[0], 1, 0, sized_for=(10, 13))
    new = rs_of(d, "app:2", before[1], 2, 1, available=0, sized_for=(10, 13))
    plan = plan_deployment(d, [old, new], NOW)
    sizes = {rs.metadata.name: rs.spec.replicas for rs in plan.update}
    assert (sizes[old.metadata.name], sizes[new.metadata.name]) == after
    for rs in plan.update:
        assert (rs.metadata.annotations[DESIRED], rs.metadata.annotations[MAX]) == \
            (str(replicas), str(replicas + 3))
    assert plan.create is None


def test_scaling_a_finished_rollout_resizes_its_only_replicaset():
    d = deploy(replicas=12)
    old = rs_of(d, "app:1", 0, 1, 0)
    new = rs_of(d, "app:2", 10, 2, 1, sized_for=(10, 13))
    plan = plan_deployment(d, [old, new], NOW)
    assert plan.scale == ((new.metadata.name, 12),)
    assert plan.update[0].metadata.annotations[DESIRED] == "12"


# ---------------------------------------------------------------- Recreate

def pod_of(rs, phase="Running", deleting=False):
    pod = pb.Pod(metadata=pb.ObjectMeta(name=f"{rs.metadata.name}-x", namespace="default"))
    pod.metadata.owner_references.add(kind="ReplicaSet", name=rs.metadata.name, uid=rs.metadata.uid,
                                      controller=True)
    pod.status.phase = phase
    if deleting:
        pod.metadata.deletion_timestamp = "2024-05-01T11:59:00Z"
    return pod


def test_recreate_scales_old_down_then_waits_for_their_pods_then_creates():
    d = deploy(replicas=3, strategy="Recreate")
    old = rs_of(d, "app:1", 3, 1, 0)
    plan = plan_deployment(d, [old], NOW, pods=[pod_of(old)])
    assert plan.scale == ((old.metadata.name, 0),) and plan.create is None
    old = copy(plan.update[0])
    old.status.replicas = old.status.ready_replicas = old.status.available_replicas = 0
    terminating = pod_of(old, deleting=True)
    plan = plan_deployment(d, [old], NOW, pods=[terminating])
    assert plan.create is None and plan.update == ()       # a terminating pod still runs
    plan = plan_deployment(d, [old], NOW, pods=[pod_of(old, phase="Failed")])
    assert plan.create is not None and plan.create.spec.replicas == 3
    assert image_of(plan.create) == "app:2"


def test_recreate_end_to_end_never_runs_old_and_new_together():
    d = deploy(replicas=4, strategy="Recreate")
    steps, d, _ = simulate(d, [rs_of(d, "app:1", 4, 1, 0)])
    assert steps == [(0,), (0, 4)]


# ---------------------------------------------------------------- pause, revisions, rollback

def test_paused_then_resumed():
    d = deploy(replicas=4, paused=True)
    old = rs_of(d, "app:1", 4, 1, 0, sized_for=(4, 5))
    steps, d, rss = simulate(d, [old])
    assert steps == [] and len(rss) == 1
    assert [(c.status, c.reason) for c in d.status.conditions if c.type == "Progressing"] == \
        [("Unknown", "DeploymentPaused")]
    d.spec.paused = False
    steps, d, rss = simulate(d, rss)
    assert steps[0] == (3, 1) and steps[-1] == (0, 4)


def test_paused_deployment_prunes_history():
    d = deploy(replicas=2, paused=True, history=1, image="app:4")
    rss = [rs_of(d, f"app:{i}", 0, i, i) for i in (1, 2, 3)] + [rs_of(d, "app:4", 2, 4, 4)]
    plan = plan_deployment(d, rss, NOW)
    assert plan.delete == (rss[0].metadata.name, rss[1].metadata.name)


def test_revisions_and_change_cause_follow_the_new_replicaset():
    d = deploy(replicas=2)
    old = rs_of(d, "app:1", 2, 1, 0)
    d.metadata.annotations["kubernetes.io/change-cause"] = "skiff set image deployment/web main=app:2"
    plan = plan_deployment(d, [old], NOW)
    assert plan.create.metadata.annotations[REVISION] == "2"
    assert plan.create.metadata.annotations["kubernetes.io/change-cause"].endswith("main=app:2")
    assert plan.annotations[REVISION] == "2"
    # The old RS keeps its own cause (none): only the new RS takes the Deployment's.
    assert all("kubernetes.io/change-cause" not in rs.metadata.annotations for rs in plan.update)


def test_rollback_reuses_the_old_replicaset_with_the_next_revision():
    """The template of revision 1 again: that RS is the new one, revision 3, history "1"."""
    d = deploy(replicas=2, image="app:1")
    first = rs_of(d, "app:1", 0, 1, 0)
    second = rs_of(d, "app:2", 2, 2, 1)
    plan = plan_deployment(d, [first, second], NOW)
    assert plan.create is None and plan.new_rs == first.metadata.name
    reused = next(rs for rs in plan.update if rs.metadata.name == first.metadata.name)
    assert (reused.metadata.annotations[REVISION], reused.metadata.annotations[HISTORY]) == ("3", "1")
    assert reused.spec.replicas == 1          # and it starts growing: 25% surge of 2
    assert plan.annotations[REVISION] == "3"
    assert POD_TEMPLATE_HASH in reused.spec.selector.match_labels


def test_min_ready_seconds_reaches_the_new_replicaset():
    d = deploy(replicas=2, image="app:1")
    d.spec.min_ready_seconds = 5
    rs = rs_of(d, "app:1", 2, 1, 0, sized_for=(2, 3))
    rs.spec.min_ready_seconds = 0
    plan = plan_deployment(d, [rs], NOW)
    assert [r.spec.min_ready_seconds for r in plan.update] == [5]


def test_new_replicaset_waits_for_the_old_pods_to_be_deleted():
    """The old RS was just scaled 8 -> 3 but still reports 8 pods: growing the new RS now
    would exceed replicas+maxSurge pods (13) until they are deleted; skiff waits."""
    d = deploy(replicas=10)
    old = rs_of(d, "app:1", 3, 1, 0, sized_for=(10, 13))
    old.status.replicas = 8
    new = rs_of(d, "app:2", 5, 2, 1, sized_for=(10, 13))
    assert plan_deployment(d, [old, new], NOW).scale == ()
    old.status.replicas = 3
    assert plan_deployment(d, [old, new], NOW).scale == ((new.metadata.name, 10),)


def test_an_old_replicaset_counts_at_most_its_size_as_available():
    """The old RS was scaled 30 -> 22 and its status still says 30 available (written just
    after it asked for the deletions). 16 new pods are available: 22 + 16 = 38 pods may go
    down to 30, so 8 old pods go, not 16."""
    d = deploy(replicas=30, unavailable=0)
    old = rs_of(d, "app:1", 22, 1, 0, available=30, sized_for=(30, 38))
    old.status.replicas = 30
    new = rs_of(d, "app:2", 16, 2, 1, sized_for=(30, 38))
    assert plan_deployment(d, [old, new], NOW).scale == ((old.metadata.name, 14),)
