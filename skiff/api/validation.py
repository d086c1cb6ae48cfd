"""Semantic validation of API objects, with Kubernetes' rules.

Decoding (codec.py) guarantees types and known field names; this module checks
meaning: names, ports, selectors, quantities, mutually exclusive fields, and
which fields may change on update. Every problem is a FieldError whose path is
the full camelCase field path (``spec.template.spec.containers[0].ports[0].containerPort``;
map entries as ``[key]``), and validation collects all problems rather than
stopping at the first.

Validation runs on defaulted objects: the order on every write is
decode -> defaults.apply_defaults -> validate (-> validate_update on updates).
Fields that defaulting always fills (restartPolicy, dnsPolicy, imagePullPolicy,
Service type, ...) are therefore required here.
"""

import ipaddress
import json
import re

from skiff.api import objects_pb2 as pb
from skiff.api import selectors
from skiff.api.errors import FieldError, join
from skiff.api.quantity import parse_quantity
from skiff.api.selectors import (
    validate_dns1035_label,
    validate_dns1123_label,
    validate_dns1123_subdomain,
    validate_label_key,
    validate_label_value,
)

MAX_ANNOTATIONS_BYTES = 256 * 1024
MAX_DATA_BYTES = 1024 * 1024
MAX_CONFIG_KEY = 253

PROTOCOLS = ("TCP", "UDP", "SCTP")
RESTART_POLICIES = ("Always", "OnFailure", "Never")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
DNS_POLICIES = ("ClusterFirst", "Default", "None", "ClusterFirstWithHostNet")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
TOLERATION_OPERATORS = ("Exists", "Equal")
NODE_SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")
LABEL_SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
SESSION_AFFINITIES = ("None", "ClientIP")
TRAFFIC_POLICIES = ("Cluster", "Local")
STRATEGY_TYPES = ("RollingUpdate", "Recreate")
STANDARD_RESOURCES = ("cpu", "memory", "ephemeral-storage")
HOST_PATH_TYPES = ("", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket",
                   "CharDevice", "BlockDevice")
NODE_PORT_RANGE = (30000, 32767)
ENV_FIELD_PATHS = ("metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
                   "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP",
                   "status.podIPs")
ENV_RESOURCE_FIELDS = tuple(f"{w}.{r}" for w in ("limits", "requests") for r in STANDARD_RESOURCES)

_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
_CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_PORT_NAME = re.compile(r"[-a-z0-9]+")
_PERCENT = re.compile(r"([0-9]+)%")
_LABEL_SUBSCRIPT = re.compile(r"metadata\.(labels|annotations)\['(.+)'\]")


# ---------------------------------------------------------------- messages

def _show(value) -> str:
    """A value as the user would write it in JSON ("abc", 80)."""
    return json.dumps(value) if isinstance(value, str) else str(value)


def _required(errs, path, what: str = "") -> None:
    errs.append(FieldError(path, "Required value" + (f": {what}" if what else "")))


def _invalid(errs, path, value, detail: str) -> None:
    errs.append(FieldError(path, f"Invalid value: {_show(value)}: {detail}"))


def _forbidden(errs, path, detail: str) -> None:
    errs.append(FieldError(path, f"Forbidden: {detail}"))


def _duplicate(errs, path, value, detail: str = "") -> None:
    errs.append(FieldError(path, f"Duplicate value: {_show(value)}" + (f" ({detail})" if detail else "")))


def _enum(errs, path, value: str, allowed, allow_empty: bool = False) -> None:
    """value must be one of allowed (or empty, when allow_empty)."""
    if value == "" and allow_empty:
        return
    supported = ", ".join(_show(a) for a in allowed)
    if value == "":
        _required(errs, path, f"supported values: {supported}")
    elif value not in allowed:
        errs.append(FieldError(path, f"Unsupported value: {_show(value)}: supported values: {supported}"))


def _check(errs, path, value, problem) -> None:
    """Record problem (an error detail from a syntax check) as an invalid value."""
    if problem:
        _invalid(errs, path, value, problem)


def _non_negative(errs, path, value) -> None:
    if value < 0:
        _invalid(errs, path, value, "must be greater than or equal to 0")


def _in_range(errs, path, value, lo, hi) -> None:
    if not lo <= value <= hi:
        _invalid(errs, path, value, f"must be between {lo} and {hi}, inclusive")


# ---------------------------------------------------------------- small syntax checks

def validate_port_name(name: str) -> str | None:
    """Error detail when name is not an IANA_SVC_NAME ("http", "metrics-1"), else None."""
    if len(name) > 15:
        return "must be no more than 15 characters"
    if not _PORT_NAME.fullmatch(name):
        return "must contain only lower case alphanumeric characters (a-z, 0-9) and '-'"
    if not re.search(r"[a-z]", name):
        return "must contain at least one letter (a-z)"
    if "--" in name:
        return "must not contain consecutive hyphens"
    if name.startswith("-") or name.endswith("-"):
        return "must not begin or end with a hyphen"
    return None


def validate_env_name(name: str) -> str | None:
    if not _ENV_NAME.fullmatch(name):
        return ("a valid environment variable name must consist of alphabetic characters, digits, "
                "'_', '-' or '.', and must not start with a digit (e.g. 'MY_VAR', 'my.env-name')")
    return None


def validate_config_key(key: str) -> str | None:
    """Error detail for a ConfigMap/Secret data key ("app.properties", "tls.crt"), else None."""
    if len(key) > MAX_CONFIG_KEY:
        return f"must be no more than {MAX_CONFIG_KEY} characters"
    if not _CONFIG_KEY.fullmatch(key):
        return ("a valid config key must consist of alphanumeric characters, '-', '_' or '.' "
                "(e.g. 'key.name', 'KEY_NAME' or 'key-name')")
    if key in (".", "..") or key.startswith(".."):
        return "must not be '.' or '..', or start with '..'"
    return None


def validate_ipv4(address: str) -> str | None:
    try:
        ipaddress.IPv4Address(address)
    except ValueError:
        return "must be a valid IPv4 address (e.g. 10.0.0.1)"
    return None


def _validate_ip(address: str) -> str | None:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return "must be a valid IP address (e.g. 10.0.0.1 or fd00::1)"
    return None


def _validate_relative_path(errs, path, value: str) -> None:
    if value.startswith("/"):
        _invalid(errs, path, value, "must be a relative path")
    if ".." in value.split("/"):
        _invalid(errs, path, value, "must not contain '..'")


def _int_or_string_set(v: pb.IntOrString) -> bool:
    return v.HasField("int_val") or v.HasField("str_val")


def _int_or_string_value(v: pb.IntOrString):
    return v.str_val if v.HasField("str_val") else v.int_val


# ---------------------------------------------------------------- metadata

def _name_check_for(kind):
    if kind.name == "Namespace":
        return validate_dns1123_label
    if kind.name == "Service":
        return validate_dns1035_label
    return validate_dns1123_subdomain


