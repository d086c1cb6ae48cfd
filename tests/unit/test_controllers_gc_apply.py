"""The garbage collector's applier against a fake API: live confirmation and conflict-safe writes."""

from controlplane.controllers.gc import GarbageCollector, gc_kinds
from skiff import client as clientmod
from skiff.api import kinds
from skiff.api import objects_pb2 as pb


class FakeInformer:
    def __init__(self, kind, objs=()):
        self.kind = kind
        self.objs = list(objs)

    def add_handler(self, *handlers):
        pass

    def list(self, namespace=""):
        return list(self.objs)

    def keys(self):
        return [o.metadata.name for o in self.objs]


class FakeApi:
    """Objects by (kind name, name); updates check the resourceVersion like the store."""

    def __init__(self, *objs, conflicts=0):
        self.objs = {(kinds.of_message(o).name, o.metadata.name): o for o in objs}
        self.deleted, self.updates, self.conflicts = [], [], conflicts

    def get(self, kind, name, namespace="default", linearizable=False):
        k = kinds.lookup(kind) if isinstance(kind, str) else kind
        obj = self.objs.get((k.name, name))
        if obj is None:
            raise clientmod.NotFound(name)
        out = type(obj)()
        out.CopyFrom(obj)
        return out

    def update(self, obj):
        if self.conflicts:
            self.conflicts -= 1
            raise clientmod.Conflict("moved")
        self.updates.append(obj)
        self.objs[(kinds.of_message(obj).name, obj.metadata.name)] = obj
        return obj

    def delete(self, kind, name, namespace="default", uid="", propagation_policy="", **kw):
        self.deleted.append((kind, name, propagation_policy))
        self.objs.pop((kind, name), None)


def rs(name, uid, finalizers=()):
    r = pb.ReplicaSet(metadata=pb.ObjectMeta(name=name, namespace="default", uid=uid))
    if finalizers:
        r.metadata.deletion_timestamp = "2024-01-01T00:00:00Z"
        r.metadata.finalizers.extend(finalizers)
    return r


def pod(name, uid, owner_uid):
    p = pb.Pod(metadata=pb.ObjectMeta(name=name, namespace="default", uid=uid))
    p.metadata.owner_references.add(api_version="apps/v1", kind="ReplicaSet", name="web", uid=owner_uid,
                                    controller=True, block_owner_deletion=True)
    return p


def collector(api, pods=(), rss=()):
    return GarbageCollector(api, FakeInformer("pods", pods), FakeInformer("replicasets", rss),
                            FakeInformer("deployments"), FakeInformer("nodes"))


def test_orphan_unrefs_through_conflicts_then_finalizes():
    owner, p = rs("web", "r", finalizers=["orphan"]), pod("p", "1", "r")
    api = FakeApi(owner, p, conflicts=2)
    collector(api, [p], [owner]).collect_dependents()
    assert not api.objs[("Pod", "p")].metadata.owner_references
    assert list(api.objs[("ReplicaSet", "web")].metadata.finalizers) == []
    assert api.deleted == []


def test_foreground_deletes_dependents_of_a_waiting_owner_confirmed_live():
    owner, p = rs("web", "r", finalizers=["foregroundDeletion"]), pod("p", "1", "r")
    api = FakeApi(owner, p)
    collector(api, [p], [owner]).collect_dependents()
    assert api.deleted == [("Pod", "p", "Background")]


def test_a_live_solid_owner_saves_the_dependent():
    """The cache shows the owner waiting for its dependents; live it is not (the cache lags):
    the dependent stays."""
    cached_owner, p = rs("web", "r", finalizers=["foregroundDeletion"]), pod("p", "1", "r")
    api = FakeApi(rs("web", "r"), p)
    collector(api, [p], [cached_owner]).collect_dependents()
    assert api.deleted == []


def test_gc_kinds_cover_both_sides_of_ownership():
    names = [k.name for k in gc_kinds()]
    assert {"Pod", "ReplicaSet", "Deployment", "ReplicationController"} <= set(names)
    assert "ConfigMap" not in names and "Event" not in names
