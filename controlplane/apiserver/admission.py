"""Admission: what the API server does to an object before proposing it.

Order (fixed): normalize identity fields -> defaults -> validation -> size.
Nothing that fails here reaches the Raft log.
"""

from skiff.api import defaults, validation
from skiff.api.errors import FieldError, ValidationError
from skiff.api.kinds import Kind
from skiff.api.assigned import carry_over_assigned  # noqa: F401 - re-exported

MAX_OBJECT_BYTES = 1024 * 1024  # etcd's default request limit is 1.5 MiB; we stay under it

_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' generateName alphabet


def admit(kind: Kind, msg, *, old=None, creating: bool) -> None:
    """Normalize, default and validate msg in place; raise ValidationError."""
    meta = msg.metadata
    if msg.api_version and msg.api_version != kind.api_version:
        raise ValidationError(FieldError(
            "apiVersion", f'{kind.name} is served as "{kind.api_version}", not "{msg.api_version}"'))
    if msg.kind and msg.kind != kind.name:
        raise ValidationError(FieldError("kind", f'expected "{kind.name}", got "{msg.kind}"'))
    msg.api_version = kind.api_version
    msg.kind = kind.name
    if kind.namespaced:
        if not meta.namespace:
            meta.namespace = "default"
    else:
        meta.namespace = ""
    if creating and old is None:
        if meta.resource_version:
            raise ValidationError(FieldError(
                "metadata.resourceVersion", "must not be set on objects to be created"))
        meta.ClearField("uid")
        meta.ClearField("creation_timestamp")
        meta.ClearField("generation")
        meta.ClearField("deletion_timestamp")
    if old is not None:
        carry_over_assigned(kind, msg, old)
    defaults.apply_defaults(kind, msg)
    errors = list(validation.validate(kind, msg))
    if old is not None and not errors:
        errors.extend(validation.validate_update(kind, msg, old))
    if errors:
        raise ValidationError(errors)
    size = msg.ByteSize()
    if size > MAX_OBJECT_BYTES:
        raise ValidationError(FieldError(
            "", f"object is {size} bytes; the limit is {MAX_OBJECT_BYTES} bytes"))


def generated_name(prefix: str, random_bytes: bytes) -> str:
    """generateName + 5 characters, like Kubernetes (the caller supplies the randomness)."""
    return prefix + "".join(_ALPHABET[b % len(_ALPHABET)] for b in random_bytes[:5])