def _validate_meta(meta: pb.ObjectMeta, kind, errs) -> None:
    """metadata of a top-level object: name, namespace, labels, annotations, ownerReferences."""
    path = "metadata"
    check = _name_check_for(kind)
    if meta.name:
        _check(errs, join(path, "name"), meta.name, check(meta.name))
    elif meta.generate_name:
        gn = meta.generate_name
        masked = gn[:-1] + "a" if gn.endswith("-") else gn  # a trailing '-' is fine in a prefix
        _check(errs, join(path, "generateName"), gn, check(masked))
    else:
        _required(errs, join(path, "name"), "name or generateName is required")
    if meta.namespace:
        if not kind.namespaced:
            _forbidden(errs, join(path, "namespace"), f"not allowed: {kind.name} is not namespaced")
        else:
            _check(errs, join(path, "namespace"), meta.namespace, validate_dns1123_label(meta.namespace))
    _validate_labels(meta.labels, join(path, "labels"), errs)
    _validate_annotations(meta.annotations, join(path, "annotations"), errs)
    _validate_owner_references(meta.owner_references, join(path, "ownerReferences"), errs)


def _validate_labels(labels, path, errs) -> None:
    for key, value in sorted(labels.items()):
        kpath = f"{path}[{key}]"
        problem = validate_label_key(key)
        if problem:
            _invalid(errs, kpath, key, f"invalid label key: {problem}")
        problem = validate_label_value(value)
        if problem:
            _invalid(errs, kpath, value, f"invalid label value: {problem}")


def _validate_annotations(annotations, path, errs) -> None:
    total = 0
    for key, value in sorted(annotations.items()):
        problem = validate_label_key(key.lower())
        if problem:
            _invalid(errs, f"{path}[{key}]", key, f"invalid annotation key: {problem}")
        total += len(key.encode()) + len(value.encode())
    if total > MAX_ANNOTATIONS_BYTES:
        errs.append(FieldError(path, f"Too long: annotations total {total} bytes, "
                                     f"must have at most {MAX_ANNOTATIONS_BYTES} bytes"))


def _validate_owner_references(refs, path, errs) -> None:
    controllers = 0
    for i, ref in enumerate(refs):
        rpath = f"{path}[{i}]"
        for field, json_name in (("api_version", "apiVersion"), ("kind", "kind"), ("name", "name"),
                                 ("uid", "uid")):
            if not getattr(ref, field):
                _required(errs, join(rpath, json_name))
        controllers += ref.controller
    if controllers > 1:
        _invalid(errs, path, controllers, "only one reference can have controller set to true")


def _validate_template_meta(meta: pb.ObjectMeta, path, errs) -> None:
    """metadata of a pod template: no name needed; labels and annotations must be valid."""
    _validate_labels(meta.labels, join(path, "labels"), errs)
    _validate_annotations(meta.annotations, join(path, "annotations"), errs)


def _validate_label_selector(sel: pb.LabelSelector, path, errs) -> None:
    _validate_labels(sel.match_labels, join(path, "matchLabels"), errs)
    for i, expr in enumerate(sel.match_expressions):
        epath = f"{path}.matchExpressions[{i}]"
        if not expr.key:
            _required(errs, join(epath, "key"))
        else:
            _check(errs, join(epath, "key"), expr.key, validate_label_key(expr.key))
        _enum(errs, join(epath, "operator"), expr.operator, LABEL_SELECTOR_OPERATORS)
        if expr.operator in ("In", "NotIn") and not expr.values:
            _required(errs, join(epath, "values"), f"must be specified when `operator` is '{expr.operator}'")
        if expr.operator in ("Exists", "DoesNotExist") and expr.values:
            _forbidden(errs, join(epath, "values"), f"may not be specified when `operator` is '{expr.operator}'")
        for j, value in enumerate(expr.values):
            _check(errs, f"{epath}.values[{j}]", value, validate_label_value(value))


# ---------------------------------------------------------------- pod spec

def _validate_pod_spec(spec: pb.PodSpec, path, errs) -> None:
    """A PodSpec at path ("spec" for Pods, "spec.template.spec" for templates)."""
    volumes = _validate_volumes(spec.volumes, join(path, "volumes"), errs)
    if not spec.containers:
        _required(errs, join(path, "containers"), "a pod needs at least one container")
    _validate_containers(spec, path, volumes, errs)
    _enum(errs, join(path, "restartPolicy"), spec.restart_policy, RESTART_POLICIES)
    _enum(errs, join(path, "dnsPolicy"), spec.dns_policy, DNS_POLICIES)
    if spec.dns_policy == "None" and not spec.dns_config.nameservers:
        _required(errs, join(path, "dnsConfig.nameservers"), "must provide at least one DNS nameserver "
                  "when `dnsPolicy` is 'None'")
    for i, ns in enumerate(spec.dns_config.nameservers):
        _check(errs, f"{path}.dnsConfig.nameservers[{i}]", ns, _validate_ip(ns))
    if spec.HasField("termination_grace_period_seconds"):
        _non_negative(errs, join(path, "terminationGracePeriodSeconds"), spec.termination_grace_period_seconds)
    if spec.HasField("active_deadline_seconds") and spec.active_deadline_seconds <= 0:
        _invalid(errs, join(path, "activeDeadlineSeconds"), spec.active_deadline_seconds,
                 "must be greater than 0")
    for field, json_name, check in (("node_name", "nodeName", validate_dns1123_subdomain),
                                    ("service_account_name", "serviceAccountName", validate_dns1123_subdomain),
                                    ("scheduler_name", "schedulerName", validate_dns1123_subdomain),
                                    ("hostname", "hostname", validate_dns1123_label),
                                    ("subdomain", "subdomain", validate_dns1123_label)):
        value = getattr(spec, field)
        if value:
            _check(errs, join(path, json_name), value, check(value))
    _validate_labels(spec.node_selector, join(path, "nodeSelector"), errs)
    _validate_tolerations(spec.tolerations, join(path, "tolerations"), errs)
    if spec.HasField("affinity"):
        _validate_affinity(spec.affinity, join(path, "affinity"), errs)
    for i, alias in enumerate(spec.host_aliases):
        apath = f"{path}.hostAliases[{i}]"
        _check(errs, join(apath, "ip"), alias.ip, _validate_ip(alias.ip))
        if not alias.hostnames:
            _required(errs, join(apath, "hostnames"))


def _validate_volumes(volumes, path, errs) -> set:
    """Check volumes; return the set of declared names (for volumeMounts)."""
    names = set()
    for i, v in enumerate(volumes):
        vpath = f"{path}[{i}]"
        if not v.name:
            _required(errs, join(vpath, "name"))
        else:
            _check(errs, join(vpath, "name"), v.name, validate_dns1123_label(v.name))
            if v.name in names:
                _duplicate(errs, join(vpath, "name"), v.name)
            names.add(v.name)
        _validate_volume_source(v, vpath, errs)
    return names


