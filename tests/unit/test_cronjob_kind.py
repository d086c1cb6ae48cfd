"""CronJob admission (defaults, validation with exact paths, the unsupported-field check) and its table row."""

import copy
import datetime

import pytest

from skiff.api import codec, kinds, unsupported
from skiff.api.defaults import apply_defaults
from skiff.api.validation import validate

BASE = {
    "apiVersion": "batch/v1", "kind": "CronJob",
    "metadata": {"name": "backup", "namespace": "default"},
    "spec": {"schedule": "*/5 * * * *",
             "jobTemplate": {"metadata": {"labels": {"app": "backup"}},
                             "spec": {"template": {"spec": {
                                 "restartPolicy": "OnFailure",
                                 "containers": [{"name": "run", "image": "busybox:1.36",
                                                 "command": ["sh", "-c", "date"]}]}}}}},
}


def decoded(doc):
    kind = kinds.for_manifest(doc["apiVersion"], doc["kind"])
    msg = codec.decode(kind.message, doc)
    apply_defaults(kind, msg)
    return kind, msg


def errors_of(doc):
    kind, msg = decoded(doc)
    return [(e.path, e.detail) for e in validate(kind, msg)]


def changed(**spec):
    doc = copy.deepcopy(BASE)
    for key, value in spec.items():
        if value is None:
            doc["spec"].pop(key, None)
        else:
            doc["spec"][key] = value
    return doc


def test_defaults_fill_kubernetes_values_and_are_idempotent():
    kind, msg = decoded(BASE)
    once = codec.encode(msg)
    apply_defaults(kind, msg)
    assert codec.encode(msg) == once
    spec = once["spec"]
    assert spec["concurrencyPolicy"] == "Allow"
    assert spec["suspend"] is False
    assert spec["successfulJobsHistoryLimit"] == 3
    assert spec["failedJobsHistoryLimit"] == 1
    # pod defaults inside the template; Job-level defaults wait for the Job (as in Kubernetes)
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["dnsPolicy"] == "ClusterFirst" and pod["terminationGracePeriodSeconds"] == 30
    assert pod["restartPolicy"] == "OnFailure"
    assert "timeZone" not in spec and "startingDeadlineSeconds" not in spec


def test_defaults_keep_explicit_values():
    _, msg = decoded(changed(concurrencyPolicy="Forbid", suspend=True, successfulJobsHistoryLimit=0,
                             failedJobsHistoryLimit=5))
    assert (msg.spec.concurrency_policy, msg.spec.suspend) == ("Forbid", True)
    assert (msg.spec.successful_jobs_history_limit, msg.spec.failed_jobs_history_limit) == (0, 5)


@pytest.mark.parametrize("schedule", [
    "*/5 * * * *", "0 0 1 1 *", "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight",
    "@hourly", "@every 90s", "30 6-16/4 * * 1-5", "0 0 ? * MON", "0 9 * jan-mar sun",
    "0 0 31 2 *",   # parses (robfig too); never matches: the controller says InvalidSchedule
])
def test_valid_schedules(schedule):
    assert errors_of(changed(schedule=schedule)) == []


@pytest.mark.parametrize("schedule,detail", [
    ("* * * *", "expected exactly 5 fields, found 4"),
    ("0 * * * * *", "expected exactly 5 fields, found 6"),      # no seconds field
    ("61 * * * *", "minute: end of range (61) above maximum (59)"),
    ("0 0 0 * *", "day of month: beginning of range (0) below minimum (1)"),
    ("*/0 * * * *", "step of range should be a positive number"),
    ("0 0 L * *", "unsupported syntax"),                       # croniter's extensions are refused
    ("0 0 * * 5#2", "unsupported syntax"),
    ("0 0 * * 7", "above maximum (6)"),
    ("0 0 * foo *", "unknown name"),
    ("@reboot", "unrecognized descriptor"),
    ("@Hourly", "unrecognized descriptor"),
    ("@every soon", "failed to parse duration"),
    ("TZ=UTC 0 * * * *", "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"),
    ("CRON_TZ=Europe/Paris 0 * * * *", "cannot use TZ or CRON_TZ"),
])
def test_invalid_schedules(schedule, detail):
    errs = errors_of(changed(schedule=schedule))
    assert len(errs) == 1 and errs[0][0] == "spec.schedule", errs
    assert detail in errs[0][1]


