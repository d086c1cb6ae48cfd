"""`skiff taint`: add, change or remove a node's taints (kubectl taint's syntax and messages).

    skiff taint nodes NODE KEY=VALUE:EFFECT ... [--overwrite]   (or node/NODE, -l SELECTOR, --all)
    skiff taint nodes NODE KEY:EFFECT-        removes the taint of that key and effect
    skiff taint nodes NODE KEY-               removes every taint of that key

Rules as kubectl's (pkg/cmd/taint): a taint to add needs an effect (NoSchedule,
PreferNoSchedule, NoExecute); a node that already has a taint of the same key and effect
refuses a new one unless --overwrite; removing a taint the node does not have is an error;
one command may not both add and remove the same key and effect. Each node is read,
changed and written with its resourceVersion, retried on conflict (skiff/retry.py). Output
per node: `node/n1 tainted` (or `untainted`, `modified`). The API server stamps timeAdded on
a NoExecute taint (the taint eviction controller counts tolerationSeconds from it).
"""

import sys

from skiff import client as clientmod
from skiff.api import kinds
from skiff.api import objects_pb2 as pb
from skiff.api.selectors import validate_label_key, validate_label_value
from skiff.cli.common import client as _client
from skiff.cli.common import named_or_selected, server_error
from skiff.cli.errors import CliError
from skiff.retry import GaveUp, update_on_conflict

EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def parse_taint(spec: str) -> pb.Taint:
    """KEY[=VALUE][:EFFECT] as kubectl's parseTaint (the effect may be missing here)."""
    parts = spec.split(":")
    if len(parts) > 2:
        raise CliError(f"invalid taint spec: {spec}")
    effect = parts[1] if len(parts) == 2 else ""
    if len(parts) == 2 and effect not in EFFECTS:
        raise CliError(f"invalid taint effect: {effect}, unsupported taint effect")
    kv = parts[0].split("=")
    if len(kv) > 2:
        raise CliError(f"invalid taint spec: {spec}")
    key, value = kv[0], kv[1] if len(kv) == 2 else ""
    problem = validate_label_value(value) if value else None
    if problem:
        raise CliError(f"invalid taint spec: {spec}, {problem}")
    problem = validate_label_key(key) if key else "name part must be non-empty"
    if problem:
        raise CliError(f"invalid taint spec: {spec}, {problem}")
    return pb.Taint(key=key, value=value, effect=effect)


def parse_taints(specs):
    """(taints to add, taints to remove) as kubectl's parseTaints."""
    add, remove, seen = [], [], set()
    for spec in specs:
        if spec.endswith("-"):
            remove.append(parse_taint(spec[:-1]))
            continue
        taint = parse_taint(spec)
        if not taint.effect:
            raise CliError(f"invalid taint spec: {spec}")
        if (taint.key, taint.effect) in seen:
            raise CliError(f"duplicated taints with the same key and effect: {spec}")
        seen.add((taint.key, taint.effect))
        add.append(taint)
    for r in remove:
        if any(a.key == r.key and (not r.effect or a.effect == r.effect) for a in add):
            raise CliError("can not both modify and remove the following taint(s) in the same command: "
                           f"{r.key}{':' + r.effect if r.effect else ''}")
    return add, remove


def _copied(taint: pb.Taint) -> pb.Taint:
    out = pb.Taint()
    out.CopyFrom(taint)
    return out


def _matches(removal: pb.Taint, taint: pb.Taint) -> bool:
    return removal.key == taint.key and (not removal.effect or removal.effect == taint.effect)


def new_taints(node_name: str, current, add, remove, overwrite: bool):
    """(operation, the node's taints after the command) as kubectl's reorganizeTaints:
    operation is "tainted", "untainted" or "modified". Raises CliError when a taint to add
    exists already without overwrite, or a taint to remove is not there."""
    current = [_copied(t) for t in current]
    if not overwrite:
        clash = [f"{t.key}={t.value}:{t.effect}" for t in add
                 if any(c.key == t.key and c.effect == t.effect for c in current)]
        if clash:
            raise CliError(f"node {node_name} already has {', '.join(clash)} taint(s) with same effect(s) "
                           "and --overwrite is false")
    for r in remove:
        if not any(_matches(r, c) for c in current):
            raise CliError(f'taint "{r.key}{":" + r.effect if r.effect else ""}" not found')
    result, replaced = [], False
    for c in current:
        if any(_matches(r, c) for r in remove):
            continue
        same = next((t for t in add if t.key == c.key and t.effect == c.effect), None)
        if same is not None:
            replaced = True
            if same.value == c.value:
                result.append(c)   # unchanged: keeps its timeAdded
            continue
        result.append(c)
    kept = {(t.key, t.effect) for t in result}
    result += [_copied(t) for t in add if (t.key, t.effect) not in kept]
    if add and (remove or replaced):
        op = "modified"
    else:
        op = "tainted" if add else "untainted"
    return op, result


def cmd_taint(args) -> int:
    words = list(args.names)
    resources, specs = [], []
    for w in words:
        if ":" in w or "=" in w or (w.endswith("-") and not w.startswith("-")):
            specs.append(w)
        elif specs:
            raise CliError(f"all resources must be specified before taint changes: {w}")
        else:
            resources.append(w)
    if not resources:
        raise CliError("one or more resources must be specified as <resource> <name> or <resource>/<name>")
    if not specs:
        raise CliError("at least one taint update is required")
    add, remove = parse_taints(specs)
    c = _client(args)
    targets = named_or_selected(c, resources, "", args.selector, args.all)
    if any(kind is not kinds.lookup("nodes") for kind, _, _ in targets):
        raise CliError("taint is only applicable to nodes (skiff taint nodes NAME ...)")
    if not targets:
        print("No resources found", file=sys.stderr)
        return 0
    status = 0
    for kind, name, _ in targets:
        done = {}

        def change(node):
            op, taints = new_taints(node.metadata.name, node.spec.taints, add, remove, args.overwrite)
            done["op"] = op
            del node.spec.taints[:]
            node.spec.taints.extend(taints)

        try:
            update_on_conflict(c, kind, name, "", change)
        except GaveUp as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            status = 1
            continue
        except clientmod.ApiError as exc:
            print(server_error(exc), file=sys.stderr)
            status = 1
            continue
        except CliError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 1
            continue
        print(f"node/{name} {done['op']}")
    return status


def add_parsers(sub, common) -> None:
    p = sub.add_parser("taint", parents=[common], help="update the taints of nodes")
    p.add_argument("names", nargs="+", metavar="nodes NAME|node/NAME KEY=VAL:EFFECT... KEY[:EFFECT]-...")
    p.add_argument("--overwrite", action="store_true", help="replace a taint of the same key and effect")
    p.add_argument("-l", "--selector", default=None, help="label selector: every matching node")
    p.add_argument("--all", action="store_true", help="every node")
    p.set_defaults(func=cmd_taint)