_VOLUME_SOURCES = (("empty_dir", "emptyDir"), ("host_path", "hostPath"), ("config_map", "configMap"),
                   ("secret", "secret"), ("persistent_volume_claim", "persistentVolumeClaim"))


def _validate_volume_source(v: pb.Volume, vpath, errs) -> None:
    present = [json_name for field, json_name in _VOLUME_SOURCES if v.HasField(field)]
    if not present:
        _required(errs, vpath, "must specify a volume type: one of "
                  + ", ".join(j for _, j in _VOLUME_SOURCES))
        return
    if len(present) > 1:
        _forbidden(errs, join(vpath, present[1]), f"may not specify more than 1 volume type "
                   f"(found {', '.join(present)})")
    if v.HasField("empty_dir"):
        _enum(errs, join(vpath, "emptyDir.medium"), v.empty_dir.medium, ("Memory",), allow_empty=True)
        if v.empty_dir.size_limit:
            _validate_quantity(v.empty_dir.size_limit, join(vpath, "emptyDir.sizeLimit"), errs)
    if v.HasField("host_path"):
        hp = join(vpath, "hostPath")
        if not v.host_path.path:
            _required(errs, join(hp, "path"))
        elif not v.host_path.path.startswith("/"):
            _invalid(errs, join(hp, "path"), v.host_path.path, "must be an absolute path")
        _enum(errs, join(hp, "type"), v.host_path.type, HOST_PATH_TYPES[1:], allow_empty=True)
    if v.HasField("config_map"):
        cm = v.config_map
        if not cm.name:
            _required(errs, join(vpath, "configMap.name"))
        _validate_key_to_paths(cm.items, cm, join(vpath, "configMap"), errs)
    if v.HasField("secret"):
        s = v.secret
        if not s.secret_name:
            _required(errs, join(vpath, "secret.secretName"))
        _validate_key_to_paths(s.items, s, join(vpath, "secret"), errs)
    if v.HasField("persistent_volume_claim") and not v.persistent_volume_claim.claim_name:
        _required(errs, join(vpath, "persistentVolumeClaim.claimName"))


def _validate_key_to_paths(items, source, path, errs) -> None:
    if source.HasField("default_mode"):
        _in_range(errs, join(path, "defaultMode"), source.default_mode, 0, 0o777)
    for i, item in enumerate(items):
        ipath = f"{path}.items[{i}]"
        if not item.key:
            _required(errs, join(ipath, "key"))
        if not item.path:
            _required(errs, join(ipath, "path"))
        else:
            _validate_relative_path(errs, join(ipath, "path"), item.path)
        if item.HasField("mode"):
            _in_range(errs, join(ipath, "mode"), item.mode, 0, 0o777)


def _validate_containers(spec: pb.PodSpec, path, volumes: set, errs) -> None:
    names = set()
    host_ports = set()
    for group, json_name in ((spec.init_containers, "initContainers"), (spec.containers, "containers")):
        for i, c in enumerate(group):
            cpath = f"{path}.{json_name}[{i}]"
            if not c.name:
                _required(errs, join(cpath, "name"))
            else:
                _check(errs, join(cpath, "name"), c.name, validate_dns1123_label(c.name))
                if c.name in names:
                    _duplicate(errs, join(cpath, "name"), c.name,
                               "container names must be unique across containers and initContainers")
                names.add(c.name)
            _validate_container(c, cpath, volumes, errs, init=json_name == "initContainers")
            _validate_host_ports(c, cpath, spec.host_network, host_ports, errs)


def _validate_container(c: pb.Container, path, volumes: set, errs, init: bool) -> None:
    if not c.image:
        _required(errs, join(path, "image"), "every container needs an image (e.g. nginx:1.27)")
    elif c.image != c.image.strip():
        _invalid(errs, join(path, "image"), c.image, "must not have leading or trailing whitespace")
    _enum(errs, join(path, "imagePullPolicy"), c.image_pull_policy, PULL_POLICIES)
    _validate_ports(c.ports, join(path, "ports"), errs)
    _validate_env(c.env, join(path, "env"), errs)
    _validate_env_from(c.env_from, join(path, "envFrom"), errs)
    _validate_resources(c.resources, join(path, "resources"), errs)
    _validate_volume_mounts(c.volume_mounts, join(path, "volumeMounts"), volumes, errs)
    for field, json_name in (("liveness_probe", "livenessProbe"), ("readiness_probe", "readinessProbe"),
                             ("startup_probe", "startupProbe")):
        if not c.HasField(field):
            continue
        if init:
            _forbidden(errs, join(path, json_name), "may not be set for init containers")
        else:
            _validate_probe(getattr(c, field), join(path, json_name), errs, json_name)
    if c.HasField("lifecycle"):
        if init:
            _forbidden(errs, join(path, "lifecycle"), "may not be set for init containers")
        for field, json_name in (("post_start", "postStart"), ("pre_stop", "preStop")):
            if c.lifecycle.HasField(field):
                _validate_handler(getattr(c.lifecycle, field), join(path, f"lifecycle.{json_name}"), errs)


def _validate_ports(ports, path, errs) -> None:
    names = set()
    for i, p in enumerate(ports):
        ppath = f"{path}[{i}]"
        if p.container_port == 0:
            _required(errs, join(ppath, "containerPort"))
        else:
            _in_range(errs, join(ppath, "containerPort"), p.container_port, 1, 65535)
        _in_range(errs, join(ppath, "hostPort"), p.host_port, 0, 65535)
        _enum(errs, join(ppath, "protocol"), p.protocol, PROTOCOLS, allow_empty=True)
        if p.host_ip:
            _check(errs, join(ppath, "hostIP"), p.host_ip, _validate_ip(p.host_ip))
        if p.name:
            _check(errs, join(ppath, "name"), p.name, validate_port_name(p.name))
            if p.name in names:
                _duplicate(errs, join(ppath, "name"), p.name, "port names must be unique within a container")
            names.add(p.name)


def _validate_host_ports(c: pb.Container, path, host_network: bool, seen: set, errs) -> None:
    """hostPorts are unique per pod (by port, protocol, hostIP); with hostNetwork they equal containerPort."""
    for i, p in enumerate(c.ports):
        if p.host_port == 0:
            continue
        hpath = f"{path}.ports[{i}].hostPort"
        if host_network and p.host_port != p.container_port:
            _invalid(errs, hpath, p.host_port, "must match `containerPort` when `hostNetwork` is true")
        key = (p.host_port, p.protocol or "TCP", p.host_ip)
        if key in seen:
            _duplicate(errs, hpath, p.host_port, "host ports must be unique within a pod")
        seen.add(key)


