"""What every part of `skiff lab` shares: where labs live, the error type, progress
output, the lab's record (lab.json) when it is new, and the CLI config the lab writes."""

import os

from skiff.lab import procs

DEFAULT_LAB_DIR = os.environ.get("SKIFF_LAB_DIR", "/var/lib/skiff-lab")
STATE_FILE = "lab.json"


class LabError(RuntimeError):
    pass


def say(msg: str) -> None:
    print(msg, flush=True)


def user_config_path() -> str:
    return os.environ.get("SKIFF_CONFIG") or os.path.expanduser("~/.skiff/config")


def new_state(mode: str, cp, replicas: int, host: str) -> dict:
    """A new lab.json record, marked incomplete and owned by this process until `up` ends."""
    me = os.getpid()
    return {"createdBy": "skiff lab up", "mode": mode, "complete": False,
            "tooling": {"pid": me, "start": procs.start_time(me)},
            "controlplane": {"replicas": replicas, "host": host,
                             "apiBasePort": cp.api_base_port,
                             "raftBasePort": cp.raft_base_port, "pids": {}}}


def write_client_config(lab_dir: str, endpoints: list[str], cp=None) -> None:
    """The CLI's config (skiff/clientconfig.py: a context with the servers and, with TLS on,
    the admin's certificate; and which lab wrote it), in the lab directory and at
    user_config_path(), which `skiff lab down` removes only while it names this lab."""
    from skiff import clientconfig
    pem = cp.pki.admin_pem() if cp is not None and cp.tls else {}
    ctx = clientconfig.context_doc("admin@skiff-lab", endpoints, user="skiff:admin" if pem else "", **pem)
    doc = {"currentContext": ctx["name"], "contexts": [ctx], "lab": lab_dir}
    clientconfig.save(os.path.join(lab_dir, "config"), doc)
    clientconfig.save(user_config_path(), doc)
