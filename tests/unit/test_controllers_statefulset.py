"""The StatefulSet planner: identity, ordered creation, scale down, failed pods, rolling
updates with a partition, OnDelete, Parallel, adoption and status (table-driven)."""

import datetime

import pytest

from controlplane.controllers.statefulset_plan import (CREATE, DELETE, POD_INDEX_LABEL, POD_NAME_LABEL, RELABEL,
                                                       REVISION_LABEL, new_pod, ordinal_of, plan_statefulset,
                                                       revision_name, template_from_pod)
from skiff.api import objects_pb2 as pb

NOW = datetime.datetime(2024, 5, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
UID = "sts-uid"
READY_SINCE = "2024-05-01T11:00:00Z"


def sts(replicas=3, policy="OrderedReady", strategy="RollingUpdate", partition=0, image="web:1",
        min_ready=0, current="", service="nginx"):
    s = pb.StatefulSet(metadata=pb.ObjectMeta(name="web", namespace="default", uid=UID, generation=2))
    s.spec.replicas = replicas
    s.spec.service_name = service
    s.spec.pod_management_policy = policy
    s.spec.update_strategy.type = strategy
    if strategy == "RollingUpdate":
        s.spec.update_strategy.rolling_update.partition = partition
    s.spec.min_ready_seconds = min_ready
    s.spec.selector.match_labels["app"] = "web"
    s.spec.template.metadata.labels["app"] = "web"
    s.spec.template.spec.containers.add(name="main", image=image)
    s.status.current_revision = current
    return s


OLD = sts(image="web:1")
REV1 = revision_name(OLD, OLD.spec.template)
REV2 = revision_name(OLD, sts(image="web:2").spec.template)


def pod(ordinal, rev=REV1, phase="Running", ready=True, deleting=False, ready_since=READY_SINCE, image="web:1",
        owner=UID, labels=None, name=None):
    s = sts(image=image)
    p = new_pod(s, ordinal, s.spec.template, rev)
    if name:
        p.metadata.name = name
    p.metadata.uid = f"uid-{p.metadata.name}"
    if labels is not None:
        p.metadata.labels.clear()
        p.metadata.labels.update(labels)
    if owner != UID:
        del p.metadata.owner_references[:]
        if owner:
            p.metadata.owner_references.add(api_version="apps/v1", kind="StatefulSet", name="web", uid=owner,
                                            controller=True)
    p.spec.node_name = "n1"
    p.status.phase = phase
    p.status.conditions.add(type="Ready", status="True" if ready else "False", last_transition_time=ready_since)
    if deleting:
        p.metadata.deletion_timestamp = "2024-05-01T11:59:00Z"
    return p


def ready(*ordinals, **kw):
    return [pod(i, **kw) for i in ordinals]


def acts(plan):
    return [(a.verb, a.pod.metadata.name, a.why) for a in plan.actions]


C, D = CREATE, DELETE
CASES = [
    # (id, set, pods, expected actions)
    # --- OrderedReady creation: one at a time, each Running and Ready first
    ("empty: create web-0 only", sts(3), [], [(C, "web-0", "")]),
    ("web-0 ready: create web-1", sts(3), ready(0), [(C, "web-1", "")]),
    ("web-0 pending: wait", sts(3), [pod(0, phase="Pending", ready=False)], []),
    ("web-0 running not ready: wait", sts(3), [pod(0, ready=False)], []),
    ("web-0 ready, not for minReadySeconds: wait", sts(3, min_ready=30),
     [pod(0, ready_since="2024-05-01T11:59:50Z")], []),
    ("web-0 ready for minReadySeconds: next", sts(3, min_ready=5),
     [pod(0, ready_since="2024-05-01T11:59:50Z")], [(C, "web-1", "")]),
    ("a hole is refilled first", sts(3), ready(0, 2), [(C, "web-1", "")]),
    ("all there: nothing", sts(3), ready(0, 1, 2), []),
    # --- failed / terminating pods
    ("failed pod deleted to be made again", sts(3), [pod(0), pod(1, phase="Failed", ready=False), pod(2)],
     [(D, "web-1", "failed")]),
    ("succeeded pod too", sts(2), [pod(0, phase="Succeeded", ready=False), pod(1)], [(D, "web-0", "failed")]),
    ("failed pod already deleting: wait for it", sts(2),
     [pod(0, phase="Failed", ready=False, deleting=True), pod(1)], []),
    ("terminating pod blocks OrderedReady", sts(3), [pod(0, deleting=True)], []),
    # --- scale down: highest first, one at a time, after the rest is healthy
    ("scale down: highest first", sts(1), ready(0, 1, 2), [(D, "web-2", "scale-down")]),
    ("scale down waits for the terminating one", sts(1), [pod(0), pod(1), pod(2, deleting=True)], []),
    ("scale down waits for lower pods to be ready", sts(1), [pod(0, ready=False), pod(1), pod(2)], []),
    ("an unhealthy condemned pod is the first unhealthy: it may go", sts(1),
     [pod(0), pod(1, ready=False)], [(D, "web-1", "scale-down")]),
    ("a healthy condemned pod goes first, whatever is below it", sts(1),
     [pod(0), pod(1, ready=False), pod(2)], [(D, "web-2", "scale-down")]),
    ("two unhealthy condemned: only the first unhealthy may go, the highest waits", sts(1),
     [pod(0), pod(1, ready=False), pod(2, ready=False)], []),
    ("to zero", sts(0), ready(0, 1), [(D, "web-1", "scale-down")]),
    # --- Parallel: everything at once
    ("Parallel creates every missing pod", sts(3, policy="Parallel"), [pod(0, ready=False)],
     [(C, "web-1", ""), (C, "web-2", "")]),
    ("Parallel deletes every condemned pod", sts(1, policy="Parallel"), [pod(0), pod(1, ready=False), pod(2)],
     [(D, "web-2", "scale-down"), (D, "web-1", "scale-down")]),
    ("Parallel: terminating pods do not block", sts(3, policy="Parallel"), [pod(0, deleting=True)],
     [(C, "web-1", ""), (C, "web-2", "")]),
    # --- RollingUpdate: highest ordinal first, one at a time, down to the partition
    ("update starts at the highest", sts(3, image="web:2", current=REV1), ready(0, 1, 2),
     [(D, "web-2", "update")]),
    ("updated pod must be ready before the next", sts(3, image="web:2", current=REV1),
     [pod(0), pod(1), pod(2, rev=REV2, image="web:2", ready=False)], []),
    ("then the next one down", sts(3, image="web:2", current=REV1),
     [pod(0), pod(1), pod(2, rev=REV2, image="web:2")], [(D, "web-1", "update")]),
    ("the deleted one comes back at the update revision", sts(3, image="web:2", current=REV1),
     [pod(0), pod(1), pod(2, rev=REV2, image="web:2")][:2], [(C, "web-2", "")]),
    ("partition 2: only web-2 is updated", sts(3, image="web:2", current=REV1, partition=2),
     [pod(0), pod(1), pod(2, rev=REV2, image="web:2")], []),
    ("partition 1: web-1 next", sts(3, image="web:2", current=REV1, partition=1),
     [pod(0), pod(1), pod(2, rev=REV2, image="web:2")], [(D, "web-1", "update")]),
    ("partition above replicas: nothing", sts(3, image="web:2", current=REV1, partition=5), ready(0, 1, 2), []),
    ("scaling comes before updates", sts(2, image="web:2", current=REV1), ready(0, 1, 2),
     [(D, "web-2", "scale-down")]),
    ("Parallel still updates one at a time", sts(3, image="web:2", current=REV1, policy="Parallel"),
     ready(0, 1, 2), [(D, "web-2", "update")]),
    # --- OnDelete: nothing is replaced by the controller
    ("OnDelete leaves old pods", sts(3, image="web:2", current=REV1, strategy="OnDelete"), ready(0, 1, 2), []),
    # --- identity
    ("missing identity labels are restored", sts(1),
     [pod(0, labels={"app": "web", REVISION_LABEL: REV1})], [(RELABEL, "web-0", "")]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_plan(case):
    _, s, pods, want = case
    assert acts(plan_statefulset(s, pods, now=NOW)) == want


def test_new_pod_identity():
    s = sts(3)
    p = plan_statefulset(s, [], now=NOW).actions[0].pod
    assert p.metadata.name == "web-0" and p.metadata.namespace == "default"
    assert dict(p.metadata.labels) == {"app": "web", POD_NAME_LABEL: "web-0", POD_INDEX_LABEL: "0",
                                       REVISION_LABEL: REV1}
    assert (p.spec.hostname, p.spec.subdomain) == ("web-0", "nginx")
    ref = p.metadata.owner_references[0]
    assert (ref.kind, ref.name, ref.uid, ref.controller, ref.api_version) == ("StatefulSet", "web", UID, True,
                                                                              "apps/v1")
    assert [c.image for c in p.spec.containers] == ["web:1"]


def test_no_service_name_no_subdomain():
    p = plan_statefulset(sts(1, service=""), [], now=NOW).actions[0].pod
    assert (p.spec.hostname, p.spec.subdomain) == ("web-0", "")


def test_revision_name_is_set_name_and_template_hash():
    assert REV1.startswith("web-") and REV1 != REV2
    assert revision_name(OLD, OLD.spec.template) == REV1


def test_below_the_partition_a_pod_comes_back_at_the_current_revision():
    """web-0 deleted during a partitioned update is made from the old template, read back
    from a live pod of the current revision (Kubernetes keeps it in a ControllerRevision)."""
    s = sts(3, image="web:2", current=REV1, partition=2)
    plan = plan_statefulset(s, [pod(1), pod(2, rev=REV2, image="web:2")], now=NOW)
    (action,) = plan.actions
    assert (action.verb, action.pod.metadata.name) == (CREATE, "web-0")
    assert action.pod.metadata.labels[REVISION_LABEL] == REV1
    assert [c.image for c in action.pod.spec.containers] == ["web:1"]
    assert (action.pod.spec.node_name, action.pod.spec.hostname) == ("", "web-0")


def test_at_or_above_the_partition_a_pod_comes_back_at_the_update_revision():
    s = sts(3, image="web:2", current=REV1, partition=1)
    plan = plan_statefulset(s, [pod(0), pod(1)], now=NOW)
    (action,) = plan.actions
    assert action.pod.metadata.name == "web-2"
    assert action.pod.metadata.labels[REVISION_LABEL] == REV2
    assert [c.image for c in action.pod.spec.containers] == ["web:2"]


def test_ondelete_recreates_at_the_update_revision():
    s = sts(2, image="web:2", current=REV1, strategy="OnDelete")
    (action,) = plan_statefulset(s, [pod(1)], now=NOW).actions
    assert (action.pod.metadata.name, action.pod.metadata.labels[REVISION_LABEL]) == ("web-0", REV2)


def test_the_remembered_history_wins_over_pods_and_needs_none():
    """The only pod at the current revision was deleted: the history still has its template."""
    s = sts(3, image="web:2", current=REV1, partition=1)
    old_template = sts(image="web:1").spec.template
    (action,) = plan_statefulset(s, [pod(1, rev=REV2, image="web:2"), pod(2, rev=REV2, image="web:2")],
                                 history={REV1: old_template}, now=NOW).actions
    assert (action.pod.metadata.name, action.pod.metadata.labels[REVISION_LABEL]) == ("web-0", REV1)
    assert [c.image for c in action.pod.spec.containers] == ["web:1"]


def test_template_read_back_from_a_pod_hashes_like_the_original():
    s = sts(1)
    p = pod(0)
    p.spec.node_name = "n2"
    assert revision_name(s, template_from_pod(p)) == REV1


def test_no_pod_left_at_the_current_revision_uses_the_update_revision():
    s = sts(2, image="web:2", current=REV1, partition=2)
    (action,) = plan_statefulset(s, [], now=NOW).actions
    assert action.pod.metadata.labels[REVISION_LABEL] == REV2


STATUS_CASES = [
    # (id, set, pods, replicas, ready, available, current, updated, currentRevision)
    ("all at one revision", sts(3), ready(0, 1, 2), 3, 3, 3, 3, 3, REV1),
    ("not ready and terminating", sts(3), [pod(0), pod(1, ready=False), pod(2, deleting=True)], 3, 2, 2, 2, 2, REV1),
    ("mid update", sts(3, image="web:2", current=REV1), [pod(0), pod(1), pod(2, rev=REV2, image="web:2")],
     3, 3, 3, 2, 1, REV1),
    ("update done: current moves", sts(3, image="web:2", current=REV1),
     ready(0, 1, 2, rev=REV2, image="web:2"), 3, 3, 3, 3, 3, REV2),
    ("partition keeps the current revision", sts(3, image="web:2", current=REV1, partition=2),
     [pod(0), pod(1), pod(2, rev=REV2, image="web:2")], 3, 3, 3, 2, 1, REV1),
    ("OnDelete never completes", sts(1, image="web:2", current=REV1, strategy="OnDelete"),
     [pod(0, rev=REV2, image="web:2"), pod(1)], 2, 2, 2, 1, 1, REV1),
    ("minReadySeconds", sts(2, min_ready=30), [pod(0), pod(1, ready_since="2024-05-01T11:59:50Z")],
     2, 2, 1, 2, 2, REV1),
]


@pytest.mark.parametrize("case", STATUS_CASES, ids=[c[0] for c in STATUS_CASES])
def test_status(case):
    _, s, pods, replicas, ready_n, available, current, updated, current_rev = case
    st = plan_statefulset(s, pods, now=NOW).status
    assert (st.replicas, st.ready_replicas, st.available_replicas, st.current_replicas, st.updated_replicas) == \
        (replicas, ready_n, available, current, updated)
    assert st.current_revision == current_rev
    assert st.update_revision == revision_name(s, s.spec.template)
    assert st.observed_generation == 2


def test_status_unchanged_is_equal_so_no_write():
    s = sts(2)
    first = plan_statefulset(s, ready(0, 1), now=NOW).status
    s.status.CopyFrom(first)
    assert plan_statefulset(s, ready(0, 1), now=NOW).status == s.status


def test_recheck_when_a_pod_becomes_available():
    plan = plan_statefulset(sts(2, min_ready=30), [pod(0, ready_since="2024-05-01T11:59:50Z")], now=NOW)
    assert plan.recheck_s == pytest.approx(20.05)


CLAIM_CASES = [
    # (id, pods, adopt, release, members that count)
    ("orphan with a member name is adopted", [pod(0, owner="")], ("web-0",), (), 1),
    ("orphan with another name is left alone", [pod(0, owner="", name="web-x")], (), (), 0),
    ("orphan with a leading zero is not a member", [pod(0, owner="", name="web-01")], (), (), 0),
    ("orphan being deleted is not adopted", [pod(0, owner="", deleting=True)], (), (), 0),
    ("someone else's pod is left alone", [pod(0, owner="other")], (), (), 0),
    ("owned pod whose labels stopped matching is released",
     [pod(0, labels={"app": "db", POD_NAME_LABEL: "web-0", POD_INDEX_LABEL: "0"})], (), ("web-0",), 0),
]


@pytest.mark.parametrize("case", CLAIM_CASES, ids=[c[0] for c in CLAIM_CASES])
def test_claim(case):
    _, pods, adopt, release, members = case
    plan = plan_statefulset(sts(1), pods, now=NOW)
    assert (plan.adopt, plan.release, plan.status.replicas) == (adopt, release, members)


def test_a_set_being_deleted_only_reports_status():
    s = sts(3)
    s.metadata.deletion_timestamp = "2024-05-01T11:59:00Z"
    plan = plan_statefulset(s, ready(0), now=NOW)
    assert plan.actions == () and plan.status.replicas == 1


@pytest.mark.parametrize("pod_name, ordinal", [
    ("web-0", 0), ("web-12", 12), ("web-01", None), ("web-", None), ("web-x", None), ("webby-1", None),
    ("web-1-2", None), ("web", None)])
def test_ordinal_of(pod_name, ordinal):
    assert ordinal_of("web", pod_name) == ordinal


class _View:
    def __init__(self, services, endpoints):
        self._svc = {(s.metadata.namespace, s.metadata.name): s for s in services}
        self._ep = {(e.metadata.namespace, e.metadata.name): e for e in endpoints}

    def service(self, ns, name):
        return self._svc.get((ns, name))

    def endpoints(self, ns, name):
        return self._ep.get((ns, name))

    def pod_ip_exists(self, ns, ip):
        return False


def _service(name, headless=True):
    svc = pb.Service(metadata=pb.ObjectMeta(name=name, namespace="default"))
    svc.spec.selector["app"] = "web"
    svc.spec.cluster_ip = "None" if headless else "10.96.0.9"
    svc.spec.ports.add(name="http", port=80)
    return svc


def test_stable_network_identity_through_the_headless_service():
    """web-N.nginx.default.svc.cluster.local -> web-N's IP: the pod's hostname/subdomain
    reach the headless Service's Endpoints (Kubernetes' rule: subdomain = the Service's
    name) and cluster DNS answers them; a Service of another name gives no such record."""
    from controlplane.controllers.endpoints_plan import plan_endpoints
    from nodeagent.dns.resolver import answer

    pods = []
    for i, ip in enumerate(("10.244.1.5", "10.244.2.7")):
        p = pod(i)
        p.status.pod_ip = ip
        pods.append(p)
    nginx, other = _service("nginx"), _service("other")
    view = _View([nginx, other], [plan_endpoints(nginx, pods), plan_endpoints(other, pods)])
    got = answer("web-1.nginx.default.svc.cluster.local", "A", view)
    assert (got.rcode, [r.value for r in got.records]) == ("NOERROR", ["10.244.2.7"])
    assert answer("web-0.nginx.default.svc.cluster.local.", "A", view).records[0].value == "10.244.1.5"
    assert answer("web-2.nginx.default.svc.cluster.local", "A", view).rcode == "NXDOMAIN"
    assert answer("web-0.other.default.svc.cluster.local", "A", view).rcode == "NXDOMAIN"
    assert sorted(r.value for r in answer("nginx.default.svc.cluster.local", "A", view).records) == \
        ["10.244.1.5", "10.244.2.7"]


class _Informer:
    def add_handler(self, *handlers):
        pass

    def keys(self):
        return []


def test_the_controller_remembers_templates_bounded_by_revision_history_limit():
    """In place of ControllerRevisions: the current and update revisions always, plus at
    most revisionHistoryLimit others, the most recent ones."""
    from controlplane.controllers.statefulset import StatefulSetController

    ctl = StatefulSetController(None, _Informer(), _Informer(), None)
    revs = []
    for version in range(1, 6):
        s = sts(image=f"web:{version}", current=revs[0] if revs else "")
        s.spec.revision_history_limit = 2
        revs.append(revision_name(s, s.spec.template))
        history = ctl._remember("default/web", s)
    # current (web:1) and update (web:5) kept, plus the two most recent others (web:3, web:4)
    assert set(history) == {revs[0], revs[2], revs[3], revs[4]}
    assert [c.image for c in history[revs[0]].spec.containers] == ["web:1"]
