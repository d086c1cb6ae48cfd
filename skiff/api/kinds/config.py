"""Configuration kinds: ConfigMap and Secret.

Both hold keyed data for pods (env, envFrom, volumes); with `immutable: true` the
data never changes again. A Secret's values are never printed by `describe`.
"""

import json

from skiff.api import objects_pb2 as pb
from skiff.api.errors import FieldError
from skiff.api.kinds.registry import Kind, StoreHooks, register
from skiff.api.validation import (
    MAX_DATA_BYTES, check, duplicate, forbidden, immutable, invalid, required, validate_config_key,
)


# ---------------------------------------------------------------- admission

def _validate_data_keys(keys, path, errs) -> None:
    for key in sorted(keys):
        check(errs, f"{path}[{key}]", key, validate_config_key(key))


def _validate_config_map(cm: pb.ConfigMap, errs) -> None:
    _validate_data_keys(cm.data.keys(), "data", errs)
    _validate_data_keys(cm.binary_data.keys(), "binaryData", errs)
    for key in sorted(set(cm.data) & set(cm.binary_data)):
        duplicate(errs, f"binaryData[{key}]", key, "the key is also present in `data`")
    total = sum(len(k.encode()) + len(v.encode()) for k, v in cm.data.items())
    total += sum(len(k.encode()) + len(v) for k, v in cm.binary_data.items())
    if total > MAX_DATA_BYTES:
        errs.append(FieldError("data", f"Too long: data and binaryData total {total} bytes, "
                                       f"must have at most {MAX_DATA_BYTES} bytes (1 MiB)"))


def _validate_secret(secret: pb.Secret, errs) -> None:
    if not secret.type:
        required(errs, "type")
    _validate_data_keys(secret.data.keys(), "data", errs)
    _validate_data_keys(secret.string_data.keys(), "stringData", errs)
    total = sum(len(k.encode()) + len(v) for k, v in secret.data.items())
    total += sum(len(k.encode()) + len(v.encode()) for k, v in secret.string_data.items())
    if total > MAX_DATA_BYTES:
        errs.append(FieldError("data", f"Too long: data totals {total} bytes, "
                                       f"must have at most {MAX_DATA_BYTES} bytes (1 MiB)"))
    needed = {"kubernetes.io/tls": ("tls.crt", "tls.key"),
              "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
              "kubernetes.io/dockercfg": (".dockercfg",)}.get(secret.type, ())
    for key in needed:
        if key not in secret.data and key not in secret.string_data:
            required(errs, f"data[{key}]", f"a secret of type {secret.type} needs this key")
    if secret.type in DOCKER_CONFIG_KEYS:
        _validate_docker_config(secret, DOCKER_CONFIG_KEYS[secret.type], errs)


# Registry credentials (imagePullSecrets): the key each type needs, holding a JSON object.
DOCKER_CONFIG_KEYS = {"kubernetes.io/dockerconfigjson": ".dockerconfigjson",
                      "kubernetes.io/dockercfg": ".dockercfg"}


def _validate_docker_config(secret: pb.Secret, key: str, errs) -> None:
    """Kubernetes checks only that the value is well-formed JSON of an object (and never
    shows it: the value in the message is redacted)."""
    if key not in secret.data and key not in secret.string_data:
        return   # reported as required
    raw = secret.data[key] if key in secret.data else secret.string_data[key].encode()
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        invalid(errs, f"data[{key}]", "<secret contents redacted>", str(exc))
        return
    if value is not None and not isinstance(value, dict):   # Go decodes null into a map, not a list
        go_type = {list: "array", str: "string", bool: "bool"}.get(type(value), "number")
        invalid(errs, f"data[{key}]", "<secret contents redacted>",
                f"json: cannot unmarshal {go_type} into Go value of type map[string]interface {{}}")


def _validate_data_update(new, old, errs) -> None:
    """ConfigMaps and Secrets with immutable: true keep their data forever."""
    if not (old.HasField("immutable") and old.immutable):
        return
    if not (new.HasField("immutable") and new.immutable):
        forbidden(errs, "immutable", "field is immutable when `immutable` is set")
    if dict(new.data) != dict(old.data):
        forbidden(errs, "data", "field is immutable when `immutable` is set")
    if hasattr(new, "binary_data") and dict(new.binary_data) != dict(old.binary_data):
        forbidden(errs, "binaryData", "field is immutable when `immutable` is set")


def _validate_secret_update(new: pb.Secret, old: pb.Secret, errs) -> None:
    if new.type != old.type:
        immutable(errs, "type", new.type)
    _validate_data_update(new, old, errs)


def _default_secret(secret: pb.Secret) -> None:
    if not secret.type:
        secret.type = "Opaque"
    for key, value in secret.string_data.items():
        secret.data[key] = value.encode("utf-8")  # stringData wins over data, as in Kubernetes
    secret.string_data.clear()


def _reseal_secret(merged: pb.Secret, new: pb.Secret) -> None:
    """The store's re-encryption: the sealed data and annotations, nothing else."""
    merged.data.clear()
    merged.data.update(new.data)
    merged.metadata.annotations.clear()
    merged.metadata.annotations.update(new.metadata.annotations)


# ---------------------------------------------------------------- presentation

def _config_map_row(c):
    return [str(len(c.data) + len(c.binary_data))], []


def _secret_row(s):
    return [s.type or "Opaque", str(len(s.data))], []


def _describe_secret(s) -> str:
    """Like kubectl: sizes, never values."""
    if not s.data:
        return ""
    return "Data:\n" + "\n".join(f"  {k}:  {len(v)} bytes" for k, v in sorted(s.data.items()))


CONFIG_MAP = register(Kind(
    "ConfigMap", "v1", "configmaps", ("cm",), True, pb.ConfigMap, "config_map", False,
    validate=_validate_config_map, validate_update=_validate_data_update,
    columns=("DATA", "AGE"), row=_config_map_row,
))

SECRET = register(Kind(
    "Secret", "v1", "secrets", (), True, pb.Secret, "secret", False,
    defaults=_default_secret, validate=_validate_secret, validate_update=_validate_secret_update,
    columns=("TYPE", "DATA", "AGE"), row=_secret_row,
    describe=_describe_secret, describe_omits=("data",),
    store=StoreHooks(reseal=_reseal_secret),
))
