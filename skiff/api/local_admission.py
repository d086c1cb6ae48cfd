"""Admission a client can run by itself: what `--dry-run=client` checks.

The same pure functions the API server's admission runs, in the same order
(identity fields, then defaults, then validation), so an object that fails
here fails the same way on the server. What it cannot do, having no view of
the cluster: checks against stored objects (already exists, immutable fields
of an update, allocation of a clusterIP or nodePort, and any later admission
plugin that reads cluster state). Those run on the server; ask for them with
`--dry-run=server`.
"""

from skiff.api import defaults, validation
from skiff.api.errors import FieldError, ValidationError


def admit_locally(kind, msg):
    """Normalize, default and validate msg (a typed object of kind) in place and
    return it; raise ValidationError listing every problem, by field path."""
    if msg.api_version and msg.api_version != kind.api_version:
        raise ValidationError(FieldError(
            "apiVersion", f'{kind.name} is served as "{kind.api_version}", not "{msg.api_version}"'))
    if msg.kind and msg.kind != kind.name:
        raise ValidationError(FieldError("kind", f'expected "{kind.name}", got "{msg.kind}"'))
    msg.api_version, msg.kind = kind.api_version, kind.name
    if kind.namespaced:
        msg.metadata.namespace = msg.metadata.namespace or "default"
    else:
        msg.metadata.namespace = ""
    defaults.apply_defaults(kind, msg)
    errors = list(validation.validate(kind, msg))
    if errors:
        raise ValidationError(errors)
    return msg
