"""Measuring a pod's local ephemeral storage (the impure half of ephemeral.py).

- containers: the runtime's disk_usage(uid): writable layer (the engine's SizeRw) + log;
- disk-backed emptyDirs: `du` of the volume's directory under the agent's data dir:
  allocated blocks (st_blocks * 512, as du and the kubelet's fsquota-less du do),
  every file counted once (hard links), symlinks not followed, other filesystems
  mounted below it not entered.

Cost: one engine list with sizes and an inspect per container, and a walk of the
emptyDirs; the syncer measures only pods that have a limit (ephemeral.watched), at
most once per resync period each.
"""

import os

from nodeagent.podsync import volumes
from nodeagent.podsync.ephemeral import Usage, disk_backed_empty_dirs


def du_bytes(path: str) -> int:
    """Bytes allocated to the files under path (0 if it does not exist)."""
    try:
        top = os.lstat(path)
    except OSError:
        return 0
    seen = set()
    total = top.st_blocks * 512
    for root, dirs, files in os.walk(path, onerror=lambda e: None):
        keep = []
        for name in dirs + files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if st.st_dev != top.st_dev:
                continue   # a mount below: not this volume's disk
            if name in dirs and not os.path.islink(os.path.join(root, name)):
                keep.append(name)
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
        dirs[:] = [d for d in dirs if d in keep]
    return total


def measure(runtime, data_dir: str, pod) -> Usage:
    uid = pod.metadata.uid
    vols = {v.name: du_bytes(volumes.volume_dir(data_dir, uid, v.name)) for v in disk_backed_empty_dirs(pod)}
    return Usage(containers=runtime.disk_usage(uid), volumes=vols)
