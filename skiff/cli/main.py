"""skiff: the command-line client (kubectl habits).

Every error is printed as one line a user can act on and gives exit code 1
(2 for usage errors, as argparse does).
"""

import argparse
import sys

from skiff import client as clientmod
from skiff import clientconfig
from skiff.api.display import format_rows
from skiff.api.errors import ValidationError
from skiff.api.kinds.event import event_order
from skiff.cli import (auth_cmds, batch_cmds, drain, dry_run, explain, lab_cmds, meta_cmds, node_cmds, pki_cmds,
                       printers, rollout_cmds, secrets_cmds, taint_cmds, wait_cmds)
from skiff.cli.common import client as _client
from skiff.cli.common import server_error
from skiff.cli.common import split_kind_names as _split_kind_names
from skiff.cli.describe import describe
from skiff.cli.errors import CliError

OUTPUTS = ("wide", "yaml", "json", "name")


# ------------------------------------------------------------------ helpers

def _load_manifests(files, recursive=False):
    """[(where, Kind, message)] from -f arguments; all parse errors at once."""
    from skiff.api import manifests
    objects, errors = [], []
    try:
        sources = manifests.read_sources(files, recursive=recursive)
    except manifests.ManifestError as exc:
        raise CliError(str(exc)) from None
    for where, text in sources:
        try:
            docs = manifests.load_located(text, where)
        except manifests.ManifestError as exc:
            errors.append(str(exc))
            continue
        for label, doc in docs:
            try:
                kind, msg = manifests.parse_object(doc, label)
            except manifests.ManifestError as exc:
                errors.append(str(exc))
                continue
            objects.append((label, kind, msg))
    if errors:
        raise CliError("\n".join(f"error: {e}" for e in errors))
    if not objects:
        raise CliError(f"no objects passed to apply (files: {', '.join(files)})")
    return objects


def _namespace_for(args, kind, msg, where):
    if not kind.namespaced:
        return
    explicit = getattr(args, "namespace", None)
    if msg.metadata.namespace and explicit and msg.metadata.namespace != explicit:
        raise CliError(f'{where}: the namespace from the provided object "{msg.metadata.namespace}" '
                       f'does not match the namespace "{explicit}". You must pass '
                       f"'--namespace={msg.metadata.namespace}' to perform this operation.")
    if not msg.metadata.namespace:
        msg.metadata.namespace = explicit or "default"


def _ns(args) -> str:
    return getattr(args, "namespace", None) or "default"


# ------------------------------------------------------------------ commands

def cmd_apply(args, create=False) -> int:
    mode = dry_run.mode(args)
    objects = _load_manifests(args.filename, getattr(args, "recursive", False))
    # create --dry-run=client never talks to a server.
    c = None if mode == "client" and create else _client(args)
    failed = 0
    for where, kind, msg in objects:
        _namespace_for(args, kind, msg, where)
        verb = "creating" if create else "applying"
        try:
            if mode == "client":
                result = dry_run.client_write(c, kind, msg, create)
                name = dry_run.shown_name(kind, msg)
            elif create:
                out = c.create(msg, dry_run=mode == "server")
                result, name = "created", printers.as_name(out)
            else:
                out, result = c.apply(msg, dry_run=mode == "server")
                name = printers.as_name(out)
        except clientmod.ApiError as exc:
            print(server_error(exc, f'error when {verb} "{where}"'), file=sys.stderr)
            failed += 1
            continue
        except ValidationError as exc:
            print(dry_run.invalid(kind, msg, exc, verb, where), file=sys.stderr)
            failed += 1
            continue
        print(f"{name} {result}{dry_run.SUFFIX[mode]}")
    return 1 if failed else 0


def _print_objects(args, kind, items, headers=True):
    out = args.output
    if out == "yaml":
        print(printers.as_yaml(items), end="")
    elif out == "json":
        print(printers.as_json(items))
    elif out == "name":
        for o in items:
            print(printers.as_name(o))
    else:
        text = printers.table(kind, items, wide=out == "wide", all_namespaces=args.all_namespaces,
                              show_labels=args.show_labels, headers=headers)
        if text:
            print(text, flush=True)