def _validate_env(env, path, errs) -> None:
    for i, e in enumerate(env):
        epath = f"{path}[{i}]"
        if not e.name:
            _required(errs, join(epath, "name"))
        else:
            _check(errs, join(epath, "name"), e.name, validate_env_name(e.name))
        if e.HasField("value_from"):
            if e.value:
                _invalid(errs, join(epath, "valueFrom"), "", "may not be specified when `value` is not empty")
            _validate_env_source(e.value_from, join(epath, "valueFrom"), errs)


_ENV_SOURCES = (("config_map_key_ref", "configMapKeyRef"), ("secret_key_ref", "secretKeyRef"),
                ("field_ref", "fieldRef"), ("resource_field_ref", "resourceFieldRef"))


def _validate_env_source(src: pb.EnvVarSource, path, errs) -> None:
    present = [json_name for field, json_name in _ENV_SOURCES if src.HasField(field)]
    if not present:
        _required(errs, path, "must specify one of: " + ", ".join(j for _, j in _ENV_SOURCES))
        return
    if len(present) > 1:
        _invalid(errs, path, ", ".join(present), "may not have more than one field specified at a time")
    for field, json_name in (("config_map_key_ref", "configMapKeyRef"), ("secret_key_ref", "secretKeyRef")):
        if src.HasField(field):
            ref = getattr(src, field)
            rpath = join(path, json_name)
            if not ref.name:
                _required(errs, join(rpath, "name"))
            if not ref.key:
                _required(errs, join(rpath, "key"))
            else:
                _check(errs, join(rpath, "key"), ref.key, validate_config_key(ref.key))
    if src.HasField("field_ref"):
        _validate_field_ref(src.field_ref, join(path, "fieldRef"), errs)
    if src.HasField("resource_field_ref"):
        ref = src.resource_field_ref
        rpath = join(path, "resourceFieldRef")
        _enum(errs, join(rpath, "resource"), ref.resource, ENV_RESOURCE_FIELDS)
        if ref.divisor:
            _validate_quantity(ref.divisor, join(rpath, "divisor"), errs)


def _validate_field_ref(ref: pb.ObjectFieldSelector, path, errs) -> None:
    if ref.api_version and ref.api_version != "v1":
        _enum(errs, join(path, "apiVersion"), ref.api_version, ("v1",))
    fp = ref.field_path
    if not fp:
        _required(errs, join(path, "fieldPath"))
        return
    subscript = _LABEL_SUBSCRIPT.fullmatch(fp)
    if subscript:
        _check(errs, join(path, "fieldPath"), fp, validate_label_key(subscript.group(2)))
    elif fp not in ENV_FIELD_PATHS:
        errs.append(FieldError(join(path, "fieldPath"), f"Unsupported value: {_show(fp)}: supported values: "
                               + ", ".join(_show(p) for p in ENV_FIELD_PATHS)
                               + ", \"metadata.labels['<KEY>']\", \"metadata.annotations['<KEY>']\""))


def _validate_env_from(env_from, path, errs) -> None:
    for i, src in enumerate(env_from):
        spath = f"{path}[{i}]"
        present = [j for f, j in (("config_map_ref", "configMapRef"), ("secret_ref", "secretRef"))
                   if src.HasField(f)]
        if len(present) != 1:
            _invalid(errs, spath, ", ".join(present) or "none",
                     "must specify exactly one of: configMapRef or secretRef")
        for json_name in present:
            ref = src.config_map_ref if json_name == "configMapRef" else src.secret_ref
            if not ref.name:
                _required(errs, join(spath, f"{json_name}.name"))
        if src.prefix:
            _check(errs, join(spath, "prefix"), src.prefix, validate_env_name(src.prefix))


def _validate_quantity(value: str, path, errs):
    """The parsed, non-negative quantity at path, or None after recording an error."""
    try:
        q = parse_quantity(value)
    except ValueError as e:
        errs.append(FieldError(path, str(e)))
        return None
    if q < 0:
        _invalid(errs, path, value, "must be greater than or equal to 0")
        return None
    return q


def _validate_resources(res: pb.ResourceRequirements, path, errs) -> None:
    parsed = {}
    for which in ("limits", "requests"):
        values = getattr(res, which)
        parsed[which] = {}
        for name, value in sorted(values.items()):
            rpath = f"{path}.{which}[{name}]"
            if name not in STANDARD_RESOURCES:
                if "/" not in name or validate_label_key(name):
                    _invalid(errs, rpath, name, "must be a standard resource (cpu, memory, ephemeral-storage) "
                             "or a fully-qualified name containing '/' (e.g. example.com/gpu)")
                    continue
            q = _validate_quantity(value, rpath, errs)
            if q is not None:
                parsed[which][name] = q
    for name, request in sorted(parsed["requests"].items()):
        limit = parsed["limits"].get(name)
        if limit is not None and request > limit:
            _invalid(errs, f"{path}.requests[{name}]", res.requests[name],
                     f"must be less than or equal to {name} limit of {res.limits[name]}")


def _validate_volume_mounts(mounts, path, volumes: set, errs) -> None:
    seen = set()
    for i, m in enumerate(mounts):
        mpath = f"{path}[{i}]"
        if not m.name:
            _required(errs, join(mpath, "name"))
        elif m.name not in volumes:
            errs.append(FieldError(join(mpath, "name"), f"Not found: {_show(m.name)}: "
                                   "no volume of that name in the pod's `volumes`"))
        if not m.mount_path:
            _required(errs, join(mpath, "mountPath"))
        elif not m.mount_path.startswith("/"):
            _invalid(errs, join(mpath, "mountPath"), m.mount_path, "must be an absolute path")
        elif m.mount_path in seen:
            _invalid(errs, join(mpath, "mountPath"), m.mount_path, "must be unique")
        seen.add(m.mount_path)
        if m.sub_path:
            _validate_relative_path(errs, join(mpath, "subPath"), m.sub_path)


def _validate_handler(h, path, errs) -> None:
    """A probe or lifecycle handler: exactly one of exec, httpGet, tcpSocket, each complete."""
    present = [j for f, j in (("exec", "exec"), ("http_get", "httpGet"), ("tcp_socket", "tcpSocket"))
               if h.HasField(f)]
    if not present:
        _required(errs, path, "must specify a handler type: one of exec, httpGet or tcpSocket")
        return
    if len(present) > 1:
        _forbidden(errs, join(path, present[1]), "may not specify more than 1 handler type "
                   f"(found {', '.join(present)})")
    if h.HasField("exec") and not h.exec.command:
        _required(errs, join(path, "exec.command"))
    if h.HasField("http_get"):
        _validate_port_ref(h.http_get.port, join(path, "httpGet.port"), errs)
        _enum(errs, join(path, "httpGet.scheme"), h.http_get.scheme, ("HTTP", "HTTPS"), allow_empty=True)
        for i, header in enumerate(h.http_get.http_headers):
            if not header.name:
                _required(errs, f"{path}.httpGet.httpHeaders[{i}].name")
    if h.HasField("tcp_socket"):
        _validate_port_ref(h.tcp_socket.port, join(path, "tcpSocket.port"), errs)


