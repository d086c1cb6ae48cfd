"""Event: what happened to an object, recorded by the component that saw it."""

from skiff.api import objects_pb2 as pb
from skiff.api.display import age, format_rows
from skiff.api.kinds.registry import Kind, register
from skiff.api.validation import enum, required


def _validate_event(ev: pb.Event, errs) -> None:
    if not ev.involved_object.kind:
        required(errs, "involvedObject.kind")
    if not ev.involved_object.name:
        required(errs, "involvedObject.name")
    enum(errs, "type", ev.type, ("Normal", "Warning"), allow_empty=True)


# ---------------------------------------------------------------- presentation

def event_order(e):
    """Oldest first; within one second (timestamps have second resolution), in store order."""
    return (e.last_timestamp or e.metadata.creation_timestamp, int(e.metadata.resource_version or 0))


def _object(e) -> str:
    obj = e.involved_object
    return f"{obj.kind.lower()}/{obj.name}"


def events_table(items, all_namespaces=False, headers=True, now=None) -> str:
    """kubectl's `get events`: LAST SEEN, TYPE, REASON, OBJECT, MESSAGE, oldest first."""
    items = sorted(items, key=event_order)
    head = (["NAMESPACE"] if all_namespaces else []) + ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    rows = [head] if headers else []
    for e in items:
        seen = age(e.last_timestamp or e.metadata.creation_timestamp, now)
        if e.count > 1:
            seen += f" (x{e.count})"
        row = ([e.metadata.namespace] if all_namespaces else [])
        row += [seen, e.type, e.reason, _object(e), e.message]
        rows.append(row)
    return format_rows(rows)


def _event_row(e):
    return [e.type, e.reason, _object(e), e.message], []


EVENT = register(Kind(
    "Event", "v1", "events", ("ev",), True, pb.Event, "event", False,
    validate=_validate_event,
    columns=("TYPE", "REASON", "OBJECT", "MESSAGE", "AGE"), row=_event_row,
    table=events_table,
))
