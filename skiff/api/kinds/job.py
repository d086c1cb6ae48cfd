"""Job (batch/v1): pods that run to completion.

A skeleton record: identity only, so that CronJob's controller can create Jobs;
defaults, validation, columns and the controller come with the Job work.
"""

from skiff.api import objects_pb2 as pb
from skiff.api.errors import FieldError
from skiff.api.kinds.registry import Kind, register
from skiff.api.podspec_validation import validate_pod_spec


def _validate_job(job: pb.Job, errs) -> None:
    tspec = job.spec.template.spec
    validate_pod_spec(tspec, "spec.template.spec", errs)
    if tspec.restart_policy not in ("Never", "OnFailure"):
        errs.append(FieldError("spec.template.spec.restartPolicy",
                               f'Unsupported value: "{tspec.restart_policy}": supported values: "OnFailure", "Never"'))


def _job_row(job):
    return [], []


JOB = register(Kind(
    "Job", "batch/v1", "jobs", (), True, pb.Job, "job", True,
    validate=_validate_job, owns=("Pod",),
    columns=("AGE",), row=_job_row,
))
