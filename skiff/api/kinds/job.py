"""Job (batch/v1): pods that run to completion.

Kubernetes' pkg/apis/batch (defaults, validation) and pkg/registry/batch/job/strategy.go
are the model:
- defaults: parallelism 1; completions 1 only when both completions and parallelism are
  unset (parallelism set and completions unset is a work queue); backoffLimit 6;
  completionMode NonIndexed; suspend false; the Job's labels are the template's when
  the Job has none;
- selector: unless spec.manualSelector is true, the server generates it at create
  (strategy.go's generateSelector): matchLabels batch.kubernetes.io/controller-uid=<uid>
  and the template labels batch.kubernetes.io/controller-uid, controller-uid,
  batch.kubernetes.io/job-name and job-name. The uid exists only inside the replicated
  create, so the generation is a store hook (allocate), which also refuses a selector
  the user wrote without manualSelector ("`selector` not auto-generated");
- updates: selector, completionMode immutable; completions too, except for an Indexed
  Job whose new completions equal its new parallelism (elastic Indexed Jobs); the
  pod template is immutable, except that a suspended Job that never started may change
  its template's labels, annotations, nodeSelector, affinity and tolerations.
"""

from skiff.api import objects_pb2 as pb
from skiff.api import selectors
from skiff.api.defaults import default_pod_spec
from skiff.api.display import age, kv
from skiff.api.errors import FieldError
from skiff.api.kinds.registry import Kind, StoreHooks, register
from skiff.api.kinds.workloads import _selector_shown  # kubectl's SELECTOR column, one copy
from skiff.api.podspec_validation import validate_pod_spec
from skiff.api.validation import (
    enum, immutable, invalid, non_negative, required, show, validate_label_selector,
    validate_template_meta,
)
from skiff.api.wellknown import parse_rfc3339

CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
LEGACY_CONTROLLER_UID_LABEL = "controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
LEGACY_JOB_NAME_LABEL = "job-name"
COMPLETION_INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
COMPLETION_INDEX_ENV = "JOB_COMPLETION_INDEX"
COMPLETION_MODES = ("NonIndexed", "Indexed")
DEFAULT_BACKOFF_LIMIT = 6
MAX_INDEXED_COMPLETIONS = 100_000   # Kubernetes' completionsSoftLimit / parallelismSoftLimitForUnlimitedCompletions


def is_indexed(job: pb.Job) -> bool:
    return job.spec.completion_mode == "Indexed"


# ---------------------------------------------------------------- defaults

def _defaults(job: pb.Job) -> None:
    spec = job.spec
    if not spec.HasField("completions") and not spec.HasField("parallelism"):
        spec.completions = 1
        spec.parallelism = 1
    if not spec.HasField("parallelism"):
        spec.parallelism = 1
    if not spec.HasField("backoff_limit"):
        spec.backoff_limit = DEFAULT_BACKOFF_LIMIT
    if not spec.HasField("completion_mode"):
        spec.completion_mode = "NonIndexed"
    if not spec.HasField("suspend"):
        spec.suspend = False
    if spec.template.metadata.labels and not job.metadata.labels:
        job.metadata.labels.update(spec.template.metadata.labels)
    default_pod_spec(spec.template.spec)


# ---------------------------------------------------------------- validation

