"""The node agent's Lease renewals and status-on-change reporting (nodeagent/node.py), against a fake API."""

import pytest

from nodeagent import config as configmod
from nodeagent import node as nodemod
from skiff import client as clientmod
from skiff.api import objects_pb2 as pb
from skiff.api.kinds.coordination import NODE_LEASE_NAMESPACE
from skiff.api.wellknown import parse_rfc3339

GOOD = {"nodeName": "node1", "servers": ["10.200.0.11:7100"], "address": "10.200.0.21",
        "listen": "10.200.0.21:10250", "dockerHost": "unix:///run/docker.sock", "dataDir": "/tmp/x"}
FACTS = nodemod.MachineFacts(cpu="8", memory="16000000Ki", kernel_version="6.1.0", os_image="Debian",
                             machine_id="abc", docker_version="20.10.24")


class FakeApi:
    """A tiny object store: get/create/update/update_status with resourceVersion CAS, and counters."""

    def __init__(self):
        self.objects = {}
        self.rv = 0
        self.writes = {"Node": 0, "Lease": 0}
        self.namespace_missing = False

    @staticmethod
    def _key(kind, name, ns):
        return ("Node", "", name) if kind in ("nodes", "Node") else ("Lease", ns, name)

    def get(self, kind, name, namespace="default", linearizable=False):
        obj = self.objects.get(self._key(kind, name, namespace))
        if obj is None:
            raise clientmod.NotFound(f"{kind} {name} not found")
        return type(obj).FromString(obj.SerializeToString())

    def _store(self, obj):
        kind = type(obj).__name__
        self.rv += 1
        stored = type(obj).FromString(obj.SerializeToString())
        stored.metadata.resource_version = str(self.rv)
        if not stored.metadata.uid:
            stored.metadata.uid = f"uid-{self.rv}"
        self.objects[self._key(kind, obj.metadata.name, obj.metadata.namespace)] = stored
        self.writes[kind] += 1
        return type(obj).FromString(stored.SerializeToString())

    def create(self, obj):
        kind = type(obj).__name__
        if kind == "Lease" and self.namespace_missing:
            raise clientmod.NotFound(f'namespaces "{NODE_LEASE_NAMESPACE}" not found')
        if self._key(kind, obj.metadata.name, obj.metadata.namespace) in self.objects:
            raise clientmod.AlreadyExists("exists")
        return self._store(obj)

    def update(self, obj):
        kind = type(obj).__name__
        old = self.objects.get(self._key(kind, obj.metadata.name, obj.metadata.namespace))
        if old is None:
            raise clientmod.NotFound("gone")
        if obj.metadata.resource_version != old.metadata.resource_version:
            raise clientmod.Conflict("conflict")
        obj.metadata.uid = old.metadata.uid
        return self._store(obj)

    update_status = update


@pytest.fixture
def api():
    return FakeApi()


def reporter(api, **cfg):
    now = [0.0]
    rep = nodemod.NodeReporter(configmod.parse(dict(GOOD, **cfg)), api, FACTS, clock=lambda: now[0])
    return rep, now


def lease_of(api):
    return api.objects.get(("Lease", NODE_LEASE_NAMESPACE, "node1"))


def test_the_lease_is_created_owned_by_the_node_then_renewed(api):
    rep, _ = reporter(api)
    node = rep.register()
    rep._renew()
    lease = lease_of(api)
    assert (lease.spec.holder_identity, lease.spec.lease_duration_seconds) == ("node1", 5)
    assert not lease.spec.HasField("acquire_time") and not lease.spec.HasField("lease_transitions")
    assert [(r.kind, r.name, r.uid) for r in lease.metadata.owner_references] == [("Node", "node1", node.metadata.uid)]
    first = lease.spec.renew_time
    assert parse_rfc3339(first) is not None and "." in first       # MicroTime
    node_writes = api.writes["Node"]
    for _ in range(3):
        rep._renew()
    assert lease_of(api).spec.renew_time > first
    assert api.writes["Lease"] == 4 and api.writes["Node"] == node_writes   # renewals never touch the Node


def test_a_deleted_lease_is_recreated(api):
    rep, _ = reporter(api)
    rep.register()
    rep._renew()
    del api.objects[("Lease", NODE_LEASE_NAMESPACE, "node1")]
    with pytest.raises(clientmod.NotFound):
        rep._renew()            # the runner retries after 0.2 s
    rep._renew()
    assert lease_of(api) is not None and rep.renewals == 2


def test_a_missing_namespace_is_retried_until_bootstrap_brings_it_back(api):
    rep, _ = reporter(api)
    rep.register()
    api.namespace_missing = True
    for _ in range(3):
        with pytest.raises(clientmod.ApiError):
            rep._renew()
    assert lease_of(api) is None
    api.namespace_missing = False
    rep._renew()
    assert lease_of(api) is not None


def test_a_conflicting_renewal_rereads_the_lease(api):
    rep, _ = reporter(api)
    rep.register()
    rep._renew()
    other = api.get("leases", "node1", NODE_LEASE_NAMESPACE)
    other.metadata.labels["x"] = "y"
    api.update(other)                          # someone else wrote it
    with pytest.raises(clientmod.Conflict):
        rep._renew()
    rep._renew()
    assert lease_of(api).metadata.labels["x"] == "y"


