"""Store and API semantics on a real 3-replica control plane (loopback)."""

import threading
import uuid

import grpc
import pytest

from skiff import client as clientmod
from skiff.api import kinds
from skiff.api import objects_pb2 as pb
from skiff.api import service_pb2 as api
from skiff.api import service_pb2_grpc as api_grpc
from skiff.pki import tls
from tests.helpers import wait_until


def cm(name, data=None, labels=None, namespace="default", rv=""):
    return pb.ConfigMap(metadata=pb.ObjectMeta(name=name, namespace=namespace, labels=labels or {},
                                               resource_version=rv), data=data or {})


def deployment(name, replicas=1, image="busybox", labels=None):
    d = pb.Deployment(metadata=pb.ObjectMeta(name=name, namespace="default", labels=labels or {}))
    d.spec.replicas = replicas
    d.spec.selector.match_labels["app"] = name
    d.spec.template.metadata.labels["app"] = name
    d.spec.template.spec.containers.add(name="main", image=image)
    return d


def per_replica_clients(cluster):
    return {n: cluster.client([cluster.api_address(n)]) for n in cluster.names}


@pytest.fixture
def namespace(client):
    name = f"t-{uuid.uuid4().hex[:8]}"
    client.create(pb.Namespace(metadata=pb.ObjectMeta(name=name)))
    yield name
    try:
        client.delete("namespace", name)
    except clientmod.NotFound:
        pass


def test_resource_version_increases_store_wide(client, namespace):
    versions = []
    for i in range(5):
        versions.append(int(client.create(cm(f"c{i}", namespace=namespace)).metadata.resource_version))
        versions.append(int(client.create(deployment(f"d{i}")).metadata.resource_version))
        client.delete("deploy", f"d{i}")
    assert versions == sorted(versions) and len(set(versions)) == len(versions)


def test_create_update_conflict_and_errors(client, namespace):
    created = client.create(cm("a", {"k": "1"}, namespace=namespace))
    assert created.metadata.uid and created.metadata.creation_timestamp
    with pytest.raises(clientmod.AlreadyExists, match='configmaps "a" already exists'):
        client.create(cm("a", namespace=namespace))
    fresh = cm("a", {"k": "2"}, namespace=namespace, rv=created.metadata.resource_version)
    updated = client.update(fresh)
    assert updated.data["k"] == "2" and updated.metadata.uid == created.metadata.uid
    assert updated.metadata.creation_timestamp == created.metadata.creation_timestamp
    stale = cm("a", {"k": "3"}, namespace=namespace, rv=created.metadata.resource_version)
    with pytest.raises(clientmod.Conflict, match="modified"):
        client.update(stale)
    assert client.get("cm", "a", namespace).data["k"] == "2"
    with pytest.raises(clientmod.NotFound, match='configmaps "nope" not found'):
        client.get("cm", "nope", namespace)
    with pytest.raises(clientmod.NotFound):
        client.delete("cm", "nope", namespace)
    with pytest.raises(clientmod.NotFound, match="namespaces"):
        client.create(cm("x", namespace="no-such-namespace"))


def _mutate(client, kind, name, change, status=False):
    """get, change, update; re-read on Conflict (the controllers write status too)."""
    for _ in range(20):
        obj = client.get(kind, name)
        change(obj)
        try:
            return client.update_status(obj) if status else client.update(obj)
        except clientmod.Conflict:
            continue
    raise AssertionError("kept conflicting")


def test_generation_bumps_on_spec_changes_only(client):
    d = client.create(deployment("gen"))
    try:
        assert d.metadata.generation == 1
        d = _mutate(client, "deploy", "gen", lambda o: o.metadata.labels.update(extra="yes"))
        assert d.metadata.generation == 1
        d = _mutate(client, "deploy", "gen", lambda o: setattr(o.status, "collision_count", 7), status=True)
        assert d.metadata.generation == 1 and d.status.collision_count == 7
        d = _mutate(client, "deploy", "gen", lambda o: setattr(o.spec, "replicas", 4))
        assert d.metadata.generation == 2
        assert d.status.collision_count == 7, "spec update must not drop status"
    finally:
        client.delete("deploy", "gen")


