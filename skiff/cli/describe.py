"""`skiff describe`: a readable page per object, like kubectl describe.

Common metadata first, then a kind-specific summary where one helps, then the
rest of spec/status as indented YAML, then the object's events.
"""

import yaml

from skiff.api import codec
from skiff.cli.printers import _labels, age, format_rows, pod_status


def _kv(rows, width=20) -> str:
    return "\n".join(f"{(k + ':').ljust(width)}{v}" for k, v in rows)


def _indent(text: str, n: int = 2) -> str:
    return "\n".join((" " * n + line) if line else line for line in text.splitlines())


def _pod_summary(p):
    rows = [("Node", p.spec.node_name or "<none>"), ("Start Time", p.status.start_time or "<none>"),
            ("Status", pod_status(p)), ("IP", p.status.pod_ip or "<none>")]
    lines = [_kv(rows), "Containers:"]
    statuses = {cs.name: cs for cs in p.status.container_statuses}
    for c in p.spec.containers:
        cs = statuses.get(c.name)
        state = "Waiting"
        if cs is not None:
            state = ("Running" if cs.state.HasField("running") else
                     "Terminated" if cs.state.HasField("terminated") else
                     f"Waiting ({cs.state.waiting.reason})" if cs.state.waiting.reason else "Waiting")
        lines.append(f"  {c.name}:")
        lines.append(_indent(_kv([
            ("Image", c.image),
            ("Container ID", cs.container_id if cs else "<none>"),
            ("State", state),
            ("Ready", str(cs.ready) if cs else "False"),
            ("Restart Count", str(cs.restart_count) if cs else "0"),
        ]), 4))
    if p.status.conditions:
        lines.append("Conditions:")
        lines.append(_indent(_kv([(c.type, c.status) for c in p.status.conditions]), 2))
    return "\n".join(lines)


SUMMARIES = {"Pod": _pod_summary}


def describe(kind, obj, events=()) -> str:
    meta = obj.metadata
    rows = [("Name", meta.name)]
    if kind.namespaced:
        rows.append(("Namespace", meta.namespace))
    rows += [("Labels", _labels(meta.labels).replace(",", "\n" + " " * 20)),
             ("Annotations", _labels(meta.annotations).replace(",", "\n" + " " * 20)),
             ("CreationTimestamp", f"{meta.creation_timestamp} ({age(meta.creation_timestamp)} ago)"),
             ("UID", meta.uid), ("ResourceVersion", meta.resource_version)]
    if meta.generation:
        rows.append(("Generation", str(meta.generation)))
    if meta.owner_references:
        rows.append(("Controlled By", ", ".join(f"{o.kind}/{o.name}" for o in meta.owner_references)))
    parts = [_kv(rows)]
    if kind.name in SUMMARIES:
        parts.append(SUMMARIES[kind.name](obj))
    body = codec.encode(obj)
    if kind.name == "Secret":
        # Like kubectl: sizes, never values.
        body.pop("data", None)
        if obj.data:
            parts.append("Data:\n" + "\n".join(f"  {k}:  {len(v)} bytes" for k, v in sorted(obj.data.items())))
    for section in ("spec", "status", "data", "subsets", "involvedObject"):
        if section in body and body[section]:
            title = section[0].upper() + section[1:]
            parts.append(f"{title}:\n" + _indent(yaml.safe_dump(body[section], sort_keys=False).rstrip()))
    if events:
        rows = [["Type", "Reason", "Age", "From", "Message"]]
        for e in events:
            rows.append([e.type, e.reason, age(e.last_timestamp or e.metadata.creation_timestamp),
                         e.source.component, e.message])
        parts.append("Events:\n" + _indent(format_rows(rows)))
    else:
        parts.append("Events:  <none>")
    return "\n".join(parts)
