"""Field selectors (`spec.nodeName=node1,status.phase!=Running`), as Kubernetes has them.

Only the fields the API indexes conceptually: metadata.name, metadata.namespace,
spec.nodeName (pods), status.phase (pods). Unknown fields are an error.
"""

SUPPORTED = {
    "metadata.name": lambda o: o.metadata.name,
    "metadata.namespace": lambda o: o.metadata.namespace,
    "spec.nodeName": lambda o: o.spec.node_name,
    "status.phase": lambda o: o.status.phase,
}


class FieldSelector:
    def __init__(self, terms):
        self.terms = tuple(terms)  # (field, negate, value)

    def matches(self, obj) -> bool:
        for field, negate, value in self.terms:
            try:
                actual = SUPPORTED[field](obj)
            except AttributeError:
                return False
            if (actual == value) == negate:
                return False
        return True


def parse(text: str) -> FieldSelector | None:
    """None for an empty selector; ValueError naming the bad term otherwise."""
    if not text or not text.strip():
        return None
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
        if field not in SUPPORTED:
            raise ValueError(f"field {field!r} is not supported in field selectors "
                             f"(supported: {', '.join(sorted(SUPPORTED))})")
        terms.append((field, negate, value.strip()))
    return FieldSelector(terms)
