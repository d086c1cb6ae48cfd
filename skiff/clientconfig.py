"""The CLI's config file (kubeconfig in small): where the control plane is and who we are.

    currentContext: admin@lab
    contexts:
      - name: admin@lab
        servers: ["127.0.0.1:7100", "127.0.0.1:7101", "127.0.0.1:7102"]
        user: skiff:admin                         # what the certificate says (shown by `skiff config`)
        certificateAuthorityData: <base64 PEM>    # or certificateAuthority: /path/ca.crt
        clientCertificateData: <base64 PEM>       # or clientCertificate: /path/admin.crt
        clientKeyData: <base64 PEM>               # or clientKey: /path/admin.key
      - name: robot@lab                           # a bearer token instead of (or with) a certificate
        servers: ["10.200.0.11:7300"]             # a join port: the API port requires a certificate
        certificateAuthority: /path/ca.crt
        token: <a ServiceAccount token>           # or tokenFile: /path/token (re-read when it changes)
    lab: /var/lib/skiff-lab                       # optional: the lab that wrote it (`skiff lab down` removes it)

token / tokenFile are kubeconfig's users[].user.token / tokenFile (skiff's contexts hold the
user's credentials themselves). They are sent only over TLS (the context needs a CA).

In-cluster (client-go's rest.InClusterConfig): with no config file at all, and
KUBERNETES_SERVICE_HOST / KUBERNETES_SERVICE_PORT set (every pod has them) and a
ServiceAccount token mounted at /var/run/secrets/kubernetes.io/serviceaccount, the client
dials $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT verifying the server with the
mounted ca.crt, authenticates with the mounted token (re-read as the agent renews it), and
the CLI's default namespace is the mounted `namespace`.

The older form, a top-level `servers: [...]` without contexts, is a plaintext cluster
(TLS off). A context without certificateAuthority* is plaintext too. `--server` and
$SKIFF_SERVER replace the servers of the current context, keeping its credentials.
"""

import base64
import os

import yaml

DEFAULT_CONFIG = os.path.expanduser("~/.skiff/config")
# Where a pod's ServiceAccount credentials are (skiff/satoken.py MOUNT_PATH, Kubernetes' path).
SERVICEACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
PEM_FIELDS = (("certificateAuthority", "ca"), ("clientCertificate", "cert"), ("clientKey", "key"))


class ConfigError(Exception):
    pass


def path_of(config_path: str | None = None) -> str:
    return config_path or os.environ.get("SKIFF_CONFIG") or DEFAULT_CONFIG


def load(path: str) -> dict:
    """The file as a document; FileNotFoundError when absent."""
    with open(path, encoding="utf-8") as f:
        try:
            doc = yaml.safe_load(f) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping")
    return doc


