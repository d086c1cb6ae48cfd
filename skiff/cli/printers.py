"""Human output like kubectl's: one table per kind, plus yaml/json/name.

A kind's table comes from its registry record (skiff/api/kinds/: Kind.columns,
wide_columns and row, next to each other so they cannot drift apart; Kind.table
for a kind with a table of its own, like Events).
"""

import json

import yaml

from skiff.api import codec, kinds
from skiff.api.display import age, format_rows, labels_text


def table(kind, items, *, wide=False, all_namespaces=False, show_labels=False,
          headers=True, now=None) -> str:
    """Render items (all of one kind) as kubectl renders them, from the kind's registry
    record: NAME, the kind's columns (AGE where the kind puts it), -o wide's extra columns."""
    if kind.table is not None and not show_labels:
        return kind.table(items, all_namespaces=all_namespaces, headers=headers, now=now)
    namespace = ["NAMESPACE"] if all_namespaces and kind.namespaced else []
    at_age = kind.columns.index("AGE")
    head = namespace + ["NAME"] + list(kind.columns) + (list(kind.wide_columns) if wide else []) + (
        ["LABELS"] if show_labels else [])
    rows = [head] if headers else []
    for obj in items:
        values, extra = kind.row(obj)
        values = list(values)
        values.insert(at_age, age(obj.metadata.creation_timestamp, now))
        row = ([obj.metadata.namespace] if namespace else []) + [obj.metadata.name] + values
        if wide:
            row += extra
        if show_labels:
            row.append(labels_text(obj.metadata.labels))
        rows.append(row)
    return format_rows(rows)


def as_dict(obj) -> dict:
    return codec.encode(obj)


def _list_doc(objs) -> dict:
    return {"apiVersion": "v1", "kind": "List", "items": [as_dict(o) for o in objs]}


def as_yaml(objs) -> str:
    """One object as itself, several as a List (what `get NAME -o yaml` prints)."""
    if len(objs) == 1:
        return yaml.safe_dump(as_dict(objs[0]), sort_keys=False, default_flow_style=False)
    return as_yaml_list(objs)


def as_json(objs) -> str:
    if len(objs) == 1:
        return json.dumps(as_dict(objs[0]), indent=4)
    return as_json_list(objs)


def as_yaml_list(objs) -> str:
    """Always a List (what `get KIND -o yaml` prints, even for one item)."""
    return yaml.safe_dump(_list_doc(objs), sort_keys=False, default_flow_style=False)


def as_json_list(objs) -> str:
    return json.dumps(_list_doc(objs), indent=4)


def as_name(obj) -> str:
    k = kinds.of_message(obj)
    return f"{k.name.lower()}{'.' + k.group if k.group else ''}/{obj.metadata.name}"
