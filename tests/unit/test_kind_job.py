"""The Job kind: defaults, validation, update rules, the generated selector (through the
replicated create), kubectl's columns. Kubernetes' pkg/apis/batch and job strategy.go."""

import copy

import pytest

from controlplane.store.commands import Apply as ApplyCmd
from controlplane.store.commands import Create
from controlplane.store.state import StoreState
from skiff.api import codec, kinds
from skiff.api import objects_pb2 as pb
from skiff.api.defaults import apply_defaults
from skiff.api.validation import validate, validate_update
from tests.unit.statehelp import NOW, env
from tests.unit.statehelp import result_obj as unwrap

BASE = {
    "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi", "namespace": "default"},
    "spec": {"template": {"spec": {"restartPolicy": "Never",
                                   "containers": [{"name": "pi", "image": "busybox", "command": ["true"]}]}}},
}
JOB = kinds.BY_NAME["Job"]


def decoded(doc):
    msg = codec.decode(JOB.message, doc)
    apply_defaults(JOB, msg)
    return msg


def with_(**spec):
    doc = copy.deepcopy(BASE)
    doc["spec"].update(copy.deepcopy(spec))
    return doc


def errors(doc):
    return [(e.path, e.detail) for e in validate(JOB, decoded(doc))]


def test_defaults():
    job = decoded(with_(template={"metadata": {"labels": {"app": "pi"}}, "spec": BASE["spec"]["template"]["spec"]}))
    s = job.spec
    assert (s.completions, s.parallelism, s.backoff_limit, s.completion_mode, s.suspend) == (
        1, 1, 6, "NonIndexed", False)
    assert not s.HasField("manual_selector")
    assert dict(job.metadata.labels) == {"app": "pi"}, "the Job's labels default to the template's"
    again = pb.Job()
    again.CopyFrom(job)
    apply_defaults(JOB, again)
    assert again == job


def test_parallelism_without_completions_is_a_work_queue():
    job = decoded(with_(parallelism=3))
    assert not job.spec.HasField("completions") and job.spec.parallelism == 3


def test_the_base_is_valid():
    assert errors(BASE) == []


@pytest.mark.parametrize("spec,path,text", [
    ({"parallelism": -1}, "spec.parallelism", "greater than or equal to 0"),
    ({"completions": -1}, "spec.completions", "greater than or equal to 0"),
    ({"backoffLimit": -1}, "spec.backoffLimit", "greater than or equal to 0"),
    ({"activeDeadlineSeconds": 0}, "spec.activeDeadlineSeconds", "greater than 0"),
    ({"ttlSecondsAfterFinished": -5}, "spec.ttlSecondsAfterFinished", "greater than or equal to 0"),
    ({"completionMode": "Sometimes"}, "spec.completionMode", "Unsupported value"),
    ({"completionMode": "Indexed", "parallelism": 2}, "spec.completions", "when completion mode is Indexed"),
    ({"manualSelector": True}, "spec.selector", "Required value"),
    ({"manualSelector": True, "selector": {"matchLabels": {"app": "x"}}}, "spec.selector",
     "does not match template"),
])
def test_invalid(spec, path, text):
    errs = errors(with_(**spec))
    assert [p for p, _ in errs] == [path], errs
    assert text in errs[0][1]


def test_restart_policy_always_is_refused():
    doc = copy.deepcopy(BASE)
    doc["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    assert errors(doc) == [("spec.template.spec.restartPolicy",
                            'Unsupported value: "Always": supported values: "OnFailure", "Never"')]
    del doc["spec"]["template"]["spec"]["restartPolicy"]
    assert [p for p, _ in errors(doc)] == ["spec.template.spec.restartPolicy"], "defaulted to Always, refused"


def test_pod_active_deadline_allowed_in_a_job_template():
    doc = copy.deepcopy(BASE)
    doc["spec"]["template"]["spec"]["activeDeadlineSeconds"] = 30
    assert errors(doc) == []


def test_manual_selector_matching_the_template():
    doc = with_(manualSelector=True, selector={"matchLabels": {"app": "pi"}})
    doc["spec"]["template"]["metadata"] = {"labels": {"app": "pi"}}
    assert errors(doc) == []


# ---------------------------------------------------------------- updates

def update_errors(old_doc, change, status=None):
    old = decoded(old_doc)
    if status:
        old.status.start_time = status
    new_doc = copy.deepcopy(old_doc)
    change(new_doc)
    return [e.path for e in validate_update(JOB, decoded(new_doc), old)]


def image(doc, value="busybox:2"):
    doc["spec"]["template"]["spec"]["containers"][0]["image"] = value


def node_selector(doc):
    doc["spec"]["template"]["spec"]["nodeSelector"] = {"disk": "ssd"}


