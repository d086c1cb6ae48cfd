"""The pod's files on the node: volumes and /etc/hosts, under <dataDir>/pods/<uid>/.

    pods/<uid>/etc-hosts                 bind-mounted at /etc/hosts in every container
    pods/<uid>/volumes/<name>/           emptyDir (tmpfs mounted on it for medium Memory),
                                         configMap and secret files (mounted read-only)

With a pod securityContext.fsGroup, each volume is group-owned by it when made
(set_ownership: group read/write, read-only for configMap and secret, setgid dirs).

prepare() is idempotent: directories are created when missing, configMap and
secret files are written once (when the volume's directory is first made), a
tmpfs is mounted only when not mounted yet. container_mounts() is pure: a
container's volumeMounts -> (target, source, read_only) binds. cleanup() unmounts
what it mounted and removes the pod's directory; it is called only after the
pod's containers are removed.
"""

import logging
import os
import shutil
import stat
import subprocess

from skiff.api import quantity

log = logging.getLogger("skiff.agent.volumes")


class VolumeError(Exception):
    reason = "CreateContainerConfigError"


def pod_dir(data_dir: str, uid: str) -> str:
    return os.path.join(data_dir, "pods", uid)


def hosts_path(data_dir: str, uid: str) -> str:
    return os.path.join(pod_dir(data_dir, uid), "etc-hosts")


def volume_dir(data_dir: str, uid: str, name: str) -> str:
    return os.path.join(pod_dir(data_dir, uid), "volumes", name)


def hosts_content(pod, pod_ip: str = "") -> str:
    """The pod's /etc/hosts (kubelet's managed hosts file, plus spec.hostAliases)."""
    hostname = pod.spec.hostname or pod.metadata.name
    lines = ["# Kubernetes-managed hosts file (skiff).",
             "127.0.0.1\tlocalhost",
             "::1\tlocalhost ip6-localhost ip6-loopback",
             "fe00::0\tip6-localnet",
             "fe00::0\tip6-mcastprefix",
             "fe00::1\tip6-allnodes",
             "fe00::2\tip6-allrouters"]
    names = [hostname]
    if pod.spec.subdomain:
        names.insert(0, f"{hostname}.{pod.spec.subdomain}.{pod.metadata.namespace}.svc.cluster.local")
    lines.append(f"{pod_ip or '127.0.1.1'}\t" + "\t".join(names))
    for alias in pod.spec.host_aliases:
        lines.append(f"{alias.ip}\t" + "\t".join(alias.hostnames))
    return "\n".join(lines) + "\n"


def write_hosts(data_dir: str, pod, pod_ip: str = "") -> str:
    path = hosts_path(data_dir, pod.metadata.uid)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    content = hosts_content(pod, pod_ip)
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == content:
                return path
    except FileNotFoundError:
        pass
    # Rewrite in place (not rename): running containers bind-mounted this inode.
    with open(path, "w", encoding="utf-8") as f:
        f.write(content)
    return path


