"""`skiff rollout status|history|undo|pause|resume|restart` and `skiff set image`, as kubectl has them.

The pure parts (the status message, the history table, what a rollback writes, the
image pairs) are functions of objects, tested on their own; the commands around them
read and write through the API, retrying a write on a conflict with a fresh read.

kubectl's rules followed here (k8s.io/kubectl pkg/polymorphichelpers):
- rollout status (DeploymentStatusViewer): "Waiting for deployment spec update to be
  observed..." until status.observedGeneration reaches metadata.generation; an error
  once Progressing is ProgressDeadlineExceeded; then, in this order, "N out of M new
  replicas have been updated", "N old replicas are pending termination", "N of M
  updated replicas are available", else 'deployment "x" successfully rolled out';
- rollout history (DeploymentHistoryViewer): one row per ReplicaSet revision with its
  kubernetes.io/change-cause annotation, or <none>;
- rollout undo (DeploymentRollbacker): the ReplicaSet of --to-revision (default: the
  revision before the newest) gives the Deployment its pod template, without the
  pod-template-hash label, and its annotations (but the revision and apply records,
  which stay the Deployment's own); refused while paused; a no-op when the template
  already matches;
- rollout restart sets the template annotation kubectl.kubernetes.io/restartedAt to now.
"""

import re
import time

from skiff import client as clientmod
from skiff.api import kinds
from skiff.api import objects_pb2 as pb
from skiff.api.display import format_rows
from skiff.api.kinds.workloads import DEPLOYMENT
from skiff.api.wellknown import now_rfc3339
from skiff.cli.common import client as _client
from skiff.cli.common import server_error
from skiff.cli.errors import CliError

REVISION = "deployment.kubernetes.io/revision"
CHANGE_CAUSE = "kubernetes.io/change-cause"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
POD_TEMPLATE_HASH = "pod-template-hash"
# Annotations that belong to the Deployment (or to apply), never taken from a ReplicaSet
# on rollback (kubectl's annotationsToSkip).
ANNOTATIONS_TO_SKIP = frozenset({
    "kubectl.kubernetes.io/last-applied-configuration", REVISION,
    "deployment.kubernetes.io/revision-history", "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas", "deprecated.deployment.rollback.to",
})
TIMED_OUT = "ProgressDeadlineExceeded"


# ---------------------------------------------------------------- pure parts

def status_message(d: pb.Deployment) -> tuple:
    """(message, done) for `rollout status`; CliError when the rollout has failed."""
    name = d.metadata.name
    st = d.status
    if d.metadata.generation > st.observed_generation:
        return "Waiting for deployment spec update to be observed...", False
    for cond in st.conditions:
        if cond.type == "Progressing" and cond.reason == TIMED_OUT:
            raise CliError(f'deployment "{name}" exceeded its progress deadline')
    want = d.spec.replicas if d.spec.HasField("replicas") else 1
    if st.updated_replicas < want:
        return (f'Waiting for deployment "{name}" rollout to finish: {st.updated_replicas} out of {want} '
                "new replicas have been updated..."), False
    if st.replicas > st.updated_replicas:
        return (f'Waiting for deployment "{name}" rollout to finish: {st.replicas - st.updated_replicas} '
                "old replicas are pending termination..."), False
    if st.available_replicas < st.updated_replicas:
        return (f'Waiting for deployment "{name}" rollout to finish: {st.available_replicas} of '
                f"{st.updated_replicas} updated replicas are available..."), False
    return f'deployment "{name}" successfully rolled out', True


def revision_of(obj) -> int | None:
    try:
        return int(obj.metadata.annotations[REVISION])
    except (KeyError, ValueError):
        return None


def owned_replica_sets(d: pb.Deployment, rss) -> list:
    """The ReplicaSets whose controller is d."""
    return [rs for rs in rss if any(r.controller and r.uid == d.metadata.uid for r in rs.metadata.owner_references)]


def history_rows(rss) -> list:
    """[REVISION, CHANGE-CAUSE] rows, oldest revision first (RSs without a revision left out)."""
    by_rev = {}
    for rs in rss:
        rev = revision_of(rs)
        if rev is not None:
            by_rev[rev] = rs.metadata.annotations.get(CHANGE_CAUSE, "") or "<none>"
    return [["REVISION", "CHANGE-CAUSE"]] + [[str(r), by_rev[r]] for r in sorted(by_rev)]