def cmd_get(args) -> int:
    targets = _split_kind_names(args.names)
    c = _client(args)
    ns = "" if args.all_namespaces else _ns(args)
    if targets[0][1] is None:
        return _get_lists(args, c, [k for k, _ in targets], ns)
    status = 0
    found = []
    for kind, name in targets:
        try:
            found.append((kind, c.get(kind, name, namespace=_ns(args))))
        except clientmod.ApiError as exc:
            print(server_error(exc), file=sys.stderr)
            status = 1
    if args.output in ("yaml", "json") and len(found) > 1:
        _print_mixed(args, [o for _, o in found])
    else:
        for i, (kind, _) in enumerate(found):
            if i == 0 or found[i - 1][0] is not kind:
                _print_objects(args, kind, [o for k, o in found if k is kind])
    if args.watch and len(targets) == 1 and found:
        kind, obj = found[0]
        ns = _ns(args) if kind.namespaced else ""
        # From the store's current version (a listing's), not the object's own: an
        # object unchanged for long has a version too old to resume from.
        _, rv = c.list(kind, namespace=ns, field_selector=f"metadata.name={obj.metadata.name}")
        return _watch(args, c, kind, ns, rv, name=obj.metadata.name) or status
    return status


def _print_mixed(args, objs):
    if args.output == "yaml":
        print(printers.as_yaml(objs), end="")
    else:
        print(printers.as_json(objs))


def _get_lists(args, c, kind_list, ns) -> int:
    listed = []
    for kind in kind_list:
        try:
            items, rv = c.list(kind, namespace=ns if kind.namespaced else "",
                               label_selector=args.selector or "")
        except clientmod.ApiError as exc:
            raise CliError(server_error(exc)) from None
        listed.append((kind, items, rv))
    if args.output in ("yaml", "json"):
        objs = [o for _, items, _ in listed for o in items]
        print(printers.as_yaml_list(objs) if args.output == "yaml" else printers.as_json_list(objs),
              end="" if args.output == "yaml" else "\n")
    else:
        shown = False
        for kind, items, _ in listed:
            if not items:
                continue
            if shown and args.output != "name":
                print()
            _print_objects(args, kind, items)
            shown = True
        if not shown and not args.watch:
            where = f" in {ns} namespace" if ns and any(k.namespaced for k in kind_list) else ""
            print(f"No resources found{where}.", file=sys.stderr)
    if args.watch:
        if len(listed) != 1:
            raise CliError("watch is only supported on a single resource type")
        kind, _, rv = listed[0]
        return _watch(args, c, kind, ns, rv)
    return 0


def _watch(args, c, kind, ns, rv, name=None) -> int:
    try:
        for typ, obj, _rv in c.watch(kind, namespace=ns if kind.namespaced else "",
                                     label_selector=args.selector or "", resource_version=rv):
            if name and obj.metadata.name != name:
                continue
            if args.output in ("yaml", "json", "name"):
                _print_objects(args, kind, [obj])
            else:
                _print_objects(args, kind, [obj], headers=False)
    except KeyboardInterrupt:
        return 0
    except clientmod.ApiError as exc:
        raise CliError(server_error(exc)) from None
    return 0


def cmd_describe(args) -> int:
    targets = _split_kind_names(args.names)
    c = _client(args)
    objs = []
    try:
        for kind, name in targets:
            if name is None:
                ns = "" if args.all_namespaces else _ns(args)
                items, _ = c.list(kind, namespace=ns if kind.namespaced else "",
                                  label_selector=args.selector or "")
                objs += [(kind, o) for o in items]
            else:
                objs.append((kind, c.get(kind, name, namespace=_ns(args))))
        try:
            events, _ = c.list("events", namespace="")
        except clientmod.ApiError:
            events = []
    except clientmod.ApiError as exc:
        raise CliError(server_error(exc)) from None
    pages = []
    for kind, obj in objs:
        mine = [e for e in events if e.involved_object.uid == obj.metadata.uid
                or (e.involved_object.kind == kind.name and e.involved_object.name == obj.metadata.name
                    and e.involved_object.namespace == obj.metadata.namespace)]
        mine.sort(key=event_order)
        pages.append(describe(kind, obj, mine))
    print("\n\n".join(pages))
    return 0


_CASCADE = {"background": "Background", "foreground": "Foreground", "orphan": "Orphan",
            "true": "Background", "false": "Orphan"}


