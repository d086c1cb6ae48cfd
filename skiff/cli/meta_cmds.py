"""`skiff label` and `skiff annotate`: change an object's labels or annotations (kubectl's).

    skiff label KIND NAME k=v k2- [--overwrite] [-n NS]     (or KIND/NAME, or KIND -l SEL | --all)
    skiff annotate KIND NAME k=v k2- [--overwrite]

Rules as kubectl's (pkg/cmd/label, pkg/cmd/annotate): `key=value` sets, `key-` removes
(no --overwrite needed; a label that is not there prints `label "key" not found.`);
changing an existing value needs --overwrite, else the error names the key and its value;
setting and removing one key in one command is refused. Each object is read, changed and
written with its resourceVersion, retried on conflict (skiff/retry.py), so a concurrent
writer (a controller's status, another label) is never overwritten. Output per object:
`pod/web labeled` (or `unlabeled`, `label(s) changed`, `not labeled`) and `pod/web annotated`.
"""

import sys

from skiff.api.selectors import validate_label_value
from skiff.cli import printers
from skiff.cli.common import client as _client
from skiff.cli.common import FAILED, named_or_selected, update_or_report
from skiff.cli.errors import CliError


def split_args(words):
    """kubectl's GetResourcesAndPairs: resources first, then pairs (k=v or k-)."""
    resources, pairs = [], []
    for w in words:
        if "=" in w or (w.endswith("-") and not w.startswith("-")):
            pairs.append(w)
        elif pairs:
            raise CliError("all resources must be specified before label changes: " + w)
        else:
            resources.append(w)
    return resources, pairs


def parse_labels(pairs):
    """({key: value} to set, [keys to remove]) as kubectl label parses them."""
    sets, remove = {}, []
    for spec in pairs:
        if "=" in spec:
            parts = spec.split("=")
            if len(parts) != 2:
                raise CliError(f"invalid label spec: {spec}")
            problem = validate_label_value(parts[1])
            if problem:
                raise CliError(f'invalid label value: "{spec}": {problem}')
            sets[parts[0]] = parts[1]
        elif spec.endswith("-"):
            remove.append(spec[:-1])
        else:
            raise CliError(f"unknown label spec: {spec}")
    if any(k in sets for k in remove):
        raise CliError("can not both modify and remove a label in the same command")
    return sets, remove


def parse_annotations(pairs):
    """As kubectl annotate: the value is everything after the first '='."""
    sets, remove = {}, []
    for spec in pairs:
        if "=" in spec:
            key, _, value = spec.partition("=")
            if not key:
                raise CliError(f"invalid annotation spec: {spec}")
            sets[key] = value
        elif spec.endswith("-"):
            remove.append(spec[:-1])
        else:
            raise CliError(f"invalid annotation spec: {spec}")
    if any(k in sets for k in remove):
        raise CliError("can not both modify and remove an annotation in the same command")
    return sets, remove


def label_change_message(old: dict, new: dict) -> str:
    """kubectl's: labeled, unlabeled, label(s) changed (both) or not labeled."""
    removed = any(k not in new for k in old)
    added = any(k not in old or old[k] != v for k, v in new.items())
    if added and removed:
        return "label(s) changed"
    return "labeled" if added else "unlabeled" if removed else "not labeled"


def overwrite_conflicts(current: dict, sets: dict) -> list:
    """(key, current value) for every key whose value would change."""
    return [(k, current[k]) for k in sorted(sets) if k in current and current[k] != sets[k]]


def _targets(args, c):
    resources, pairs = split_args(args.names)
    if not resources:
        raise CliError("one or more resources must be specified as <resource> <name> or <resource>/<name>")
    if not pairs:
        raise CliError(f"at least one {args.what} update is required")
    if args.all and args.selector:
        raise CliError("cannot set --all and --selector at the same time")
    out = named_or_selected(c, resources, args.namespace, args.selector, args.all)
    return out, pairs


def _run(args, field: str) -> int:
    c = _client(args)
    targets, pairs = _targets(args, c)
    sets, remove = (parse_labels if field == "labels" else parse_annotations)(pairs)
    if not targets:
        print("No resources found", file=sys.stderr)
        return 0
    status = 0
    for kind, name, ns in targets:
        before = {}

        def change(obj):
            current = getattr(obj.metadata, field)
            before.clear()
            before.update(current)
            clashes = [] if args.overwrite else overwrite_conflicts(dict(current), sets)
            if clashes:
                raise CliError(_overwrite_error(field, clashes))
            current.update(sets)
            for key in remove:
                current.pop(key, None)
            return dict(current) != before

        obj = update_or_report(c, kind, name, ns, change)
        if obj is FAILED:
            status = 1
            continue
        if field == "labels":
            for key in remove:
                if key not in before:
                    print(f'label "{key}" not found.')
            print(f"{printers.as_name(obj)} {label_change_message(before, dict(obj.metadata.labels))}")
        else:
            print(f"{printers.as_name(obj)} annotated")
    return status


def _overwrite_error(field: str, clashes) -> str:
    if field == "labels":
        return "\n".join(f"'{k}' already has a value ({v}), and --overwrite is false" for k, v in clashes)
    shown = "; ".join(f"'{k}' already has a value ({v})" for k, v in clashes)
    return f"--overwrite is false but found the following declared annotation(s): {shown}"


def cmd_label(args) -> int:
    args.what = "label"
    return _run(args, "labels")


def cmd_annotate(args) -> int:
    args.what = "annotation"
    return _run(args, "annotations")


def add_parsers(sub, common, ns) -> None:
    for name, fn, what in (("label", cmd_label, "labels"), ("annotate", cmd_annotate, "annotations")):
        p = sub.add_parser(name, parents=[common, ns], help=f"update the {what} of objects")
        p.add_argument("names", nargs="+", metavar="KIND NAME|KIND/NAME KEY=VAL... KEY-...")
        p.add_argument("--overwrite", action="store_true", help=f"allow changing existing {what}")
        p.add_argument("-l", "--selector", default=None, help="label selector: every matching object")
        p.add_argument("--all", action="store_true", help="every object of the kind in the namespace")
        p.set_defaults(func=fn)