def save(path: str, doc: dict) -> None:
    """Write atomically with mode 0600 (it holds a private key)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        yaml.safe_dump(doc, f, sort_keys=False)
    os.replace(tmp, path)


def contexts(doc: dict, path: str) -> list[dict]:
    if "contexts" not in doc:
        if "servers" in doc:   # the older form: one plaintext context
            return [{"name": "default", "servers": doc["servers"]}]
        return []
    ctxs = doc.get("contexts") or []
    if not isinstance(ctxs, list) or not all(isinstance(c, dict) and c.get("name") for c in ctxs):
        raise ConfigError(f"{path}: contexts: expected a list of mappings with a name")
    return ctxs


def current(doc: dict, path: str) -> dict:
    ctxs = contexts(doc, path)
    if not ctxs:
        raise ConfigError(f"{path}: no contexts (and no servers)")
    name = doc.get("currentContext")
    if not name:
        return ctxs[0]
    for c in ctxs:
        if c["name"] == name:
            return c
    raise ConfigError(f"{path}: currentContext {name!r} is not one of the contexts "
                      f"({', '.join(c['name'] for c in ctxs)})")


def context_pem(ctx: dict, path: str) -> dict:
    """{"ca", "cert", "key"} PEM bytes of a context (b"" where absent)."""
    out = {}
    for field, short in PEM_FIELDS:
        data, file_ = ctx.get(field + "Data"), ctx.get(field)
        if data:
            try:
                out[short] = base64.b64decode(data, validate=True)
            except ValueError:
                raise ConfigError(f"{path}: context {ctx['name']}: {field}Data is not base64") from None
        elif file_:
            try:
                with open(os.path.expanduser(file_), "rb") as f:
                    out[short] = f.read()
            except OSError as exc:
                raise ConfigError(f"{path}: context {ctx['name']}: {field}: {exc}") from None
        else:
            out[short] = b""
    return out


def context_doc(name: str, servers, *, user: str = "", ca: bytes = b"", cert: bytes = b"",
                key: bytes = b"") -> dict:
    ctx = {"name": name, "servers": list(servers)}
    if user:
        ctx["user"] = user
    for (field, _short), pem in zip(PEM_FIELDS, (ca, cert, key)):
        if pem:
            ctx[field + "Data"] = base64.b64encode(pem).decode()
    return ctx


def upsert_context(doc: dict, ctx: dict, make_current: bool = False) -> dict:
    ctxs = [c for c in (doc.get("contexts") or []) if c.get("name") != ctx["name"]]
    ctxs.append(ctx)
    doc["contexts"] = ctxs
    doc.pop("servers", None)
    if make_current or not doc.get("currentContext"):
        doc["currentContext"] = ctx["name"]
    return doc


def in_cluster(environ=None, sa_dir: str | None = None) -> dict | None:
    """The in-cluster config as a context ({"name", "servers", "certificateAuthority",
    "tokenFile", "namespace"}), or None when not in a pod (no KUBERNETES_SERVICE_HOST/PORT,
    or no mounted token)."""
    env = os.environ if environ is None else environ
    sa_dir = sa_dir or SERVICEACCOUNT_DIR
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    token_file = os.path.join(sa_dir, "token")
    if not host or not port or not os.path.isfile(token_file):
        return None
    if ":" in host:
        host = f"[{host}]"      # an IPv6 address, as net.JoinHostPort writes it
    ctx = {"name": "in-cluster", "servers": [f"{host}:{port}"],
           "certificateAuthority": os.path.join(sa_dir, "ca.crt"), "tokenFile": token_file}
    try:
        with open(os.path.join(sa_dir, "namespace"), encoding="utf-8") as f:
            ctx["namespace"] = f.read().strip()
    except OSError:
        pass
    return ctx


def default_namespace(config_path: str | None = None) -> str | None:
    """The namespace commands use without -n: the in-cluster one (a pod's own), else None
    (the caller's default, "default")."""
    if os.path.exists(path_of(config_path)):
        return None
    ctx = in_cluster()
    return ctx.get("namespace") or None if ctx else None


def resolve(server: str | None = None, config_path: str | None = None):
    """(endpoints, Credentials or None): see resolve_all."""
    return resolve_all(server, config_path)[:2]


def resolve_all(server: str | None = None, config_path: str | None = None):
    """(endpoints, Credentials or None, {"token"|"token_file": ...}): --server, then
    $SKIFF_SERVER, then the current context's servers; credentials from the current
    context when the file exists, else from the pod's mounted ServiceAccount (in_cluster)."""
    from skiff.pki.tls import Credentials
    path = path_of(config_path)
    text = server or os.environ.get("SKIFF_SERVER")
    explicit = [s.strip() for s in text.split(",") if s.strip()] if text else None
    try:
        doc = load(path)
    except FileNotFoundError:
        ctx = in_cluster()
        if ctx is None:
            if explicit:
                return explicit, None, {}
            raise ConfigError(f"no control plane configured: pass --server HOST:PORT, set SKIFF_SERVER, "
                              f"or run 'skiff lab up' (which writes {path})") from None
        path = "in-cluster config"
    else:
        ctx = current(doc, path)
    servers = explicit or ctx.get("servers")
    if not servers or not all(isinstance(s, str) for s in servers):
        raise ConfigError(f"{path}: context {ctx['name']}: expected 'servers: [host:port, ...]'")
    pem = context_pem(ctx, path)
    bearer = context_bearer(ctx, path)
    if not pem["ca"]:
        if bearer:
            raise ConfigError(f"{path}: context {ctx['name']}: a token needs certificateAuthority "
                              f"(tokens are sent over TLS only)")
        return list(servers), None, {}
    return list(servers), Credentials(ca=pem["ca"], cert=pem["cert"], key=pem["key"]), bearer


def context_bearer(ctx: dict, path: str) -> dict:
    """{"token": ...} or {"token_file": ...} of a context ({} without)."""
    token, token_file = ctx.get("token"), ctx.get("tokenFile")
    if token and token_file:
        raise ConfigError(f"{path}: context {ctx['name']}: token and tokenFile are exclusive")
    if token:
        if not isinstance(token, str):
            raise ConfigError(f"{path}: context {ctx['name']}: token: expected a string")
        return {"token": token.strip()}
    if token_file:
        token_file = os.path.expanduser(str(token_file))
        if not os.path.isfile(token_file):
            raise ConfigError(f"{path}: context {ctx['name']}: tokenFile: {token_file}: no such file")
        return {"token_file": token_file}
    return {}
