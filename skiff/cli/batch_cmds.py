"""Batch commands: `skiff create job`, as kubectl's.

- `skiff create job NAME --image IMG [-- COMMAND [ARGS...]]`: a Job of one container
  named NAME running IMG (with COMMAND as its command), restartPolicy Never;
- `skiff create job NAME --from=cronjob/CJ`: a Job from the CronJob's jobTemplate (its
  labels, annotations and spec), with annotation cronjob.kubernetes.io/instantiate=manual
  and a controller ownerReference to the CronJob, as `kubectl create job --from` makes it.
Both print `job.batch/NAME created`; --dry-run=client|server as for `create -f`.
"""

import sys

from skiff import client as clientmod
from skiff.api import kinds
from skiff.api import objects_pb2 as pb
from skiff.api.errors import ValidationError
from skiff.cli import dry_run
from skiff.cli.common import client as _client
from skiff.cli.common import create_forms, server_error
from skiff.cli.errors import CliError

INSTANTIATE_ANNOTATION = "cronjob.kubernetes.io/instantiate"


def job_from_image(name: str, namespace: str, image: str, command) -> pb.Job:
    job = pb.Job(api_version="batch/v1", kind="Job", metadata=pb.ObjectMeta(name=name, namespace=namespace))
    tspec = job.spec.template.spec
    tspec.restart_policy = "Never"
    container = tspec.containers.add(name=name, image=image)
    container.command.extend(command)
    return job


def job_from_cronjob(name: str, cronjob) -> pb.Job:
    """kubectl's createJobFromCronJob: the jobTemplate's metadata and spec, the manual
    annotation, and the CronJob as controller owner."""
    tmpl = cronjob.spec.job_template
    job = pb.Job(api_version="batch/v1", kind="Job",
                 metadata=pb.ObjectMeta(name=name, namespace=cronjob.metadata.namespace,
                                        labels=dict(tmpl.metadata.labels),
                                        annotations=dict(tmpl.metadata.annotations)))
    job.metadata.annotations[INSTANTIATE_ANNOTATION] = "manual"
    job.metadata.owner_references.add(api_version="batch/v1", kind="CronJob", name=cronjob.metadata.name,
                                      uid=cronjob.metadata.uid, controller=True, block_owner_deletion=True)
    job.spec.CopyFrom(tmpl.spec)
    return job


def cmd_create_job(args) -> int:
    mode = dry_run.mode(args)
    namespace = args.namespace or "default"
    command = list(getattr(args, "command", None) or [])
    if args.source:
        if args.image or command:
            raise CliError("either --image or --from must be specified, not both; "
                           "a command goes with --image")
        kind_word, _, source = args.source.partition("/")
        if not source or kind_word.lower() not in ("cronjob", "cronjobs", "cj", "cronjob.batch"):
            raise CliError(f"from must be an existing cronjob: cronjob/NAME, not {args.source!r}")
        c = _client(args)
        try:
            cronjob = c.get("cronjobs", source, namespace)
        except KeyError as exc:
            raise CliError(exc.args[0]) from None
        except clientmod.ApiError as exc:
            raise CliError(server_error(exc)) from None
        job = job_from_cronjob(args.name, cronjob)
    elif args.image:
        c = None if mode == "client" else _client(args)
        job = job_from_image(args.name, namespace, args.image, command)
    else:
        raise CliError("either --image or --from must be specified")
    kind = kinds.BY_NAME["Job"]
    try:
        if mode == "client":
            result = dry_run.client_write(c, kind, job, True)
        else:
            c.create(job, dry_run=mode == "server")
            result = "created"
    except clientmod.ApiError as exc:
        print(server_error(exc), file=sys.stderr)
        return 1
    except ValidationError as exc:
        print(dry_run.invalid(kind, job, exc, "creating", f"job/{args.name}"), file=sys.stderr)
        return 1
    print(f"job.batch/{args.name} {result}{dry_run.SUFFIX[mode]}")
    return 0


def add_parsers(sub, common, ns) -> None:
    forms = create_forms(sub, common, ns)
    p = forms.add_parser("job", parents=[common, ns], help="create a Job from an image or a CronJob",
                         usage="skiff create job NAME --image=IMAGE [-- COMMAND [ARGS...]] | "
                               "skiff create job NAME --from=cronjob/NAME")
    p.add_argument("name")
    p.add_argument("--image", default="", help="the image of the Job's one container")
    p.add_argument("--from", dest="source", default="", metavar="cronjob/NAME",
                   help="make the Job from this CronJob's jobTemplate")
    p.add_argument("command", nargs="*", help="-- COMMAND [ARGS...]")
    dry_run.add_flag(p)
    p.set_defaults(func=cmd_create_job)