def prepare(data_dir: str, pod, get_configmap, get_secret, projected=None) -> dict:
    """Make every volume of the pod; {volume name: host path}. VolumeError when one cannot be made.
    projected(pod, vol) -> path makes downwardAPI and projected volumes (podsync/projected.py)."""
    uid = pod.metadata.uid
    gid = fs_group(pod)
    out = {}
    for vol in pod.spec.volumes:
        if vol.HasField("empty_dir"):
            path = volume_dir(data_dir, uid, vol.name)
            made = not os.path.isdir(path)
            os.makedirs(path, exist_ok=True)
            if vol.empty_dir.medium == "Memory" and not _is_mountpoint(path):
                _mount_tmpfs(path, vol.empty_dir.size_limit)
                made = True
            if gid is None:
                os.chmod(path, 0o777)  # Kubernetes' emptyDir is world-writable
            elif made:
                os.chmod(path, 0o777)
                set_ownership(path, gid, read_only=False)  # -> 2777, group gid
        elif vol.HasField("host_path"):
            path = _host_path(vol)
        elif vol.HasField("config_map"):
            src = vol.config_map
            path = volume_dir(data_dir, uid, vol.name)
            if not os.path.isdir(path):
                cm = get_configmap(pod.metadata.namespace, src.name)
                if cm is None and not src.optional:
                    raise VolumeError(f'MountVolume.SetUp failed for volume "{vol.name}": '
                                      f'configmap "{src.name}" not found')
                files = {}
                if cm is not None:
                    files = {k: v.encode("utf-8") for k, v in cm.data.items()}
                    files.update(dict(cm.binary_data))
                _write_files(path, files, src.items, src.default_mode if src.HasField("default_mode") else 0o644,
                             vol.name, "configmap", src.name, src.optional, gid)
        elif vol.HasField("secret"):
            src = vol.secret
            path = volume_dir(data_dir, uid, vol.name)
            if not os.path.isdir(path):
                secret = get_secret(pod.metadata.namespace, src.secret_name)
                if secret is None and not src.optional:
                    raise VolumeError(f'MountVolume.SetUp failed for volume "{vol.name}": '
                                      f'secret "{src.secret_name}" not found')
                files = dict(secret.data) if secret is not None else {}
                _write_files(path, files, src.items, src.default_mode if src.HasField("default_mode") else 0o644,
                             vol.name, "secret", src.secret_name, src.optional, gid)
        elif projected is not None and (vol.HasField("downward_api") or vol.HasField("projected")):
            path = projected(pod, vol)
        else:
            raise VolumeError(f'volume "{vol.name}": only emptyDir, hostPath, configMap, secret, '
                              f"downwardAPI and projected volumes are supported by this agent")
        out[vol.name] = path
    return out


def fs_group(pod):
    """The pod's securityContext.fsGroup, or None."""
    sc = pod.spec.security_context
    return sc.fs_group if sc.HasField("fs_group") else None


def set_ownership(path: str, gid: int, read_only: bool) -> None:
    """kubelet's SetVolumeOwnership (fsGroupChangePolicy Always): everything under path
    (path included) is group-owned by gid and readable by the group (writable too unless
    read_only); directories also get the group's x and setgid, so files made in them
    later belong to gid as well. The owner (uid) is kept."""
    mask = 0o440 if read_only else 0o660
    for root, dirs, files in os.walk(path):
        for name in [root] + [os.path.join(root, f) for f in files]:
            st = os.lstat(name)
            if stat.S_ISLNK(st.st_mode):
                continue
            os.chown(name, -1, gid)
            mode = stat.S_IMODE(st.st_mode) | mask
            if stat.S_ISDIR(st.st_mode):
                mode |= stat.S_ISGID | 0o110
            os.chmod(name, mode)


def container_mounts(pod, container, volume_paths: dict, hosts_file: str = "") -> list:
    """[(target, source, read_only)] for a container's volumeMounts, plus /etc/hosts."""
    by_name = {v.name: v for v in pod.spec.volumes}
    mounts = []
    for vm in container.volume_mounts:
        vol = by_name.get(vm.name)
        if vol is None or vm.name not in volume_paths:
            raise VolumeError(f'volumeMount "{vm.name}": no such volume in the pod')
        source = volume_paths[vm.name]
        if vm.sub_path:
            sub = os.path.normpath(vm.sub_path)
            if sub.startswith("..") or os.path.isabs(sub):
                raise VolumeError(f'volumeMount "{vm.name}": subPath {vm.sub_path!r} must be a relative '
                                  f"path inside the volume")
            source = os.path.join(source, sub)
        read_only = vm.read_only or any(vol.HasField(f) for f in ("config_map", "secret", "downward_api", "projected"))
        mounts.append((vm.mount_path, source, read_only))
    if hosts_file and not any(t == "/etc/hosts" for t, _, _ in mounts):
        mounts.append(("/etc/hosts", hosts_file, False))
    return mounts


