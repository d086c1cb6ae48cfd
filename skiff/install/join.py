"""Join material: what a machine needs from the cluster before it can be installed, and
where it travels (a directory every machine sees: Vagrant's synced `.vagrant-skiff/`).

Today (no cluster CA yet) that is:
  raft-password   the replicas' shared Raft password (0600). Created once by whichever
                  control plane installs first (O_EXCL: two racing replicas end up with
                  the same one), or beforehand by the Vagrantfile on the host.
  admin.yaml      the CLI config for the host (`SKIFF_CONFIG=.vagrant-skiff/admin.yaml`),
                  written by every control plane (same content; compared first).
  join-token      HOOK for the pki join flow: a control plane writes the output of
                  `skiff token create` here once the API answers (publish_token); an
                  agent waits for it (wait_for_agent) and passes it to the agent in
                  agent.env as SKIFF_JOIN_TOKEN. Until pki lands nothing writes it and
                  agents only wait for the API.
"""

import os
import secrets
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


def publish_admin_config(join_dir: str, servers: list[str]) -> bool:
    os.makedirs(join_dir, exist_ok=True)
    text = yaml.safe_dump({"servers": list(servers)}, sort_keys=False)
    return write_file(os.path.join(join_dir, ADMIN_CONFIG), text, 0o600)


def api_answers(servers: list[str]) -> str:
    """"" if the control plane answers with a leader, else why not."""
    c = clientmod.Client(servers, call_timeout_s=2.0, failover_budget_s=2.0)
    try:
        st = c.cluster_status()
        if any(r.reachable and r.role == "leader" for r in st.replicas):
            return ""
        return "no Raft leader yet"
    except clientmod.ApiError as exc:
        return str(exc)
    finally:
        c.close()


def wait_for_agent(join_dir: str | None, servers: list[str], timeout_s: float, need_token: bool,
                   say=print) -> str:
    """An agent's wait until its join material is there and the API answers (so `vagrant
    up --parallel` may provision agents first); returns the join token ("" until pki).
    Raises TimeoutError naming what is still missing. A one-shot wait of the installer,
    not a daemon loop: one join-dir read and one ClusterStatus call every 2 s (each call
    bounded by 2 s), a progress line when the reason changes or every 30 s."""
    deadline = time.monotonic() + timeout_s
    last, said = "", 0.0
    while True:
        token = read_token(join_dir)
        why = "no join token in " + join_dir if need_token and not token else api_answers(servers)
        if not why:
            return token
        now = time.monotonic()
        if now >= deadline:
            raise TimeoutError(f"gave up after {timeout_s:.0f}s waiting for the control plane: {why}")
        if why != last or now - said > 30:
            say(f"installer: waiting for the control plane ({why})")
            last, said = why, now
        time.sleep(min(2.0, max(0.0, deadline - now)))
