"""Processes the lab starts: spawned in their own session, tracked by pid, killed by pid.

A pid is only ever signalled after checking that its command line still names
the lab file we started it with, so a recycled pid is never hit.
"""

import os
import signal
import subprocess
import time


def spawn(argv, log_path, env=None) -> int:
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, env=env, close_fds=True)
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