def replica_set_for_revision(d: pb.Deployment, rss, to_revision: int):
    """rsForRevision: the RS of to_revision, or for 0 the one before the newest."""
    if to_revision > 0:
        for rs in rss:
            if revision_of(rs) == to_revision:
                return rs
        raise CliError(f"unable to find specified revision {to_revision} in history")
    ranked = sorted((rs for rs in rss if revision_of(rs) is not None), key=revision_of, reverse=True)
    if len(ranked) < 2:
        raise CliError(f'no rollout history found for deployment "{d.metadata.name}"')
    return ranked[1]


def _without_hash(template: pb.PodTemplateSpec) -> pb.PodTemplateSpec:
    out = pb.PodTemplateSpec()
    out.CopyFrom(template)
    out.metadata.labels.pop(POD_TEMPLATE_HASH, None)
    return out


def rollback(d: pb.Deployment, rs: pb.ReplicaSet) -> bool:
    """Give d (in place) rs's template and annotations as kubectl's rollback does;
    False when d already has that template (nothing to do)."""
    template = _without_hash(rs.spec.template)
    if _without_hash(d.spec.template) == template:
        return False
    d.spec.template.CopyFrom(template)
    keep = {k: v for k, v in d.metadata.annotations.items() if k in ANNOTATIONS_TO_SKIP}
    keep.update({k: v for k, v in rs.metadata.annotations.items() if k not in ANNOTATIONS_TO_SKIP})
    d.metadata.annotations.clear()
    d.metadata.annotations.update(keep)
    return True


def parse_images(pairs) -> dict:
    """["c1=img:1", "*=img:2"] -> {"c1": "img:1", "*": "img:2"}."""
    out = {}
    for pair in pairs:
        name, sep, image = pair.partition("=")
        if not sep or not name or not image:
            raise CliError(f"invalid image pair {pair!r}: expected CONTAINER_NAME=CONTAINER_IMAGE")
        out[name] = image
    return out


def set_images(pod_spec: pb.PodSpec, images: dict) -> bool:
    """Set container images (init containers too) in place; True if anything changed.
    CliError for a container name the spec does not have ("*" means every container)."""
    containers = list(pod_spec.init_containers) + list(pod_spec.containers)
    changed = False
    for name, image in images.items():
        targets = containers if name == "*" else [c for c in containers if c.name == name]
        if not targets:
            raise CliError(f'unable to find container named "{name}"')
        for c in targets:
            if c.image != image:
                c.image = image
                changed = True
    return changed


def parse_duration_s(text: str) -> float:
    """kubectl's --timeout: "0" (forever), "90", "90s", "5m", "1h", "1m30s"."""
    if re.fullmatch(r"[0-9]+(\.[0-9]+)?", text):
        return float(text)
    parts = re.findall(r"([0-9]+(?:\.[0-9]+)?)(h|ms|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise CliError(f"invalid duration {text!r} (e.g. 90s, 5m, 1h)")
    scale = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(n) * scale[u] for n, u in parts)


# ---------------------------------------------------------------- targets and writes

def _target(words) -> tuple:
    """(Kind, name) from "deployment/web" or "deployment web"."""
    if len(words) == 1 and "/" in words[0]:
        kind_word, _, name = words[0].partition("/")
    elif len(words) == 2:
        kind_word, name = words
    else:
        raise CliError("expected a resource: TYPE/NAME or TYPE NAME (e.g. deployment/web)")
    try:
        return kinds.lookup(kind_word), name
    except KeyError as exc:
        raise CliError(exc.args[0]) from None


def _deployment_target(words, what: str) -> str:
    k, name = _target(words)
    if k is not DEPLOYMENT:
        raise CliError(f"no {what} has been implemented for {k.resource}")
    return name


def _shown(k, name) -> str:
    return f"{k.name.lower()}{'.' + k.group if k.group else ''}/{name}"


def _update(c, k, name, ns, mutate, attempts=10):
    """Read, mutate (False: nothing to write), write; again on a conflict. (object, written)."""
    for attempt in range(attempts):
        obj = c.get(k, name, ns, linearizable=attempt > 0)
        if mutate(obj) is False:
            return obj, False
        try:
            return c.update(obj), True
        except clientmod.Conflict:
            continue
    raise CliError(f"{k.resource}/{name}: kept conflicting with other writers; try again")


def _ns(args) -> str:
    return args.namespace or "default"


def _api(fn):
    """Run fn(); a server error becomes kubectl's one-line error."""
    try:
        return fn()
    except clientmod.ApiError as exc:
        raise CliError(server_error(exc)) from None