def test_updates():
    assert update_errors(BASE, lambda d: d["spec"].update(parallelism=4, completions=1)) == []
    assert update_errors(BASE, lambda d: d["spec"].update(parallelism=4)) == ["spec.completions"], \
        "no completions with parallelism > 1 is a work queue, not the defaulted 1"
    assert update_errors(BASE, lambda d: d["spec"].update(suspend=True)) == []
    assert update_errors(BASE, lambda d: d["spec"].update(activeDeadlineSeconds=60)) == []
    assert update_errors(BASE, lambda d: d["spec"].update(completions=3)) == ["spec.completions"]
    assert update_errors(BASE, lambda d: d["spec"].update(completionMode="Indexed")) == ["spec.completionMode"]
    assert update_errors(BASE, image) == ["spec.template"]
    assert update_errors(BASE, node_selector) == ["spec.template"]
    suspended = with_(suspend=True)
    assert update_errors(suspended, node_selector) == [], "a suspended Job that never ran may move its pods"
    assert update_errors(suspended, image) == ["spec.template"]
    assert update_errors(suspended, node_selector, status="2024-05-01T12:00:00Z") == ["spec.template"]
    indexed = with_(completionMode="Indexed", completions=2, parallelism=2)
    assert update_errors(indexed, lambda d: d["spec"].update(completions=4, parallelism=4)) == [], "elastic"
    assert update_errors(indexed, lambda d: d["spec"].update(completions=4)) == ["spec.completions"]


# ---------------------------------------------------------------- the generated selector (replicated create)

@pytest.fixture
def st():
    s = StoreState(event_log_size=100)
    namespace = pb.Namespace(api_version="v1", kind="Namespace", metadata=pb.ObjectMeta(name="default"))
    assert s.apply(Create("r-ns", env(namespace), NOW, "uid-ns"))[0] == "ok"
    return s


def test_create_generates_the_selector_from_the_uid(st):
    job = unwrap(st.apply(Create("r1", env(decoded(BASE)), NOW, "u-123")))
    assert job.metadata.uid == "u-123"
    assert dict(job.spec.selector.match_labels) == {"batch.kubernetes.io/controller-uid": "u-123"}
    assert dict(job.spec.template.metadata.labels) == {
        "batch.kubernetes.io/controller-uid": "u-123", "controller-uid": "u-123",
        "batch.kubernetes.io/job-name": "pi", "job-name": "pi"}


def test_reapplying_the_manifest_keeps_the_generated_selector(st):
    unwrap(st.apply(Create("r1", env(decoded(BASE)), NOW, "u-123")))
    again = decoded(with_(parallelism=2, completions=1))
    job = unwrap(st.apply(ApplyCmd("r2", env(again), NOW, "u-other")))
    assert job.spec.parallelism == 2
    assert dict(job.spec.selector.match_labels) == {"batch.kubernetes.io/controller-uid": "u-123"}
    assert job.spec.template.metadata.labels["controller-uid"] == "u-123"


def test_a_selector_without_manual_selector_is_refused(st):
    doc = with_(selector={"matchLabels": {"app": "pi"}})
    doc["spec"]["template"]["metadata"] = {"labels": {"app": "pi"}}
    result = st.apply(Create("r1", env(decoded(doc)), NOW, "u-1"))
    assert result[0] == "error" and "`selector` not auto-generated" in result[2]


def test_manual_selector_is_kept_as_given(st):
    doc = with_(manualSelector=True, selector={"matchLabels": {"app": "pi"}})
    doc["spec"]["template"]["metadata"] = {"labels": {"app": "pi"}}
    job = unwrap(st.apply(Create("r1", env(decoded(doc)), NOW, "u-1")))
    assert dict(job.spec.selector.match_labels) == {"app": "pi"}
    assert dict(job.spec.template.metadata.labels) == {"app": "pi"}


# ---------------------------------------------------------------- columns

def row(job):
    return JOB.row(job)


def test_columns_as_kubectl():
    assert JOB.columns == ("STATUS", "COMPLETIONS", "DURATION", "AGE")
    assert JOB.wide_columns == ("CONTAINERS", "IMAGES", "SELECTOR")
    job = decoded(with_(completions=3))
    job.spec.selector.match_labels["batch.kubernetes.io/controller-uid"] = "u"
    job.status.succeeded = 1
    values, wide = row(job)
    assert values[:2] == ["Running", "1/3"]
    assert wide == ["pi", "busybox", "batch.kubernetes.io/controller-uid=u"]
    job.status.start_time = "2024-05-01T12:00:00Z"
    job.status.completion_time = "2024-05-01T12:00:42Z"
    job.status.conditions.add(type="Complete", status="True")
    assert row(job)[0] == ["Complete", "1/3", "42s"]
    queue = decoded(with_(parallelism=4))
    assert row(queue)[0][1] == "0/1 of 4"
    failed = decoded(BASE)
    failed.status.conditions.add(type="Failed", status="True")
    assert row(failed)[0][0] == "Failed"
    suspended = decoded(BASE)
    suspended.status.conditions.add(type="Suspended", status="True")
    assert row(suspended)[0][0] == "Suspended"


def test_describe_section_as_kubectl():
    job = decoded(with_(completions=3, parallelism=2, completionMode="Indexed"))
    job.status.active, job.status.ready, job.status.succeeded, job.status.failed = 1, 1, 2, 1
    job.status.completed_indexes = "0,2"
    text = JOB.describe(job)
    assert "Pods Statuses:           1 Active (1 Ready) / 2 Succeeded / 1 Failed" in text
    assert "Completion Mode:         Indexed" in text and "Completed Indexes:       0,2" in text