def _validate_port_ref(port: pb.IntOrString, path, errs) -> None:
    """A port given as a number 1..65535 or as a container port name."""
    if port.HasField("str_val"):
        _check(errs, path, port.str_val, validate_port_name(port.str_val))
    elif port.HasField("int_val"):
        _in_range(errs, path, port.int_val, 1, 65535)
    else:
        _required(errs, path, "a port number or a port name")


def _validate_probe(p: pb.Probe, path, errs, which: str) -> None:
    _validate_handler(p, path, errs)
    for field, json_name in (("initial_delay_seconds", "initialDelaySeconds"),
                             ("timeout_seconds", "timeoutSeconds"), ("period_seconds", "periodSeconds"),
                             ("success_threshold", "successThreshold"),
                             ("failure_threshold", "failureThreshold")):
        _non_negative(errs, join(path, json_name), getattr(p, field))
    if which in ("livenessProbe", "startupProbe") and p.success_threshold not in (0, 1):
        _invalid(errs, join(path, "successThreshold"), p.success_threshold,
                 f"must be 1 for a {which}")
    if p.HasField("termination_grace_period_seconds"):
        if which == "readinessProbe":
            _forbidden(errs, join(path, "terminationGracePeriodSeconds"), "may not be set for readiness probes")
        elif p.termination_grace_period_seconds <= 0:
            _invalid(errs, join(path, "terminationGracePeriodSeconds"), p.termination_grace_period_seconds,
                     "must be greater than 0")


def _validate_tolerations(tolerations, path, errs) -> None:
    for i, t in enumerate(tolerations):
        tpath = f"{path}[{i}]"
        if t.key:
            _check(errs, join(tpath, "key"), t.key, validate_label_key(t.key))
        _enum(errs, join(tpath, "operator"), t.operator, TOLERATION_OPERATORS, allow_empty=True)
        operator = t.operator or "Equal"
        if not t.key and operator != "Exists":
            _invalid(errs, join(tpath, "operator"), t.operator,
                     "operator must be Exists when `key` is empty, which means \"match all values and all keys\"")
        if operator == "Exists" and t.value:
            _invalid(errs, join(tpath, "value"), t.value, "value must be empty when `operator` is 'Exists'")
        if operator == "Equal" and t.value:
            _check(errs, join(tpath, "value"), t.value, validate_label_value(t.value))
        _enum(errs, join(tpath, "effect"), t.effect, TAINT_EFFECTS, allow_empty=True)
        if t.HasField("toleration_seconds") and t.effect != "NoExecute":
            _invalid(errs, join(tpath, "effect"), t.effect,
                     "effect must be 'NoExecute' when `tolerationSeconds` is set")


def _validate_affinity(a: pb.Affinity, path, errs) -> None:
    if a.HasField("node_affinity"):
        na = a.node_affinity
        napath = join(path, "nodeAffinity")
        req_name = "requiredDuringSchedulingIgnoredDuringExecution"
        pref_name = "preferredDuringSchedulingIgnoredDuringExecution"
        if na.HasField("required_during_scheduling_ignored_during_execution"):
            terms = na.required_during_scheduling_ignored_during_execution.node_selector_terms
            tpath = f"{napath}.{req_name}.nodeSelectorTerms"
            if not terms:
                _required(errs, tpath, "must have at least one node selector term")
            for i, term in enumerate(terms):
                _validate_node_selector_term(term, f"{tpath}[{i}]", errs)
        for i, pref in enumerate(na.preferred_during_scheduling_ignored_during_execution):
            ppath = f"{napath}.{pref_name}[{i}]"
            _in_range(errs, join(ppath, "weight"), pref.weight, 1, 100)
            _validate_node_selector_term(pref.preference, join(ppath, "preference"), errs)
    for field, json_name in (("pod_affinity", "podAffinity"), ("pod_anti_affinity", "podAntiAffinity")):
        if a.HasField(field):
            _validate_pod_affinity(getattr(a, field), join(path, json_name), errs)


def _validate_node_selector_term(term: pb.NodeSelectorTerm, path, errs) -> None:
    for i, req in enumerate(term.match_expressions):
        _validate_node_selector_requirement(req, f"{path}.matchExpressions[{i}]", errs)
    for i, req in enumerate(term.match_fields):
        rpath = f"{path}.matchFields[{i}]"
        if req.key != "metadata.name":
            errs.append(FieldError(join(rpath, "key"), f"Unsupported value: {_show(req.key)}: "
                                   "supported values: \"metadata.name\""))
        _enum(errs, join(rpath, "operator"), req.operator, ("In", "NotIn"))
        if len(req.values) != 1:
            _required(errs, join(rpath, "values"), "must have exactly one value (a node name)")


def _validate_node_selector_requirement(req: pb.NodeSelectorRequirement, path, errs) -> None:
    if not req.key:
        _required(errs, join(path, "key"))
    else:
        _check(errs, join(path, "key"), req.key, validate_label_key(req.key))
    _enum(errs, join(path, "operator"), req.operator, NODE_SELECTOR_OPERATORS)
    vpath = join(path, "values")
    if req.operator in ("In", "NotIn") and not req.values:
        _required(errs, vpath, f"must be specified when `operator` is '{req.operator}'")
    elif req.operator in ("Exists", "DoesNotExist") and req.values:
        _forbidden(errs, vpath, f"may not be specified when `operator` is '{req.operator}'")
    elif req.operator in ("Gt", "Lt"):
        if len(req.values) != 1:
            _required(errs, vpath, f"must be specified as a single integer when `operator` is '{req.operator}'")
        elif not re.fullmatch(r"-?[0-9]+", req.values[0]):
            _invalid(errs, f"{vpath}[0]", req.values[0], "must be an integer")


def _validate_pod_affinity(pa: pb.PodAffinity, path, errs) -> None:
    for i, term in enumerate(pa.required_during_scheduling_ignored_during_execution):
        _validate_pod_affinity_term(term, f"{path}.requiredDuringSchedulingIgnoredDuringExecution[{i}]", errs)
    for i, w in enumerate(pa.preferred_during_scheduling_ignored_during_execution):
        wpath = f"{path}.preferredDuringSchedulingIgnoredDuringExecution[{i}]"
        _in_range(errs, join(wpath, "weight"), w.weight, 1, 100)
        _validate_pod_affinity_term(w.pod_affinity_term, join(wpath, "podAffinityTerm"), errs)


