"""`skiff wait`: block until objects meet a condition, are deleted, or a field has a value.

    skiff wait --for=condition=Available deploy/web --timeout=60s
    skiff wait --for=condition=Ready=false pod/x
    skiff wait --for=delete pod/x
    skiff wait --for=jsonpath='{.status.phase}'=Running pod -l app=web

As kubectl wait: the condition's type and value compare case-insensitively (value
default True); each object gets the whole --timeout (default 30s; 0 checks once,
a negative value waits a week); output `deployment.apps/web condition met`; on
timeout `error: timed out waiting for the condition on deployments.apps/web` and exit 1;
--for=delete of an object that is already gone succeeds. It watches (one watch per
object, from the listing's resourceVersion), never polls.
"""

import re
import sys

from skiff import client as clientmod
from skiff.api import codec, kinds
from skiff.cli import printers
from skiff.cli.common import client as _client
from skiff.cli.common import named_or_selected, server_error
from skiff.cli.errors import CliError

WEEK_S = 7 * 24 * 3600.0
_DURATION_PART = re.compile(r"([0-9]*\.?[0-9]+)(ms|s|m|h)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration_s(text: str) -> float:
    """A Go duration ("30s", "1m30s", "500ms", "0", "-1s") in seconds; negative = a week."""
    t = text.strip()
    negative = t.startswith("-")
    t = t.lstrip("+-")
    if t == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(t):
        m = _DURATION_PART.match(t, pos)
        if m is None:
            raise CliError(f'invalid argument "{text}" for "--timeout" flag: time: invalid duration "{text}"')
        total += float(m.group(1)) * _UNIT_S[m.group(2)]
        pos = m.end()
    if not t:
        raise CliError(f'invalid argument "{text}" for "--timeout" flag: time: invalid duration "{text}"')
    return WEEK_S if negative else total


def parse_for(text: str):
    """--for as a predicate on (event type, object or None) -> bool, and whether it is a delete."""
    if text == "delete":
        return None, True
    if text.startswith("condition="):
        ctype, _, value = text[len("condition="):].partition("=")
        if not ctype:
            raise CliError(f"invalid condition: {text}")
        value = value or "True"
        return (lambda obj: condition_met(obj, ctype, value)), False
    if text.startswith("jsonpath="):
        path, value = _split_jsonpath(text[len("jsonpath="):])
        return (lambda obj: jsonpath_value(obj, path) == value), False
    raise CliError(f"unrecognized condition: {text!r} (use delete, condition=NAME[=VALUE] or "
                   "jsonpath='{.path}'=VALUE)")


def condition_met(obj, ctype: str, value: str) -> bool:
    status = getattr(obj, "status", None)
    for cond in getattr(status, "conditions", ()):
        if cond.type.lower() == ctype.lower():
            return cond.status.lower() == value.lower()
    return False


def _split_jsonpath(text: str):
    """'{.status.phase}=Running' -> (["status", "phase"], "Running"); list indexes as ints."""
    m = re.fullmatch(r"\{?\.?([^}=]*)\}?=(.*)", text)
    if m is None or not m.group(1):
        raise CliError(f"jsonpath wait format must be --for=jsonpath='{{.status.field}}'=VALUE: {text}")
    path = []
    for part in m.group(1).split("."):
        name, *indexes = re.split(r"\[(\d+)\]", part)
        if name:
            path.append(name)
        path += [int(i) for i in indexes if i != ""]
    return path, m.group(2)


def jsonpath_value(obj, path):
    """The value at path in the object's JSON form as a string (None when absent)."""
    cur = codec.encode(obj)
    for step in path:
        try:
            cur = cur[step]
        except (KeyError, IndexError, TypeError):
            return None
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return None if isinstance(cur, (dict, list)) else str(cur)


def wait_one(c, kind, name, ns, predicate, deleting: bool, timeout_s: float) -> bool:
    """True once the object meets predicate (or is gone, when deleting); False on timeout.
    NotFound for a condition on an object that does not exist."""
    items, rv = c.list(kind, namespace=ns, field_selector=f"metadata.name={name}")
    if not items:
        if deleting:
            return True
        raise clientmod.NotFound(f'{kind.resource} "{name}" not found')
    uid = items[0].metadata.uid
    if not deleting and predicate(items[0]):
        return True
    if timeout_s <= 0:
        return False
    for typ, obj, _ in c.watch(kind, namespace=ns, field_selector=f"metadata.name={name}",
                               resource_version=rv, timeout_s=timeout_s):
        if deleting:
            if typ == "DELETED" or obj.metadata.uid != uid:
                return True
        elif typ != "DELETED" and predicate(obj):
            return True
    return False


def wait_deleted(c, kind, name, ns, timeout: str) -> int:
    """`skiff delete --wait`: 0 once the object is gone (its finalizers done), else 1 with
    kubectl's timeout message. A timeout of 0 waits a week, as kubectl delete's."""
    timeout_s = parse_duration_s(timeout) or WEEK_S
    try:
        if wait_one(c, kind, name, ns, None, True, timeout_s):
            return 0
    except clientmod.ApiError as exc:
        print(server_error(exc), file=sys.stderr)
        return 1
    print(f"error: timed out waiting for the condition on {kind.resource}/{name}", file=sys.stderr)
    return 1


def cmd_wait(args) -> int:
    if not args.for_:
        raise CliError("--for must be specified (delete, condition=NAME[=VALUE] or jsonpath=...)")
    predicate, deleting = parse_for(args.for_)
    timeout_s = parse_duration_s(args.timeout)
    c = _client(args)
    targets = named_or_selected(c, args.names, args.namespace, args.selector, args.all)
    if not targets:
        raise CliError("no matching resources found")
    status = 0
    for kind, name, ns in targets:
        try:
            met = wait_one(c, kind, name, ns, predicate, deleting, timeout_s)
        except clientmod.ApiError as exc:
            print(server_error(exc), file=sys.stderr)
            status = 1
            continue
        if met:
            print(f"{_shown(kind, name)} condition met")
        else:
            print(f"error: timed out waiting for the condition on {kind.resource}/{name}", file=sys.stderr)
            status = 1
    return status


def _shown(kind: kinds.Kind, name: str) -> str:
    """kubectl's name form (deployment.apps/web) without needing the object."""
    return printers.as_name(kind.message(metadata={"name": name}))


def add_parsers(sub, common, ns) -> None:
    p = sub.add_parser("wait", parents=[common, ns], help="wait for a condition on objects")
    p.add_argument("names", nargs="+", metavar="KIND NAME | KIND/NAME | KIND -l SEL")
    p.add_argument("--for", dest="for_", default=None,
                   help="delete, condition=NAME[=VALUE] or jsonpath='{.status.x}'=VALUE")
    p.add_argument("--timeout", default="30s", help="per object (Go duration: 30s, 2m); 0 checks once")
    p.add_argument("-l", "--selector", default=None)
    p.add_argument("--all", action="store_true")
    p.set_defaults(func=cmd_wait)
