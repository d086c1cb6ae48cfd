"""A deleted pod leaves the Endpoints before SIGTERM (nodeagent/podsync/drain.py): the
pure decision, the drain state over endpoints events (both event orders), and the pod
sync holding a deleted pod's kill until the drop has settled."""

import pytest

from nodeagent.podsync import drain
from nodeagent.podsync.apply import Outcome
from nodeagent.podsync.drain import EndpointsDrain, drain_cap_s, wait_s
from nodeagent.podsync.model import KillContainer
from nodeagent.podsync.syncer import PodSyncer
from skiff.api import objects_pb2 as pb
from skiff.informer import InformerFactory
from tests.unit.test_podsync_plan import NOW, UID, ctr, make_pod, sandbox
from tests.unit.test_reconcile import FakeClient

SETTLE = 0.75


@pytest.mark.parametrize("name,listed,removed_at,first_seen,now,cap_s,expected", [
    ("listed: wait for the drop, up to the cap", True, None, 100.0, 100.0, 2.0, 2.0),
    ("listed, part of the cap used", True, None, 100.0, 101.5, 2.0, 0.5),
    ("listed past the cap: stop it anyway", True, None, 100.0, 102.0, 2.0, 0.0),
    ("never listed: no Service selects it, go at once", False, None, 100.0, 100.0, 2.0, 0.0),
    ("just dropped: one settle interval", False, 100.0, 100.0, 100.0, 2.0, SETTLE),
    ("dropped before we saw the deletion", False, 99.8, 100.0, 100.0, 2.0, 0.55),
    ("dropped, settle half over", False, 100.5, 100.0, 100.9, 2.0, 0.35),
    ("dropped, settled", False, 100.0, 100.0, 100.75, 2.0, 0.0),
    ("dropped late: the cap still bounds it", False, 101.8, 100.0, 101.8, 2.0, 0.2),
    ("grace 0 (forced delete): cap 0", True, None, 100.0, 100.0, 0.0, 0.0),
])
def test_wait_s(name, listed, removed_at, first_seen, now, cap_s, expected):
    got = wait_s(listed=listed, removed_at=removed_at, first_seen=first_seen, now=now, settle_s=SETTLE, cap_s=cap_s)
    assert got == pytest.approx(expected)


@pytest.mark.parametrize("grace,expected", [(30, 2.0), (8, 2.0), (4, 1.0), (2, 0.5), (0, 0.0)])
def test_cap_is_bounded_by_a_share_of_the_grace_period(grace, expected):
    assert drain_cap_s(grace) == expected


# ---------------------------------------------------------------- the drain state over events

def endpoints(name, *ips, not_ready=()):
    ep = pb.Endpoints(metadata=pb.ObjectMeta(name=name, namespace="ns"))
    subset = ep.subsets.add()
    for ip in ips:
        subset.addresses.add(ip=ip)
    for ip in not_ready:
        subset.not_ready_addresses.add(ip=ip)
    subset.ports.add(port=80, protocol="TCP")
    return ep


class FakeInformer:
    def __init__(self, *objs):
        self.objs = {o.metadata.name: o for o in objs}
        self.handlers = []

    def list(self):
        return list(self.objs.values())

    def add_handler(self, on_add=None, on_update=None, on_delete=None):
        self.handlers.append((on_add, on_update, on_delete))
        for o in self.list():
            on_add(o)

    def put(self, obj):
        old = self.objs.get(obj.metadata.name)
        self.objs[obj.metadata.name] = obj
        for on_add, on_update, _ in self.handlers:
            on_add(obj) if old is None else on_update(old, obj)

    def delete(self, name):
        old = self.objs.pop(name)
        for _, _, on_delete in self.handlers:
            on_delete(old)


class Clock:
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t


def make_drain(*objs):
    clock, woken = Clock(), []
    inf = FakeInformer(*objs)
    d = EndpointsDrain(inf, settle_s=SETTLE, wake=woken.append, clock=clock).start()
    return d, inf, clock, woken


def test_ready_ips_are_the_ready_addresses_only():
    assert drain.ready_ips(endpoints("web", "10.1.0.2", "10.1.0.3", not_ready=("10.1.0.4",))) == \
        {"10.1.0.2", "10.1.0.3"}


def test_deletion_seen_first_waits_for_the_drop_then_one_settle_interval():
    d, inf, clock, woken = make_drain(endpoints("web", "10.1.0.2", "10.1.0.3"))
    assert d.remaining_s("u1", "10.1.0.2", 30) == (2.0, False)
    clock.t += 0.3
    inf.put(endpoints("web", "10.1.0.3"))               # the endpoints controller drops it
    assert woken == ["u1"]                              # the pod's key comes back at once
    assert d.remaining_s("u1", "10.1.0.2", 30) == (pytest.approx(SETTLE), True)
    clock.t += SETTLE
    assert d.remaining_s("u1", "10.1.0.2", 30) == (0.0, True)
    assert d.waited_s("u1") == pytest.approx(0.3 + SETTLE)


def test_drop_seen_first_still_settles():
    d, inf, clock, woken = make_drain(endpoints("web", "10.1.0.2"))
    inf.put(endpoints("web"))
    clock.t += 0.2
    assert woken == []                                  # nobody waited yet
    assert d.remaining_s("u1", "10.1.0.2", 30) == (pytest.approx(SETTLE - 0.2), False)


