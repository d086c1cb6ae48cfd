"""Fields skiff decodes but does not honour yet: refused, never silently ignored.

The rule: a field skiff accepts, it honours. A field the API types carry (so a
Kubernetes manifest decodes) but nothing in the control plane or the node agent
acts on is refused with an error naming the field and saying it is not supported
yet, so a user learns it from `skiff apply`, not from a pod that misbehaves.
When a field gets implemented, its row leaves the table.

Pure and table-driven: the API server runs check() as a validating admission
plugin, and client-side tools (`skiff apply --dry-run=client`) run it too.
Pod specs are found wherever they sit (a Pod's spec, a ReplicaSet's or a
Deployment's spec.template.spec, and the templates of kinds to come), and every
error carries the full path: `spec.template.spec.priority`.
"""

from dataclasses import dataclass
from typing import Callable

from skiff.api.errors import FieldError, join

FORBIDDEN = "Forbidden: not supported yet by skiff"
_POD_SPEC = "skiff.api.PodSpec"


@dataclass(frozen=True)
class Rule:
    """One refused field. path is relative to the thing the table is about (a pod
    spec, a container, a volume) in Kubernetes' JSON names; when(spec, item) says
    whether item (the spec itself for pod-spec rules) uses it; why helps a learner."""
    path: str
    when: Callable
    why: str


def _has(field: str) -> Callable:
    return lambda spec, item: item.HasField(field)


POD_SPEC_RULES = (
    Rule("priority", _has("priority"),
         "pod priority and preemption are planned; remove it to run this pod"),
)

CONTAINER_RULES = ()

# Container ports: hostPort is honoured (the node agent's hostport rules and the
# scheduler's NodePorts filter), for IPv4 host addresses.
PORT_RULES = (
    Rule("hostIP", lambda s, p: p.host_port != 0 and ":" in p.host_ip and not s.host_network,
         "hostPort rules are IPv4 only (the cluster is single-stack IPv4); use an IPv4 hostIP or none"),
)
# An init container's ports (sidecars included): the hostport rules and the scheduler's
# NodePorts filter take app containers' ports only.
INIT_PORT_RULES = (
    Rule("hostPort", lambda s, p: p.host_port != 0 and not s.host_network,
         "hostPort is mapped for app containers only; move the port to a container in containers"),
)

# Services (kind Service): by JSON path under the Service.
SERVICE_RULES = ()

SERVICE_ACCOUNT_RULES = ()

VOLUME_RULES = (
    Rule("persistentVolumeClaim", _has("persistent_volume_claim"),
         "persistent volumes are planned; use emptyDir or hostPath for now"),
)


# Kubernetes fields skiff's API types do not carry yet. The decoder refuses every
# field it does not know; for these it says "not supported yet" and why, rather
# than "unknown field", so a learner knows the field is real and not a typo.
# Keyed by (proto message, JSON name).
NOT_IN_API = {
    ("skiff.api.PolicyRule", "nonResourceURLs"):
        "skiff's API is gRPC and has no non-resource URLs; rules name resources only",
    ("skiff.api.ClusterRole", "aggregationRule"):
        "aggregated ClusterRoles are not supported; list the rules in the ClusterRole itself",
    ("skiff.api.PodSpec", "priorityClassName"):
        "pod priority and preemption are planned; remove it to run this pod",
    ("skiff.api.PodSpec", "serviceAccount"):
        "serviceAccount is the deprecated name of serviceAccountName; use serviceAccountName",
    ("skiff.api.ServiceAccount", "secrets"):
        "long-lived token Secrets are not supported; pods get bound, expiring tokens (as in Kubernetes 1.24+)",
    ("skiff.api.PodSecurityContext", "seLinuxOptions"):
        "SELinux labels are not supported; the lab's nodes do not run SELinux",
    ("skiff.api.PodSecurityContext", "windowsOptions"):
        "skiff runs Linux containers only",
    ("skiff.api.PodSecurityContext", "appArmorProfile"):
        "AppArmor profiles are not supported; use seccompProfile",
    ("skiff.api.PodSecurityContext", "fsGroupChangePolicy"):
        "the node agent always sets the fsGroup on a pod's volumes (Always); remove it",
    ("skiff.api.PodSecurityContext", "supplementalGroupsPolicy"):
        "supplementalGroups are merged with the image's groups (Merge); remove it",
    ("skiff.api.SecurityContext", "seLinuxOptions"):
        "SELinux labels are not supported; the lab's nodes do not run SELinux",
    ("skiff.api.SecurityContext", "windowsOptions"):
        "skiff runs Linux containers only",
    ("skiff.api.SecurityContext", "appArmorProfile"):
        "AppArmor profiles are not supported; use seccompProfile",
    ("skiff.api.SecurityContext", "procMount"):
        "only the default /proc mount is supported; remove procMount",
    ("skiff.api.VolumeProjection", "clusterTrustBundle"):
        "ClusterTrustBundles are not served by skiff; put the CA bundle in a ConfigMap and project that",
    ("skiff.api.VolumeProjection", "podCertificate"):
        "pod certificates are not issued by skiff; project a Secret holding the certificate",
    ("skiff.api.StatefulSetSpec", "volumeClaimTemplates"):
        "persistent volumes are planned; until then a StatefulSet's pods use emptyDir or hostPath volumes",
    ("skiff.api.StatefulSetSpec", "persistentVolumeClaimRetentionPolicy"):
        "persistent volumes are planned, and with them the claims of a StatefulSet; remove it",
    ("skiff.api.StatefulSetSpec", "ordinals"):
        "a StatefulSet's pods are numbered from 0; remove ordinals",
    ("skiff.api.JobSpec", "podFailurePolicy"):
        "pod failure policies are planned; every failed pod counts toward backoffLimit",
    ("skiff.api.JobSpec", "backoffLimitPerIndex"):
        "per-index backoff limits are planned; backoffLimit counts the failures of all indexes",
    ("skiff.api.JobSpec", "maxFailedIndexes"):
        "maxFailedIndexes comes with backoffLimitPerIndex, which is planned",
    ("skiff.api.JobSpec", "podReplacementPolicy"):
        "replacement policies are planned; a pod is replaced as soon as it is terminating or Failed "
        "(TerminatingOrFailed, the default)",
    ("skiff.api.JobSpec", "successPolicy"):
        "success policies are planned; an Indexed Job succeeds when every index has succeeded",
    ("skiff.api.JobSpec", "managedBy"):
        "external Job controllers are not supported; skiff's job controller runs every Job",
}


