"""Helpers every command module shares: the client from the CLI's flags, the one-line
form of a server error, and KIND NAME / KIND/NAME arguments resolved to kinds.
Command modules import this, never each other or main.py."""

import sys

from skiff import client as clientmod
from skiff.api import kinds
from skiff.cli.errors import CliError
from skiff.retry import GaveUp, update_on_conflict

FAILED = object()   # update_or_report's result when the update did not happen

_ERROR_NAMES = {
    clientmod.NotFound: "NotFound", clientmod.AlreadyExists: "AlreadyExists",
    clientmod.Conflict: "Conflict", clientmod.Invalid: "Invalid",
    clientmod.Expired: "Expired", clientmod.Unavailable: "ServiceUnavailable",
    clientmod.Forbidden: "Forbidden", clientmod.Unauthorized: "Unauthorized",
}


def server_error(exc: clientmod.ApiError, context: str = "") -> str:
    """kubectl's form: "Error from server (NotFound): <context>: <message>"."""
    name = _ERROR_NAMES.get(type(exc), "Error")
    where = f"{context}: " if context else ""
    return f"Error from server ({name}): {where}{exc.message}"


def update_or_report(c, kind, name, namespace, change):
    """update_on_conflict, the failure printed to stderr as kubectl prints it; returns the
    stored object, or FAILED (commands over many objects go on with the next one)."""
    try:
        return update_on_conflict(c, kind, name, namespace, change)
    except GaveUp as exc:
        print(f"error: {exc.message}", file=sys.stderr)
    except clientmod.ApiError as exc:
        print(server_error(exc), file=sys.stderr)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
    return FAILED


def client(args) -> clientmod.Client:
    """A client for --server (else $SKIFF_SERVER, else the config file); CliError when none."""
    try:
        return clientmod.Client.from_config(args.server)
    except clientmod.ApiError as exc:
        raise CliError(exc.message) from None


def create_forms(sub, common, ns):
    """The sub-forms of `create` (`create job NAME ...`), kubectl's generators: the
    subparsers of the `create` command, made on first use so that every topic module
    adds its own form (`create -f FILE` keeps working without one)."""
    create = sub.choices["create"]
    forms = getattr(create, "skiff_forms", None)
    if forms is None:
        forms = create.add_subparsers(dest="create_form", metavar="KIND", required=False)
        create.skiff_forms = forms
    return forms


def kind_of(word: str) -> kinds.Kind:
    try:
        return kinds.lookup(word)
    except KeyError as exc:
        raise CliError(exc.args[0]) from None


def split_kind_names(args_names):
    """'pod x y' or 'pod/x deploy/y' -> [(Kind, name or None)]."""
    if not args_names:
        raise CliError("you must specify the type of resource (for example: skiff get pods)")
    if "/" in args_names[0]:
        out = []
        for item in args_names:
            if "/" not in item:
                raise CliError(f"there is no need to specify a resource type as a separate argument "
                               f"when passing arguments in resource/name form ({item!r})")
            k, _, n = item.partition("/")
            out.append((kind_of(k), n))
        return out
    words = args_names[0].split(",")
    if len(words) > 1 or words[0] == "all":
        if len(args_names) > 1:
            raise CliError("names cannot be given with several resource types (use TYPE/NAME)")
        expanded = []
        for w in words:
            expanded += [k.plural for k in kinds.get_all()] if w == "all" else [w]
        return [(kind_of(w), None) for w in expanded]
    kind = kind_of(words[0])
    names = args_names[1:]
    return [(kind, n) for n in names] or [(kind, None)]


def named_or_selected(c, names, namespace: str, selector: str, every: bool) -> list:
    """[(Kind, name, namespace)] for `KIND NAME...`, `KIND/NAME...`, or a kind with -l
    SELECTOR or --all (kubectl's resource builder for label, annotate, wait): the named
    objects as given, the others listed from the API."""
    out = []
    for kind, name in split_kind_names(names):
        ns = (namespace or "default") if kind.namespaced else ""
        if name is not None:
            out.append((kind, name, ns))
            continue
        if not selector and not every:
            raise CliError("resource(s) were provided, but no name was specified (give NAME, -l SELECTOR or --all)")
        try:
            items, _ = c.list(kind, namespace=ns, label_selector=selector or "")
        except clientmod.ApiError as exc:
            raise CliError(server_error(exc)) from None
        out += [(kind, o.metadata.name, o.metadata.namespace) for o in items]
    return out