def test_deleted_endpoints_object_counts_as_a_drop():
    d, inf, clock, woken = make_drain(endpoints("web", "10.1.0.2"))
    assert d.remaining_s("u1", "10.1.0.2", 30)[0] == 2.0
    inf.delete("web")
    assert woken == ["u1"]
    assert d.remaining_s("u1", "10.1.0.2", 30)[0] == pytest.approx(SETTLE)


def test_listed_in_two_services_waits_until_it_left_both():
    d, inf, clock, woken = make_drain(endpoints("a", "10.1.0.2"), endpoints("b", "10.1.0.2"))
    inf.put(endpoints("a"))
    assert d.remaining_s("u1", "10.1.0.2", 30)[0] == 2.0   # still routed to through b
    clock.t += 0.5
    inf.put(endpoints("b"))
    assert d.remaining_s("u1", "10.1.0.2", 30)[0] == pytest.approx(SETTLE)


def test_pod_of_no_service_and_forced_deletes_go_at_once():
    d, inf, clock, woken = make_drain(endpoints("web", "10.1.0.2"))
    assert d.remaining_s("u1", "10.1.0.9", 30) == (0.0, False)
    assert d.remaining_s("u2", "10.1.0.2", 0) == (0.0, False)
    assert d.remaining_s("u3", "", 30) == (0.0, False)


def test_an_ip_listed_again_loses_its_removal_and_old_removals_are_forgotten():
    d, inf, clock, woken = make_drain(endpoints("web", "10.1.0.2", "10.1.0.3"))
    inf.put(endpoints("web", "10.1.0.3"))
    inf.put(endpoints("web", "10.1.0.2", "10.1.0.3"))     # a new pod got the IP
    inf.put(endpoints("web", "10.1.0.2"))                 # 10.1.0.3 leaves
    assert d._removed.keys() == {"10.1.0.3"}
    clock.t += drain.REMEMBER_S + 1
    inf.put(endpoints("web"))
    assert d._removed.keys() == {"10.1.0.2"}
    assert d.remaining_s("u9", "10.1.0.3", 30) == (0.0, False)


def test_the_cap_counts_from_the_first_sight_and_forget_resets_it():
    d, inf, clock, woken = make_drain(endpoints("web", "10.1.0.2"))
    d.remaining_s("u1", "10.1.0.2", 4)                  # cap 1 s
    clock.t += 1.0
    assert d.remaining_s("u1", "10.1.0.2", 4) == (0.0, True)
    d.forget("u1")
    assert d.waited_s("u1") == 0.0
    assert d.remaining_s("u1", "10.1.0.2", 4) == (1.0, False)


# ---------------------------------------------------------------- the pod sync holds the kill

class Runtime:
    def __init__(self, observed):
        self.observed = observed

    def list(self, uid):
        return list(self.observed)


class Applier:
    def __init__(self, runtime, ip):
        self.runtime, self.ip = runtime, ip
        self.backoff_state = {}
        self.applied = []

    def pod_ip(self, pod):
        return self.ip

    def apply(self, pod, uid, actions, observed):
        self.applied += actions
        self.runtime.observed = []                      # every container stopped
        return Outcome(changed=True)

    def waiting_reasons(self, uid):
        return {}


class Probes:
    def results(self, uid):
        return {}

    def sync_pod(self, pod, observed):
        pass

    def remove_pod(self, uid):
        pass


def deleting_syncer(ep):
    pod = make_pod(apps=("a",), deleting_since=NOW - 1)
    runtime = Runtime([sandbox(pod=pod), ctr(pod, "a")])
    applier = Applier(runtime, "10.1.0.2")
    d, inf, clock, woken = make_drain(ep)
    syncer = PodSyncer(client=None, runtime=runtime, applier=applier, probes=Probes(), node_name="node1",
                       host_ip="", data_dir="/nonexistent", informers=InformerFactory(FakeClient({})), drain=d)
    syncer.pod_by_uid = lambda uid: pod
    syncer._write_status = lambda *a: None
    return syncer, applier, inf, clock


def test_sync_holds_a_deleted_pods_kill_until_its_endpoints_drop_settled():
    syncer, applier, inf, clock = deleting_syncer(endpoints("web", "10.1.0.2"))
    after, failed = syncer.sync(UID)
    assert not failed and after == pytest.approx(2.01) and applier.applied == []
    inf.put(endpoints("web"))
    clock.t += 0.5
    after, _ = syncer.sync(UID)
    assert after == pytest.approx(SETTLE - 0.5 + 0.01) and applier.applied == []
    clock.t += SETTLE
    syncer.sync(UID)
    kills = [a for a in applier.applied if isinstance(a, KillContainer)]
    assert [(k.container, k.pre_stop) for k in kills] == [("a", True), ("POD", False)]


def test_sync_stops_a_deleted_pod_of_no_service_at_once():
    syncer, applier, inf, clock = deleting_syncer(endpoints("web", "10.1.0.7"))
    syncer.sync(UID)
    assert [a.container for a in applier.applied if isinstance(a, KillContainer)] == ["a", "POD"]
