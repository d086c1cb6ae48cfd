"""Kubernetes' defaults, applied in place to a decoded object before validation.

apply_defaults() only fills fields that are unset (empty string, zero where
zero is not meaningful, or absent for ``optional`` fields); it never
overwrites a value the user gave, so applying it twice changes nothing
(idempotent). The order on every write is: decode -> apply_defaults -> validate.

Each kind's own defaults live in its module (skiff/api/kinds/, Kind.defaults); this
module keeps the entry point and the pod spec's defaults, which Pods and the pod
templates of ReplicaSets and Deployments share.
"""

from skiff.api import objects_pb2 as pb

DEFAULT_SCHEDULER = "default-scheduler"
TERMINATION_MESSAGE_PATH = "/dev/termination-log"
DEFAULT_MODE = 0o644


def apply_defaults(kind, msg) -> None:
    """Fill Kubernetes' defaults into msg (a typed object of `kind`), in place."""
    if not msg.api_version:
        msg.api_version = kind.api_version
    if not msg.kind:
        msg.kind = kind.name
    if kind.defaults is not None:
        kind.defaults(msg)


# ---------------------------------------------------------------- the pod spec (Pods and templates)

def default_pod_spec(spec: pb.PodSpec) -> None:
    """Defaults of a PodSpec, shared by Pods and the pod templates of controllers."""
    if not spec.restart_policy:
        spec.restart_policy = "Always"
    if not spec.HasField("termination_grace_period_seconds"):
        spec.termination_grace_period_seconds = 30
    if not spec.dns_policy:
        spec.dns_policy = "ClusterFirst"
    if not spec.scheduler_name:
        spec.scheduler_name = DEFAULT_SCHEDULER
    for container in list(spec.init_containers) + list(spec.containers):
        _container(container)
    for volume in spec.volumes:
        _volume(volume)


def _container(c: pb.Container) -> None:
    if not c.image_pull_policy:
        c.image_pull_policy = default_pull_policy(c.image)
    if not c.termination_message_path:
        c.termination_message_path = TERMINATION_MESSAGE_PATH
    for port in c.ports:
        if not port.protocol:
            port.protocol = "TCP"
    for env in c.env:
        if env.value_from.HasField("field_ref") and not env.value_from.field_ref.api_version:
            env.value_from.field_ref.api_version = "v1"
    for name in ("liveness_probe", "readiness_probe", "startup_probe"):
        if c.HasField(name):
            _probe(getattr(c, name))
    if c.HasField("lifecycle"):
        for name in ("post_start", "pre_stop"):
            handler = getattr(c.lifecycle, name)
            if c.lifecycle.HasField(name) and handler.HasField("http_get"):
                _http_get(handler.http_get)


def default_pull_policy(image: str) -> str:
    """Always for ":latest" or untagged images, IfNotPresent for a tag or a digest."""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]  # "localhost:5000/app" has a port, not a tag
    tag = last.split(":", 1)[1] if ":" in last else ""
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def _probe(p: pb.Probe) -> None:
    if p.timeout_seconds == 0:
        p.timeout_seconds = 1
    if p.period_seconds == 0:
        p.period_seconds = 10
    if p.success_threshold == 0:
        p.success_threshold = 1
    if p.failure_threshold == 0:
        p.failure_threshold = 3
    if p.HasField("http_get"):
        _http_get(p.http_get)


def _http_get(action: pb.HTTPGetAction) -> None:
    if not action.path:
        action.path = "/"
    if not action.scheme:
        action.scheme = "HTTP"


def _volume(v: pb.Volume) -> None:
    if v.HasField("config_map") and not v.config_map.HasField("default_mode"):
        v.config_map.default_mode = DEFAULT_MODE
    if v.HasField("secret") and not v.secret.HasField("default_mode"):
        v.secret.default_mode = DEFAULT_MODE
