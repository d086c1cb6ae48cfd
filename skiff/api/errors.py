"""Validation errors that name the field they are about.

Every error a user can cause with a manifest is a FieldError with a path in
Kubernetes' notation (``spec.template.spec.containers[0].ports[0].containerPort``),
so the message says where to look. ValidationError carries one or more of them.
"""


class FieldError:
    __slots__ = ("path", "detail")

    def __init__(self, path: str, detail: str):
        self.path = path
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.path}: {self.detail}" if self.path else self.detail

    def __repr__(self) -> str:
        return f"FieldError({self.path!r}, {self.detail!r})"


class ValidationError(ValueError):
    """One or more FieldErrors; str() lists them one per line."""

    def __init__(self, errors):
        if isinstance(errors, FieldError):
            errors = [errors]
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


def join(path: str, field: str) -> str:
    return f"{path}.{field}" if path else field
