"""The lab's images, built without any registry or engine: docker-archive tarballs
(the `docker save` format) written directly.

- skiff/busybox:latest — FROM scratch + Debian's static busybox with every applet
  linked into /bin (the workload image for demos and tests).
- skiff/pause:latest — FROM scratch + nodeagent/pause/pause.c built static.

Archives are deterministic (fixed timestamps, sorted entries), so building twice
gives the same image ID and loading again is a no-op.
"""

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile

BUSYBOX_IMAGE = "skiff/busybox:latest"
PAUSE_IMAGE = "skiff/pause:latest"
_EPOCH = 1700000000
_CREATED = "2023-11-14T22:13:20Z"
_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class ImageBuildError(RuntimeError):
    pass


def _find_busybox() -> str:
    for path in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.exists(path):
            out = subprocess.run(["file", "-L", path], capture_output=True, text=True).stdout \
                if shutil.which("file") else "statically linked"
            if "dynamically linked" in out:
                continue
            return path
    raise ImageBuildError("no static busybox found: apt-get install busybox-static")


def _add_file(tar, arcname, data: bytes, mode=0o755):
    info = tarfile.TarInfo(arcname)
    info.size = len(data)
    info.mode = mode
    info.mtime = _EPOCH
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar, arcname, mode=0o755):
    info = tarfile.TarInfo(arcname)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    info.mtime = _EPOCH
    tar.addfile(info)


def _add_symlink(tar, arcname, target):
    info = tarfile.TarInfo(arcname)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    info.mtime = _EPOCH
    tar.addfile(info)


def _layer(build) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        build(tar)
    return buf.getvalue()


def _archive(tag, layer: bytes, config: dict) -> bytes:
    """A docker-archive (docker save) with one layer; tag: one tag or a list of them
    (the same image under every name)."""
    tags = [tag] if isinstance(tag, str) else list(tag)
    layer_id = hashlib.sha256(layer).hexdigest()
    image_config = {
        "architecture": "amd64", "os": "linux", "created": _CREATED,
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_id}"]},
        "history": [{"created": _CREATED, "created_by": "skiff/lab/images.py"}],
    }
    config_bytes = json.dumps(image_config, sort_keys=True).encode()
    config_id = hashlib.sha256(config_bytes).hexdigest()
    manifest = [{"Config": f"{config_id}.json", "RepoTags": tags, "Layers": [f"{layer_id}/layer.tar"]}]
    repositories: dict = {}
    for t in tags:
        repo, _, version = t.rpartition(":")
        repositories.setdefault(repo, {})[version] = layer_id
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        _add_dir(tar, layer_id)
        _add_file(tar, f"{layer_id}/layer.tar", layer, 0o644)
        _add_file(tar, f"{config_id}.json", config_bytes, 0o644)
        _add_file(tar, "manifest.json", json.dumps(manifest).encode(), 0o644)
        _add_file(tar, "repositories", json.dumps(repositories).encode(), 0o644)
    return buf.getvalue()


def busybox_archive(tags=BUSYBOX_IMAGE, cmd=("sh",), user: str = "") -> bytes:
    """skiff/busybox; tags, cmd and user give the same files under other names with another
    default command or image user (Config.User) (stand-ins for images no registry can
    provide here)."""
    busybox = _find_busybox()
    with open(busybox, "rb") as f:
        binary = f.read()
    listed = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout
    applets = sorted({a.strip() for a in listed.split() if a.strip() and a.strip() != "busybox"})

    def build(tar):
        for d in ("bin", "etc", "tmp", "root", "var", "www"):
            _add_dir(tar, d, 0o1777 if d == "tmp" else 0o755)
        _add_file(tar, "bin/busybox", binary)
        for applet in applets:
            _add_symlink(tar, f"bin/{applet}", "busybox")
        _add_file(tar, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n", 0o644)
        _add_file(tar, "etc/group", b"root:x:0:\nnobody:x:65534:\n", 0o644)

    config = {"Cmd": list(cmd), "Env": [_PATH_ENV]}
    if user:
        config["User"] = user
    return _archive(tags, _layer(build), config)


def pause_archive(work_dir: str | None = None) -> bytes:
    """work_dir: where to compile (inside the lab dir, so `lab down` removes it even if
    the tooling is killed mid-build)."""
    src = os.path.join(ROOT, "nodeagent", "pause", "pause.c")
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise ImageBuildError("no C compiler: apt-get install gcc libc6-dev")
    with tempfile.TemporaryDirectory(prefix="skiff-pause-", dir=work_dir) as tmp:
        out = os.path.join(tmp, "pause")
        r = subprocess.run([cc, "-static", "-Os", "-s", "-o", out, src], capture_output=True, text=True)
        if r.returncode != 0:
            raise ImageBuildError(f"building pause failed: {r.stderr.strip()}")
        with open(out, "rb") as f:
            binary = f.read()

    def build(tar):
        _add_file(tar, "pause", binary)

    return _archive(PAUSE_IMAGE, _layer(build), {"Entrypoint": ["/pause"], "Env": [_PATH_ENV]})


def build_all(out_dir: str) -> dict:
    """Write both archives into out_dir; returns {image tag: archive path}."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {}
    for tag, make in ((BUSYBOX_IMAGE, busybox_archive), (PAUSE_IMAGE, lambda: pause_archive(out_dir))):
        path = os.path.join(out_dir, tag.replace("/", "_").replace(":", "_") + ".tar")
        data = make()
        with open(path + ".tmp", "wb") as f:
            f.write(data)
        os.replace(path + ".tmp", path)
        paths[tag] = path
    return paths
