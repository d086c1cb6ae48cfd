"""`skiff token` (join tokens) and `skiff config` (the CLI's contexts and users).

    skiff token create [--ttl 24h] [--description TEXT]   prints SKIFF1-<CA digest>-<id>.<secret>
    skiff token list                                      TOKEN ID, EXPIRES, DESCRIPTION
    skiff token delete ID|TOKEN ...
    skiff config view                                     the config, key material omitted
    skiff config get-contexts
    skiff config use-context NAME
    skiff config create-user NAME [--group G]... [--pki-dir DIR] [--use]

Tokens are Secrets bootstrap-token-<id> in kube-system holding the SHA-256 of the secret
(skiff/pki/tokens.py); `create` needs a TLS context (the digest is the CA's). As kubeadm's
`token create`, the default TTL is 24h; 0 never expires.

create-user signs a client certificate (CN NAME, O each --group) with the CA key, so it
runs where the CA key is (kubeadm's `kubeconfig user`): --pki-dir, else the lab's
<lab>/pki, else /etc/skiff/pki. The user gets a context NAME@<cluster> in the config file
(not made current without --use); what the user may do is RBAC's business.
"""

import datetime
import os

import yaml

from skiff import client as clientmod
from skiff import clientconfig
from skiff.cli.common import client as _client
from skiff.cli.common import server_error
from skiff.cli.errors import CliError
from skiff.pki import authority, certs, tokens

DEFAULT_TTL = "24h"
INSTALLED_PKI = "/etc/skiff/pki"


def add_parsers(sub, common):
    t = sub.add_parser("token", parents=[common], help="join tokens for agents")
    tsub = t.add_subparsers(dest="token_cmd", required=True)
    c = tsub.add_parser("create", parents=[common], help="create a join token and print it")
    c.add_argument("--ttl", default=DEFAULT_TTL, help="lifetime, e.g. 24h, 30m, 0 = never (default 24h)")
    c.add_argument("--description", default="")
    c.set_defaults(func=token_create)
    tsub.add_parser("list", parents=[common], help="list join tokens").set_defaults(func=token_list)
    d = tsub.add_parser("delete", parents=[common], help="delete join tokens")
    d.add_argument("tokens", nargs="+", metavar="ID|TOKEN")
    d.set_defaults(func=token_delete)

    g = sub.add_parser("config", parents=[common], help="the CLI's contexts and users")
    gsub = g.add_subparsers(dest="config_cmd", required=True)
    gsub.add_parser("view", parents=[common], help="show the config (keys omitted)").set_defaults(func=config_view)
    gsub.add_parser("get-contexts", parents=[common], help="list contexts").set_defaults(func=get_contexts)
    u = gsub.add_parser("use-context", parents=[common], help="switch the current context")
    u.add_argument("name")
    u.set_defaults(func=use_context)
    cu = gsub.add_parser("create-user", parents=[common], help="issue a client certificate and add a context")
    cu.add_argument("name")
    cu.add_argument("--group", action="append", default=[], help="a group (certificate O); repeatable")
    cu.add_argument("--pki-dir", default=None, help="where ca.crt and ca.key are")
    cu.add_argument("--use", action="store_true", help="make the new context current")
    cu.set_defaults(func=create_user)


# ------------------------------------------------------------ tokens

def token_create(args) -> int:
    try:
        ttl_s = tokens.parse_ttl(args.ttl)
    except tokens.TokenError as exc:
        raise CliError(str(exc)) from None
    c = _client(args)
    try:
        print(tokens.create(c, ttl_s, args.description))
    except tokens.TokenError as exc:
        raise CliError(f"{exc}: the current context has no certificateAuthority") from None
    except clientmod.ApiError as exc:
        raise CliError(server_error(exc)) from None
    finally:
        c.close()
    return 0