def test_status_is_written_only_on_change_or_when_the_report_is_due(api):
    rep, now = reporter(api, nodeStatusReportFrequencyS=60)
    rep.register()
    assert api.writes["Node"] == 2             # create, then the status
    for t in (2.5, 5.0, 30.0, 59.0):
        now[0] = t
        rep._sync_status()
    assert api.writes["Node"] == 2             # nothing changed: reads only
    # The node lifecycle controller marked the node Unknown: the next check writes Ready=True.
    node = api.get("nodes", "node1", "")
    ready = next(c for c in node.status.conditions if c.type == "Ready")
    ready.status = "Unknown"
    api.update_status(node)
    now[0] = 59.5
    rep._sync_status()
    ready = next(c for c in api.get("nodes", "node1", "").status.conditions if c.type == "Ready")
    assert ready.status == "True" and api.writes["Node"] == 4
    now[0] = 119.0
    rep._sync_status()
    assert api.writes["Node"] == 4
    now[0] = 119.6                             # 60 s after our last write: report again
    rep._sync_status()
    assert api.writes["Node"] == 5


def test_a_renewal_after_failures_checks_the_status_at_once(api, monkeypatch):
    rep, _ = reporter(api)
    rep.register()
    asked = []
    monkeypatch.setattr(rep.status_runner, "run", lambda: asked.append(1))
    rep._renew()
    assert asked == []
    del api.objects[("Lease", NODE_LEASE_NAMESPACE, "node1")]     # its namespace was deleted
    api.namespace_missing = True
    for _ in range(2):
        with pytest.raises(clientmod.ApiError):
            rep._renew()
    api.namespace_missing = False
    rep._renew()
    assert asked == [1]


@pytest.mark.parametrize("change,changed", [
    (lambda s: None, False),
    (lambda s: setattr(s.conditions[0], "last_heartbeat_time", "2030-01-01T00:00:00Z"), False),
    (lambda s: setattr(s.conditions[3], "status", "Unknown"), True),
    (lambda s: s.capacity.__setitem__("cpu", "2"), True),
    (lambda s: s.images.add(names=["a:1"], size_bytes=1), True),
    (lambda s: s.conditions.add(type="NetworkUnavailable", status="False"), True),
])
def test_status_changed(change, changed):
    cfg = configmod.parse(GOOD)
    old = nodemod.build_status(cfg, FACTS, 1_700_000_000, pb.NodeStatus())
    new = pb.NodeStatus()
    new.CopyFrom(old)
    change(new)
    assert nodemod.status_changed(old, new) is changed


class FakeNodeInformer:
    """The agent's Node informer as the status runner sees it: get(name) and synced."""

    def __init__(self, api, synced=True):
        self.api, self.synced, self.frozen = api, synced, None

    def get(self, name):
        if self.frozen is not None:       # a cache that has not seen the latest write yet
            return self.frozen
        obj = self.api.objects.get(("Node", "", name))
        return None if obj is None else type(obj).FromString(obj.SerializeToString())


def counting_gets(api, monkeypatch):
    gets = []
    real = api.get
    monkeypatch.setattr(api, "get", lambda kind, *a, **kw: (gets.append(kind), real(kind, *a, **kw))[1])
    return gets


def test_status_reads_the_node_from_the_informer_once_synced(api, monkeypatch):
    rep, now = reporter(api, nodeStatusReportFrequencyS=60)
    rep.register()
    informer = FakeNodeInformer(api, synced=False)
    rep.use_cache(informer)
    gets = counting_gets(api, monkeypatch)
    now[0] = 2.5
    rep._sync_status()
    assert gets == ["nodes"]                   # not synced yet: a GET
    informer.synced = True
    for t in (5.0, 7.5, 10.0):
        now[0] = t
        rep._sync_status()
    assert gets == ["nodes"] and api.writes["Node"] == 2   # from the cache: no GET, nothing written
    # The lifecycle controller marks it Unknown; the cache has it: Ready=True written back, no GET.
    node = api.get("nodes", "node1", "")
    next(c for c in node.status.conditions if c.type == "Ready").status = "Unknown"
    api.update_status(node)
    gets.clear()
    now[0] = 12.5
    rep._sync_status()
    ready = next(c for c in api.objects[("Node", "", "node1")].status.conditions if c.type == "Ready")
    assert ready.status == "True" and gets == [] and api.writes["Node"] == 4


def test_a_stale_cached_node_costs_a_conflict_and_a_get_not_a_lost_write(api, monkeypatch):
    rep, now = reporter(api, nodeStatusReportFrequencyS=60)
    rep.register()
    informer = FakeNodeInformer(api)
    rep.use_cache(informer)
    informer.frozen = informer.get("node1")
    node = api.get("nodes", "node1", "")
    next(c for c in node.status.conditions if c.type == "Ready").status = "Unknown"
    api.update_status(node)                    # written after the cache's copy
    now[0] = 61.0                              # the report is due: a write from the stale copy
    gets = counting_gets(api, monkeypatch)
    rep._sync_status()
    ready = next(c for c in api.objects[("Node", "", "node1")].status.conditions if c.type == "Ready")
    assert ready.status == "True" and gets == ["nodes"]


def test_a_node_missing_from_the_cache_is_asked_of_the_api_before_registering(api, monkeypatch):
    rep, now = reporter(api)
    rep.register()
    informer = FakeNodeInformer(api)
    rep.use_cache(informer)
    monkeypatch.setattr(informer, "get", lambda name: None)
    gets = counting_gets(api, monkeypatch)
    now[0] = 2.5
    rep._sync_status()
    assert gets == ["nodes"] and api.writes["Node"] == 2   # the API has it: no re-registration
