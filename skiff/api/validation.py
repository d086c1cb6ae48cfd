"""Semantic validation of API objects, with Kubernetes' rules: the shared checkers and the entry points.

Decoding (codec.py) guarantees types and known field names; validation checks
meaning: names, ports, selectors, quantities, mutually exclusive fields, and
which fields may change on update. Every problem is a FieldError whose path is
the full camelCase field path (``spec.template.spec.containers[0].ports[0].containerPort``;
map entries as ``[key]``), and validation collects all problems rather than
stopping at the first.

Where the rules live:
- this module: the checkers every kind shares (names, labels, annotations,
  ownerReferences, label selectors, quantities, ports, IPs, config keys, the
  error-message helpers) and the entry points validate() / validate_update(),
  which run the metadata checks and then the kind's own rules from its registry
  record (Kind.validate, Kind.validate_update);
- podspec_validation.py: the pod spec shared by Pods and the pod templates of
  ReplicaSets and Deployments;
- skiff/api/kinds/<family>.py: each kind's own rules.

Validation runs on defaulted objects: the order on every write is
decode -> defaults.apply_defaults -> validate (-> validate_update on updates).
Fields that defaulting always fills (restartPolicy, dnsPolicy, imagePullPolicy,
Service type, ...) are therefore required here.
"""

import ipaddress
import json
import re

from skiff.api import objects_pb2 as pb
from skiff.api.errors import FieldError, join
from skiff.api.intstr import PERCENT
from skiff.api.quantity import parse_quantity
from skiff.api.selectors import (
    validate_dns1123_label,
    validate_label_key,
    validate_label_value,
)

MAX_ANNOTATIONS_BYTES = 256 * 1024
MAX_DATA_BYTES = 1024 * 1024
MAX_CONFIG_KEY = 253

PROTOCOLS = ("TCP", "UDP", "SCTP")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
LABEL_SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")

_CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_PORT_NAME = re.compile(r"[-a-z0-9]+")


# ---------------------------------------------------------------- messages

def show(value) -> str:
    """A value as the user would write it in JSON ("abc", 80)."""
    return json.dumps(value) if isinstance(value, str) else str(value)


def required(errs, path, what: str = "") -> None:
    errs.append(FieldError(path, "Required value" + (f": {what}" if what else "")))


def invalid(errs, path, value, detail: str) -> None:
    errs.append(FieldError(path, f"Invalid value: {show(value)}: {detail}"))


def forbidden(errs, path, detail: str) -> None:
    errs.append(FieldError(path, f"Forbidden: {detail}"))


def duplicate(errs, path, value, detail: str = "") -> None:
    errs.append(FieldError(path, f"Duplicate value: {show(value)}" + (f" ({detail})" if detail else "")))


def enum(errs, path, value: str, allowed, allow_empty: bool = False) -> None:
    """value must be one of allowed (or empty, when allow_empty)."""
    if value == "" and allow_empty:
        return
    supported = ", ".join(show(a) for a in allowed)
    if value == "":
        required(errs, path, f"supported values: {supported}")
    elif value not in allowed:
        errs.append(FieldError(path, f"Unsupported value: {show(value)}: supported values: {supported}"))


def check(errs, path, value, problem) -> None:
    """Record problem (an error detail from a syntax check) as an invalid value."""
    if problem:
        invalid(errs, path, value, problem)


def non_negative(errs, path, value) -> None:
    if value < 0:
        invalid(errs, path, value, "must be greater than or equal to 0")


def in_range(errs, path, value, lo, hi) -> None:
    if not lo <= value <= hi:
        invalid(errs, path, value, f"must be between {lo} and {hi}, inclusive")


def immutable(errs, path, value) -> None:
    invalid(errs, path, value, "field is immutable")


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


def validate_ip(address: str) -> str | None:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return "must be a valid IP address (e.g. 10.0.0.1 or fd00::1)"
    return None


def validate_relative_path(errs, path, value: str) -> None:
    if value.startswith("/"):
        invalid(errs, path, value, "must be a relative path")
    if ".." in value.split("/"):
        invalid(errs, path, value, "must not contain '..'")


def int_or_string_set(v: pb.IntOrString) -> bool:
    return v.HasField("int_val") or v.HasField("str_val")


def int_or_string_value(v: pb.IntOrString):
    return v.str_val if v.HasField("str_val") else v.int_val


def int_or_percent(v: pb.IntOrString, path, errs):
    """(number, is_percent) for an int >= 0 or an "N%" string; None if unset or invalid
    (error recorded). Kubernetes' ValidatePositiveIntOrPercent."""
    if v.HasField("int_val"):
        if v.int_val < 0:
            invalid(errs, path, v.int_val, "must be greater than or equal to 0")
            return None
        return v.int_val, False
    if v.HasField("str_val"):
        match = PERCENT.fullmatch(v.str_val)
        if not match:
            invalid(errs, path, v.str_val, "must be an integer or a percentage (e.g. 1 or '25%')")
            return None
        return int(match.group(1)), True
    return None


def validate_port_ref(port: pb.IntOrString, path, errs) -> None:
    """A port given as a number 1..65535 or as a container port name."""
    if port.HasField("str_val"):
        check(errs, path, port.str_val, validate_port_name(port.str_val))
    elif port.HasField("int_val"):
        in_range(errs, path, port.int_val, 1, 65535)
    else:
        required(errs, path, "a port number or a port name")