def token_list(args) -> int:
    c = _client(args)
    try:
        try:
            items, _rv = c.list("secret", namespace=tokens.NAMESPACE)
        except clientmod.ApiError as exc:
            raise CliError(server_error(exc)) from None
    finally:
        c.close()
    rows = [("TOKEN ID", "EXPIRES", "DESCRIPTION")]
    now = datetime.datetime.now(datetime.timezone.utc)
    for s in items:
        if s.type != tokens.SECRET_TYPE:
            continue
        data = {k: v.decode() for k, v in s.data.items()}
        exp = tokens.expiration(data)
        when = "<never>" if exp is None else (data["expiration"] + (" (expired)" if exp <= now else ""))
        rows.append((data.get("token-id", "?"), when, data.get("description", "")))
    if len(rows) == 1:
        print("No join tokens found.")
        return 0
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("   ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    return 0


def token_delete(args) -> int:
    c = _client(args)
    rc = 0
    try:
        for t in args.tokens:
            token_id = tokens.parse_token(t)[1] if t.startswith(tokens.PREFIX) else t.split(".")[0]
            try:
                c.delete("secret", tokens.secret_name(token_id), namespace=tokens.NAMESPACE)
                print(f"join token {token_id} deleted")
            except clientmod.NotFound:
                print(f"error: join token {token_id} not found", flush=True)
                rc = 1
            except clientmod.ApiError as exc:
                raise CliError(server_error(exc)) from None
    except tokens.TokenError as exc:
        raise CliError(str(exc)) from None
    finally:
        c.close()
    return rc


# ------------------------------------------------------------ config

def _load():
    path = clientconfig.path_of()
    try:
        return path, clientconfig.load(path)
    except FileNotFoundError:
        raise CliError(f"no config file at {path} (skiff lab up writes one)") from None
    except clientconfig.ConfigError as exc:
        raise CliError(str(exc)) from None


def config_view(args) -> int:
    _path, doc = _load()
    shown = dict(doc)
    shown["contexts"] = []
    for ctx in doc.get("contexts") or []:
        ctx = dict(ctx)
        for k in list(ctx):
            if k.endswith("Data"):
                ctx[k] = "DATA+OMITTED"      # kubectl config view's redaction
        shown["contexts"].append(ctx)
    if not shown["contexts"]:
        shown.pop("contexts")
    print(yaml.safe_dump(shown, sort_keys=False), end="")
    return 0


def get_contexts(args) -> int:
    path, doc = _load()
    try:
        ctxs = clientconfig.contexts(doc, path)
        cur = clientconfig.current(doc, path)["name"] if ctxs else ""
    except clientconfig.ConfigError as exc:
        raise CliError(str(exc)) from None
    rows = [("CURRENT", "NAME", "USER", "SERVERS")]
    for ctx in ctxs:
        rows.append(("*" if ctx["name"] == cur else "", ctx["name"], ctx.get("user", ""),
                     ",".join(ctx.get("servers") or [])))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("   ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    return 0


def use_context(args) -> int:
    path, doc = _load()
    names = [c["name"] for c in clientconfig.contexts(doc, path)]
    if args.name not in names:
        raise CliError(f'no context exists with the name: "{args.name}"')
    doc["currentContext"] = args.name
    clientconfig.save(path, doc)
    print(f'Switched to context "{args.name}".')
    return 0


def _pki_dir(args, doc) -> str:
    if args.pki_dir:
        return args.pki_dir
    if doc.get("lab"):
        return os.path.join(doc["lab"], "pki")
    return INSTALLED_PKI


def create_user(args) -> int:
    path, doc = _load()
    try:
        cur = clientconfig.current(doc, path)
        pem = clientconfig.context_pem(cur, path)
    except clientconfig.ConfigError as exc:
        raise CliError(str(exc)) from None
    ca = authority.Authority(_pki_dir(args, doc))
    if not ca.exists():
        raise CliError(f"no CA key in {ca.dir} (ca.crt, ca.key): run this where the cluster CA is, "
                       f"or pass --pki-dir")
    if pem["ca"] and certs.ca_digest(pem["ca"]) != ca.digest():
        raise CliError(f"the CA in {ca.dir} is not the CA of context {cur['name']}")
    key = certs.new_key_pem()
    cert = ca.sign(certs.load_key(key).public_key(),
                   **authority.admin_identity(args.name, tuple(args.group)))
    cluster = cur["name"].split("@", 1)[1] if "@" in cur["name"] else cur["name"]
    name = f"{args.name}@{cluster}"
    ctx = clientconfig.context_doc(name, cur.get("servers") or [], user=args.name, ca=ca.ca_pem(),
                                   cert=cert, key=key)
    clientconfig.upsert_context(doc, ctx, make_current=args.use)
    clientconfig.save(path, doc)
    groups = f" in {', '.join(args.group)}" if args.group else ""
    print(f'user "{args.name}"{groups}: certificate issued, context "{name}" added to {path}'
          + (" (current)" if args.use else f" (skiff config use-context {name})"))
    return 0
