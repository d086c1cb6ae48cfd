"""What every part of `skiff lab` shares: where labs live, the error type, progress
output, the lab's record (lab.json) when it is new, and the CLI config the lab writes."""

import os

import yaml

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


def write_client_config(lab_dir: str, endpoints: list[str]) -> None:
    """The CLI's config (servers, and which lab wrote it), in the lab directory and at
    user_config_path(), which `skiff lab down` removes only while it names this lab."""
    doc = {"servers": list(endpoints), "lab": lab_dir}
    text = yaml.safe_dump(doc, sort_keys=False)
    with open(os.path.join(lab_dir, "config"), "w", encoding="utf-8") as f:
        f.write(text)
    path = user_config_path()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
