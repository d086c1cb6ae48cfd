"""downwardAPI and projected volumes: files rendered from the pod, and kept current.

    render(pod, vol, src)   pure: {relative path: (bytes, mode)} for one downwardAPI or
                            projected volume; src (Sources) looks Secrets, ConfigMaps and
                            tokens up, so tests pass dicts
    write(path, files)      Kubernetes' AtomicWriter layout; True when something changed
    ProjectedVolumes        the agent's side: prepare() at the pod's start (fresh reads),
                            refresh() on every sync of a running pod

On-disk layout (what kubelet's AtomicWriter makes, so tools that watch `..data` work):

    volumes/<name>/..2026_12_08_00_10_00.123456/labels    the files of one version
    volumes/<name>/..data -> ..2026_12_08_00_10_00.123456
    volumes/<name>/labels -> ..data/labels                 one link per top-level name

The directory itself is what containers bind-mount, so it is never replaced: a new
version is written beside the old one and `..data` is swapped by rename(2), which a
reader sees as one atomic change. A subPath mount resolves the link once at start and is
not updated (as in Kubernetes).

Updates: refresh() re-renders every such volume of a running pod on each sync (the
agent's resync, 5 s by default, and every change of the pod, e.g. its labels). Pod fields
cost nothing; Secrets and ConfigMaps are read again at most every OBJECT_TTL_S (kubelet's
TTL cache did the same); tokens come from PodTokens, which asks for a new one once 80 %
of its life has passed. A failed refresh keeps the old files and is logged.
"""

import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field

from nodeagent.podsync import env as envmod
from nodeagent.podsync.volumes import VolumeError, fs_group, set_ownership, volume_dir

log = logging.getLogger("skiff.agent.projected")

DEFAULT_MODE = 0o644
DEFAULT_TOKEN_EXPIRATION_S = 3600      # Kubernetes' default for a serviceAccountToken source
OBJECT_TTL_S = 60.0
CACHE_PRUNE_AT = 512
DATA_LINK = "..data"


def is_projected(vol) -> bool:
    return vol.HasField("downward_api") or vol.HasField("projected")


@dataclass
class Sources:
    """What rendering reads. get_configmap/get_secret(namespace, name) -> object or None;
    token(pod, audience, expiration_s) -> str (a bound ServiceAccount token)."""
    get_configmap: object
    get_secret: object
    token: object = None
    host_ip: str = ""
    pod_ip: str = ""
    allocatable: dict = field(default_factory=dict)


# ------------------------------------------------------------------ rendering (pure)


