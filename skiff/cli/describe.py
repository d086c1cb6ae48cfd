"""`skiff describe`: a readable page per object, like kubectl describe.

Generic for every kind: common metadata first, then the kind's own section where
its registry record has one (Kind.describe: a pod's containers, a Secret's data
sizes), then the rest of spec/status as indented YAML (minus Kind.describe_omits),
then the object's events.
"""

import yaml

from skiff.api import codec
from skiff.api.display import DESCRIBE_LABEL_WIDTH, age, format_rows, indent, kv, labels_text

_BODY_SECTIONS = ("spec", "status", "data", "subsets", "involvedObject")


def describe(kind, obj, events=()) -> str:
    meta = obj.metadata
    continued = "\n" + " " * DESCRIBE_LABEL_WIDTH
    rows = [("Name", meta.name)]
    if kind.namespaced:
        rows.append(("Namespace", meta.namespace))
    rows += [("Labels", labels_text(meta.labels).replace(",", continued)),
             ("Annotations", labels_text(meta.annotations).replace(",", continued)),
             ("CreationTimestamp", f"{meta.creation_timestamp} ({age(meta.creation_timestamp)} ago)"),
             ("UID", meta.uid), ("ResourceVersion", meta.resource_version)]
    if meta.generation:
        rows.append(("Generation", str(meta.generation)))
    if meta.owner_references:
        rows.append(("Controlled By", ", ".join(f"{o.kind}/{o.name}" for o in meta.owner_references)))
    parts = [kv(rows)]
    if kind.describe is not None:
        section = kind.describe(obj)
        if section:
            parts.append(section)
    body = codec.encode(obj)
    for section in _BODY_SECTIONS:
        if section in body and body[section] and section not in kind.describe_omits:
            title = section[0].upper() + section[1:]
            parts.append(f"{title}:\n" + indent(yaml.safe_dump(body[section], sort_keys=False).rstrip()))
    if events:
        rows = [["Type", "Reason", "Age", "From", "Message"]]
        for e in events:
            rows.append([e.type, e.reason, age(e.last_timestamp or e.metadata.creation_timestamp),
                         e.source.component, e.message])
        parts.append("Events:\n" + indent(format_rows(rows)))
    else:
        parts.append("Events:  <none>")
    return "\n".join(parts)
