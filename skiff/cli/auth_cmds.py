"""`skiff auth can-i`: kubectl's access check.

    skiff auth can-i VERB KIND[/NAME] [--subresource S] [-n NS | -A] [--as USER] [--as-group G]... [-q]

Asks the API (the AccessReview RPC, Kubernetes' SelfSubjectAccessReview) whether the
caller may do VERB on KIND (NAME) in the namespace; prints "yes" (exit 0) or "no" (exit
1), "no - REASON" when an authorizer gave one, as kubectl does. --as/--as-group ask as
another user through impersonation, which the caller must be allowed (`impersonate` on
users/NAME, groups/G), as in Kubernetes. A kind the server does not serve is asked about
by the word given, with kubectl's warning. Namespace: -n, else "default"; "" with -A and
for cluster-scoped kinds.
"""

import sys

from skiff import client as clientmod
from skiff.api import kinds
from skiff.cli.common import client as _client
from skiff.cli.common import server_error
from skiff.cli.errors import CliError


def resource_of(word: str):
    """(resource plural, group, namespaced or None, known) for what a user typed: pods,
    deploy, deployments.apps; an unknown word as itself (group from its dotted tail)."""
    try:
        kind = kinds.lookup(word)
        return kind.plural, kind.group, kind.namespaced, True
    except KeyError:
        plural, _, group = word.partition(".")
        return plural.lower(), group, None, False


def cmd_can_i(args) -> int:
    what, _, name = args.resource.partition("/")
    if not what:
        raise CliError("you must specify a resource: skiff auth can-i VERB KIND[/NAME]")
    resource, group, namespaced, known = resource_of(what)
    if not known:
        print(f"Warning: the server doesn't have a resource type '{what}'", file=sys.stderr)
    if args.all_namespaces or namespaced is False:
        if namespaced is False and args.namespace:
            print(f"Warning: resource '{resource}' is not namespace scoped", file=sys.stderr)
        namespace = ""
    else:
        namespace = args.namespace or "default"
    c = _client(args)
    try:
        r = c.access_review(args.verb, resource, group=group, subresource=args.subresource or "",
                            namespace=namespace, name=name, as_user=args.as_user,
                            as_groups=args.as_group or ())
    except clientmod.ApiError as exc:
        raise CliError(server_error(exc)) from None
    finally:
        c.close()
    if not args.quiet:
        if r.allowed:
            print("yes")
        else:
            print("no" + (f" - {r.reason}" if r.reason else ""))
    return 0 if r.allowed else 1


def add_parsers(sub, common, ns) -> None:
    auth = sub.add_parser("auth", parents=[common], help="inspect authorization")
    asub = auth.add_subparsers(dest="auth_cmd", required=True)
    p = asub.add_parser("can-i", parents=[common, ns], help="check whether an action is allowed")
    p.add_argument("verb", help="get, list, watch, create, update, patch, delete, ... or *")
    p.add_argument("resource", metavar="KIND[/NAME]", help="pods, deployments.apps, pod/web, ...")
    p.add_argument("-A", "--all-namespaces", action="store_true", help="in any namespace")
    p.add_argument("--subresource", default="", help="log, status, exec, eviction, ...")
    p.add_argument("--as", dest="as_user", default=None, metavar="USER",
                   help="ask as this user (impersonation: needs the right to impersonate)")
    p.add_argument("--as-group", action="append", default=[], metavar="GROUP",
                   help="with --as: a group to impersonate (repeatable)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing; the exit code answers")
    p.set_defaults(func=cmd_can_i)