# ---------------------------------------------------------------- commands

def cmd_status(args) -> int:
    name = _deployment_target(args.names, "status viewer")
    c = _client(args)
    ns = _ns(args)
    timeout_s = parse_duration_s(args.timeout)
    deadline = time.monotonic() + timeout_s if timeout_s > 0 else None

    def check(d) -> bool:
        if args.revision:
            running = revision_of(d)
            if running != args.revision:
                raise CliError(f"desired revision ({args.revision}) is different from the running "
                               f"revision ({running})")
        msg, done = status_message(d)
        if msg != check.last:
            print(msg, flush=True)
            check.last = msg
        return done
    check.last = None

    d = _api(lambda: c.get(DEPLOYMENT, name, ns))
    if check(d) or not args.watch:
        return 0
    while True:
        items, rv = _api(lambda: c.list(DEPLOYMENT, ns, field_selector=f"metadata.name={name}"))
        if not items:
            raise CliError(server_error(clientmod.NotFound(f'deployments.apps "{name}" not found')))
        if check(items[0]):
            return 0
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise CliError("timed out waiting for the condition")
        try:
            for typ, obj, _rv in c.watch(DEPLOYMENT, ns, resource_version=rv, timeout_s=left,
                                         field_selector=f"metadata.name={name}"):
                if typ == "DELETED":
                    raise CliError(f'deployment "{name}" was deleted')
                if check(obj):
                    return 0
        except clientmod.Expired:
            continue
        except clientmod.ApiError as exc:
            raise CliError(server_error(exc)) from None
        if deadline is not None and time.monotonic() >= deadline:
            raise CliError("timed out waiting for the condition")


def cmd_history(args) -> int:
    name = _deployment_target(args.names, "history viewer")
    c = _client(args)
    ns = _ns(args)
    d = _api(lambda: c.get(DEPLOYMENT, name, ns))
    rss = owned_replica_sets(d, _api(lambda: c.list("replicasets", ns))[0])
    if args.revision:
        rs = replica_set_for_revision(d, rss, args.revision)
        print(f"{_shown(DEPLOYMENT, name)} with revision #{args.revision}")
        print(describe_template(rs.spec.template))
        return 0
    print(_shown(DEPLOYMENT, name))
    rows = history_rows(rss)
    print(format_rows(rows) if len(rows) > 1 else "No rollout history found.")
    return 0


def describe_template(t: pb.PodTemplateSpec) -> str:
    """The pod template as `rollout history --revision` shows it (kubectl's DescribePodTemplate, short)."""
    lines = ["Pod Template:"]
    labels = ",".join(f"{k}={v}" for k, v in sorted(t.metadata.labels.items())) or "<none>"
    lines.append(f"  Labels:\t{labels}")
    if t.metadata.annotations:
        for i, (k, v) in enumerate(sorted(t.metadata.annotations.items())):
            lines.append(f"  {'Annotations:' if i == 0 else '            '}\t{k}: {v}")
    lines.append("  Containers:")
    for cont in t.spec.containers:
        lines.append(f"   {cont.name}:")
        lines.append(f"    Image:\t{cont.image}")
        ports = ",".join(f"{p.container_port}/{p.protocol or 'TCP'}" for p in cont.ports) or "<none>"
        lines.append(f"    Port:\t{ports}")
        if cont.command:
            lines.append(f"    Command:\t{' '.join(cont.command)}")
        if cont.args:
            lines.append(f"    Args:\t{' '.join(cont.args)}")
        env = [f"{e.name}={e.value}" for e in cont.env]
        lines.append(f"    Environment:\t{', '.join(env) if env else '<none>'}")
    return "\n".join(lines)


def cmd_undo(args) -> int:
    name = _deployment_target(args.names, "rollbacker")
    c = _client(args)
    ns = _ns(args)
    outcome = {}

    def mutate(d):
        if d.spec.paused:
            raise CliError("you cannot rollback a paused deployment; resume it first with "
                           "'skiff rollout resume' and try again")
        rss = owned_replica_sets(d, c.list("replicasets", ns)[0])
        rs = replica_set_for_revision(d, rss, args.to_revision)
        outcome["revision"] = revision_of(rs)
        return rollback(d, rs)

    _, written = _api(lambda: _update(c, DEPLOYMENT, name, ns, mutate))
    if written:
        print(f"{_shown(DEPLOYMENT, name)} rolled back")
    else:
        print(f"{_shown(DEPLOYMENT, name)} skipped rollback (current template already matches "
              f"revision {outcome['revision']})")
    return 0


