"""Strict conversion between YAML/JSON documents (dicts) and typed messages.

decode() is stricter than protobuf's own JSON parser, on purpose, to match the
Kubernetes API server: a string where a number belongs ("80") or a number
where a string belongs (env value: 1) is an error, as are unknown fields. Every
error names its field path. ``null`` means "not set", as in Kubernetes.

encode() is the inverse: camelCase keys, unset and empty fields omitted, fields
with explicit presence (``optional``) kept even when zero (``replicas: 0``).
IntOrString travels as a bare int or string in both directions.
"""

import base64
import binascii
import functools

from google.protobuf.descriptor import FieldDescriptor as FD

from skiff.api import unsupported
from skiff.api.errors import FieldError, ValidationError, join

_INT_RANGES = {
    FD.TYPE_INT32: (-(2**31), 2**31 - 1),
    FD.TYPE_INT64: (-(2**63), 2**63 - 1),
    FD.TYPE_UINT32: (0, 2**32 - 1),
    FD.TYPE_UINT64: (0, 2**64 - 1),
}
_INT_OR_STRING = "skiff.api.IntOrString"


@functools.cache
def quantity_fields() -> frozenset:
    """Quantity-valued string fields (proto full names): Kubernetes accepts bare numbers
    there (cpu: 1, memory: 134217728), so we do too, keeping them as their decimal text.
    The union of the kinds' Kind.quantity_fields, read on first use: kind modules may
    import this module, so it cannot import the registry at its own import."""
    from skiff.api import kinds
    return frozenset(f for k in kinds.KINDS for f in k.quantity_fields)