# Volume sources of cloud providers and storage systems Kubernetes once built in (most
# are deprecated there in favour of CSI drivers): real fields, nothing here mounts them.
_STORAGE_SYSTEM_VOLUMES = (
    "awsElasticBlockStore", "azureDisk", "azureFile", "cephfs", "cinder", "csi", "ephemeral", "fc",
    "flexVolume", "flocker", "gcePersistentDisk", "gitRepo", "glusterfs", "image", "iscsi", "nfs",
    "photonPersistentDisk", "portworxVolume", "quobyte", "rbd", "scaleIO", "storageos", "vsphereVolume",
)
NOT_IN_API.update({
    ("skiff.api.Volume", name): f"skiff mounts no {name} volumes; use emptyDir, hostPath, configMap, "
                                "secret, projected or downwardAPI"
    for name in _STORAGE_SYSTEM_VOLUMES})


def not_in_api(message_name: str, json_name: str):
    """The decoder's error detail for a Kubernetes field skiff's types lack, or None."""
    why = NOT_IN_API.get((message_name, json_name))
    return f"{FORBIDDEN} ({why})" if why else None


def check(kind, msg) -> list:
    """Every refused field in msg (any kind: pod specs are found by type), as
    FieldErrors with full paths. Empty when msg uses none. kind is the Kind; it
    is here for rules about other kinds' fields (none today)."""
    errors: list = []
    name = msg.DESCRIPTOR.full_name
    if name == "skiff.api.Service":
        errors.extend(_error(r.path, r) for r in SERVICE_RULES if r.when(msg, msg))
    elif name == "skiff.api.ServiceAccount":
        errors.extend(_error(r.path, r) for r in SERVICE_ACCOUNT_RULES if r.when(msg, msg))
    for path, spec in pod_specs(msg):
        errors.extend(check_pod_spec(spec, path))
    return errors


def check_pod_spec(spec, path: str = "spec") -> list:
    errors = [_error(join(path, r.path), r) for r in POD_SPEC_RULES if r.when(spec, spec)]
    for field, json_name in (("init_containers", "initContainers"), ("containers", "containers")):
        for i, c in enumerate(getattr(spec, field)):
            cpath = f"{path}.{json_name}[{i}]"
            errors.extend(_error(join(cpath, r.path), r) for r in CONTAINER_RULES if r.when(spec, c))
            rules = INIT_PORT_RULES + PORT_RULES if field == "init_containers" else PORT_RULES
            for j, port in enumerate(c.ports):
                errors.extend(_error(f"{cpath}.ports[{j}].{r.path}", r)
                              for r in rules if r.when(spec, port))
    for i, v in enumerate(spec.volumes):
        errors.extend(_error(f"{path}.volumes[{i}].{r.path}", r) for r in VOLUME_RULES if r.when(spec, v))
    return errors


def pod_specs(msg, path: str = ""):
    """(JSON path, PodSpec) for every pod spec set inside msg, outermost first;
    status and metadata hold none and are not walked."""
    for field, value in msg.ListFields():
        if field.type != field.TYPE_MESSAGE or field.is_repeated or field.name in ("status", "metadata"):
            continue
        fpath = join(path, field.json_name)
        if value.DESCRIPTOR.full_name == _POD_SPEC:
            yield fpath, value
        else:
            yield from pod_specs(value, fpath)


def _error(path: str, rule: Rule) -> FieldError:
    return FieldError(path, f"{FORBIDDEN} ({rule.why})")