def go_quote(text: str) -> str:
    """Go's %q of a string (strconv.Quote): what kubelet writes around label values."""
    named = {'"': '\\"', "\\": "\\\\", "\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n",
             "\r": "\\r", "\t": "\\t", "\v": "\\v"}
    out = []
    for ch in text:
        if ch in named:
            out.append(named[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


def format_map(values) -> str:
    """kubelet's fieldpath.FormatMap: key="value" lines sorted by key, no final newline."""
    return "\n".join(f"{k}={go_quote(values[k])}" for k in sorted(values))


def field_file(pod, path: str, src: Sources) -> str:
    if path in ("metadata.labels", "metadata.annotations"):
        return format_map(getattr(pod.metadata, path.split(".")[1]))
    try:
        return envmod.field_value(pod, path, src.host_ip, src.pod_ip)
    except envmod.EnvError as exc:
        raise VolumeError(str(exc)) from None


def downward_files(pod, items, default_mode: int, src: Sources, vol_name: str) -> dict:
    files = {}
    for item in items:
        if item.HasField("field_ref"):
            text = field_file(pod, item.field_ref.field_path, src)
        elif item.HasField("resource_field_ref"):
            if not item.resource_field_ref.container_name:
                raise VolumeError(f'volume "{vol_name}": item {item.path!r}: resourceFieldRef needs a containerName')
            try:
                text = envmod.resource_value(pod, None, item.resource_field_ref, src.allocatable)
            except envmod.EnvError as exc:
                raise VolumeError(f'volume "{vol_name}": {exc}') from None
        else:
            continue
        files[item.path] = (text.encode("utf-8"), item.mode if item.HasField("mode") else default_mode)
    return files


def _keyed_files(vol_name, what, name, data, items, optional, default_mode) -> dict:
    """The files of a Secret's or ConfigMap's keys (all of them, or the listed items)."""
    if data is None:
        if optional:
            return {}
        raise VolumeError(f'MountVolume.SetUp failed for volume "{vol_name}": {what} "{name}" not found')
    if not items:
        return {key: (value, default_mode) for key, value in sorted(data.items())}
    files = {}
    for item in items:
        if item.key not in data:
            if optional:
                continue
            raise VolumeError(f'MountVolume.SetUp failed for volume "{vol_name}": '
                              f'{what} "{name}" has no key "{item.key}"')
        files[item.path] = (data[item.key], item.mode if item.HasField("mode") else default_mode)
    return files


def _configmap_data(cm):
    if cm is None:
        return None
    data = {k: v.encode("utf-8") for k, v in cm.data.items()}
    data.update(dict(cm.binary_data))
    return data


def render(pod, vol, src: Sources) -> dict:
    """{relative path: (content bytes, mode)} of a downwardAPI or projected volume.
    VolumeError (kubelet's message) when a source is missing and not optional."""
    ns = pod.metadata.namespace
    if vol.HasField("downward_api"):
        dapi = vol.downward_api
        mode = dapi.default_mode if dapi.HasField("default_mode") else DEFAULT_MODE
        return downward_files(pod, dapi.items, mode, src, vol.name)
    if not vol.HasField("projected"):
        raise VolumeError(f'volume "{vol.name}" is neither downwardAPI nor projected')
    proj = vol.projected
    mode = proj.default_mode if proj.HasField("default_mode") else DEFAULT_MODE
    files: dict = {}
    for source in proj.sources:
        if source.HasField("secret"):
            ref = source.secret
            secret = src.get_secret(ns, ref.name)
            files.update(_keyed_files(vol.name, "secret", ref.name, dict(secret.data) if secret is not None else None,
                                      ref.items, ref.optional, mode))
        elif source.HasField("config_map"):
            ref = source.config_map
            files.update(_keyed_files(vol.name, "configmap", ref.name, _configmap_data(src.get_configmap(ns, ref.name)),
                                      ref.items, ref.optional, mode))
        elif source.HasField("downward_api"):
            files.update(downward_files(pod, source.downward_api.items, mode, src, vol.name))
        elif source.HasField("service_account_token"):
            tok = source.service_account_token
            if src.token is None:
                raise VolumeError(f'MountVolume.SetUp failed for volume "{vol.name}": '
                                  f"this node agent issues no ServiceAccount tokens")
            expiration_s = tok.expiration_seconds if tok.HasField("expiration_seconds") else DEFAULT_TOKEN_EXPIRATION_S
            files[tok.path] = (src.token(pod, tok.audience, expiration_s).encode("utf-8"), mode)
    return files


# ------------------------------------------------------------------ writing


def read(path: str) -> dict:
    """{relative path: (bytes, mode)} of the version `..data` points at ({} if none)."""
    data = os.path.join(path, DATA_LINK)
    if not os.path.islink(data):
        return {}
    root = os.path.realpath(data)
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            full = os.path.join(dirpath, name)
            with open(full, "rb") as f:
                out[os.path.relpath(full, root)] = (f.read(), os.stat(full).st_mode & 0o7777)
    return out


def write(path: str, files: dict, gid: int | None = None) -> bool:
    """Make path show exactly files (AtomicWriter); False when it already does. With gid (the
    pod's fsGroup) everything is group-owned by it and group-readable (volumes.set_ownership)."""
    clean = {}
    for rel, (data, mode) in files.items():
        norm = os.path.normpath(rel)
        if norm.startswith("..") or os.path.isabs(norm):
            raise VolumeError(f"file path {rel!r} must be relative and inside the volume")
        clean[norm] = (data, mode | 0o440 if gid is not None else mode)   # what set_ownership leaves
    os.makedirs(path, exist_ok=True)
    if os.path.islink(os.path.join(path, DATA_LINK)) and read(path) == clean:
        return False
    old = os.path.realpath(os.path.join(path, DATA_LINK)) if os.path.islink(os.path.join(path, DATA_LINK)) else None
    version = tempfile.mkdtemp(prefix=time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime()), dir=path)
    try:
        for rel, (data, mode) in clean.items():
            target = os.path.join(version, rel)
            os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
            with open(target, "wb") as f:
                f.write(data)
            os.chmod(target, mode)
        for dirpath, dirnames, _ in os.walk(version):
            for d in dirnames:
                os.chmod(os.path.join(dirpath, d), 0o755)
        os.chmod(version, 0o755)
        if gid is not None:
            set_ownership(version, gid, read_only=True)
        tmp_link = os.path.join(path, DATA_LINK + "_tmp")
        if os.path.lexists(tmp_link):
            os.remove(tmp_link)
        os.symlink(os.path.basename(version), tmp_link)
        os.replace(tmp_link, os.path.join(path, DATA_LINK))   # the atomic switch
    except BaseException:
        shutil.rmtree(version, ignore_errors=True)
        raise
    top = {rel.split(os.sep, 1)[0] for rel in clean}
    for name in top:
        link = os.path.join(path, name)
        if not os.path.lexists(link):
            os.symlink(os.path.join(DATA_LINK, name), link)
    for name in os.listdir(path):
        if name.startswith("..") or name in top:
            continue
        full = os.path.join(path, name)
        if os.path.islink(full) or os.path.isfile(full):
            os.remove(full)
        else:
            shutil.rmtree(full, ignore_errors=True)
    if old is not None and os.path.dirname(old) == os.path.realpath(path):
        shutil.rmtree(old, ignore_errors=True)
    os.chmod(path, 0o755)
    if gid is not None:
        os.chown(path, -1, gid)
        os.chmod(path, 0o2755)
    return True


# ------------------------------------------------------------------ the agent's side


class ProjectedVolumes:
    """Writes and refreshes a pod's downwardAPI and projected volumes under data_dir.
    tokens: nodeagent.podsync.satoken.PodTokens (or None: token sources fail to mount)."""

    def __init__(self, data_dir: str, get_configmap, get_secret, tokens=None, host_ip: str = "",
                 allocatable: dict | None = None, clock=time.monotonic, object_ttl_s: float = OBJECT_TTL_S):
        self.data_dir = data_dir
        self.get_configmap = get_configmap
        self.get_secret = get_secret
        self.tokens = tokens
        self.host_ip = host_ip
        self.allocatable = allocatable or {}
        self._clock = clock
        self.object_ttl_s = object_ttl_s
        self._cache: dict = {}    # (kind, namespace, name) -> (read at, object or None)

    def _sources(self, pod_ip: str, cached: bool) -> Sources:
        token = self.tokens.projected_token if self.tokens is not None else None
        if not cached:
            return Sources(self._fresh("configmap", self.get_configmap), self._fresh("secret", self.get_secret),
                           token, self.host_ip, pod_ip, self.allocatable)
        return Sources(self._cached("configmap", self.get_configmap), self._cached("secret", self.get_secret),
                       token, self.host_ip, pod_ip, self.allocatable)

    def _fresh(self, kind, get):
        def read(namespace, name):
            obj = get(namespace, name)
            now = self._clock()
            if len(self._cache) > CACHE_PRUNE_AT:   # objects of pods long gone
                for key in [k for k, (t, _) in self._cache.items() if now - t >= self.object_ttl_s]:
                    self._cache.pop(key, None)
            self._cache[(kind, namespace, name)] = (now, obj)
            return obj
        return read

    def _cached(self, kind, get):
        fresh = self._fresh(kind, get)

        def read(namespace, name):
            hit = self._cache.get((kind, namespace, name))
            if hit is not None and self._clock() - hit[0] < self.object_ttl_s:
                return hit[1]
            return fresh(namespace, name)
        return read

    def prepare(self, pod, vol, pod_ip: str = "") -> str:
        """The volume's directory, written from fresh reads; VolumeError if it cannot be.
        A volume already written (a recreated sandbox) keeps its files if a read fails."""
        path = volume_dir(self.data_dir, pod.metadata.uid, vol.name)
        try:
            files = render(pod, vol, self._sources(pod_ip, cached=False))
        except VolumeError:
            if os.path.islink(os.path.join(path, DATA_LINK)):
                return path
            raise
        write(path, files, fs_group(pod))
        return path

    def refresh(self, pod, pod_ip: str = "") -> int:
        """Rewrite the pod's written downwardAPI/projected volumes whose content changed;
        how many were rewritten. Never raises: the old files stay on a failure."""
        changed = 0
        src = None
        for vol in pod.spec.volumes:
            if not is_projected(vol):
                continue
            path = volume_dir(self.data_dir, pod.metadata.uid, vol.name)
            if not os.path.islink(os.path.join(path, DATA_LINK)):
                continue     # not prepared yet: the pod's start writes it
            src = src or self._sources(pod_ip, cached=True)
            try:
                if write(path, render(pod, vol, src), fs_group(pod)):
                    changed += 1
                    log.info("event=volume_updated pod=%s/%s volume=%s", pod.metadata.namespace,
                             pod.metadata.name, vol.name)
            except Exception as exc:  # noqa: BLE001 - a failed refresh keeps the old files
                log.info("event=volume_refresh_failed pod=%s/%s volume=%s error=%s", pod.metadata.namespace,
                         pod.metadata.name, vol.name, str(exc)[:200].replace(" ", "_"))
        return changed