def _validate_pod_affinity_term(term: pb.PodAffinityTerm, path, errs) -> None:
    _validate_label_selector(term.label_selector, join(path, "labelSelector"), errs)
    if not term.topology_key:
        _required(errs, join(path, "topologyKey"), "e.g. kubernetes.io/hostname")
    else:
        _check(errs, join(path, "topologyKey"), term.topology_key, validate_label_key(term.topology_key))
    for i, ns in enumerate(term.namespaces):
        _check(errs, f"{path}.namespaces[{i}]", ns, validate_dns1123_label(ns))


# ---------------------------------------------------------------- kinds

def _validate_pod(pod: pb.Pod, errs) -> None:
    _validate_pod_spec(pod.spec, "spec", errs)


def _validate_workload(spec, kind_name: str, errs) -> None:
    """What ReplicaSet and Deployment specs share: replicas, selector, template."""
    if spec.HasField("replicas"):
        _non_negative(errs, "spec.replicas", spec.replicas)
    _non_negative(errs, "spec.minReadySeconds", spec.min_ready_seconds)
    sel = spec.selector
    template_labels = dict(spec.template.metadata.labels)
    _validate_template_meta(spec.template.metadata, "spec.template.metadata", errs)
    if not sel.match_labels and not sel.match_expressions:
        _required(errs, "spec.selector", f"a {kind_name} needs a non-empty selector that matches "
                  "spec.template.metadata.labels (e.g. matchLabels: {app: web})")
    else:
        before = len(errs)
        _validate_label_selector(sel, "spec.selector", errs)
        if len(errs) == before:
            selector = selectors.from_label_selector(sel)
            if not selector.matches(template_labels):
                shown = ",".join(f"{k}={v}" for k, v in sorted(template_labels.items()))
                _invalid(errs, "spec.selector", str(selector),
                         f"`selector` does not match template `labels` ({shown or 'none'})")
    tspec = spec.template.spec
    _validate_pod_spec(tspec, "spec.template.spec", errs)
    if tspec.restart_policy and tspec.restart_policy != "Always":
        errs.append(FieldError("spec.template.spec.restartPolicy",
                               f"Unsupported value: {_show(tspec.restart_policy)}: supported values: \"Always\""))
    if tspec.HasField("active_deadline_seconds"):
        _forbidden(errs, "spec.template.spec.activeDeadlineSeconds",
                   f"activeDeadlineSeconds in a {kind_name}'s template is not supported")


def _validate_replica_set(rs: pb.ReplicaSet, errs) -> None:
    _validate_workload(rs.spec, "ReplicaSet", errs)


def _validate_deployment(d: pb.Deployment, errs) -> None:
    spec = d.spec
    _validate_workload(spec, "Deployment", errs)
    _validate_strategy(spec.strategy, "spec.strategy", errs)
    if spec.HasField("revision_history_limit"):
        _non_negative(errs, "spec.revisionHistoryLimit", spec.revision_history_limit)
    if spec.HasField("progress_deadline_seconds"):
        if spec.progress_deadline_seconds <= 0:
            _invalid(errs, "spec.progressDeadlineSeconds", spec.progress_deadline_seconds,
                     "must be greater than 0")
        elif spec.progress_deadline_seconds <= spec.min_ready_seconds:
            _invalid(errs, "spec.progressDeadlineSeconds", spec.progress_deadline_seconds,
                     "must be greater than minReadySeconds")


def _validate_strategy(st: pb.DeploymentStrategy, path, errs) -> None:
    _enum(errs, join(path, "type"), st.type, STRATEGY_TYPES)
    rpath = join(path, "rollingUpdate")
    if st.type == "Recreate" and st.HasField("rolling_update"):
        _forbidden(errs, rpath, "may not be specified when strategy `type` is 'Recreate'")
        return
    if st.type != "RollingUpdate":
        return
    ru = st.rolling_update
    unavailable = _int_or_percent(ru.max_unavailable, join(rpath, "maxUnavailable"), errs)
    surge = _int_or_percent(ru.max_surge, join(rpath, "maxSurge"), errs)
    if unavailable is not None and unavailable[1] and unavailable[0] > 100:
        _invalid(errs, join(rpath, "maxUnavailable"), ru.max_unavailable.str_val, "must not be greater than 100%")
    if unavailable is not None and surge is not None and unavailable[0] == 0 and surge[0] == 0:
        _invalid(errs, join(rpath, "maxUnavailable"), _int_or_string_value(ru.max_unavailable),
                 "may not be 0 when `maxSurge` is 0")


def _int_or_percent(v: pb.IntOrString, path, errs):
    """(number, is_percent) for an int >= 0 or an "N%" string; None if unset or invalid (error recorded)."""
    if v.HasField("int_val"):
        if v.int_val < 0:
            _invalid(errs, path, v.int_val, "must be greater than or equal to 0")
            return None
        return v.int_val, False
    if v.HasField("str_val"):
        match = _PERCENT.fullmatch(v.str_val)
        if not match:
            _invalid(errs, path, v.str_val, "must be an integer or a percentage (e.g. 1 or '25%')")
            return None
        return int(match.group(1)), True
    return None


def externally_accessible(spec) -> bool:
    """Reachable from outside the cluster: a node port, a LoadBalancer, or externalIPs
    (where externalTrafficPolicy means something)."""
    return spec.type in ("NodePort", "LoadBalancer") or bool(spec.external_ips)


def _validate_service(svc: pb.Service, errs) -> None:
    spec = svc.spec
    _enum(errs, "spec.type", spec.type, SERVICE_TYPES)
    _enum(errs, "spec.sessionAffinity", spec.session_affinity, SESSION_AFFINITIES)
    headless = spec.cluster_ip == "None"
    external = spec.type == "ExternalName"
    if not spec.ports and not external and not headless:
        _required(errs, "spec.ports", "a service needs at least one port (unless it is headless, "
                  "clusterIP: None, or of type ExternalName)")
    _validate_service_ports(spec, errs)
    _validate_cluster_ip(spec, errs)
    if external:
        if not spec.external_name:
            _required(errs, "spec.externalName", "type ExternalName needs a DNS name (e.g. db.example.com)")
        else:
            _check(errs, "spec.externalName", spec.external_name,
                   validate_dns1123_subdomain(spec.external_name.rstrip(".")))
    for i, ip in enumerate(spec.external_ips):
        _check(errs, f"spec.externalIPs[{i}]", ip, validate_ipv4(ip))
    _enum(errs, "spec.externalTrafficPolicy", spec.external_traffic_policy, TRAFFIC_POLICIES, allow_empty=True)
    if spec.external_traffic_policy and not externally_accessible(spec):
        _invalid(errs, "spec.externalTrafficPolicy", spec.external_traffic_policy,
                 "may only be set for externally-accessible services (type NodePort or LoadBalancer, "
                 "or with externalIPs)")
    _enum(errs, "spec.internalTrafficPolicy", spec.internal_traffic_policy, TRAFFIC_POLICIES, allow_empty=True)
    if spec.HasField("session_affinity_config"):
        if spec.session_affinity != "ClientIP":
            _forbidden(errs, "spec.sessionAffinityConfig", "must not be set when `sessionAffinity` is "
                       f"{_show(spec.session_affinity)}")
        client_ip = spec.session_affinity_config.client_ip
        if client_ip.HasField("timeout_seconds"):
            _in_range(errs, "spec.sessionAffinityConfig.clientIP.timeoutSeconds", client_ip.timeout_seconds,
                      1, 86400)
    _validate_labels(spec.selector, "spec.selector", errs)


