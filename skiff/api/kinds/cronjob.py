"""CronJob (batch/v1): a Job created on a repeating schedule, like a crontab line.

Admission follows Kubernetes (pkg/apis/batch/v1/defaults.go, pkg/apis/batch/validation):
- defaults: concurrencyPolicy Allow, suspend false, successfulJobsHistoryLimit 3,
  failedJobsHistoryLimit 1, and the pod defaults in jobTemplate.spec.template.spec.
  The Job-level defaults (backoffLimit, completions, ...) are not written into the
  template: as in Kubernetes, each Job gets them when the controller creates it;
- validation: a schedule that parses (skiff/api/cronschedule.py: five fields, the
  @-macros, @every), no TZ=/CRON_TZ= inside it (spec.timeZone says where), a timeZone
  that names a known IANA zone (not "Local"), concurrencyPolicy Allow|Forbid|Replace,
  non-negative history limits and startingDeadlineSeconds, a name of at most 52
  characters (the controller appends `-<minutes since the epoch>`, 11 characters, and a
  Job name has at most 63), and the job template: its spec checked by the Job kind's
  own validation (the Job record's validate, on a Job built from the template, so
  whatever Job accepts a template accepts), its selector left to the server and
  manualSelector never true (both generated per Job).
"""

import re

from skiff.api import cronschedule
from skiff.api import objects_pb2 as pb
from skiff.api.defaults import default_pod_spec
from skiff.api.display import age
from skiff.api.errors import FieldError
from skiff.api.kinds.job import JOB
from skiff.api.kinds.registry import Kind, register
from skiff.api.validation import enum, invalid, non_negative, required, validate_template_meta

CONCURRENCY_POLICIES = ("Allow", "Forbid", "Replace")
MAX_NAME = 52   # 63 (a Job name) - 11 (`-` and the scheduled minute)
SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"
_TZ_COMPONENT = re.compile(r"[A-Za-z.\-_0-9+]{1,14}")   # IANA naming rules, as Kubernetes checks them


# ---------------------------------------------------------------- defaults

def _defaults(cj: pb.CronJob) -> None:
    spec = cj.spec
    if not spec.concurrency_policy:
        spec.concurrency_policy = "Allow"
    if not spec.HasField("suspend"):
        spec.suspend = False
    if not spec.HasField("successful_jobs_history_limit"):
        spec.successful_jobs_history_limit = 3
    if not spec.HasField("failed_jobs_history_limit"):
        spec.failed_jobs_history_limit = 1
    default_pod_spec(spec.job_template.spec.template.spec)


# ---------------------------------------------------------------- validation

def _validate(cj: pb.CronJob, errs) -> None:
    spec = cj.spec
    if len(cj.metadata.name) > MAX_NAME:
        invalid(errs, "metadata.name", cj.metadata.name, f"must be no more than {MAX_NAME} characters")
    _validate_schedule(spec.schedule, errs)
    if spec.HasField("time_zone"):
        _validate_time_zone(spec.time_zone, errs)
    if spec.HasField("starting_deadline_seconds"):
        non_negative(errs, "spec.startingDeadlineSeconds", spec.starting_deadline_seconds)
    enum(errs, "spec.concurrencyPolicy", spec.concurrency_policy, CONCURRENCY_POLICIES)
    non_negative(errs, "spec.successfulJobsHistoryLimit", spec.successful_jobs_history_limit)
    non_negative(errs, "spec.failedJobsHistoryLimit", spec.failed_jobs_history_limit)
    validate_job_template(spec.job_template, "spec.jobTemplate", errs)


def _validate_schedule(schedule: str, errs) -> None:
    path = "spec.schedule"
    if not schedule:
        required(errs, path)
        return
    if "TZ" in schedule:
        invalid(errs, path, schedule, "cannot use TZ or CRON_TZ in schedule, use timeZone field instead")
        return
    try:
        cronschedule.parse(schedule)
    except ValueError as exc:
        invalid(errs, path, schedule, str(exc))


def _validate_time_zone(name: str, errs) -> None:
    path = "spec.timeZone"
    if not name:
        invalid(errs, path, name, "timeZone must be nil or non-empty string")
        return
    for part in name.split("/"):
        if part in (".", "..") or part.startswith("-") or not _TZ_COMPONENT.fullmatch(part):
            invalid(errs, path, name, f"unknown time zone {name}")
            return
    if name.lower() == "local":
        invalid(errs, path, name, "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones")
        return
    try:
        cronschedule.load_zone(name)
    except ValueError as exc:
        invalid(errs, path, name, str(exc))


def validate_job_template(template: pb.JobTemplateSpec, path: str, errs) -> None:
    """Kubernetes' ValidateJobTemplateSpec: the Job kind's rules on a Job made of the
    template (with the Job's defaults, as the Job will have them), errors re-rooted
    under `path`; then the two fields every created Job gets from the server."""
    validate_template_meta(template.metadata, f"{path}.metadata", errs)
    job = pb.Job(spec=template.spec)
    job.metadata.labels.update(template.metadata.labels)
    if JOB.defaults is not None:
        JOB.defaults(job)
    found: list = []
    if JOB.validate is not None:
        JOB.validate(job, found)
    for e in found:
        if e.path.startswith("spec"):
            errs.append(FieldError(f"{path}.{e.path}", e.detail))
    if template.spec.HasField("selector"):
        invalid(errs, f"{path}.spec.selector", str(template.spec.selector).strip() or "{}",
                "`selector` will be auto-generated")
    if template.spec.HasField("manual_selector") and template.spec.manual_selector:
        errs.append(FieldError(f"{path}.spec.manualSelector",
                               'Unsupported value: true: supported values: "nil", "false"'))


# ---------------------------------------------------------------- presentation

def _row(cj: pb.CronJob):
    spec = cj.spec
    last = age(cj.status.last_schedule_time) if cj.status.last_schedule_time else "<none>"
    tspec = spec.job_template.spec.template.spec
    names = ",".join(c.name for c in tspec.containers)
    images = ",".join(c.image for c in tspec.containers)
    sel = spec.job_template.spec.selector
    selector = ",".join(f"{k}={v}" for k, v in sorted(sel.match_labels.items())) or "<none>"
    return ([spec.schedule, spec.time_zone if spec.HasField("time_zone") else "<none>",
             "True" if spec.suspend else "False", str(len(cj.status.active)), last],
            [names, images, selector])


CRON_JOB = register(Kind(
    "CronJob", "batch/v1", "cronjobs", ("cj",), True, pb.CronJob, "cron_job", True,
    defaults=_defaults, validate=_validate, owns=("Job",),
    columns=("SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "AGE"),
    wide_columns=("CONTAINERS", "IMAGES", "SELECTOR"), row=_row,
    in_get_all=True,
))
