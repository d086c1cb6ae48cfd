"""The admission chain: plugin order and semantics, the cluster view, NamespaceLifecycle,
and the refusal of fields skiff does not honour yet, through admit() as the API server calls it."""

import pytest

from controlplane.apiserver import admission
from controlplane.apiserver.admission import (CREATE, UPDATE, AdmissionError, Attributes, Chain, DictView,
                                              MutatingPlugin, ValidatingPlugin)
from skiff.api import kinds
from skiff.api import objects_pb2 as pb
from skiff.api.errors import FieldError, ValidationError

POD = kinds.BY_NAME["Pod"]


def namespace(name, **status):
    ns = pb.Namespace(metadata=pb.ObjectMeta(name=name))
    if status.get("terminating"):
        ns.metadata.deletion_timestamp = "2026-12-07T10:00:00Z"
        ns.status.phase = "Terminating"
    return ns


def a_pod(name="web", ns="", **spec):
    p = pb.Pod(metadata=pb.ObjectMeta(name=name, namespace=ns))
    p.spec.containers.add(name="web", image="nginx:1.27")
    for field, value in spec.items():
        setattr(p.spec, field, value)
    return p


CLUSTER = DictView.of(namespace("default"), namespace("team-a"), namespace("leaving", terminating=True))


# ---------------------------------------------------------------- the chain's shape

def test_default_chain_order():
    assert admission.DEFAULT_CHAIN.names() == [
        "NormalizeIdentity", "NamespaceLifecycle", "CarryOverAssigned", "Defaults", "ServiceAccount",
        "Stamp", "Validation", "ValidateUpdate", "NotSupportedYet", "ObjectSize"]
    assert all(isinstance(p, MutatingPlugin) for p in admission.DEFAULT_CHAIN.mutating)
    assert all(isinstance(p, ValidatingPlugin) for p in admission.DEFAULT_CHAIN.validating)


def _recording_chain(log, *, fail_mutating=None, errors=None):
    def mutate(name):
        def run(a):
            log.append(name)
            if name == fail_mutating:
                raise AdmissionError(FieldError("x", "no"))
        return MutatingPlugin(name, run, needs_view=name.endswith("+view"))

    def check(name, only_if_valid=False):
        def run(a):
            log.append(name)
            return list((errors or {}).get(name, []))
        return ValidatingPlugin(name, run, needs_view=name.endswith("+view"), only_if_valid=only_if_valid)

    return Chain(mutating=(mutate("m1"), mutate("m2+view"), mutate("m3")),
                 validating=(check("v1"), check("v2+view"), check("v3"), check("v4", only_if_valid=True)))


CHAIN_CASES = [
    # (view?, mutating plugin that refuses, validating errors, plugins run, error paths raised)
    (True, None, {}, ["m1", "m2+view", "m3", "v1", "v2+view", "v3", "v4"], None),
    (False, None, {}, ["m1", "m3", "v1", "v3", "v4"], None),
    (True, "m2+view", {}, ["m1", "m2+view"], ["x"]),
    (True, None, {"v1": [FieldError("a", "bad")], "v3": [FieldError("b", "bad")]},
     ["m1", "m2+view", "m3", "v1", "v2+view", "v3"], ["a", "b"]),
    (True, None, {"v4": [FieldError("c", "bad")]},
     ["m1", "m2+view", "m3", "v1", "v2+view", "v3", "v4"], ["c"]),
]


@pytest.mark.parametrize("with_view,fail,errors,ran,raised", CHAIN_CASES)
def test_chain_semantics(with_view, fail, errors, ran, raised):
    """Mutating plugins in order, the first refusal stops everything; validating
    plugins all run and their errors accumulate; only_if_valid waits for a clean
    object; plugins needing a view are skipped without one."""
    log = []
    chain = _recording_chain(log, fail_mutating=fail, errors=errors)
    attrs = Attributes(POD, a_pod(), None, CREATE, CLUSTER if with_view else None)
    if raised is None:
        chain.run(attrs)
    else:
        with pytest.raises(AdmissionError) as exc:
            chain.run(attrs)
        assert [e.path for e in exc.value.errors] == raised
    assert log == ran


# ---------------------------------------------------------------- admit(): what the API server calls