def _validate_cluster_ip(spec: pb.ServiceSpec, errs) -> None:
    ip = spec.cluster_ip
    if spec.type == "ExternalName":
        if ip:
            _forbidden(errs, "spec.clusterIP", "may not be set for ExternalName services")
        return
    if ip == "None":
        if spec.type in ("NodePort", "LoadBalancer"):
            _invalid(errs, "spec.clusterIP", ip, f"may not be set to 'None' for {spec.type} services")
    elif ip and validate_ipv4(ip):
        _invalid(errs, "spec.clusterIP", ip, "must be empty, 'None', or a valid IPv4 address (e.g. 10.96.0.10)")


def _validate_service_ports(spec: pb.ServiceSpec, errs) -> None:
    names = set()
    seen = set()
    node_ports = set()
    for i, p in enumerate(spec.ports):
        ppath = f"spec.ports[{i}]"
        if p.name:
            _check(errs, join(ppath, "name"), p.name, validate_dns1123_label(p.name))
            if p.name in names:
                _duplicate(errs, join(ppath, "name"), p.name)
            names.add(p.name)
        elif len(spec.ports) > 1:
            _required(errs, join(ppath, "name"), "every port needs a name when a service has more than one port")
        if p.port == 0:
            _required(errs, join(ppath, "port"))
        else:
            _in_range(errs, join(ppath, "port"), p.port, 1, 65535)
        _enum(errs, join(ppath, "protocol"), p.protocol, PROTOCOLS, allow_empty=True)
        if _int_or_string_set(p.target_port):
            _validate_port_ref(p.target_port, join(ppath, "targetPort"), errs)
        key = (p.port, p.protocol or "TCP")
        if key in seen:
            _duplicate(errs, ppath, f"{p.port}/{key[1]}", "port and protocol must be unique")
        seen.add(key)
        if p.node_port:
            _validate_node_port(p, ppath, spec.type, node_ports, errs)


def _validate_node_port(p: pb.ServicePort, path, service_type: str, seen: set, errs) -> None:
    npath = join(path, "nodePort")
    if service_type not in ("NodePort", "LoadBalancer"):
        _forbidden(errs, npath, f"may not be used when `type` is {_show(service_type)}")
        return
    _in_range(errs, npath, p.node_port, *NODE_PORT_RANGE)
    key = (p.node_port, p.protocol or "TCP")
    if key in seen:
        _duplicate(errs, npath, p.node_port)
    seen.add(key)


def _validate_data_keys(keys, path, errs) -> None:
    for key in sorted(keys):
        _check(errs, f"{path}[{key}]", key, validate_config_key(key))


def _validate_config_map(cm: pb.ConfigMap, errs) -> None:
    _validate_data_keys(cm.data.keys(), "data", errs)
    _validate_data_keys(cm.binary_data.keys(), "binaryData", errs)
    for key in sorted(set(cm.data) & set(cm.binary_data)):
        _duplicate(errs, f"binaryData[{key}]", key, "the key is also present in `data`")
    total = sum(len(k.encode()) + len(v.encode()) for k, v in cm.data.items())
    total += sum(len(k.encode()) + len(v) for k, v in cm.binary_data.items())
    if total > MAX_DATA_BYTES:
        errs.append(FieldError("data", f"Too long: data and binaryData total {total} bytes, "
                                       f"must have at most {MAX_DATA_BYTES} bytes (1 MiB)"))


def _validate_secret(secret: pb.Secret, errs) -> None:
    if not secret.type:
        _required(errs, "type")
    _validate_data_keys(secret.data.keys(), "data", errs)
    _validate_data_keys(secret.string_data.keys(), "stringData", errs)
    total = sum(len(k.encode()) + len(v) for k, v in secret.data.items())
    total += sum(len(k.encode()) + len(v.encode()) for k, v in secret.string_data.items())
    if total > MAX_DATA_BYTES:
        errs.append(FieldError("data", f"Too long: data totals {total} bytes, "
                                       f"must have at most {MAX_DATA_BYTES} bytes (1 MiB)"))
    required = {"kubernetes.io/tls": ("tls.crt", "tls.key"),
                "kubernetes.io/dockerconfigjson": (".dockerconfigjson",)}.get(secret.type, ())
    for key in required:
        if key not in secret.data and key not in secret.string_data:
            _required(errs, f"data[{key}]", f"a secret of type {secret.type} needs this key")


def _validate_node(node: pb.Node, errs) -> None:
    seen = set()
    for i, t in enumerate(node.spec.taints):
        tpath = f"spec.taints[{i}]"
        if not t.key:
            _required(errs, join(tpath, "key"))
        else:
            _check(errs, join(tpath, "key"), t.key, validate_label_key(t.key))
        _check(errs, join(tpath, "value"), t.value, validate_label_value(t.value))
        _enum(errs, join(tpath, "effect"), t.effect, TAINT_EFFECTS)
        if (t.key, t.effect) in seen:
            _duplicate(errs, tpath, f"{t.key}:{t.effect}", "taints must be unique by key and effect")
        seen.add((t.key, t.effect))
    for cidr, cpath in [(node.spec.pod_cidr, "spec.podCIDR")] + [
            (c, f"spec.podCIDRs[{i}]") for i, c in enumerate(node.spec.pod_cidrs)]:
        if cidr:
            try:
                ipaddress.ip_network(cidr)
            except ValueError:
                _invalid(errs, cpath, cidr, "must be a valid CIDR (e.g. 10.244.1.0/24)")
    for which in ("capacity", "allocatable"):
        for name, value in sorted(getattr(node.status, which).items()):
            _validate_quantity(value, f"status.{which}[{name}]", errs)


def _validate_namespace(ns: pb.Namespace, errs) -> None:
    _enum(errs, "status.phase", ns.status.phase, ("Active", "Terminating"), allow_empty=True)