def cascade_policy(value) -> str:
    """--cascade as a propagation policy ("" when not given: the server's default, Background).
    kubectl's booleans still work, with its deprecation warning."""
    if value is None:
        return ""
    policy = _CASCADE.get(value.lower())
    if policy is None:
        raise CliError(f'invalid cascade value ({value}). Must be "background", "foreground", or "orphan".')
    if value.lower() in ("true", "false"):
        print(f"warning: --cascade={value} is deprecated (boolean value) and can be replaced with "
              f"--cascade={policy.lower()}.", file=sys.stderr)
    return policy


def cmd_delete(args) -> int:
    mode = dry_run.mode(args)
    policy = cascade_policy(getattr(args, "cascade", None))
    c = _client(args)
    targets = []
    if args.filename:
        for where, kind, msg in _load_manifests(args.filename, getattr(args, "recursive", False)):
            _namespace_for(args, kind, msg, where)
            targets.append((kind, msg.metadata.name, msg.metadata.namespace))
        # Namespaces last: deleting one removes everything in it at once, and the
        # objects listed before it in the file should still be reported deleted.
        targets.sort(key=lambda t: t[0].store.cascade_namespace)
    else:
        pairs = _split_kind_names(args.names)
        if pairs[0][1] is None:
            if not args.selector and not args.all:
                raise CliError("resource(s) were provided, but no name was specified "
                               "(give NAME, -l SELECTOR or --all)")
            kind = pairs[0][0]
            try:
                items, _ = c.list(kind, namespace=_ns(args) if kind.namespaced else "",
                                  label_selector=args.selector or "")
            except clientmod.ApiError as exc:
                raise CliError(server_error(exc)) from None
            targets = [(kind, o.metadata.name, o.metadata.namespace) for o in items]
            if not targets:
                print("No resources found", file=sys.stderr)
        else:
            targets = [(k, n, _ns(args)) for k, n in pairs]
    status = 0
    for kind, name, ns in targets:
        try:
            if mode == "client":  # read it: a delete of a missing object fails
                obj = c.get(kind, name, namespace=ns)
            else:
                obj = c.delete(kind, name, namespace=ns, dry_run=mode == "server", propagation_policy=policy)
        except clientmod.ApiError as exc:
            print(server_error(exc), file=sys.stderr)
            status = 1
            continue
        shown = printers.as_name(obj) if obj else kind.name.lower() + '/' + name
        print(f"{shown} deleted{dry_run.SUFFIX[mode]}")
        if args.wait and mode == "none":
            status = max(status, wait_cmds.wait_deleted(c, kind, name, ns, args.timeout))
    return status


def cmd_cluster_status(args) -> int:
    c = _client(args)
    try:
        st = c.cluster_status()
    except clientmod.ApiError as exc:
        raise CliError(server_error(exc)) from None
    rows = [["NAME", "ADDRESS", "ROLE", "TERM", "COMMIT", "APPLIED", "REACHABLE"]]
    for r in sorted(st.replicas, key=lambda r: r.name):
        reach = "yes" if r.reachable else f"no ({r.error or 'unreachable'})"
        rows.append([r.name, r.api_address, r.role, str(r.term) if r.reachable else "-",
                     str(r.commit_index) if r.reachable else "-",
                     str(r.applied_index) if r.reachable else "-", reach])
    if args.output == "yaml":
        import yaml
        doc = [{"name": r.name, "address": r.api_address, "raftAddress": r.raft_address,
                "role": r.role, "term": r.term, "commitIndex": r.commit_index,
                "appliedIndex": r.applied_index, "reachable": r.reachable} for r in st.replicas]
        print(yaml.safe_dump(doc, sort_keys=False), end="")
    else:
        print(format_rows(rows))
        print(f"(answered by {st.answered_by})")
    return 0


# ------------------------------------------------------------------ parser