def _validate_job(job: pb.Job, errs) -> None:
    spec = job.spec
    non_negative(errs, "spec.parallelism", spec.parallelism)
    if spec.HasField("completions"):
        non_negative(errs, "spec.completions", spec.completions)
    non_negative(errs, "spec.backoffLimit", spec.backoff_limit)
    if spec.HasField("ttl_seconds_after_finished"):
        non_negative(errs, "spec.ttlSecondsAfterFinished", spec.ttl_seconds_after_finished)
    if spec.HasField("active_deadline_seconds") and spec.active_deadline_seconds <= 0:
        invalid(errs, "spec.activeDeadlineSeconds", spec.active_deadline_seconds, "must be greater than 0")
    enum(errs, "spec.completionMode", spec.completion_mode, COMPLETION_MODES)
    if is_indexed(job):
        if not spec.HasField("completions"):
            required(errs, "spec.completions", "when completion mode is Indexed")
        elif spec.completions > MAX_INDEXED_COMPLETIONS:
            invalid(errs, "spec.completions", spec.completions,
                    f"must be less than or equal to {MAX_INDEXED_COMPLETIONS} when completion mode is Indexed")
        if spec.parallelism > MAX_INDEXED_COMPLETIONS:
            invalid(errs, "spec.parallelism", spec.parallelism,
                    f"must be less than or equal to {MAX_INDEXED_COMPLETIONS} when completion mode is Indexed")
    validate_template_meta(spec.template.metadata, "spec.template.metadata", errs)
    if spec.manual_selector:
        _validate_manual_selector(spec, errs)
    tspec = spec.template.spec
    validate_pod_spec(tspec, "spec.template.spec", errs)
    if tspec.restart_policy not in ("Never", "OnFailure"):
        errs.append(FieldError("spec.template.spec.restartPolicy",
                               f"Unsupported value: {show(tspec.restart_policy)}: "
                               'supported values: "OnFailure", "Never"'))


def _validate_manual_selector(spec: pb.JobSpec, errs) -> None:
    sel = spec.selector
    if not sel.match_labels and not sel.match_expressions:
        required(errs, "spec.selector", "with manualSelector: true the selector is yours to give")
        return
    before = len(errs)
    validate_label_selector(sel, "spec.selector", errs)
    if len(errs) == before and not selectors.from_label_selector(sel).matches(dict(spec.template.metadata.labels)):
        invalid(errs, "spec.selector", str(selectors.from_label_selector(sel)),
                "`selector` does not match template `labels`")


def _generated_labels(job: pb.Job) -> dict:
    uid, name = job.metadata.uid, job.metadata.name
    return {CONTROLLER_UID_LABEL: uid, LEGACY_CONTROLLER_UID_LABEL: uid,
            JOB_NAME_LABEL: name, LEGACY_JOB_NAME_LABEL: name}


def _allocate(new: pb.Job, old, others, settings):
    """On create, without manualSelector: the generated selector and template labels
    (strategy.go's generateSelector), then validateGeneratedSelector's checks. Runs in
    the replicated create, where metadata.uid is already the new Job's."""
    if old is not None or new.spec.manual_selector:
        return None
    labels = new.spec.template.metadata.labels
    for key, value in _generated_labels(new).items():
        labels.setdefault(key, value)
    match = new.spec.selector.match_labels
    match.setdefault(CONTROLLER_UID_LABEL, new.metadata.uid)
    wrong = [k for k, v in _generated_labels(new).items() if labels[k] != v]
    if wrong:
        return (f"spec.template.metadata.labels[{wrong[0]}]: Invalid value: {show(labels[wrong[0]])}: "
                f"must be {show(_generated_labels(new)[wrong[0]])} (set by the server unless manualSelector)")
    if not selectors.from_label_selector(new.spec.selector).matches(_generated_labels(new)):
        return ("spec.selector: Invalid value: `selector` not auto-generated "
                "(set spec.manualSelector: true to choose the selector yourself)")
    return None


def _carry_over(new: pb.Job, old: pb.Job) -> None:
    """A re-applied manifest leaves out the generated selector and template labels: keep them."""
    if new.spec.manual_selector or old.spec.manual_selector:
        return
    if not new.spec.selector.match_labels and not new.spec.selector.match_expressions:
        new.spec.selector.CopyFrom(old.spec.selector)
    labels = new.spec.template.metadata.labels
    for key in (CONTROLLER_UID_LABEL, LEGACY_CONTROLLER_UID_LABEL, JOB_NAME_LABEL, LEGACY_JOB_NAME_LABEL):
        if key in old.spec.template.metadata.labels and key not in labels:
            labels[key] = old.spec.template.metadata.labels[key]


_SCHEDULING_DIRECTIVES = ("node_selector", "affinity", "tolerations")