def test_admit_normalizes_defaults_and_validates():
    p = a_pod()
    p.metadata.uid = "stale"
    admission.admit(POD, p, creating=True, view=CLUSTER)
    assert (p.api_version, p.kind, p.metadata.namespace, p.metadata.uid) == ("v1", "Pod", "default", "")
    assert p.spec.restart_policy == "Always"          # Defaults ran
    bad = a_pod(name="Not_A_Name")
    with pytest.raises(ValidationError) as exc:
        admission.admit(POD, bad, creating=True, view=CLUSTER)
    assert exc.value.errors[0].path == "metadata.name"
    assert exc.value.code == "invalid"


def test_update_carries_over_assigned_node_then_checks_immutability():
    old = a_pod(ns="default")
    admission.admit(POD, old, creating=True)
    old.spec.node_name = "node-1"
    new = a_pod(ns="default")
    admission.admit(POD, new, old=old, creating=False, view=CLUSTER)
    assert new.spec.node_name == "node-1"
    changed = a_pod(ns="default", hostname="other")
    with pytest.raises(AdmissionError) as exc:
        admission.admit(POD, changed, old=old, creating=False, view=CLUSTER)
    assert exc.value.errors[0].path == "spec"


def test_object_size_limit(monkeypatch):
    """Checked last, on a valid object (a smaller limit stands in for 1 MiB)."""
    from controlplane.apiserver.admission import validating
    monkeypatch.setattr(validating, "MAX_OBJECT_BYTES", 64)
    with pytest.raises(AdmissionError, match=r"object is \d+ bytes; the limit is 64 bytes"):
        admission.admit(POD, a_pod(), creating=True, view=CLUSTER)
    with pytest.raises(AdmissionError) as exc:   # an invalid object is told what is invalid, not its size
        admission.admit(POD, a_pod(name="Not_A_Name"), creating=True, view=CLUSTER)
    assert [e.path for e in exc.value.errors] == ["metadata.name"]


# ---------------------------------------------------------------- NamespaceLifecycle

NAMESPACE_CASES = [
    # (namespace, operation, code or None when admitted, message)
    ("team-a", CREATE, None, ""),
    ("missing", CREATE, "not_found", 'namespaces "missing" not found'),
    ("missing", UPDATE, "not_found", 'namespaces "missing" not found'),
    ("leaving", CREATE, "forbidden",
     "unable to create new content in namespace leaving because it is being terminated"),
    ("leaving", UPDATE, None, ""),   # what is already there may still be written while it goes
]


@pytest.mark.parametrize("ns,operation,code,message", NAMESPACE_CASES)
def test_namespace_lifecycle(ns, operation, code, message):
    p = a_pod(ns=ns)
    creating = operation == CREATE
    if code is None:
        admission.admit(POD, p, creating=creating, view=CLUSTER)
        return
    with pytest.raises(AdmissionError) as exc:
        admission.admit(POD, p, creating=creating, view=CLUSTER)
    assert (exc.value.code, str(exc.value)) == (code, message)


def test_namespace_lifecycle_runs_before_validation():
    """As in Kubernetes: a missing namespace is the answer, whatever else is wrong."""
    with pytest.raises(AdmissionError) as exc:
        admission.admit(POD, a_pod(name="Not_A_Name", ns="missing"), creating=True, view=CLUSTER)
    assert exc.value.code == "not_found"


def test_namespace_lifecycle_needs_a_view_and_a_namespaced_kind():
    admission.admit(POD, a_pod(ns="missing"), creating=True)          # no view: skipped (bootstrap, tools)
    node = pb.Node(metadata=pb.ObjectMeta(name="node-1"))
    admission.admit(kinds.BY_NAME["Node"], node, creating=True, view=DictView())
    admission.admit(kinds.BY_NAME["Namespace"], namespace("new"), creating=True, view=DictView())


def test_default_namespace_is_checked_too():
    with pytest.raises(AdmissionError, match='namespaces "default" not found'):
        admission.admit(POD, a_pod(), creating=True, view=DictView())


# ---------------------------------------------------------------- fields not supported yet

def test_unsupported_field_refused_on_create_with_validation_errors_alongside():
    p = a_pod(name="Not_A_Name", priority=5)
    with pytest.raises(AdmissionError) as exc:
        admission.admit(POD, p, creating=True, view=CLUSTER)
    assert [e.path for e in exc.value.errors] == ["metadata.name", "spec.priority"]
    assert "spec.priority: Forbidden: not supported yet by skiff" in str(exc.value)