def test_apply_created_configured_unchanged(client, namespace):
    obj, result = client.apply(cm("ap", {"a": "1"}, namespace=namespace))
    assert result == "created"
    rv = obj.metadata.resource_version
    obj, result = client.apply(cm("ap", {"a": "1"}, namespace=namespace))
    assert result == "unchanged" and obj.metadata.resource_version == rv
    obj, result = client.apply(cm("ap", {"a": "2"}, namespace=namespace))
    assert result == "configured" and int(obj.metadata.resource_version) > int(rv)


def test_retried_request_id_is_applied_once(cluster, namespace):
    clients = per_replica_clients(cluster)
    try:
        rid = uuid.uuid4().hex
        names = list(clients)
        first = clients[names[0]].create(cm("once", namespace=namespace), request_id=rid)
        # The same request through another replica: same answer, nothing new.
        again = clients[names[1]].create(cm("once", namespace=namespace), request_id=rid)
        assert again.metadata.uid == first.metadata.uid
        assert again.metadata.resource_version == first.metadata.resource_version
        rid2 = uuid.uuid4().hex
        clients[names[2]].delete("cm", "once", namespace, request_id=rid2)
        clients[names[0]].delete("cm", "once", namespace, request_id=rid2)  # no NotFound
    finally:
        for c in clients.values():
            c.close()


def test_list_namespaces_and_label_selectors(client, namespace):
    other = f"{namespace}-b"
    client.create(pb.Namespace(metadata=pb.ObjectMeta(name=other)))
    try:
        client.create(cm("web1", labels={"app": "web", "tier": "front"}, namespace=namespace))
        client.create(cm("web2", labels={"app": "web", "tier": "back"}, namespace=namespace))
        client.create(cm("db", labels={"app": "db"}, namespace=namespace))
        client.create(cm("web3", labels={"app": "web"}, namespace=other))

        def names(ns="", sel=""):
            items, _ = client.list("cm", namespace=ns, label_selector=sel)
            return sorted(o.metadata.name for o in items if o.metadata.namespace in (namespace, other))

        assert names(namespace) == ["db", "web1", "web2"]
        assert names() == ["db", "web1", "web2", "web3"]
        assert names(sel="app=web") == ["web1", "web2", "web3"]
        assert names(sel="app!=web") == ["db"]
        assert names(sel="tier in (front,back)") == ["web1", "web2"]
        assert names(sel="app=web,tier notin (front)") == ["web2", "web3"]
        assert names(sel="tier") == ["web1", "web2"]
        assert names(sel="!tier") == ["db", "web3"]
        with pytest.raises(clientmod.Invalid, match="labelSelector"):
            names(sel="app in web")
    finally:
        client.delete("namespace", other)


def test_watch_resumes_on_another_replica_without_gap_or_duplicate(cluster, namespace):
    clients = per_replica_clients(cluster)
    names = list(clients)
    try:
        _, rv = clients[names[0]].list("cm", namespace=namespace)
        for i in range(5):
            clients[names[0]].create(cm(f"w{i}", namespace=namespace))
        clients[names[0]].update(cm("w1", {"x": "y"}, namespace=namespace))
        clients[names[0]].delete("cm", "w2", namespace)
        seen = []
        stream = clients[names[1]].watch("cm", namespace=namespace, resource_version=rv)
        for typ, obj, ev_rv in stream:
            seen.append((typ, obj.metadata.name, int(ev_rv)))
            if len(seen) == 3:
                break
        stream.close()
        resume_at = str(seen[-1][2])
        # Resume on a third replica from the last version seen.
        for typ, obj, ev_rv in clients[names[2]].watch("cm", namespace=namespace, resource_version=resume_at):
            seen.append((typ, obj.metadata.name, int(ev_rv)))
            if len(seen) == 7:
                break
        assert [(t, n) for t, n, _ in seen] == [
            ("ADDED", "w0"), ("ADDED", "w1"), ("ADDED", "w2"), ("ADDED", "w3"), ("ADDED", "w4"),
            ("MODIFIED", "w1"), ("DELETED", "w2")]
        versions = [v for _, _, v in seen]
        assert versions == sorted(versions) and len(set(versions)) == 7
    finally:
        for c in clients.values():
            c.close()