def ensure_sub_paths(mounts: list, volume_paths: dict) -> None:
    """Create missing subPath directories inside their volume (kubelet does the same)."""
    roots = set(volume_paths.values())
    for _, source, _ in mounts:
        if not os.path.exists(source) and any(source.startswith(r + os.sep) for r in roots):
            os.makedirs(source, exist_ok=True)


def cleanup(data_dir: str, uid: str) -> None:
    """Unmount every mount below the pod's directory, then remove it."""
    path = pod_dir(data_dir, uid)
    if not os.path.exists(path):
        return
    for mnt in sorted(_mounts_under(path), key=len, reverse=True):
        r = subprocess.run(["umount", "-l", mnt], capture_output=True, text=True)
        if r.returncode != 0:
            log.warning("event=umount_failed path=%s error=%s", mnt, r.stderr.strip().replace(" ", "_"))
    shutil.rmtree(path, ignore_errors=True)


def pod_uids_on_disk(data_dir: str) -> list:
    try:
        return sorted(os.listdir(os.path.join(data_dir, "pods")))
    except FileNotFoundError:
        return []


# ------------------------------------------------------------------ internals


def _host_path(vol) -> str:
    path = vol.host_path.path
    kind = vol.host_path.type
    if kind == "DirectoryOrCreate":
        os.makedirs(path, mode=0o755, exist_ok=True)
    elif kind == "FileOrCreate":
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path) or "/", exist_ok=True)
            with open(path, "a", encoding="utf-8"):
                pass
            os.chmod(path, 0o644)
    elif kind:
        checks = {"Directory": stat.S_ISDIR, "File": stat.S_ISREG, "Socket": stat.S_ISSOCK,
                  "CharDevice": stat.S_ISCHR, "BlockDevice": stat.S_ISBLK}
        check = checks.get(kind)
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            raise VolumeError(f'hostPath volume "{vol.name}": {path} does not exist (type {kind})') from None
        if check is not None and not check(mode):
            raise VolumeError(f'hostPath volume "{vol.name}": {path} is not a {kind}')
    return path


def _write_files(path, files: dict, items, default_mode, vol_name, what, obj_name, optional, gid=None) -> None:
    tmp = path + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    if items:
        plan = []
        for item in items:
            if item.key not in files:
                if optional:
                    continue
                shutil.rmtree(tmp, ignore_errors=True)
                raise VolumeError(f'MountVolume.SetUp failed for volume "{vol_name}": '
                                  f'{what} "{obj_name}" has no key "{item.key}"')
            plan.append((item.path, files[item.key], item.mode if item.HasField("mode") else default_mode))
    else:
        plan = [(key, data, default_mode) for key, data in sorted(files.items())]
    for rel, data, mode in plan:
        rel = os.path.normpath(rel)
        if rel.startswith("..") or os.path.isabs(rel):
            shutil.rmtree(tmp, ignore_errors=True)
            raise VolumeError(f'volume "{vol_name}": item path {rel!r} must be relative and inside the volume')
        target = os.path.join(tmp, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as f:
            f.write(data)
        os.chmod(target, mode)
    os.chmod(tmp, 0o755)
    if gid is not None:
        set_ownership(tmp, gid, read_only=True)
    os.rename(tmp, path)  # the directory appears complete or not at all


def _is_mountpoint(path: str) -> bool:
    return os.path.realpath(path) in _mounts_under(os.path.realpath(path))


def _mounts_under(path: str) -> list:
    path = os.path.realpath(path)
    out = []
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            for line in f:
                mnt = line.split()[4].replace("\\040", " ")
                if mnt == path or mnt.startswith(path + os.sep):
                    out.append(mnt)
    except OSError:
        pass
    return out


def _mount_tmpfs(path: str, size_limit: str) -> None:
    opts = "mode=0777"
    if size_limit:
        opts += f",size={quantity.memory_bytes(size_limit)}"
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", path], capture_output=True, text=True)
    if r.returncode != 0:
        raise VolumeError(f"emptyDir medium Memory: mounting a tmpfs on {path} failed: {r.stderr.strip()}")
