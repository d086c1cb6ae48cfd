"""The Deployment planner: the new ReplicaSet, scaling, history, adoption, status and conditions."""

import datetime

import pytest

from controlplane.controllers.deployment_history import REVISION
from controlplane.controllers.deployment_plan import (POD_TEMPLATE_HASH, deployment_status, new_replica_set,
                                                      plan_deployment, template_hash)
from controlplane.controllers.deployment_rollout import max_unavailable
from skiff.api import objects_pb2 as pb

NOW = datetime.datetime(2024, 5, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
NOW_S = "2024-05-01T12:00:00Z"
D_UID = "d-uid"


def deploy(replicas=3, image="busybox:1", paused=False, history=10, strategy="RollingUpdate",
           unavailable=None, surge=None, deadline=600):
    d = pb.Deployment(metadata=pb.ObjectMeta(name="web", namespace="default", uid=D_UID, generation=7))
    d.spec.replicas = replicas
    d.spec.selector.match_labels["app"] = "web"
    d.spec.template.metadata.labels["app"] = "web"
    d.spec.template.spec.containers.add(name="main", image=image)
    d.spec.paused = paused
    d.spec.revision_history_limit = history
    d.spec.progress_deadline_seconds = deadline
    d.spec.strategy.type = strategy
    if strategy == "RollingUpdate":
        ru = d.spec.strategy.rolling_update
        if isinstance(unavailable, int):
            ru.max_unavailable.int_val = unavailable
        else:
            ru.max_unavailable.str_val = unavailable or "25%"
        if isinstance(surge, int):
            ru.max_surge.int_val = surge
        else:
            ru.max_surge.str_val = surge or "25%"
    return d


def replica_set(d, replicas, revision, status=(0, 0, 0), image=None, created="2024-05-01T10:00:00Z", owner=True):
    """An RS of d (or of d's template with another image); status = (replicas, ready, available)."""
    src = deploy(image=image) if image else d
    rs = new_replica_set(src, replicas, revision)
    rs.metadata.creation_timestamp = created
    rs.metadata.uid = f"uid-{rs.metadata.name}"
    if not owner:
        del rs.metadata.owner_references[:]
    rs.status.replicas, rs.status.ready_replicas, rs.status.available_replicas = status
    return rs


def test_template_hash_is_stable_short_and_template_dependent():
    d = deploy()
    h = template_hash(d.spec.template)
    assert h == template_hash(deploy().spec.template)
    assert h != template_hash(deploy(image="busybox:2").spec.template)
    assert h != template_hash(d.spec.template, collision_count=1)
    assert 1 <= len(h) <= 10 and set(h) <= set("bcdfghjklmnpqrstvwxz2456789")


def test_first_sync_creates_the_new_replicaset():
    d = deploy(replicas=3)
    plan = plan_deployment(d, [], NOW)
    rs = plan.create
    h = template_hash(d.spec.template)
    assert rs.metadata.name == f"web-{h}" == plan.new_rs
    assert rs.spec.replicas == 3
    assert rs.metadata.labels[POD_TEMPLATE_HASH] == h
    assert rs.spec.selector.match_labels == {"app": "web", POD_TEMPLATE_HASH: h}
    assert rs.spec.template.metadata.labels == {"app": "web", POD_TEMPLATE_HASH: h}
    assert rs.metadata.annotations[REVISION] == "1"
    ref = rs.metadata.owner_references[0]
    assert (ref.kind, ref.name, ref.uid, ref.controller, ref.block_owner_deletion) == \
        ("Deployment", "web", D_UID, True, True)
    assert plan.scale == () and plan.delete == () and plan.adopt == ()
    cond = {c.type: c for c in plan.status.conditions}
    assert (cond["Progressing"].reason, cond["Progressing"].message) == \
        ("NewReplicaSetCreated", f'Created new replica set "web-{h}"')


SCALE_CASES = [
    ("scale up the current RS", 5, [("cur", 3, 1)], None, [("cur", 5)]),
    ("scale down the current RS", 1, [("cur", 3, 1)], None, [("cur", 1)]),
    ("already right", 3, [("cur", 3, 1)], None, []),
    # A rollout's first step: the new RS surges by maxSurge (25% of 4 = 1); the old RS
    # may lose maxUnavailable (1) of its available pods at once.
    ("template changed: new RS surges, old loses maxUnavailable", 4, [("old", 4, 1)], 1, [("old", 3)]),
    # Back to an old template: that RS is the new one again and grows first.
    ("back to an old template: reuse it", 4, [("cur", 0, 1), ("old", 4, 2)], None, [("cur", 1)]),
]


@pytest.mark.parametrize("replicas, existing, create, scale", [c[1:] for c in SCALE_CASES],
                         ids=[c[0] for c in SCALE_CASES])
def test_scaling(replicas, existing, create, scale):
    d = deploy(replicas=replicas)
    rss, names = [], {}
    for which, rs_replicas, revision in existing:
        rs = replica_set(d, rs_replicas, revision, image=None if which == "cur" else "busybox:old",
                         created=f"2024-05-01T10:0{revision}:00Z",
                         status=(rs_replicas, rs_replicas, rs_replicas))
        rs.metadata.annotations["deployment.kubernetes.io/desired-replicas"] = str(rs_replicas if which == "cur"
                                                                                  else replicas)
        names[rs.metadata.name] = which
        rss.append(rs)
    plan = plan_deployment(d, rss, NOW)
    assert (plan.create.spec.replicas if plan.create else None) == create
    assert [(names[n], r) for n, r in plan.scale] == scale
    if create:
        assert plan.create.metadata.annotations[REVISION] == str(max(r for _, _, r in existing) + 1)


def test_foreign_and_orphan_replicasets():
    d = deploy()
    orphan = replica_set(d, 3, 1, owner=False)
    foreign = replica_set(d, 3, 1, image="busybox:x")
    foreign.metadata.owner_references[0].uid = "someone-else"
    plan = plan_deployment(d, [orphan, foreign], NOW)
    assert plan.adopt == (orphan.metadata.name,)
    assert plan.create is None and plan.new_rs == orphan.metadata.name
    assert plan.scale == ()


def test_paused_deployment_rolls_nothing_out_but_scales():
    """A paused Deployment gets no new RS for its new template; spec.replicas still
    reaches its only active RS (Kubernetes' sync() for paused Deployments)."""
    d = deploy(replicas=5, paused=True)
    old = replica_set(d, 3, 1, image="busybox:old")
    plan = plan_deployment(d, [old], NOW)
    assert plan.create is None and plan.scale == ((old.metadata.name, 5),)
    assert conditions(plan.status)["Progressing"][:2] == ("Unknown", "DeploymentPaused")


def test_old_replicasets_beyond_the_history_limit_are_deleted_lowest_revision_first():
    """cleanupDeployment: the excess over revisionHistoryLimit counts every old RS, and one
    that still has pods is skipped, not replaced by the next."""
    d = deploy(history=1)
    current = replica_set(d, 3, 5, status=(3, 3, 3))
    old = [replica_set(d, 0, rev, image=f"busybox:old{rev}") for rev in (1, 3, 4)]
    unobserved = replica_set(d, 0, 2, image="busybox:draining")   # its controller has not seen size 0 yet
    unobserved.metadata.generation, unobserved.status.observed_generation = 2, 1
    d.status.CopyFrom(deployment_status(d, current, [current, *old, unobserved], NOW))
    plan = plan_deployment(d, [current, *old, unobserved], NOW)
    assert plan.delete == (old[0].metadata.name, old[1].metadata.name)


def test_history_is_kept_while_a_rollout_is_incomplete():
    d = deploy(history=0)
    current = replica_set(d, 3, 2, status=(3, 2, 2))
    old = replica_set(d, 0, 1, image="busybox:old")
    assert plan_deployment(d, [current, old], NOW).delete == ()


def test_status_sums_over_replicasets():
    d = deploy(replicas=4)
    new = replica_set(d, 4, 2, status=(3, 2, 2))
    old = replica_set(d, 0, 1, status=(1, 1, 1), image="busybox:old")
    st = deployment_status(d, new, [new, old], NOW)
    assert (st.observed_generation, st.replicas, st.updated_replicas, st.ready_replicas,
            st.available_replicas, st.unavailable_replicas) == (7, 4, 3, 3, 3, 1)


@pytest.mark.parametrize("replicas, strategy, unavailable, surge, want", [
    (4, "RollingUpdate", "25%", "25%", 1),
    (10, "RollingUpdate", "25%", "25%", 2),       # percentages round down
    (3, "RollingUpdate", "25%", "25%", 0),
    (3, "RollingUpdate", 0, 0, 1),                # both zero: Kubernetes allows one
    (3, "RollingUpdate", 5, 1, 3),                # never more than the replicas
    (3, "Recreate", None, None, 0),
])
def test_max_unavailable(replicas, strategy, unavailable, surge, want):
    assert max_unavailable(deploy(replicas=replicas, strategy=strategy, unavailable=unavailable,
                                  surge=surge)) == want


def conditions(st):
    return {c.type: (c.status, c.reason, c.message) for c in st.conditions}


def test_conditions_through_a_rollout():
    d = deploy(replicas=4)
    plan = plan_deployment(d, [], NOW)
    name = plan.new_rs
    assert conditions(plan.status)["Progressing"] == ("True", "NewReplicaSetCreated",
                                                      f'Created new replica set "{name}"')
    d.status.CopyFrom(plan.status)
    rs = plan.create
    rs.metadata.uid, rs.metadata.creation_timestamp = "uid-new", "2024-05-01T11:00:00Z"
    # Pods coming up: progressing, not available (0 < 4 - 1).
    rs.status.replicas = 4
    st = plan_deployment(d, [rs], NOW).status
    assert conditions(st)["Available"] == ("False", "MinimumReplicasUnavailable",
                                           "Deployment does not have minimum availability.")
    assert conditions(st)["Progressing"] == ("True", "ReplicaSetUpdated", f'ReplicaSet "{name}" is progressing.')
    # 3 of 4 available: minimum availability reached (maxUnavailable 1), still progressing.
    d.status.CopyFrom(st)
    rs.status.ready_replicas, rs.status.available_replicas = 3, 3
    st = plan_deployment(d, [rs], NOW).status
    assert conditions(st)["Available"][0:2] == ("True", "MinimumReplicasAvailable")
    assert conditions(st)["Progressing"][1] == "ReplicaSetUpdated"
    # All available: complete.
    d.status.CopyFrom(st)
    rs.status.ready_replicas, rs.status.available_replicas = 4, 4
    st = plan_deployment(d, [rs], NOW).status
    assert conditions(st)["Progressing"] == ("True", "NewReplicaSetAvailable",
                                             f'ReplicaSet "{name}" has successfully progressed.')


def test_no_progress_past_the_deadline_times_out():
    d = deploy(replicas=2, deadline=60)
    rs = replica_set(d, 2, 1, status=(2, 0, 0))
    d.status.CopyFrom(deployment_status(d, rs, [rs], NOW))
    later = NOW + datetime.timedelta(seconds=30)
    assert conditions(deployment_status(d, rs, [rs], later))["Progressing"][0] == "True"
    # The controller looks again when the deadline would pass (requeueStuckDeployment).
    assert plan_deployment(d, [rs], later).recheck_s == pytest.approx(30.5)
    much_later = NOW + datetime.timedelta(seconds=61)
    assert conditions(deployment_status(d, rs, [rs], much_later))["Progressing"] == (
        "False", "ProgressDeadlineExceeded", f'ReplicaSet "{rs.metadata.name}" has timed out progressing.')


def test_unchanged_status_is_equal_so_nothing_is_written():
    d = deploy(replicas=2)
    rs = replica_set(d, 2, 1, status=(2, 2, 2))
    d.status.CopyFrom(deployment_status(d, rs, [rs], NOW))
    later = NOW + datetime.timedelta(seconds=3600)
    assert deployment_status(d, rs, [rs], later) == d.status
    assert NOW_S in {c.last_update_time for c in d.status.conditions}


def test_a_reapplied_manifest_keeps_the_revision_annotation():
    """The controller's deployment.kubernetes.io/revision survives `apply` of a manifest
    without it (kubectl's merge keeps it), so re-applying is `unchanged`; a value the
    manifest does give wins."""
    from skiff.api import kinds
    from skiff.api.assigned import carry_over_assigned
    stored = deploy()
    stored.metadata.annotations.update({REVISION: "4", "note": "old"})
    manifest = deploy()
    carry_over_assigned(kinds.lookup("deployments"), manifest, stored)
    assert dict(manifest.metadata.annotations) == {REVISION: "4"}
    manifest.metadata.annotations[REVISION] = "9"
    carry_over_assigned(kinds.lookup("deployments"), manifest, stored)
    assert manifest.metadata.annotations[REVISION] == "9"


def test_a_deployment_being_deleted_adopts_nothing_and_only_writes_status():
    d = deploy(replicas=3, image="busybox:2")
    d.metadata.deletion_timestamp = "2024-05-01T11:00:00Z"
    orphan = replica_set(d, 3, 1, owner=False)
    old = replica_set(d, 3, 1, image="busybox:old")
    plan = plan_deployment(d, [orphan, old], NOW)
    assert plan.adopt == () and plan.create is None and plan.update == () and plan.delete == ()
    assert plan.status.observed_generation == 7