def _validate_endpoints(ep: pb.Endpoints, errs) -> None:
    for i, subset in enumerate(ep.subsets):
        spath = f"subsets[{i}]"
        for field, json_name in (("addresses", "addresses"), ("not_ready_addresses", "notReadyAddresses")):
            for j, addr in enumerate(getattr(subset, field)):
                apath = f"{spath}.{json_name}[{j}].ip"
                if not addr.ip:
                    _required(errs, apath)
                else:
                    _check(errs, apath, addr.ip, validate_ipv4(addr.ip))
        names = set()
        for j, port in enumerate(subset.ports):
            ppath = f"{spath}.ports[{j}]"
            _in_range(errs, join(ppath, "port"), port.port, 1, 65535)
            _enum(errs, join(ppath, "protocol"), port.protocol, PROTOCOLS, allow_empty=True)
            if port.name:
                _check(errs, join(ppath, "name"), port.name, validate_dns1123_label(port.name))
                if port.name in names:
                    _duplicate(errs, join(ppath, "name"), port.name)
                names.add(port.name)
            elif len(subset.ports) > 1:
                _required(errs, join(ppath, "name"), "every port needs a name when there is more than one")


def _validate_event(ev: pb.Event, errs) -> None:
    if not ev.involved_object.kind:
        _required(errs, "involvedObject.kind")
    if not ev.involved_object.name:
        _required(errs, "involvedObject.name")
    _enum(errs, "type", ev.type, ("Normal", "Warning"), allow_empty=True)


_BY_KIND = {
    "Pod": _validate_pod,
    "ReplicaSet": _validate_replica_set,
    "Deployment": _validate_deployment,
    "Service": _validate_service,
    "ConfigMap": _validate_config_map,
    "Secret": _validate_secret,
    "Node": _validate_node,
    "Namespace": _validate_namespace,
    "Endpoints": _validate_endpoints,
    "Event": _validate_event,
}


def validate(kind, msg) -> list[FieldError]:
    """Every semantic problem of msg (a defaulted object of `kind`); [] when it is valid.

    Used for creates and for the new object of updates (together with
    validate_update, which only checks what may not change).
    """
    errs: list[FieldError] = []
    _validate_meta(msg.metadata, kind, errs)
    handler = _BY_KIND.get(kind.name)
    if handler is not None:
        handler(msg, errs)
    return errs


# ---------------------------------------------------------------- updates

def _immutable(errs, path, value) -> None:
    _invalid(errs, path, value, "field is immutable")


def _update_workload(new, old, errs) -> None:
    if new.spec.selector != old.spec.selector:
        _immutable(errs, "spec.selector", str(_selector_text(new.spec.selector)))


def _selector_text(sel: pb.LabelSelector) -> str:
    try:
        return str(selectors.from_label_selector(sel))
    except ValueError:
        return "(invalid)"


def _update_service(new: pb.Service, old: pb.Service, errs) -> None:
    old_ip, new_ip = old.spec.cluster_ip, new.spec.cluster_ip
    to_or_from_external = (old.spec.type == "ExternalName") != (new.spec.type == "ExternalName")
    if old_ip and new_ip != old_ip and not to_or_from_external:
        _immutable(errs, "spec.clusterIP", new_ip)


POD_UPDATE_FORBIDDEN = ("pod updates may not change fields other than `spec.containers[*].image`, "
                        "`spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, "
                        "`spec.tolerations` (only additions to existing tolerations) or `spec.nodeName` "
                        "(only from empty, when binding)")


def _update_pod(new: pb.Pod, old: pb.Pod, errs) -> None:
    """Only images, activeDeadlineSeconds, toleration additions and binding may change."""
    masked = pb.PodSpec()
    masked.CopyFrom(new.spec)
    for group, old_group in ((masked.containers, old.spec.containers),
                             (masked.init_containers, old.spec.init_containers)):
        for c, old_c in zip(group, old_group):
            c.image = old_c.image
    _update_active_deadline(new.spec, old.spec, errs)
    if old.spec.HasField("active_deadline_seconds"):
        masked.active_deadline_seconds = old.spec.active_deadline_seconds
    else:
        masked.ClearField("active_deadline_seconds")
    new_tolerations = list(new.spec.tolerations)
    if all(t in new_tolerations for t in old.spec.tolerations):
        del masked.tolerations[:]
        masked.tolerations.extend(old.spec.tolerations)
    if not old.spec.node_name:
        masked.node_name = ""
    if masked != old.spec:
        changed = ", ".join(_changed_fields(masked, old.spec, "spec"))
        _forbidden(errs, "spec", f"{POD_UPDATE_FORBIDDEN} (changed: {changed})")


def _update_active_deadline(new: pb.PodSpec, old: pb.PodSpec, errs) -> None:
    """activeDeadlineSeconds may be added or lowered, never removed or raised."""
    path = "spec.activeDeadlineSeconds"
    if not old.HasField("active_deadline_seconds"):
        return
    if not new.HasField("active_deadline_seconds"):
        _forbidden(errs, path, "may not be removed once set")
    elif new.active_deadline_seconds > old.active_deadline_seconds:
        _invalid(errs, path, new.active_deadline_seconds,
                 f"must be less than or equal to the previous value {old.active_deadline_seconds}")


def _changed_fields(a, b, path) -> list[str]:
    """JSON paths of the fields that differ between two messages of one type (one level into lists)."""
    changed = []
    for field in a.DESCRIPTOR.fields:
        va, vb = getattr(a, field.name), getattr(b, field.name)
        if va == vb:
            continue
        fpath = join(path, field.json_name)
        is_message_list = (field.is_repeated and field.message_type is not None
                           and not field.message_type.GetOptions().map_entry)
        if is_message_list and len(va) == len(vb):
            for i, (x, y) in enumerate(zip(va, vb)):
                if x != y:
                    changed.extend(_changed_fields(x, y, f"{fpath}[{i}]"))
        else:
            changed.append(fpath)
    return changed


def _update_data_object(new, old, errs) -> None:
    """ConfigMaps and Secrets with immutable: true keep their data forever."""
    if not (old.HasField("immutable") and old.immutable):
        return
    if not (new.HasField("immutable") and new.immutable):
        _forbidden(errs, "immutable", "field is immutable when `immutable` is set")
    if dict(new.data) != dict(old.data):
        _forbidden(errs, "data", "field is immutable when `immutable` is set")
    if hasattr(new, "binary_data") and dict(new.binary_data) != dict(old.binary_data):
        _forbidden(errs, "binaryData", "field is immutable when `immutable` is set")


def _update_secret(new: pb.Secret, old: pb.Secret, errs) -> None:
    if new.type != old.type:
        _immutable(errs, "type", new.type)
    _update_data_object(new, old, errs)


_UPDATE_BY_KIND = {
    "Pod": _update_pod,
    "ReplicaSet": _update_workload,
    "Deployment": _update_workload,
    "Service": _update_service,
    "ConfigMap": _update_data_object,
    "Secret": _update_secret,
}


def validate_update(kind, new, old) -> list[FieldError]:
    """Problems with changing old into new: immutable fields only.

    Call validate(kind, new) as well; this function does not repeat its checks.
    Identity (name, namespace, uid) is the server's business and is not checked here.
    """
    errs: list[FieldError] = []
    handler = _UPDATE_BY_KIND.get(kind.name)
    if handler is not None:
        handler(new, old, errs)
    return errs
