"""Processes the lab starts: spawned in their own session, tracked by pid, killed by pid.

A pid is only ever signalled after checking that its command line still names
the lab file we started it with, so a recycled pid is never hit.
"""

import os
import signal
import subprocess
import time


def spawn(argv, log_path, env=None, cwd=None) -> int:
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, env=env, close_fds=True, cwd=cwd)
    return proc.pid


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def alive(pid: int, marker: str) -> bool:
    """True if pid runs and its command line contains marker (our config path)."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            if f.read().split(b") ", 1)[1][:1] == b"Z":
                _reap(pid)
                return False
    except (OSError, IndexError):
        return False
    return marker in cmdline(pid)


def _reap(pid):
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def kill_group(pid: int, marker: str, sig=signal.SIGKILL) -> bool:
    """Signal the process group led by pid (it was started in its own session)."""
    if not alive(pid, marker):
        return False
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return False
    return True


def stop(pid: int, marker: str, timeout_s: float = 5.0) -> None:
    """SIGTERM, wait, then SIGKILL the group."""
    if not kill_group(pid, marker, signal.SIGTERM):
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _reap(pid)
        if not alive(pid, marker):
            break
        time.sleep(0.05)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _reap(pid)


def wait_dead(pid: int, marker: str, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _reap(pid)
        if not alive(pid, marker):
            return True
        time.sleep(0.02)
    return False


def find_by_marker(marker: str) -> list[int]:
    """Pids whose command line contains marker (recovery after the tooling crashed)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and marker in cmdline(int(entry)):
            out.append(int(entry))
    return out


# ------------------------------------------------------------------ process table
# The node lab finds a node's processes (engine, containerd, shims, containers) by
# what they are started with (paths inside that node's own directories) and by
# ancestry, because containerd's shims daemonize away from the engine.

def argv(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def start_time(pid: int) -> int:
    """The process's start time in clock ticks since boot (0 if gone): with the pid,
    it identifies one process even after pids are recycled."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b") ", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return 0


def same_process(pid: int, started: int) -> bool:
    return bool(pid) and bool(started) and start_time(pid) == started


def parents() -> dict[int, int]:
    """{pid: ppid} for every process (zombies included)."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                out[int(entry)] = int(f.read().rsplit(b") ", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return out


def descendants(roots, parent_of: dict[int, int]) -> set[int]:
    """roots and every process below them."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parent_of.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = set(), [p for p in roots if p in parent_of]
    while todo:
        pid = todo.pop()
        if pid in out:
            continue
        out.add(pid)
        todo.extend(children.get(pid, ()))
    return out


def names_path(args: list[str], path: str) -> bool:
    """True if an argument is path, lies under it, or is --flag=path... (path-exact:
    /run/x/node1 never matches /run/x/node10)."""
    path = path.rstrip("/")
    for a in args:
        value = a.split("=", 1)[1] if a.startswith("-") and "=" in a else a
        if value.startswith("unix://"):
            value = value[len("unix://"):]
        if value == path or value.startswith(path + "/"):
            return True
    return False


def find_by_path_arg(paths) -> list[int]:
    """Pids whose command line names one of paths (see names_path)."""
    me = os.getpid()
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        args = argv(int(entry))
        if args and any(names_path(args, p) for p in paths):
            out.append(int(entry))
    return out


def find_in_cgroups(ids) -> list[int]:
    """Pids whose cgroup path names one of ids (container ids: a container's processes
    stay in its cgroup even after their shim is gone)."""
    ids = [i for i in ids if len(i) >= 12]
    if not ids:
        return []
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cgroup", encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError:
            continue
        if any(i in text for i in ids):
            out.append(int(entry))
    return out


def kill_all(pids, sig=signal.SIGKILL) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        _reap(pid)


def is_zombie_or_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b") ", 1)[1][:1] in (b"Z", b"X")
    except (OSError, IndexError):
        return True


class NotAnswering(Exception):
    """wait_answering gave up: `exited` is True when the process died first."""

    def __init__(self, exited: bool):
        super().__init__("exited" if exited else "timed out")
        self.exited = exited


def running(pid: int):
    """A liveness check for a process we just started: it exists and is no zombie.

    Not the command-line check of alive(): while a process execs (nsenter -> python),
    /proc/<pid>/cmdline can read empty for a moment, which would look like an exit."""
    return lambda: bool(pid) and not is_zombie_or_gone(pid)


def wait_answering(probe, alive, timeout_s: float, poll_s: float = 0.05):
    """Poll probe() (any exception counts as "not yet") until it returns something
    truthy, which is returned; NotAnswering if alive() turns False first or at the
    deadline (monotonic)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = probe()
        except Exception:  # noqa: BLE001 - not up yet
            value = None
        if value:
            return value
        if not alive():
            raise NotAnswering(exited=True)
        time.sleep(poll_s)
    raise NotAnswering(exited=False)


def tail(path: str, n: int = 15) -> str:
    """The last n lines of a log file ("" if unreadable)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""