def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--server", "-s", default=None,
                        help="control-plane endpoints host:port[,host:port...] (else $SKIFF_SERVER, "
                             "else the config file)")
    ns = argparse.ArgumentParser(add_help=False)
    ns.add_argument("-n", "--namespace", default=None, help="namespace (default: default)")
    listing = argparse.ArgumentParser(add_help=False)
    listing.add_argument("-A", "--all-namespaces", action="store_true")
    listing.add_argument("-l", "--selector", default=None, help="label selector: a=b,c!=d,e in (x,y)")
    files = argparse.ArgumentParser(add_help=False)
    files.add_argument("-f", "--filename", action="append", default=[],
                       help="file, directory or - (stdin); repeatable")
    files.add_argument("-R", "--recursive", action="store_true")

    p = argparse.ArgumentParser(prog="skiff", description="skiff: a small but real Kubernetes-shaped "
                                "orchestrator. Commands follow kubectl's.", parents=[common])
    sub = p.add_subparsers(dest="cmd", required=True)

    a = sub.add_parser("apply", parents=[common, ns, files], help="create or update from files")
    dry_run.add_flag(a)
    a.set_defaults(func=cmd_apply)
    a = sub.add_parser("create", parents=[common, ns, files], help="create from files")
    dry_run.add_flag(a)
    a.set_defaults(func=lambda args: cmd_apply(args, create=True))

    g = sub.add_parser("get", parents=[common, ns, listing], help="list or show objects")
    g.add_argument("names", nargs="+", metavar="KIND [NAME...]")
    g.add_argument("-o", "--output", choices=OUTPUTS, default=None)
    g.add_argument("--show-labels", action="store_true")
    g.add_argument("-w", "--watch", action="store_true")
    g.set_defaults(func=cmd_get)

    d = sub.add_parser("describe", parents=[common, ns, listing], help="show an object in detail")
    d.add_argument("names", nargs="+", metavar="KIND [NAME...]")
    d.set_defaults(func=cmd_describe)

    x = sub.add_parser("delete", parents=[common, ns, files], help="delete objects")
    x.add_argument("names", nargs="*", metavar="KIND [NAME...]")
    x.add_argument("-l", "--selector", default=None)
    x.add_argument("--all", action="store_true")
    x.add_argument("--cascade", default=None, metavar="background|foreground|orphan",
                   help="what becomes of the objects it owns (default background)")
    x.add_argument("--wait", action="store_true", help="return once the objects are gone (finalizers)")
    x.add_argument("--timeout", default="0s", help="with --wait: how long (0 = a week)")
    dry_run.add_flag(x)
    x.set_defaults(func=cmd_delete)

    c = sub.add_parser("cluster", parents=[common], help="control-plane status")
    csub = c.add_subparsers(dest="cluster_cmd", required=True)
    cs = csub.add_parser("status", parents=[common])
    cs.add_argument("-o", "--output", choices=("yaml",), default=None)
    cs.set_defaults(func=cmd_cluster_status)

    explain.add_parsers(sub, common)
    meta_cmds.add_parsers(sub, common, ns)
    wait_cmds.add_parsers(sub, common, ns)
    node_cmds.add_parsers(sub, common, ns)
    taint_cmds.add_parsers(sub, common)
    drain.add_parsers(sub, common)
    batch_cmds.add_parsers(sub, common, ns)
    rollout_cmds.add_parsers(sub, common, ns)
    lab_cmds.add_parsers(sub, common)
    secrets_cmds.add_parsers(sub, common)
    pki_cmds.add_parsers(sub, common)
    auth_cmds.add_parsers(sub, common, ns)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # kubectl's `exec POD [flags] -- CMD ...` and `create job NAME --image I -- CMD ...`:
    # everything after "--" is the command, whatever flags stand between (argparse alone
    # cannot mix them).
    command = None
    if "--" in argv and {"exec", "create"} & set(argv[:argv.index("--")]):
        cut = argv.index("--")
        argv, command = argv[:cut], argv[cut + 1:]
    # kubectl accepts names after flags (`describe pod -n demo web-1`); argparse stops
    # collecting a positional list at the first flag, so gather the stragglers.
    args, extra = parser.parse_known_args(argv)
    if extra:
        stray_flags = [e for e in extra if e.startswith("-")]
        if stray_flags or not isinstance(getattr(args, "names", None), list):
            parser.parse_args(argv)  # reports the unrecognized arguments the usual way
        args.names.extend(extra)
    if command is not None:
        args.command = command
    if getattr(args, "namespace", "") is None and args.cmd != "secrets-encrypt":
        # In a pod without a config file: the pod's own namespace, as kubectl does in-cluster.
        args.namespace = clientconfig.default_namespace()
    try:
        return args.func(args)
    except CliError as exc:
        msg = str(exc)
        print(msg if msg.startswith(("error:", "Error")) else f"error: {msg}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())


