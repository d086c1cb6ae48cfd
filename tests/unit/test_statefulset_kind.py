"""The StatefulSet kind: defaults, validation (each rule breaks a valid object and checks the
exact path), the immutable spec, fields refused as not supported yet, and the table row."""

import copy

import pytest

from skiff.api import codec, kinds
from skiff.api.errors import ValidationError
from skiff.api.validation import validate_update
from tests.unit.test_validation import decoded, drop, errors_of, put

BASE = {
    "apiVersion": "apps/v1", "kind": "StatefulSet",
    "metadata": {"name": "web", "namespace": "default"},
    "spec": {"serviceName": "nginx", "selector": {"matchLabels": {"app": "web"}},
             "template": {"metadata": {"labels": {"app": "web"}},
                          "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}},
}
T = "spec.template.spec"


def doc(*mutations):
    d = copy.deepcopy(BASE)
    for m in mutations:
        m(d)
    return d


def test_base_is_valid_and_defaulted_as_kubernetes():
    assert errors_of(doc()) == []
    _, sts = decoded(doc())
    out = codec.encode(sts)["spec"]
    assert out["replicas"] == 1
    assert out["podManagementPolicy"] == "OrderedReady"
    assert out["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert out["revisionHistoryLimit"] == 10
    assert out["template"]["spec"]["restartPolicy"] == "Always"


def test_defaults_are_idempotent_and_keep_what_is_set():
    d = doc(put("spec.replicas", 0), put("spec.podManagementPolicy", "Parallel"),
            put("spec.updateStrategy", {"type": "OnDelete"}))
    kind, sts = decoded(d)
    once = codec.encode(sts)
    kinds.BY_NAME["StatefulSet"].defaults(sts)
    assert codec.encode(sts) == once
    assert once["spec"]["replicas"] == 0 and once["spec"]["podManagementPolicy"] == "Parallel"
    assert once["spec"]["updateStrategy"] == {"type": "OnDelete"}


@pytest.mark.parametrize("mutation, path, text", [
    (put("spec.podManagementPolicy", "Random"), "spec.podManagementPolicy", "must be 'OrderedReady' or 'Parallel'"),
    (put("spec.updateStrategy", {"type": "Recreate"}), "spec.updateStrategy", "must be 'RollingUpdate' or 'OnDelete'"),
    (put("spec.updateStrategy", {"type": "OnDelete", "rollingUpdate": {"partition": 1}}),
     "spec.updateStrategy.rollingUpdate", "only allowed for updateStrategy 'RollingUpdate'"),
    (put("spec.updateStrategy", {"rollingUpdate": {"partition": -1}}), "spec.updateStrategy.rollingUpdate.partition",
     "greater than or equal to 0"),
    (put("spec.updateStrategy", {"rollingUpdate": {"maxUnavailable": 2}}),
     "spec.updateStrategy.rollingUpdate.maxUnavailable", "not supported yet"),
    (put("spec.replicas", -1), "spec.replicas", "greater than or equal to 0"),
    (put("spec.minReadySeconds", -1), "spec.minReadySeconds", "greater than or equal to 0"),
    (put("spec.revisionHistoryLimit", -1), "spec.revisionHistoryLimit", "greater than or equal to 0"),
    (put("spec.serviceName", "Nginx_1"), "spec.serviceName", "Invalid value"),
    (put("spec.serviceName", "a.b"), "spec.serviceName", "Invalid value"),
    (drop("spec.selector"), "spec.selector", "Required value"),
    (put("spec.selector", {"matchLabels": {"app": "db"}}), "spec.selector", "does not match template"),
    (put(f"{T}.restartPolicy", "OnFailure"), f"{T}.restartPolicy", "Unsupported value"),
    (put(f"{T}.activeDeadlineSeconds", 5), f"{T}.activeDeadlineSeconds", ""),
    (put(f"{T}.containers", []), f"{T}.containers", "at least one"),
])
def test_invalid(mutation, path, text):
    errors = errors_of(doc(mutation))
    shown = "\n".join(str(e) for e in errors)
    assert path in [e.path for e in errors], shown
    assert any(text in e.detail for e in errors if e.path == path), shown


def test_service_name_is_optional():
    assert errors_of(doc(drop("spec.serviceName"))) == []


@pytest.mark.parametrize("field", ["volumeClaimTemplates", "persistentVolumeClaimRetentionPolicy", "ordinals"])
def test_fields_not_in_the_api_are_refused_as_not_supported_yet(field):
    with pytest.raises(ValidationError) as exc:
        decoded(doc(put(f"spec.{field}", [{"metadata": {"name": "data"}}] if field == "volumeClaimTemplates"
                        else {})))
    (error,) = exc.value.errors
    assert error.path == f"spec.{field}"
    assert "not supported yet" in error.detail


def _update_errors(*changes, prepare=()):
    old_doc = doc(*prepare)
    new_doc = copy.deepcopy(old_doc)
    for c in changes:
        c(new_doc)
    kind, old = decoded(old_doc)
    _, new = decoded(new_doc)
    return validate_update(kind, new, old)


@pytest.mark.parametrize("change", [
    put("spec.replicas", 5),
    put(f"{T}.containers.0.image", "nginx:1.28"),
    put("spec.updateStrategy", {"type": "OnDelete"}),
    put("spec.updateStrategy", {"rollingUpdate": {"partition": 2}}),
    put("spec.minReadySeconds", 10),
    put("spec.revisionHistoryLimit", 3),
])
def test_allowed_updates(change):
    assert _update_errors(change) == []


@pytest.mark.parametrize("change", [
    put("spec.serviceName", "other"),
    put("spec.podManagementPolicy", "Parallel"),
    put("spec.selector", {"matchLabels": {"app": "web", "x": "y"}}),
])
def test_forbidden_updates(change):
    errors = _update_errors(change, put("spec.template.metadata.labels", {"app": "web", "x": "y"}))
    assert [e.path for e in errors] == ["spec"]
    assert errors[0].detail == (
        "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
        "'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' "
        "are forbidden")


def test_registry_record():
    kind = kinds.lookup("sts")
    assert (kind.name, kind.api_version, kind.resource) == ("StatefulSet", "apps/v1", "statefulsets.apps")
    assert kind.scale and kind.in_get_all and kind.owns == ("Pod",)
    assert kind.columns == ("READY", "AGE") and kind.wide_columns == ("CONTAINERS", "IMAGES")


def test_row_is_ready_over_desired():
    _, sts = decoded(doc(put("spec.replicas", 3),
                         put(f"{T}.containers.1", {"name": "side", "image": "busybox"})))
    sts.status.ready_replicas = 2
    assert kinds.lookup("sts").row(sts) == (["2/3"], ["web,side", "nginx:1.27,busybox"])