def _set_paused(args, value: bool) -> int:
    name = _deployment_target(args.names, "pauser" if value else "resumer")
    c = _client(args)

    def mutate(d):
        if d.spec.paused == value:
            return False
        d.spec.paused = value

    _, written = _api(lambda: _update(c, DEPLOYMENT, name, _ns(args), mutate))
    word = "paused" if value else "resumed"
    print(f"{_shown(DEPLOYMENT, name)} {word}" if written else f"{_shown(DEPLOYMENT, name)} already {word}")
    return 0


def cmd_restart(args) -> int:
    k, name = _target(args.names)
    if not hasattr(getattr(k.message(), "spec", None), "template"):
        raise CliError(f"no restarter has been implemented for {k.resource}")
    c = _client(args)

    def mutate(obj):
        if getattr(obj.spec, "paused", False):
            raise CliError(f"can't restart paused {k.name.lower()} (run rollout resume first)")
        obj.spec.template.metadata.annotations[RESTARTED_AT] = now_rfc3339()

    _api(lambda: _update(c, k, name, _ns(args), mutate))
    print(f"{_shown(k, name)} restarted")
    return 0


def cmd_set_image(args) -> int:
    k, name = _target(args.names[:1] if "/" in args.names[0] else args.names[:2])
    pairs = args.names[1:] if "/" in args.names[0] else args.names[2:]
    if not pairs:
        raise CliError("at least one image update is required (CONTAINER_NAME=CONTAINER_IMAGE)")
    images = parse_images(pairs)
    c = _client(args)

    def mutate(obj):
        spec = getattr(obj, "spec", None)
        spec = spec.template.spec if hasattr(spec, "template") else spec
        if not hasattr(spec, "containers"):
            raise CliError(f"{k.resource} have no containers to set an image in")
        if set_images(spec, images) is False:
            return False

    _, written = _api(lambda: _update(c, k, name, _ns(args), mutate))
    if written:
        print(f"{_shown(k, name)} image updated")
    return 0


# ---------------------------------------------------------------- parser

def _bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise ValueError(text)


def add_parsers(sub, common, ns) -> None:
    p = sub.add_parser("rollout", parents=[common], help="manage the rollout of a deployment")
    rsub = p.add_subparsers(dest="rollout_cmd", required=True)
    s = rsub.add_parser("status", parents=[common, ns], help="watch a rollout until it finishes")
    s.add_argument("names", nargs="+", metavar="deployment/NAME")
    s.add_argument("-w", "--watch", type=_bool, nargs="?", const=True, default=True,
                   help="watch until the rollout ends (default true; --watch=false: print once)")
    s.add_argument("--timeout", default="0", help="give up after this long (e.g. 90s, 5m; 0: never)")
    s.add_argument("--revision", type=int, default=0, help="fail unless this revision is the one rolling out")
    s.set_defaults(func=cmd_status)
    h = rsub.add_parser("history", parents=[common, ns], help="revisions of a deployment")
    h.add_argument("names", nargs="+", metavar="deployment/NAME")
    h.add_argument("--revision", type=int, default=0, help="show this revision's pod template")
    h.set_defaults(func=cmd_history)
    u = rsub.add_parser("undo", parents=[common, ns], help="roll back to an earlier revision")
    u.add_argument("names", nargs="+", metavar="deployment/NAME")
    u.add_argument("--to-revision", type=int, default=0, help="the revision (default: the previous one)")
    u.set_defaults(func=cmd_undo)
    for word, value in (("pause", True), ("resume", False)):
        x = rsub.add_parser(word, parents=[common, ns], help=f"{word} a deployment's rollouts")
        x.add_argument("names", nargs="+", metavar="deployment/NAME")
        x.set_defaults(func=lambda args, v=value: _set_paused(args, v))
    r = rsub.add_parser("restart", parents=[common, ns], help="replace every pod (a new rollout)")
    r.add_argument("names", nargs="+", metavar="deployment/NAME")
    r.set_defaults(func=cmd_restart)

    st = sub.add_parser("set", parents=[common], help="set fields of objects")
    ssub = st.add_subparsers(dest="set_cmd", required=True)
    i = ssub.add_parser("image", parents=[common, ns], help="set container images (starts a rollout)")
    i.add_argument("names", nargs="+", metavar="deployment/NAME CONTAINER=IMAGE")
    i.set_defaults(func=cmd_set_image)
