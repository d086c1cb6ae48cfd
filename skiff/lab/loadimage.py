"""`skiff lab load`: what to send. Every source ends up as a `docker save` archive on
disk, streamed to each node's agent in chunks through the control plane
(Client.load_image -> API LoadImage -> the node's agent), so the same command works
for the one-host lab and for real VMs.

Sources: an archive file (`docker save -o x.tar ...`), or an image name taken from
this host's own Docker engine (docker SDK on the default socket), if it has one.
"""

import json
import os
import tarfile

CHUNK_BYTES = 1 << 20


class LoadError(RuntimeError):
    pass


class Archive:
    """A docker-save archive on disk; iterating it yields its bytes in chunks (again on
    every iteration, so a retried or repeated upload re-reads from the start)."""

    def __init__(self, path: str, label: str | None = None):
        self.path = path
        self.label = label or path
        self.size = os.path.getsize(path)

    def __iter__(self):
        with open(self.path, "rb") as f:
            while True:
                chunk = f.read(CHUNK_BYTES)
                if not chunk:
                    return
                yield chunk

    def tags(self) -> list[str]:
        try:
            with tarfile.open(self.path) as tar:
                manifest = json.load(tar.extractfile("manifest.json"))
            return [t for entry in manifest for t in entry.get("RepoTags") or []]
        except (KeyError, OSError, ValueError, tarfile.TarError):
            return []


def from_file(path: str) -> Archive:
    if not tarfile.is_tarfile(path):
        raise LoadError(f"{path}: not a tar archive (make one with `docker save -o FILE IMAGE`)")
    archive = Archive(path)
    if not archive.tags() and not _has_manifest(path):
        raise LoadError(f"{path}: not a `docker save` archive (no manifest.json)")
    return archive


def _has_manifest(path: str) -> bool:
    with tarfile.open(path) as tar:
        return any(n in ("manifest.json", "./manifest.json") for n in tar.getnames())


def from_host_engine(image: str, out_dir: str) -> Archive:
    """`docker save IMAGE` from this host's engine into out_dir."""
    import docker
    from docker import errors as derrors
    try:
        engine = docker.from_env(timeout=10)
        engine.ping()
    except Exception as exc:  # noqa: BLE001 - no engine, socket missing, permission ...
        raise LoadError(f"{image}: no such file, and this host has no Docker engine to take it "
                        f"from ({exc.__class__.__name__}); give a `docker save` archive instead") from None
    try:
        try:
            engine.images.get(image)
        except derrors.ImageNotFound:
            raise LoadError(f"{image}: no such file, and not an image of this host's Docker engine") from None
        path = os.path.join(out_dir, image.replace("/", "_").replace(":", "_") + ".tar")
        with open(path, "wb") as f:
            for chunk in engine.api.get_image(image, chunk_size=CHUNK_BYTES):
                f.write(chunk)
    finally:
        engine.close()
    return Archive(path, label=f"{image} (from this host's Docker engine)")


def resolve(items: list[str], tmp_dir: str) -> tuple[list[Archive], list[str]]:
    """(archives, warnings): files as they are, other names from the host's engine."""
    archives, warnings = [], []
    for item in items:
        try:
            if os.path.isfile(item):
                archives.append(from_file(item))
            else:
                archives.append(from_host_engine(item, tmp_dir))
        except LoadError as exc:
            warnings.append(str(exc))
    return archives, warnings
