"""Join material: what a machine needs from the cluster before it can be installed, and
where it travels (a directory every machine sees: Vagrant's synced `.vagrant-skiff/`).

  raft-password   the replicas' shared Raft password (0600). Created once by whichever
                  control plane installs first (O_EXCL: two racing replicas end up with
                  the same one), or beforehand by the Vagrantfile on the host.
  controlplane/   the replicas' shared secrets: cluster CA, encryption config, ServiceAccount
                  signing key, admin certificate (cluster.py). For replicas only.
  admin.yaml      the CLI config for the host (`SKIFF_CONFIG=.vagrant-skiff/admin.yaml`):
                  the admin context (CA, admin client certificate, the replicas' API
                  addresses), written by every control plane (same content; compared first).
  join-token      a bootstrap token (`skiff token create`, TTL --token-ttl) a control plane
                  writes once the API answers (ensure_token), and replaces when it has
                  expired or was deleted; an agent waits for it (wait_for_agent) and puts it
                  in its config's tls.joinToken.
"""

import os
import secrets
import socket
import time

import yaml

from skiff import client as clientmod
from skiff.install.apply import write_file

RAFT_PASSWORD = "raft-password"
ADMIN_CONFIG = "admin.yaml"
JOIN_TOKEN = "join-token"


def raft_password(join_dir: str | None, installed: str, create: bool) -> str:
    """The cluster's Raft password: the join directory's (created if create and absent),
    else the one installed on this machine, else a new one (create only)."""
    if join_dir:
        path = os.path.join(join_dir, RAFT_PASSWORD)
        if create and not os.path.exists(path):
            os.makedirs(join_dir, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as f:
                    f.write(secrets.token_hex(24) + "\n")
            except FileExistsError:
                pass
        try:
            with open(path, encoding="utf-8") as f:
                return f.read().strip()
        except FileNotFoundError:
            if not create:
                return ""
    try:
        with open(installed, encoding="utf-8") as f:
            return f.read().strip()
    except FileNotFoundError:
        return secrets.token_hex(24) if create else ""


def read_token(join_dir: str | None) -> str:
    if not join_dir:
        return ""
    try:
        with open(os.path.join(join_dir, JOIN_TOKEN), encoding="utf-8") as f:
            return f.read().strip()
    except FileNotFoundError:
        return ""


def publish_admin_config(join_dir: str, text: str) -> bool:
    """The admin config (render.admin_config: the same text on every replica) for the host."""
    os.makedirs(join_dir, exist_ok=True)
    return write_file(os.path.join(join_dir, ADMIN_CONFIG), text, 0o600)


def admin_credentials(admin_yaml: str):
    """The TLS credentials of an admin config's current context (None: plaintext)."""
    from skiff import clientconfig
    from skiff.pki.tls import Credentials
    doc = yaml.safe_load(admin_yaml) or {}
    pem = clientconfig.context_pem(clientconfig.current(doc, "admin config"), "admin config")
    return Credentials(ca=pem["ca"], cert=pem["cert"], key=pem["key"]) if pem["ca"] else None


def api_answers(servers: list[str], tls=None) -> str:
    """"" if the control plane answers with a leader, else why not. tls: the admin's
    Credentials on a TLS cluster."""
    c = clientmod.Client(servers, call_timeout_s=2.0, failover_budget_s=2.0, tls=tls)
    try:
        st = c.cluster_status()
        if any(r.reachable and r.role == "leader" for r in st.replicas):
            return ""
        return "no Raft leader yet"
    except clientmod.ApiError as exc:
        return str(exc)
    finally:
        c.close()


def port_answers(servers: list[str]) -> str:
    """"" if a TCP connection to one of servers (host:port) opens, else why not. An agent
    has no credentials for the API before it joins: it checks that a join port listens
    (the join itself pins the CA and retries)."""
    errors = []
    for s in servers:
        host, _, port = s.rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=2.0).close()
            return ""
        except OSError as exc:
            errors.append(f"{s}: {exc.strerror or exc}")
    return "; ".join(errors)


def wait_for_agent(join_dir: str | None, servers: list[str], timeout_s: float, need_token: bool,
                   say=print, tls=None, check=None) -> str:
    """An agent's wait until its join material is there and the control plane answers
    (so `vagrant up --parallel` may provision agents first); returns the join token.
    check(servers) -> "" or why not: default api_answers (ClusterStatus with tls).
    Raises TimeoutError naming what is still missing. A one-shot wait of the installer,
    not a daemon loop: one join-dir read and one check every 2 s (each bounded by 2 s
    per server), a progress line when the reason changes or every 30 s."""
    deadline = time.monotonic() + timeout_s
    last, said = "", 0.0
    check = check or (lambda s: api_answers(s, tls))
    while True:
        token = read_token(join_dir)
        why = "no join token in " + str(join_dir) if need_token and not token else check(servers)
        if not why:
            return token
        now = time.monotonic()
        if now >= deadline:
            raise TimeoutError(f"gave up after {timeout_s:.0f}s waiting for the control plane: {why}")
        if why != last or now - said > 30:
            say(f"installer: waiting for the control plane ({why})")
            last, said = why, now
        time.sleep(min(2.0, max(0.0, deadline - now)))


def _token_state(client, token: str) -> str:
    """"" if token is stored and neither expired nor about to (within an hour), else why not."""
    import datetime
    from skiff.pki import tokens
    try:
        _, token_id, secret = tokens.parse_token(token)
    except tokens.TokenError as exc:
        return str(exc)
    try:
        s = client.get("secrets", tokens.secret_name(token_id), tokens.NAMESPACE)
    except clientmod.NotFound:
        return f"join token {token_id} does not exist"
    data = {k: v.decode() for k, v in s.data.items()}
    soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    try:
        tokens.check(data, token_id, secret, now=soon)
    except tokens.TokenError as exc:
        return str(exc)
    return ""


def ensure_token(join_dir: str, servers: list[str], tls, ttl_s: float, wait_s: float, say=print) -> bool:
    """A control plane's part of the join flow: once the API answers (with the admin's
    certificate), make sure join_dir/join-token holds a usable token: kept if it is stored
    and not expiring within the hour, else a new one (`skiff token create --ttl`) replaces
    it. Returns whether the file was written. If the API does not answer within wait_s
    (no quorum yet: the next replica's install publishes it) it says so and returns False.
    Replicas racing here may each create a token; the last file written wins, the other
    token expires unused."""
    from skiff.pki import tokens
    deadline = time.monotonic() + wait_s
    why = ""
    while True:
        why = api_answers(servers, tls)
        if not why:
            c = clientmod.Client(servers, call_timeout_s=5.0, failover_budget_s=10.0, tls=tls)
            try:
                current = read_token(join_dir)
                state = _token_state(c, current) if current else "none yet"
                if not state:
                    return False
                token = tokens.create(c, ttl_s, "skiff installer: agents' join (join-token)")
            except (clientmod.ApiError, tokens.TokenError) as exc:
                why = str(exc)      # e.g. kube-system not made yet right after the election
                token = ""
            finally:
                c.close()
            if token:
                write_file(os.path.join(join_dir, JOIN_TOKEN), token + "\n", 0o600)
                say(f"installer: wrote {os.path.join(join_dir, JOIN_TOKEN)} ({state})")
                return True
        if time.monotonic() >= deadline:
            say(f"installer: no join token published yet ({why}); the next control-plane install "
                f"(or a rerun here) publishes it")
            return False
        time.sleep(2.0)