def test_watch_streams_live_changes(client, namespace):
    _, rv = client.list("cm", namespace=namespace)
    got = []
    done = threading.Event()

    def consume():
        for typ, obj, _ in client.watch("cm", namespace=namespace, resource_version=rv, timeout_s=20):
            got.append((typ, obj.metadata.name))
            if len(got) == 2:
                break
        done.set()

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    writer = clientmod.Client(client.endpoints, tls=client.tls)
    try:
        writer.create(cm("live", namespace=namespace))
        writer.delete("cm", "live", namespace)
    finally:
        writer.close()
    assert done.wait(20)
    assert got == [("ADDED", "live"), ("DELETED", "live")]


def test_watch_from_too_old_version_says_expired(client, namespace):
    # The fixture cluster keeps 200 changes of watch history.
    for i in range(210):
        client.create(cm(f"old{i}", namespace=namespace))
    with pytest.raises(clientmod.Expired, match="expired, re-list"):
        for _ in client.watch("cm", namespace=namespace, resource_version="1", timeout_s=5):
            pass


def test_writes_on_any_replica_and_linearizable_reads(cluster, namespace):
    clients = per_replica_clients(cluster)
    try:
        for i, (name, c) in enumerate(clients.items()):
            c.create(cm(f"from-{name}", namespace=namespace))
            for other in clients.values():
                # Linearizable: visible everywhere at once after the ack.
                assert other.get("cm", f"from-{name}", namespace, linearizable=True)
    finally:
        for c in clients.values():
            c.close()


def test_cluster_status_reports_every_replica(cluster, client):
    st = client.cluster_status()
    by_name = {r.name: r for r in st.replicas}
    assert set(by_name) == set(cluster.names)
    assert [r.role for r in st.replicas].count("leader") == 1
    for r in st.replicas:
        assert r.reachable and r.term >= 1 and r.commit_index >= r.applied_index - 1 >= 0
        assert r.api_address == cluster.api_address(r.name)


def test_namespace_delete_removes_its_objects(client):
    client.create(pb.Namespace(metadata=pb.ObjectMeta(name="doomed")))
    client.create(cm("inside", namespace="doomed"))
    client.delete("namespace", "doomed")
    with pytest.raises(clientmod.NotFound):
        client.get("cm", "inside", "doomed")


def test_invalid_objects_are_rejected_with_field_path(client):
    bad = deployment("bad")
    bad.spec.template.spec.containers[0].ports.add(container_port=70000)
    with pytest.raises(clientmod.Invalid, match=r"spec\.template\.spec\.containers\[0\]\.ports\[0\]\.containerPort"):
        client.create(bad)
    mismatch = deployment("mismatch")
    mismatch.spec.selector.match_labels["app"] = "other"
    with pytest.raises(clientmod.Invalid, match=r"spec\.selector"):
        client.create(mismatch)
    with pytest.raises(clientmod.NotFound):
        client.get("deploy", "bad")