def _type_name(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def decode(message_cls, data, path: str = ""):
    """Build a message of message_cls from a dict; raise ValidationError listing every problem."""
    errors: list[FieldError] = []
    msg = message_cls()
    if not isinstance(data, dict):
        raise ValidationError(FieldError(path, f"expected an object, got {_type_name(data)}"))
    _fill(msg, data, path, errors)
    if errors:
        raise ValidationError(errors)
    return msg


def _fill(msg, data: dict, path: str, errors: list) -> None:
    fields = msg.DESCRIPTOR.fields_by_camelcase_name
    by_json = {f.json_name: f for f in msg.DESCRIPTOR.fields}
    for key, value in data.items():
        if not isinstance(key, str):
            errors.append(FieldError(path, f"field names must be strings, got {_type_name(key)} {key!r}"))
            continue
        field = by_json.get(key) or fields.get(key)
        if field is None or (field.json_name != key):
            detail = unsupported.not_in_api(msg.DESCRIPTOR.full_name, key) or "unknown field"
            errors.append(FieldError(join(path, key), detail))
            continue
        if value is None:
            continue
        fpath = join(path, key)
        if _is_map(field):
            _fill_map(msg, field, value, fpath, errors)
        elif field.is_repeated:
            if not isinstance(value, list):
                errors.append(FieldError(fpath, f"expected a list, got {_type_name(value)}"))
                continue
            container = getattr(msg, field.name)
            for i, item in enumerate(value):
                ipath = f"{fpath}[{i}]"
                if field.type == FD.TYPE_MESSAGE:
                    if item is None or not isinstance(item, dict) and field.message_type.full_name != _INT_OR_STRING:
                        errors.append(FieldError(ipath, f"expected an object, got {_type_name(item)}"))
                        continue
                    sub = container.add()
                    _fill_message(sub, item, ipath, errors)
                else:
                    ok, converted = _scalar(field, item, ipath, errors)
                    if ok:
                        container.append(converted)
        elif field.type == FD.TYPE_MESSAGE:
            _fill_message(getattr(msg, field.name), value, fpath, errors, parent=msg, field=field)
        else:
            if field.full_name in quantity_fields():
                value = _number_text(value)
            ok, converted = _scalar(field, value, fpath, errors)
            if ok:
                setattr(msg, field.name, converted)


def _fill_message(sub, value, path, errors, parent=None, field=None) -> None:
    if sub.DESCRIPTOR.full_name == _INT_OR_STRING:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            errors.append(FieldError(path, f"expected an integer or a string, got {_type_name(value)}"))
            return
        if isinstance(value, int):
            if not -(2**31) <= value < 2**31:
                errors.append(FieldError(path, f"integer {value} out of range"))
                return
            sub.int_val = value
        else:
            sub.str_val = value
        return
    if not isinstance(value, dict):
        errors.append(FieldError(path, f"expected an object, got {_type_name(value)}"))
        return
    if parent is not None:
        # An empty object ("emptyDir: {}") is meaningful: mark the field present.
        sub.SetInParent()
    _fill(sub, value, path, errors)


def _fill_map(msg, field, value, path, errors) -> None:
    if not isinstance(value, dict):
        errors.append(FieldError(path, f"expected an object, got {_type_name(value)}"))
        return
    target = getattr(msg, field.name)
    vfield = field.message_type.fields_by_name["value"]
    quantities = field.full_name in quantity_fields()
    for k, v in value.items():
        if not isinstance(k, str):
            errors.append(FieldError(path, f"keys must be strings, got {_type_name(k)} {k!r}"))
            continue
        kpath = f"{path}[{k}]"
        if vfield.type == FD.TYPE_MESSAGE:
            if not isinstance(v, dict):
                errors.append(FieldError(kpath, f"expected an object, got {_type_name(v)}"))
                continue
            _fill(target[k], v, kpath, errors)
        else:
            if v is None:
                errors.append(FieldError(kpath, f"expected {_scalar_name(vfield)}, got null"))
                continue
            if quantities:
                v = _number_text(v)
            ok, converted = _scalar(vfield, v, kpath, errors)
            if ok:
                target[k] = converted


def _number_text(value):
    """A bare YAML number in a quantity field -> its text (1 -> "1", 0.5 -> "0.5")."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _scalar_name(field) -> str:
    t = field.type
    if t == FD.TYPE_STRING:
        return "a string"
    if t == FD.TYPE_BOOL:
        return "a boolean"
    if t == FD.TYPE_BYTES:
        return "a base64 string"
    if t in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
        return "a number"
    return "an integer"


def _scalar(field, value, path, errors):
    t = field.type
    if t == FD.TYPE_STRING:
        if isinstance(value, str):
            return True, value
    elif t == FD.TYPE_BOOL:
        if isinstance(value, bool):
            return True, value
    elif t in _INT_RANGES:
        if isinstance(value, int) and not isinstance(value, bool):
            lo, hi = _INT_RANGES[t]
            if not lo <= value <= hi:
                errors.append(FieldError(path, f"integer {value} out of range"))
                return False, None
            return True, value
    elif t in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, float(value)
    elif t == FD.TYPE_BYTES:
        if isinstance(value, str):
            try:
                return True, base64.b64decode(value.encode("ascii"), validate=True)
            except (binascii.Error, UnicodeEncodeError, ValueError):
                errors.append(FieldError(path, "invalid base64 data"))
                return False, None
    hint = ""
    if t == FD.TYPE_STRING and isinstance(value, (bool, int, float)):
        shown = str(value).lower() if isinstance(value, bool) else str(value)
        hint = f' (quote it: "{shown}")'
    errors.append(FieldError(path, f"expected {_scalar_name(field)}, got {_type_name(value)}{hint}"))
    return False, None


def _is_map(field) -> bool:
    return (field.type == FD.TYPE_MESSAGE and field.is_repeated
            and field.message_type.GetOptions().map_entry)


def encode(msg) -> dict:
    """Message -> dict with Kubernetes' camelCase keys; unset fields omitted."""
    out = {}
    for field, value in msg.ListFields():
        key = field.json_name
        if _is_map(field):
            vfield = field.message_type.fields_by_name["value"]
            out[key] = {k: _encode_value(vfield, v) for k, v in sorted(value.items())}
        elif field.is_repeated:
            out[key] = [_encode_value(field, v) for v in value]
        else:
            out[key] = _encode_value(field, value)
    return out


def _encode_value(field, value):
    if field.type == FD.TYPE_MESSAGE:
        if value.DESCRIPTOR.full_name == _INT_OR_STRING:
            return value.str_val if value.HasField("str_val") else value.int_val
        return encode(value)
    if field.type == FD.TYPE_BYTES:
        return base64.b64encode(value).decode("ascii")
    return value
