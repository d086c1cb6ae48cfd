"""`skiff api-resources` and `skiff explain`: what the API serves, from the kind
registry and the proto definitions alone (no server needed).

Descriptions are the comments of proto/skiff/api/objects.proto, which
proto/generate.py turns into skiff/api/descriptions.py (full proto name ->
text). Field names are the JSON/camelCase names users write in manifests;
types are named as kubectl names them (<string>, <[]Object>, <map[string]string>,
<IntOrString>, <Quantity>).
"""

import textwrap

from google.protobuf.descriptor import FieldDescriptor as FD

from skiff.api import codec, kinds
from skiff.api.descriptions import DESCRIPTIONS
from skiff.api.display import format_rows
from skiff.cli.errors import CliError

_INT_OR_STRING = "skiff.api.IntOrString"
_SCALARS = {
    FD.TYPE_STRING: "string", FD.TYPE_BYTES: "string", FD.TYPE_BOOL: "boolean",
    FD.TYPE_INT32: "integer", FD.TYPE_INT64: "integer", FD.TYPE_UINT32: "integer",
    FD.TYPE_UINT64: "integer", FD.TYPE_SINT32: "integer", FD.TYPE_SINT64: "integer",
    FD.TYPE_DOUBLE: "number", FD.TYPE_FLOAT: "number",
}
_WIDTH = 80
_EMPTY = "<empty>"


# ------------------------------------------------------------------ api-resources