@pytest.mark.parametrize("spec,path,detail", [
    ({"schedule": None}, "spec.schedule", "Required value"),
    ({"timeZone": "Mars/Olympus"}, "spec.timeZone", "unknown time zone Mars/Olympus"),
    ({"timeZone": ""}, "spec.timeZone", "must be nil or non-empty"),
    ({"timeZone": "Local"}, "spec.timeZone", "explicit time zone"),
    ({"timeZone": "../etc/passwd"}, "spec.timeZone", "unknown time zone"),
    ({"concurrencyPolicy": "Sometimes"}, "spec.concurrencyPolicy", "Unsupported value"),
    ({"startingDeadlineSeconds": -1}, "spec.startingDeadlineSeconds", "greater than or equal to 0"),
    ({"successfulJobsHistoryLimit": -1}, "spec.successfulJobsHistoryLimit", "greater than or equal to 0"),
    ({"failedJobsHistoryLimit": -2}, "spec.failedJobsHistoryLimit", "greater than or equal to 0"),
])
def test_invalid_spec_fields(spec, path, detail):
    errs = errors_of(changed(**spec))
    assert [p for p, _ in errs] == [path], errs
    assert detail in errs[0][1]


def test_time_zones_that_exist_are_accepted():
    for zone in ("UTC", "Europe/Paris", "America/Argentina/Buenos_Aires", "Etc/GMT+5"):
        assert errors_of(changed(timeZone=zone)) == [], zone


def test_name_leaves_room_for_the_scheduled_minute():
    doc = copy.deepcopy(BASE)
    doc["metadata"]["name"] = "a" * 52
    assert errors_of(doc) == []
    doc["metadata"]["name"] = "a" * 53
    assert errors_of(doc) == [("metadata.name", 'Invalid value: "' + "a" * 53 + '": must be no more than 52 characters')]


def test_job_template_is_checked_by_the_job_kinds_rules_under_its_own_path():
    doc = copy.deepcopy(BASE)
    tspec = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    tspec["restartPolicy"] = "Always"
    tspec["containers"][0]["name"] = "Bad_Name"
    paths = sorted(p for p, _ in errors_of(doc))
    assert paths == ["spec.jobTemplate.spec.template.spec.containers[0].name",
                     "spec.jobTemplate.spec.template.spec.restartPolicy"]


def test_job_template_selector_and_manual_selector_are_the_servers():
    doc = copy.deepcopy(BASE)
    doc["spec"]["jobTemplate"]["spec"]["selector"] = {"matchLabels": {"app": "backup"}}
    doc["spec"]["jobTemplate"]["spec"]["manualSelector"] = True
    errs = dict(errors_of(doc))
    assert "`selector` will be auto-generated" in errs["spec.jobTemplate.spec.selector"]
    assert errs["spec.jobTemplate.spec.manualSelector"].startswith("Unsupported value: true")


def test_job_template_labels_are_checked():
    doc = copy.deepcopy(BASE)
    doc["spec"]["jobTemplate"]["metadata"]["labels"] = {"-bad": "x"}
    assert [p for p, _ in errors_of(doc)] == ["spec.jobTemplate.metadata.labels[-bad]"]


def test_unsupported_pod_fields_are_found_inside_the_job_template():
    doc = copy.deepcopy(BASE)
    doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["priority"] = 5
    kind, msg = decoded(doc)
    assert [e.path for e in unsupported.check(kind, msg)] == ["spec.jobTemplate.spec.template.spec.priority"]


def test_row_has_kubectls_columns():
    kind, msg = decoded(changed(timeZone="Europe/Paris"))
    assert kind.columns == ("SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "AGE")
    assert kind.short_names == ("cj",) and kind.in_get_all
    values, wide = kind.row(msg)
    assert values == ["*/5 * * * *", "Europe/Paris", "False", "0", "<none>"]
    assert wide == ["run", "busybox:1.36", "<none>"]
    msg.spec.suspend = True
    msg.status.active.add(name="backup-1", kind="Job")
    then = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=185)
    msg.status.last_schedule_time = then.strftime("%Y-%m-%dT%H:%M:%SZ")
    msg.spec.ClearField("time_zone")
    values, _ = kind.row(msg)
    assert values == ["*/5 * * * *", "<none>", "True", "1", "3m"]