def _validate_update(new: pb.Job, old: pb.Job, errs) -> None:
    ns, os_ = new.spec, old.spec
    if ns.selector != os_.selector:
        immutable(errs, "spec.selector", _selector_text(ns.selector))
    if ns.completion_mode != os_.completion_mode:
        immutable(errs, "spec.completionMode", ns.completion_mode)
    elastic = is_indexed(new) and ns.completions == ns.parallelism
    if (ns.HasField("completions"), ns.completions) != (os_.HasField("completions"), os_.completions) and not elastic:
        immutable(errs, "spec.completions", ns.completions)
    a, b = pb.PodTemplateSpec(), pb.PodTemplateSpec()
    a.CopyFrom(ns.template)
    b.CopyFrom(os_.template)
    if os_.suspend and not old.status.start_time:
        # A suspended Job that never started may move its pods elsewhere (Kubernetes'
        # JobMutableNodeSchedulingDirectives): mask what may change.
        for t in (a, b):
            t.metadata.ClearField("labels")
            t.metadata.ClearField("annotations")
            for f in _SCHEDULING_DIRECTIVES:
                t.spec.ClearField(f)
    if a != b:
        immutable(errs, "spec.template", "(the pod template)")


def _selector_text(sel) -> str:
    try:
        return str(selectors.from_label_selector(sel))
    except ValueError:
        return "(invalid)"


# ---------------------------------------------------------------- presentation

def has_condition(job: pb.Job, ctype: str) -> bool:
    return any(c.type == ctype and c.status == "True" for c in job.status.conditions)


def job_status_word(job: pb.Job) -> str:
    """kubectl's STATUS column (printers.go printJob)."""
    if has_condition(job, "Complete"):
        return "Complete"
    if has_condition(job, "Failed"):
        return "Failed"
    if job.metadata.deletion_timestamp:
        return "Terminating"
    if has_condition(job, "Suspended"):
        return "Suspended"
    if has_condition(job, "FailureTarget"):
        return "FailureTarget"
    return "Running"


def _completions(job: pb.Job) -> str:
    spec, succeeded = job.spec, job.status.succeeded
    if spec.HasField("completions"):
        return f"{succeeded}/{spec.completions}"
    if spec.HasField("parallelism") and spec.parallelism > 1:
        return f"{succeeded}/1 of {spec.parallelism}"
    return f"{succeeded}/1"


def _duration(job: pb.Job) -> str:
    if not job.status.start_time:
        return ""
    if not job.status.completion_time:
        return age(job.status.start_time)
    return age(job.status.start_time, parse_rfc3339(job.status.completion_time))


def _describe(job) -> str:
    """kubectl describe job's summary: parallelism, completions, mode, times, pod counts."""
    spec, st = job.spec, job.status
    rows = [("Selector", _selector_shown(spec.selector)),
            ("Parallelism", str(spec.parallelism)),
            ("Completions", str(spec.completions) if spec.HasField("completions") else "<unset>"),
            ("Completion Mode", spec.completion_mode or "NonIndexed"),
            ("Suspend", "true" if spec.suspend else "false"),
            ("Backoff Limit", str(spec.backoff_limit)),
            ("Start Time", st.start_time or "<none>")]
    if st.completion_time:
        rows.append(("Completed At", st.completion_time))
    if st.start_time:
        rows.append(("Duration", _duration(job)))
    if spec.HasField("active_deadline_seconds"):
        rows.append(("Active Deadline Seconds", f"{spec.active_deadline_seconds}s"))
    rows.append(("Pods Statuses", f"{st.active} Active ({st.ready} Ready) / {st.succeeded} Succeeded / "
                                  f"{st.failed} Failed"))
    if is_indexed(job):
        rows.append(("Completed Indexes", st.completed_indexes or "<none>"))
    return kv(rows, width=25)


def _job_row(job):
    cs = job.spec.template.spec.containers
    return ([job_status_word(job), _completions(job), _duration(job)],
            [",".join(c.name for c in cs), ",".join(c.image for c in cs), _selector_shown(job.spec.selector)])


JOB = register(Kind(
    "Job", "batch/v1", "jobs", (), True, pb.Job, "job", True,
    defaults=_defaults, validate=_validate_job, validate_update=_validate_update, carry_over=_carry_over,
    owns=("Pod",),
    columns=("STATUS", "COMPLETIONS", "DURATION", "AGE"), wide_columns=("CONTAINERS", "IMAGES", "SELECTOR"),
    row=_job_row, describe=_describe,
    in_get_all=True,
    store=StoreHooks(allocate=_allocate),
))