def api_resource_rows(namespaced=None) -> list[list[str]]:
    """kubectl's api-resources rows: the core group first, then by group, by name."""
    rows = [["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]]
    for k in sorted(kinds.KINDS, key=lambda k: (k.group != "", k.group, k.plural)):
        if namespaced is not None and k.namespaced != namespaced:
            continue
        rows.append([k.plural, ",".join(k.short_names), k.api_version,
                     "true" if k.namespaced else "false", k.name])
    return rows


def cmd_api_resources(args) -> int:
    namespaced = None if args.namespaced is None else args.namespaced == "true"
    rows = api_resource_rows(namespaced)
    if args.output == "name":
        by_plural = {k.plural: k for k in kinds.KINDS}
        for row in rows[1:]:
            print(by_plural[row[0]].resource)
    else:
        print(format_rows(rows))
    return 0


# ------------------------------------------------------------------ types and descriptions

def _is_map(field) -> bool:
    return (field.type == FD.TYPE_MESSAGE and field.is_repeated
            and field.message_type.GetOptions().map_entry)


def _is_quantity(field) -> bool:
    # The kinds' quantity-valued fields (the codec accepts bare numbers there).
    return field.full_name in codec.quantity_fields()


def _element_type(field) -> str:
    if field.type == FD.TYPE_MESSAGE:
        return "IntOrString" if field.message_type.full_name == _INT_OR_STRING else "Object"
    if field.type == FD.TYPE_STRING and _is_quantity(field):
        return "Quantity"
    return _SCALARS.get(field.type, "string")


def field_type(field) -> str:
    """The type as kubectl shows it: <string>, <[]Object>, <map[string]string>..."""
    if _is_map(field):
        value = field.message_type.fields_by_name["value"]
        shown = "Quantity" if _is_quantity(field) else _element_type(value)
        return f"<map[string]{shown}>"
    shown = _element_type(field)
    return f"<[]{shown}>" if field.is_repeated else f"<{shown}>"


def _has_fields(field) -> bool:
    return (field.type == FD.TYPE_MESSAGE and not _is_map(field)
            and field.message_type.full_name != _INT_OR_STRING)


def field_description(field) -> str:
    """The field's own description, else its type's (a message field without a comment)."""
    text = DESCRIPTIONS.get(field.full_name)
    if not text and field.type == FD.TYPE_MESSAGE and not _is_map(field):
        text = DESCRIPTIONS.get(field.message_type.full_name)
    return text or ""


def _fields(message) -> list:
    return sorted(message.fields, key=lambda f: f.json_name)


# ------------------------------------------------------------------ path resolution

def resolve(path: str):
    """'pod.spec.containers' -> (Kind, [field descriptors along the path]).

    The kind may be any word `skiff get` accepts (po, pods, deployments.apps).
    Raises CliError naming the path and the valid fields where a name is unknown.
    """
    parts = [p for p in path.split(".")]
    if not path or any(not p for p in parts):
        raise CliError(f'invalid path "{path}": expected KIND[.field.path], e.g. pod.spec.containers')
    kind, rest = None, parts[1:]
    # "deployments.apps.spec", "leases.coordination.k8s.io.spec": the kind word may hold
    # dots itself (its group's); the longest prefix that names a kind wins.
    for n in range(len(parts), 1, -1):
        try:
            kind, rest = kinds.lookup(".".join(parts[:n])), parts[n:]
            break
        except KeyError:
            continue
    if kind is None:
        try:
            kind = kinds.lookup(parts[0])
        except KeyError as exc:
            raise CliError(exc.args[0]) from None
    trail = []
    message = kind.message.DESCRIPTOR
    walked = parts[: len(parts) - len(rest)]
    for name in rest:
        if trail and not _has_fields(trail[-1]):
            raise CliError(f'field "{".".join(walked + [name])}" does not exist: '
                           f'{".".join(walked)} is {field_type(trail[-1])} and has no fields')
        by_name = {f.json_name: f for f in message.fields}
        field = by_name.get(name)
        if field is None:
            valid = ", ".join(f.json_name for f in _fields(message))
            raise CliError(f'field "{".".join(walked + [name])}" does not exist; '
                           f'the fields of {".".join(walked)} are: {valid}')
        trail.append(field)
        walked.append(name)
        if _has_fields(field):
            message = field.message_type
    return kind, trail


# ------------------------------------------------------------------ rendering

def _wrap(text: str, indent: int) -> list[str]:
    pad = " " * indent
    return textwrap.wrap(text or _EMPTY, width=_WIDTH, initial_indent=pad,
                         subsequent_indent=pad, break_on_hyphens=False) or [pad + _EMPTY]


def _field_lines(message, recursive: bool, indent: int = 3, stack=()) -> list[str]:
    lines = []
    for f in _fields(message):
        lines.append(f"{' ' * indent}{f.json_name}\t{field_type(f)}")
        if recursive:
            # Recursion guard: a message met again on the same branch is shown, not entered.
            if _has_fields(f) and f.message_type.full_name not in stack:
                lines += _field_lines(f.message_type, True, indent + 3,
                                      stack + (f.message_type.full_name,))
        else:
            lines += _wrap(field_description(f), indent + 2)
            lines.append("")
    return lines


def explain(path: str, recursive: bool = False) -> str:
    """kubectl explain's plain-text page for KIND[.field.path]."""
    kind, trail = resolve(path)
    lines = [f"KIND:     {kind.name}", f"VERSION:  {kind.api_version}", ""]
    if not trail:
        message = kind.message.DESCRIPTOR
        description = [DESCRIPTIONS.get(message.full_name, "")]
    else:
        field = trail[-1]
        title = "RESOURCE: " if _has_fields(field) else "FIELD:    "
        lines += [f"{title}{field.json_name} {field_type(field)}", ""]
        description = [DESCRIPTIONS.get(field.full_name, "")]
        if field.type == FD.TYPE_MESSAGE and not _is_map(field):
            description.append(DESCRIPTIONS.get(field.message_type.full_name, ""))
        message = field.message_type if _has_fields(field) else None
    lines.append("DESCRIPTION:")
    texts = [t for t in description if t] or [""]
    for i, text in enumerate(texts):
        if i:
            lines.append("")
        lines += _wrap(text, 5)
    if message is not None:
        lines += ["", "FIELDS:"]
        lines += _field_lines(message, recursive, stack=(message.full_name,))
    return "\n".join(lines).rstrip() + "\n"


def cmd_explain(args) -> int:
    print(explain(args.path, recursive=args.recursive), end="")
    return 0


def add_parsers(sub, common) -> None:
    r = sub.add_parser("api-resources", parents=[common],
                       help="list the kinds the API serves (no server needed)")
    r.add_argument("-o", "--output", choices=("name",), default=None)
    r.add_argument("--namespaced", choices=("true", "false"), default=None,
                   help="only namespaced (true) or cluster-scoped (false) kinds")
    r.set_defaults(func=cmd_api_resources)

    e = sub.add_parser("explain", parents=[common],
                       help="document a kind or one of its fields: skiff explain pod.spec.containers")
    e.add_argument("path", metavar="KIND[.field.path]")
    e.add_argument("--recursive", action="store_true", help="show every field below, by name and type")
    e.set_defaults(func=cmd_explain)
