"""Validating admission plugins: they judge the completed object and change nothing.

Each returns a list of FieldErrors; the chain gathers them so the user sees
every problem at once.
"""

from skiff.api import unsupported, validation
from skiff.api.errors import FieldError

from controlplane.apiserver.admission.chain import UPDATE, Attributes, ValidatingPlugin

MAX_OBJECT_BYTES = 1024 * 1024  # etcd's default request limit is 1.5 MiB; we stay under it


def validate(a: Attributes) -> list:
    """The kind's own rules: names, labels, ports, selectors, quantities, ..."""
    return list(validation.validate(a.kind, a.obj))


def validate_update(a: Attributes) -> list:
    """What may not change (immutable fields, a pod's spec beyond its images, ...).
    Only with an old object; the replicated apply checks again against the stored one."""
    if a.old is None:
        return []
    return list(validation.validate_update(a.kind, a.obj, a.old))


def not_supported_yet(a: Attributes) -> list:
    """Fields skiff decodes but does not honour yet (skiff/api/unsupported.py).

    On an update, a field the stored object already uses is let through, as
    Kubernetes does for fields behind a disabled feature gate: objects stored
    before a refusal existed stay writable. An update without an old object is a
    status write (its spec is the stored one) and is not checked."""
    errors = unsupported.check(a.kind, a.obj)
    if a.operation == UPDATE:
        if a.old is None:
            return []
        in_use = {(e.path, e.detail) for e in unsupported.check(a.kind, a.old)}
        errors = [e for e in errors if (e.path, e.detail) not in in_use]
    return errors


def object_size(a: Attributes) -> list:
    size = a.obj.ByteSize()
    if size > MAX_OBJECT_BYTES:
        return [FieldError("", f"object is {size} bytes; the limit is {MAX_OBJECT_BYTES} bytes")]
    return []


VALIDATION = ValidatingPlugin("Validation", validate)
VALIDATE_UPDATE = ValidatingPlugin("ValidateUpdate", validate_update, only_if_valid=True)
NOT_SUPPORTED_YET = ValidatingPlugin("NotSupportedYet", not_supported_yet)
OBJECT_SIZE = ValidatingPlugin("ObjectSize", object_size, only_if_valid=True)