def validate_quantity(value: str, path, errs):
    """The parsed, non-negative quantity at path, or None after recording an error."""
    try:
        q = parse_quantity(value)
    except ValueError as e:
        errs.append(FieldError(path, str(e)))
        return None
    if q < 0:
        invalid(errs, path, value, "must be greater than or equal to 0")
        return None
    return q


# ---------------------------------------------------------------- metadata

def validate_meta(meta: pb.ObjectMeta, kind, errs) -> None:
    """metadata of a top-level object: name (by the kind's name_rule: a DNS-1123 subdomain
    unless the kind says otherwise), namespace, labels, annotations, ownerReferences."""
    path = "metadata"
    name_rule = kind.name_rule
    if meta.name:
        check(errs, join(path, "name"), meta.name, name_rule(meta.name))
    elif meta.generate_name:
        gn = meta.generate_name
        masked = gn[:-1] + "a" if gn.endswith("-") else gn  # a trailing '-' is fine in a prefix
        check(errs, join(path, "generateName"), gn, name_rule(masked))
    else:
        required(errs, join(path, "name"), "name or generateName is required")
    if meta.namespace:
        if not kind.namespaced:
            forbidden(errs, join(path, "namespace"), f"not allowed: {kind.name} is not namespaced")
        else:
            check(errs, join(path, "namespace"), meta.namespace, validate_dns1123_label(meta.namespace))
    validate_labels(meta.labels, join(path, "labels"), errs)
    validate_annotations(meta.annotations, join(path, "annotations"), errs)
    _validate_owner_references(meta.owner_references, join(path, "ownerReferences"), errs)


def _validate_owner_references(refs, path, errs) -> None:
    controllers = 0
    for i, ref in enumerate(refs):
        rpath = f"{path}[{i}]"
        for field, json_name in (("api_version", "apiVersion"), ("kind", "kind"), ("name", "name"),
                                 ("uid", "uid")):
            if not getattr(ref, field):
                required(errs, join(rpath, json_name))
        controllers += ref.controller
    if controllers > 1:
        invalid(errs, path, controllers, "only one reference can have controller set to true")


def validate_labels(labels, path, errs) -> None:
    for key, value in sorted(labels.items()):
        kpath = f"{path}[{key}]"
        problem = validate_label_key(key)
        if problem:
            invalid(errs, kpath, key, f"invalid label key: {problem}")
        problem = validate_label_value(value)
        if problem:
            invalid(errs, kpath, value, f"invalid label value: {problem}")


def validate_annotations(annotations, path, errs) -> None:
    total = 0
    for key, value in sorted(annotations.items()):
        problem = validate_label_key(key.lower())
        if problem:
            invalid(errs, f"{path}[{key}]", key, f"invalid annotation key: {problem}")
        total += len(key.encode()) + len(value.encode())
    if total > MAX_ANNOTATIONS_BYTES:
        errs.append(FieldError(path, f"Too long: annotations total {total} bytes, "
                                     f"must have at most {MAX_ANNOTATIONS_BYTES} bytes"))


def validate_template_meta(meta: pb.ObjectMeta, path, errs) -> None:
    """metadata of a pod template: no name needed; labels and annotations must be valid."""
    validate_labels(meta.labels, join(path, "labels"), errs)
    validate_annotations(meta.annotations, join(path, "annotations"), errs)


def validate_label_selector(sel: pb.LabelSelector, path, errs) -> None:
    validate_labels(sel.match_labels, join(path, "matchLabels"), errs)
    for i, expr in enumerate(sel.match_expressions):
        epath = f"{path}.matchExpressions[{i}]"
        if not expr.key:
            required(errs, join(epath, "key"))
        else:
            check(errs, join(epath, "key"), expr.key, validate_label_key(expr.key))
        enum(errs, join(epath, "operator"), expr.operator, LABEL_SELECTOR_OPERATORS)
        if expr.operator in ("In", "NotIn") and not expr.values:
            required(errs, join(epath, "values"), f"must be specified when `operator` is '{expr.operator}'")
        if expr.operator in ("Exists", "DoesNotExist") and expr.values:
            forbidden(errs, join(epath, "values"), f"may not be specified when `operator` is '{expr.operator}'")
        for j, value in enumerate(expr.values):
            check(errs, f"{epath}.values[{j}]", value, validate_label_value(value))


def changed_fields(a, b, path) -> list[str]:
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
                    changed.extend(changed_fields(x, y, f"{fpath}[{i}]"))
        else:
            changed.append(fpath)
    return changed


# ---------------------------------------------------------------- entry points

def validate(kind, msg) -> list[FieldError]:
    """Every semantic problem of msg (a defaulted object of `kind`); [] when it is valid.

    Used for creates and for the new object of updates (together with
    validate_update, which only checks what may not change).
    """
    errs: list[FieldError] = []
    validate_meta(msg.metadata, kind, errs)
    if kind.validate is not None:
        kind.validate(msg, errs)
    return errs


def validate_update(kind, new, old) -> list[FieldError]:
    """Problems with changing old into new: immutable fields only.

    Call validate(kind, new) as well; this function does not repeat its checks.
    Identity (name, namespace, uid) is the server's business and is not checked here.
    """
    errs: list[FieldError] = []
    if kind.validate_update is not None:
        kind.validate_update(new, old, errs)
    return errs
