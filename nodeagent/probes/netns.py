"""Run a function inside a pod's network namespace, on a thread of its own.

Network namespaces are per thread on Linux: setns(CLONE_NEWNET) switches only the
calling thread. run_in_netns() starts a fresh thread, switches it into
/proc/<pid>/ns/net, runs fn there and lets the thread exit, so no thread that
left the agent's namespace is ever reused (never a pool thread).
"""

import ctypes
import os
import threading

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL("libc.so.6", use_errno=True)


class NetnsError(OSError):
    pass


def run_in_netns(pid: int, fn, timeout_s: float):
    """fn() run inside the network namespace of process pid; its exception is re-raised.
    TimeoutError if it did not finish within timeout_s (the thread is left to end by itself)."""
    box = {}

    def target():
        try:
            fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            box["error"] = NetnsError(exc.errno, f"pod network namespace of pid {pid}: {exc.strerror}")
            return
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                box["error"] = NetnsError(err, f"setns into pid {pid}'s network namespace: {os.strerror(err)}")
                return
        finally:
            os.close(fd)
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box["error"] = exc

    t = threading.Thread(target=target, name=f"netns-{pid}", daemon=True)
    t.start()
    t.join(timeout_s)
    if t.is_alive():
        raise TimeoutError(f"timed out after {timeout_s:g}s")
    if "error" in box:
        raise box["error"]
    return box.get("value")