def test_unsupported_in_a_deployment_template():
    d = pb.Deployment(metadata=pb.ObjectMeta(name="web"))
    d.spec.selector.match_labels["app"] = "web"
    d.spec.template.metadata.labels["app"] = "web"
    d.spec.template.spec.containers.add(name="web", image="nginx:1.27")
    d.spec.template.spec.volumes.add(name="data").persistent_volume_claim.claim_name = "db"
    with pytest.raises(AdmissionError) as exc:
        admission.admit(kinds.BY_NAME["Deployment"], d, creating=True, view=CLUSTER)
    assert [str(e).split(" (")[0] for e in exc.value.errors] == [
        "spec.template.spec.volumes[0].persistentVolumeClaim: Forbidden: not supported yet by skiff"]


def test_update_keeps_a_field_the_stored_object_already_uses_but_refuses_a_new_one():
    """Objects stored before a refusal existed stay writable (Kubernetes does the
    same for fields behind a disabled feature gate); adding the field is refused."""
    rs_kind = kinds.BY_NAME["ReplicaSet"]

    def rs(**spec):
        r = pb.ReplicaSet(metadata=pb.ObjectMeta(name="web", namespace="default"))
        r.spec.selector.match_labels["app"] = "web"
        r.spec.template.metadata.labels["app"] = "web"
        r.spec.template.spec.containers.add(name="web", image="nginx:1.27")
        for field, value in spec.items():
            setattr(r.spec.template.spec, field, value)
        return r

    old = rs(priority=0)
    admission.admit(rs_kind, rs(priority=0), old=old, creating=False, view=CLUSTER)
    with_claim = rs(priority=0)
    with_claim.spec.template.spec.volumes.add(name="data").persistent_volume_claim.claim_name = "db"
    with pytest.raises(AdmissionError) as exc:
        admission.admit(rs_kind, with_claim, old=old, creating=False, view=CLUSTER)
    assert [e.path for e in exc.value.errors] == ["spec.template.spec.volumes[0].persistentVolumeClaim"]
    with pytest.raises(AdmissionError):
        admission.admit(rs_kind, rs(priority=0), creating=True, view=CLUSTER)


def test_one_error_per_path_across_plugins():
    """A field validation already refuses (activeDeadlineSeconds in a ReplicaSet's
    template, as in Kubernetes) is not refused a second time as unsupported."""
    r = pb.ReplicaSet(metadata=pb.ObjectMeta(name="web"))
    r.spec.selector.match_labels["app"] = "web"
    r.spec.template.metadata.labels["app"] = "web"
    r.spec.template.spec.containers.add(name="web", image="nginx:1.27")
    r.spec.template.spec.active_deadline_seconds = 60
    with pytest.raises(AdmissionError) as exc:
        admission.admit(kinds.BY_NAME["ReplicaSet"], r, creating=True, view=CLUSTER)
    assert [e.path for e in exc.value.errors] == ["spec.template.spec.activeDeadlineSeconds"]
    assert "not supported yet" not in str(exc.value)


def test_status_write_of_a_stored_object_is_not_refused():
    """A status write passes the stored object with old=None and creating=False:
    its spec is what is stored, so it is not judged for unsupported fields."""
    p = a_pod(ns="default", active_deadline_seconds=30)
    p.status.phase = "Running"
    admission.admit(POD, p, creating=False, view=CLUSTER)


# ---------------------------------------------------------------- the dict-backed view

def test_dict_view_get_and_list():
    pods = [a_pod("a", "team-a"), a_pod("b", "default"), a_pod("c", "team-a")]
    view = DictView.of(*pods, namespace("team-a"))
    assert view.get("Pod", "team-a", "a") is pods[0]
    assert view.get("Pod", "default", "a") is None
    assert [p.metadata.name for p in view.list("Pod", "team-a")] == ["a", "c"]
    assert [p.metadata.name for p in view.list("Pod")] == ["b", "a", "c"]   # by (namespace, name)
    assert [n.metadata.name for n in view.list("Namespace")] == ["team-a"]



def test_generated_name_uses_kubernetes_alphabet():
    """generateName + 5 characters from Kubernetes' alphabet (no vowels, no 0/1/3),
    each random byte taken modulo its 27 letters; bytes past the fifth are unused."""
    assert admission.generated_name("web-", bytes([0, 1, 26, 27, 255, 9])) == "web-bc9bq"
