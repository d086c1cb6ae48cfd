"""Removing a node's directories safely.

A killed engine leaves mounts behind: its data-root bind-mounted onto itself,
overlay rootfs of containers, container network-namespace bind mounts under the
exec-root, and whatever bind mounts containers had (a hostPath volume can be any
host directory). Deleting through a mount would delete the mounted files, so:
unmount everything below a path first (deepest first, lazily), and remove trees
without ever descending into a directory that is still a mount point or on
another filesystem.
"""

import ctypes
import os
import stat

_MNT_DETACH = 2
_libc = ctypes.CDLL(None, use_errno=True)


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and len(field[i + 1:i + 4]) == 3 and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mount_points() -> list[str]:
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
        return [_unescape(line.split()[4]) for line in f if line.strip()]


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def mounts_under(root: str) -> list[str]:
    root = os.path.realpath(root)
    return sorted({m for m in mount_points() if _under(m, root)}, key=len, reverse=True)


def unmount_under(root: str, attempts: int = 5) -> list[str]:
    """Detach every mount at or below root; returns the mount points that remain."""
    for _ in range(attempts):
        left = mounts_under(root)
        if not left:
            return []
        for m in left:
            _libc.umount2(m.encode(), _MNT_DETACH)
    return mounts_under(root)


def rmtree_one_fs(root: str) -> list[str]:
    """Remove root like rm -rf, never entering a mount point or another filesystem.
    Returns what had to be left (mount points still present); root is kept then."""
    if not os.path.lexists(root):
        return []
    root = os.path.realpath(root)
    mounted = set(mounts_under(root))
    if root in mounted:
        return [root]
    try:
        dev = os.lstat(root).st_dev
    except FileNotFoundError:
        return []
    left: list[str] = []

    def remove(path: str) -> bool:
        """True if path is gone afterwards."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return True
        if not stat.S_ISDIR(st.st_mode):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            return True
        if path in mounted or st.st_dev != dev:
            left.append(path)
            return False
        ok = True
        try:
            entries = list(os.scandir(path))
        except FileNotFoundError:
            return True
        for entry in entries:
            ok = remove(entry.path) and ok
        if ok:
            try:
                os.rmdir(path)
            except FileNotFoundError:
                pass
            except OSError:
                left.append(path)
                return False
        return ok

    remove(root)
    return left
