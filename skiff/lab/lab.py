"""`skiff lab`: a whole cluster on this host, recorded in one lab directory.

lab.json in the lab directory records what was made (ports, pids) as soon as it
is made, so `skiff lab down` can remove everything even after the tooling itself
crashed half-way through `up`.
"""

import json
import os
import shutil
import sys
import time

import yaml

from skiff.lab.controlplane import ControlPlane

DEFAULT_LAB_DIR = os.environ.get("SKIFF_LAB_DIR", "/var/lib/skiff-lab")
STATE_FILE = "lab.json"


def user_config_path() -> str:
    return os.environ.get("SKIFF_CONFIG") or os.path.expanduser("~/.skiff/config")


def _say(msg: str) -> None:
    print(msg, flush=True)


class Lab:
    def __init__(self, lab_dir: str = DEFAULT_LAB_DIR):
        self.lab_dir = os.path.abspath(lab_dir)
        self.state_path = os.path.join(self.lab_dir, STATE_FILE)

    # ------------------------------------------------------------ state

    def load(self) -> dict | None:
        try:
            with open(self.state_path, encoding="utf-8") as f:
                return json.load(f)
        except FileNotFoundError:
            return None

    def save(self, state: dict) -> None:
        tmp = self.state_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(state, f, indent=2)
        os.replace(tmp, self.state_path)

    def controlplane(self, state: dict | None = None) -> ControlPlane | None:
        state = state or self.load()
        if not state:
            return None
        cp_state = state["controlplane"]
        cp = ControlPlane(self.lab_dir, replicas=cp_state["replicas"], host=cp_state["host"],
                          api_base_port=cp_state["apiBasePort"],
                          raft_base_port=cp_state["raftBasePort"])
        cp.pids = {k: int(v) for k, v in cp_state.get("pids", {}).items()}
        return cp

    def record_pids(self, cp: ControlPlane) -> None:
        state = self.load()
        state["controlplane"]["pids"] = dict(cp.pids)
        self.save(state)

    # ------------------------------------------------------------ up / down / status

    def up(self, *, replicas: int = 3, nodes: int = 0, api_base_port: int = 7100,
           raft_base_port: int = 7200, host: str = "127.0.0.1", timeout_s: float = 60.0) -> ControlPlane:
        if nodes:
            raise LabError("nodes arrive with the node agent (next issue); use --nodes 0")
        existing = self.load()
        if existing is not None:
            cp = self.controlplane(existing)
            if any(cp.is_running(n) for n in cp.names):
                raise LabError(f"a lab is already up in {self.lab_dir} (skiff lab down first)")
            _say(f"cleaning up the remains of an earlier lab in {self.lab_dir}")
            self.down(quiet=True)
        os.makedirs(self.lab_dir, exist_ok=True)
        started = time.monotonic()
        cp = ControlPlane(self.lab_dir, replicas=replicas, host=host,
                          api_base_port=api_base_port, raft_base_port=raft_base_port)
        self.save({"controlplane": {"replicas": replicas, "host": host, "apiBasePort": api_base_port,
                                    "raftBasePort": raft_base_port, "pids": {}},
                   "createdBy": "skiff lab up"})
        _say(f"lab directory {self.lab_dir}")
        cp.write_configs()
        for name in cp.names:
            cp.start(name)
            self.record_pids(cp)
            _say(f"started control-plane replica {name} pid={cp.pids[name]} "
                 f"api={cp.api_address(name)} raft={cp.raft_address(name)}")
        _say("waiting for a Raft leader and the built-in namespaces ...")
        try:
            cp.wait_ready(timeout_s)
        except TimeoutError as exc:
            raise LabError(f"{exc}; logs in {os.path.join(self.lab_dir, 'logs')}") from exc
        leader = cp.leader()
        self._write_client_config(cp)
        elapsed = time.monotonic() - started
        _say("")
        _say(f"skiff lab is up ({elapsed:.1f}s): {replicas} control-plane replicas, {nodes} nodes")
        _say(f"  endpoints : {','.join(cp.endpoints)}")
        _say(f"  leader    : {leader}")
        _say(f"  config    : {user_config_path()}  (the CLI uses it; or SKIFF_SERVER=...)")
        _say(f"  logs      : {os.path.join(self.lab_dir, 'logs')}")
        _say("  try       : skiff cluster status; skiff get ns; skiff chaos kill-controlplane leader")
        return cp

    def _write_client_config(self, cp: ControlPlane) -> None:
        doc = {"servers": cp.endpoints, "lab": self.lab_dir}
        text = yaml.safe_dump(doc, sort_keys=False)
        with open(os.path.join(self.lab_dir, "config"), "w", encoding="utf-8") as f:
            f.write(text)
        path = user_config_path()
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)

    def down(self, quiet: bool = False) -> None:
        state = self.load()
        if state is None:
            if os.path.isdir(self.lab_dir):
                # A crash before lab.json was written: only our own files remain.
                shutil.rmtree(self.lab_dir, ignore_errors=True)
            if not quiet:
                _say(f"no lab in {self.lab_dir}")
            return
        cp = self.controlplane(state)
        cp.stop_all()
        if not quiet:
            _say(f"stopped control-plane replicas {', '.join(cp.names)}")
        cfg = user_config_path()
        try:
            with open(cfg, encoding="utf-8") as f:
                if (yaml.safe_load(f) or {}).get("lab") == self.lab_dir:
                    os.remove(cfg)
        except (OSError, AttributeError, yaml.YAMLError):
            pass
        shutil.rmtree(self.lab_dir, ignore_errors=True)
        if not quiet:
            _say(f"removed {self.lab_dir}")

    def status(self) -> str:
        state = self.load()
        if state is None:
            return f"no lab in {self.lab_dir}"
        cp = self.controlplane(state)
        lines = [f"lab {self.lab_dir}"]
        for name in cp.names:
            running = cp.is_running(name)
            lines.append(f"  {name}  {'running' if running else 'stopped'}  pid={cp.pids.get(name, '-')}"
                         f"  api={cp.api_address(name)}")
        return "\n".join(lines)


class LabError(RuntimeError):
    pass


def require_root() -> None:
    if os.geteuid() != 0:
        print("skiff lab: warning: not root; the control plane runs, nodes will need root",
              file=sys.stderr)
