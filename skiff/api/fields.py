"""Field selectors (`spec.nodeName=node1,status.phase!=Running`), as Kubernetes has them.

Every kind supports metadata.name and metadata.namespace; a kind adds its own in
its registry record (Kind.field_selectors: a Pod's spec.nodeName and status.phase).
A field the kind does not support is an error, as in Kubernetes
(`field label not supported: spec.image`).
"""

COMMON = {
    "metadata.name": lambda o: o.metadata.name,
    "metadata.namespace": lambda o: o.metadata.namespace,
}


def supported(kind) -> dict:
    """Selector path -> fn(obj) -> str, for every field `kind` can be selected by."""
    return {**COMMON, **kind.field_selectors}


class FieldSelector:
    def __init__(self, terms):
        self.terms = tuple(terms)  # (getter, negate, value)

    def matches(self, obj) -> bool:
        for getter, negate, value in self.terms:
            try:
                actual = getter(obj)
            except AttributeError:
                return False
            if (actual == value) == negate:
                return False
        return True


def parse(text: str, kind) -> FieldSelector | None:
    """None for an empty selector; ValueError naming the bad term otherwise (a field
    `kind` does not support included)."""
    if not text or not text.strip():
        return None
    fields = supported(kind)
    terms = []
    for raw in text.split(","):
        term = raw.strip()
        if "!=" in term:
            field, value = term.split("!=", 1)
            negate = True
        elif "==" in term:
            field, value = term.split("==", 1)
            negate = False
        elif "=" in term:
            field, value = term.split("=", 1)
            negate = False
        else:
            raise ValueError(f"invalid field selector term {term!r}: expected field=value or field!=value")
        field = field.strip()
        if field not in fields:
            raise ValueError(f"field label not supported: {field} ({kind.resource} support: "
                             f"{', '.join(sorted(fields))})")
        terms.append((fields[field], negate, value.strip()))
    return FieldSelector(terms)