def test_raw_grpc_garbage_is_refused_and_daemon_survives(cluster, client):
    ch = tls.channel(cluster.endpoints[0], cluster.admin_credentials)
    stub = api_grpc.ApiStub(ch)
    with pytest.raises(grpc.RpcError) as err:
        stub.Create(api.WriteRequest(), timeout=5)  # empty envelope
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as err:
        stub.List(api.ListRequest(kind="frobs"), timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # A raw non-protobuf payload.
    raw = ch.unary_unary("/skiff.api.Api/Create")
    with pytest.raises(grpc.RpcError):
        raw(b"\xff\xfe not protobuf", timeout=5)
    ch.close()
    wait_until(lambda: client.get("namespace", "default"), 5, "replica still serving")
    assert kinds.lookup("po").name == "Pod"


def test_field_selectors(client, namespace):
    for name, node in (("a", "n1"), ("b", "n2"), ("c", "")):
        p = pb.Pod(metadata=pb.ObjectMeta(name=name, namespace=namespace))
        p.spec.containers.add(name="c", image="busybox")
        p.spec.node_name = node
        client.create(p)
    names = lambda sel: sorted(o.metadata.name for o in client.list("po", namespace, field_selector=sel)[0])  # noqa: E731
    assert names("spec.nodeName=n1") == ["a"]
    assert names("spec.nodeName!=n1") == ["b", "c"]
    assert names("spec.nodeName=,metadata.name=c") == ["c"]
    with pytest.raises(clientmod.Invalid, match="fieldSelector"):
        names("spec.image=x")
    for name in "abc":
        client.delete("po", name, namespace, grace_period_seconds=0)


def test_status_update_without_namespace_defaults_it(client):
    client.create(cm("nsless", namespace="default"))
    d = client.create(deployment("nsless-deploy"))
    try:
        def clear_namespace_and_set(o):
            o.metadata.namespace = ""
            o.status.collision_count = 3
        assert _mutate(client, "deploy", "nsless-deploy", clear_namespace_and_set,
                       status=True).status.collision_count == 3
    finally:
        client.delete("deploy", "nsless-deploy")
        client.delete("cm", "nsless")


def test_filtered_watch_sees_objects_enter_and_leave_the_selector(client, namespace):
    _, rv = client.list("cm", namespace=namespace)
    client.create(cm("mover", labels={"team": "a"}, namespace=namespace))
    _mutate_ns = lambda labels: client.update(cm("mover", labels=labels, namespace=namespace))  # noqa: E731
    _mutate_ns({"team": "b"})   # leaves team=a
    _mutate_ns({"team": "a"})   # comes back
    _mutate_ns({"team": "a", "x": "1"})  # stays
    seen = []
    for typ, obj, _ in client.watch("cm", namespace=namespace, label_selector="team=a",
                                    resource_version=rv, timeout_s=10):
        seen.append(typ)
        if len(seen) == 4:
            break
    assert seen == ["ADDED", "DELETED", "ADDED", "MODIFIED"]


def _stub(cluster):
    ch = tls.channel(cluster.endpoints[0], cluster.admin_credentials)
    return ch, api_grpc.ApiStub(ch)


def _obj(resp):
    return kinds.unwrap(resp.object)[1]


def _first_change(client, kind, namespace, rv):
    for typ, obj, _ in client.watch(kind, namespace=namespace, resource_version=rv, timeout_s=10):
        return typ, obj
    return None


def test_server_side_dry_run_answers_as_the_write_would_and_stores_nothing(cluster, client, namespace):
    """Through the raw stub (the client's dry-run parameter is another part): admission and
    the store's checks run, the answer is the real one, and nothing reaches the log."""
    ch, stub = _stub(cluster)
    try:
        kept = client.create(cm("kept", {"k": "1"}, namespace=namespace))
        _, rv = client.list("cm", namespace=namespace)

        def write(method, msg, **kw):
            return getattr(stub, method)(api.WriteRequest(object=kinds.wrap(msg), dry_run=True, **kw),
                                         timeout=10)

        created = write("Create", cm("new", {"k": "v"}, namespace=namespace), request_id="dry-then-real")
        assert created.result == "created" and _obj(created).metadata.uid
        assert _obj(created).data["k"] == "v" and _obj(created).metadata.creation_timestamp
        changed = cm("kept", {"k": "2"}, namespace=namespace, rv=kept.metadata.resource_version)
        assert write("Update", changed).result == "updated"
        assert _obj(write("Update", changed)).data["k"] == "2"
        assert write("Apply", cm("kept", {"k": "3"}, namespace=namespace)).result == "configured"
        assert write("Apply", cm("kept", {"k": "1"}, namespace=namespace)).result == "unchanged"
        gone = stub.Delete(api.DeleteRequest(ref=api.ObjectRef(kind="ConfigMap", namespace=namespace,
                                                               name="kept"), dry_run=True), timeout=10)
        assert _obj(gone).metadata.name == "kept"
        for method, msg, code in (
                ("Create", cm("kept", namespace=namespace), grpc.StatusCode.ALREADY_EXISTS),
                ("Create", cm("x", namespace="no-such-namespace"), grpc.StatusCode.NOT_FOUND),
                ("Update", cm("kept", {"k": "4"}, namespace=namespace, rv="1"), grpc.StatusCode.ABORTED),
                ("Create", cm("Bad_Name", namespace=namespace), grpc.StatusCode.INVALID_ARGUMENT)):
            with pytest.raises(grpc.RpcError) as err:
                write(method, msg)
            assert err.value.code() == code, (method, msg.metadata.name)
        with pytest.raises(grpc.RpcError) as err:   # a dry-run namespace delete takes nothing along
            stub.Delete(api.DeleteRequest(ref=api.ObjectRef(kind="Namespace", name="no-such"),
                                          dry_run=True), timeout=10)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        stub.Delete(api.DeleteRequest(ref=api.ObjectRef(kind="Namespace", name=namespace), dry_run=True),
                    timeout=10)

        # Nothing was stored: the object is as it was, and the first change a watch from
        # before the dry runs sees is the real write below (no version was used).
        assert client.get("cm", "kept", namespace).metadata.resource_version == kept.metadata.resource_version
        with pytest.raises(clientmod.NotFound):
            client.get("cm", "new", namespace)
        # The dry run's request id was not remembered: the real write with it happens.
        real = stub.Create(api.WriteRequest(object=kinds.wrap(cm("new", namespace=namespace)),
                                            request_id="dry-then-real"), timeout=10)
        assert real.result == "created"
        typ, obj = _first_change(client, "cm", namespace, rv)
        assert (typ, obj.metadata.name, obj.metadata.resource_version) == (
            "ADDED", "new", _obj(real).metadata.resource_version)
    finally:
        ch.close()


def test_dry_run_of_a_service_shows_the_allocation_without_taking_it(cluster, client, namespace):
    ch, stub = _stub(cluster)
    try:
        svc = pb.Service(metadata=pb.ObjectMeta(name="web", namespace=namespace))
        svc.spec.type = "NodePort"
        svc.spec.selector["app"] = "web"
        svc.spec.ports.add(name="http", port=80, protocol="TCP").target_port.int_val = 8080
        dry = _obj(stub.Create(api.WriteRequest(object=kinds.wrap(svc), dry_run=True), timeout=10))
        assert dry.spec.cluster_ip and dry.spec.ports[0].node_port
        real = client.create(svc)
        # The dry run took nothing: the real create gets the same lowest free addresses.
        assert (real.spec.cluster_ip, real.spec.ports[0].node_port) == (dry.spec.cluster_ip,
                                                                          dry.spec.ports[0].node_port)
        client.delete("svc", "web", namespace)
    finally:
        ch.close()


def test_binding_sets_node_and_pod_scheduled_in_one_write(cluster, client, namespace):
    ch, stub = _stub(cluster)
    try:
        p = pb.Pod(metadata=pb.ObjectMeta(name="bind-me", namespace=namespace))
        p.spec.scheduler_name = "nobody"      # no scheduler touches it
        p.spec.containers.add(name="c", image="busybox")
        created = client.create(p)
        _, rv = client.list("po", namespace=namespace)
        target = pb.Pod(metadata=pb.ObjectMeta(name="bind-me", namespace=namespace))
        target.spec.node_name = "node-7"
        bound = _obj(stub.Update(api.WriteRequest(object=kinds.wrap(target), subresource="binding"),
                                 timeout=10))
        assert bound.spec.node_name == "node-7"
        cond = [c for c in bound.status.conditions if c.type == "PodScheduled"]
        assert [(c.status, bool(c.last_transition_time)) for c in cond] == [("True", True)]
        assert bound.spec.containers[0].image == "busybox"   # the rest of the pod is untouched
        # One write: the watch sees one change, the bound pod with its condition.
        typ, seen = _first_change(client, "po", namespace, rv)
        assert typ == "MODIFIED" and seen.metadata.resource_version == bound.metadata.resource_version
        assert seen.spec.node_name == "node-7" and seen.status.conditions == bound.status.conditions
        assert seen.metadata.uid == created.metadata.uid
        target.spec.node_name = "node-8"      # a pod is never moved
        with pytest.raises(grpc.RpcError) as err:
            stub.Update(api.WriteRequest(object=kinds.wrap(target), subresource="binding"), timeout=10)
        assert err.value.code() == grpc.StatusCode.ABORTED and "already assigned" in err.value.details()
        assert client.get("po", "bind-me", namespace).spec.node_name == "node-7"
        client.delete("po", "bind-me", namespace, grace_period_seconds=0)
    finally:
        ch.close()
