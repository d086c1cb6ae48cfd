"""A unit runner: runs a systemd unit's ExecStart line exactly, where systemd is not PID 1
(CI containers, the lab machines). The installer uses it instead of systemctl then, so
what a test runs is the unit file a VM's systemd runs.

What it honours of the unit (the subset skiff's units use; anything else in [Service]
is refused so a unit never silently means more than what runs): ExecStart (one line,
split like systemd does for these: shell-style words, no prefixes), EnvironmentFile=
(a leading `-` = optional; KEY=VALUE lines, shell quoting), Environment=,
WorkingDirectory=, KillMode= (control-group: the whole process group is stopped;
process: the main process only). Restart=/RestartSec= are recorded, not acted on: the
runner starts and stops, it does not supervise (no loop, nothing periodic).

State under STATE_DIR (/var/lib/skiff/runner): <unit>.pid ("pid starttime"),
<unit>.enabled, <unit>.log (stdout+stderr).

    python -m skiff.install.runner start|stop|restart|status UNIT [--unit-dir DIR]
"""

import argparse
import os
import shlex
import signal
import subprocess
import sys
import time

STATE_DIR = "/var/lib/skiff/runner"
UNIT_DIR = "/etc/systemd/system"
_KNOWN_SERVICE = {"Type", "ExecStart", "EnvironmentFile", "Environment", "WorkingDirectory",
                  "KillMode", "Delegate", "Restart", "RestartSec", "LimitNOFILE", "TasksMax",
                  "TimeoutStartSec"}


class UnitError(RuntimeError):
    pass


def parse_unit(text: str, source: str = "unit") -> dict:
    """section -> {key: [values]} (a key may repeat, like Environment=)."""
    out: dict = {}
    section = None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = out.setdefault(line[1:-1], {})
            continue
        if section is None or "=" not in line:
            raise UnitError(f"{source}:{n}: not a key=value line in a section: {raw!r}")
        key, _, value = line.partition("=")
        section.setdefault(key.strip(), []).append(value.strip())
    service = out.get("Service", {})
    unknown = sorted(set(service) - _KNOWN_SERVICE)
    if unknown:
        raise UnitError(f"{source}: [Service] {', '.join(unknown)} not supported by the unit runner")
    if len(service.get("ExecStart", [])) != 1:
        raise UnitError(f"{source}: exactly one ExecStart= line expected")
    return out


def parse_env_file(text: str) -> dict:
    env = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        key, sep, value = line.partition("=")
        if sep:
            words = shlex.split(value) if value else [""]
            env[key.strip()] = " ".join(words)
    return env


def exec_spec(unit: dict) -> tuple[list, dict, str | None]:
    """(argv, environment, cwd) the unit's ExecStart runs with."""
    svc = unit["Service"]
    argv = shlex.split(svc["ExecStart"][0])
    if not argv or not argv[0].startswith("/"):
        raise UnitError(f"ExecStart must start with an absolute path, got {svc['ExecStart'][0]!r}")
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    for item in svc.get("Environment", []):
        for word in shlex.split(item):
            k, _, v = word.partition("=")
            env[k] = v
    for path in svc.get("EnvironmentFile", []):
        optional = path.startswith("-")
        path = path.lstrip("-")
        try:
            with open(path, encoding="utf-8") as f:
                env.update(parse_env_file(f.read()))
        except FileNotFoundError:
            if not optional:
                raise UnitError(f"EnvironmentFile {path} is missing") from None
    cwd = (svc.get("WorkingDirectory") or [None])[0]
    return argv, env, cwd


def _start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


class Runner:
    def __init__(self, unit_dir: str = UNIT_DIR, state_dir: str = STATE_DIR):
        self.unit_dir = unit_dir
        self.state_dir = state_dir

    def _unit(self, name: str) -> dict:
        path = os.path.join(self.unit_dir, name)
        try:
            with open(path, encoding="utf-8") as f:
                return parse_unit(f.read(), path)
        except FileNotFoundError:
            raise UnitError(f"{path}: no such unit") from None

    def _pidfile(self, name: str) -> str:
        return os.path.join(self.state_dir, name + ".pid")

    def pid(self, name: str) -> int | None:
        """The unit's main pid if that very process still runs (pid and start time match)."""
        try:
            with open(self._pidfile(name), encoding="utf-8") as f:
                pid_s, start = f.read().split()
        except (OSError, ValueError):
            return None
        pid = int(pid_s)
        return pid if _start_time(pid) == start else None

    def is_active(self, name: str) -> bool:
        return self.pid(name) is not None

    def is_enabled(self, name: str) -> bool:
        return os.path.exists(os.path.join(self.state_dir, name + ".enabled"))

    def enable(self, name: str) -> None:
        self._unit(name)
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        with open(os.path.join(self.state_dir, name + ".enabled"), "w", encoding="utf-8"):
            pass

    def daemon_reload(self) -> None:
        """Units are read at each start: nothing is cached, nothing to reload."""

    def start(self, name: str) -> int:
        pid = self.pid(name)
        if pid:
            return pid
        argv, env, cwd = exec_spec(self._unit(name))
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        log = open(os.path.join(self.state_dir, name + ".log"), "ab")
        try:
            proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        with open(self._pidfile(name), "w", encoding="utf-8") as f:
            f.write(f"{proc.pid} {_start_time(proc.pid)}\n")
        return proc.pid

    def stop(self, name: str, timeout_s: float = 10.0) -> bool:
        """SIGTERM (the main pid, or its process group unless KillMode=process), SIGKILL
        after timeout_s, as systemd's TimeoutStopSec does."""
        pid = self.pid(name)
        if not pid:
            return False
        try:
            mode = (self._unit(name)["Service"].get("KillMode") or ["control-group"])[0]
        except UnitError:
            mode = "control-group"

        def kill(sig):
            try:
                if mode == "process":
                    os.kill(pid, sig)
                else:
                    os.killpg(pid, sig)
            except ProcessLookupError:
                pass

        kill(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while self.pid(name) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.05)
        if self.pid(name):
            kill(signal.SIGKILL)
            while self.pid(name):
                _reap(pid)
                time.sleep(0.05)
        os.unlink(self._pidfile(name))
        return True

    def restart(self, name: str) -> int:
        self.stop(name)
        return self.start(name)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m skiff.install.runner",
                                 description="Run a systemd unit's ExecStart without systemd.")
    ap.add_argument("action", choices=["start", "stop", "restart", "status"])
    ap.add_argument("unit")
    ap.add_argument("--unit-dir", default=UNIT_DIR)
    ap.add_argument("--state-dir", default=STATE_DIR)
    args = ap.parse_args(argv)
    r = Runner(args.unit_dir, args.state_dir)
    try:
        if args.action == "status":
            pid = r.pid(args.unit)
            print(f"{args.unit}: " + (f"active pid={pid}" if pid else "inactive"))
            return 0 if pid else 3
        result = getattr(r, args.action)(args.unit)
        print(f"{args.unit}: {args.action} " + (f"pid={result}" if isinstance(result, int) else "done"))
        return 0
    except UnitError as exc:
        print(f"runner: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
