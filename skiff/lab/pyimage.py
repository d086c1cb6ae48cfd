"""A Python image built from this host's own interpreter: no registry, no base image.

The lab and the tests need images that run Python code with gRPC in a pod (a gRPC
health server for probes, `skiff` itself calling the API from inside a pod). No image
registry is reachable, so, as skiff/lab/images.py does for busybox, the image is a
docker-archive written directly: FROM scratch plus
- the running interpreter (realpath of sys.executable) at its own absolute path, with
  /usr/local/bin/python3 and /usr/local/bin/python pointing at it;
- its standard library (minus tests, GUI and packaging tools) and lib-dynload;
- the top-level packages asked for (found on sys.path: the venv's site-packages, or
  skiff's own tree for skiff/controlplane/nodeagent), under /opt/skiff/site, which
  PYTHONPATH names;
- every shared library the interpreter and those packages' extension modules link to
  (ldd), at the paths ldd reports, plus the dynamic loader;
- busybox (the same static binary as skiff/busybox) so `sh`, `cat`, `id` work in it;
- extra files (arcname -> bytes, or arcname -> (bytes, mode)).

Invariants: deterministic for the same host and arguments (sorted walk, fixed times),
so building twice gives the same image ID; nothing is read from outside the host's
interpreter, its packages and the libraries they link to.
"""

import importlib.util
import os
import re
import subprocess
import sys
import sysconfig

from skiff.lab import images

PYTHON_IMAGE = "skiff/python:latest"
SITE = "opt/skiff/site"
# The packages `skiff` (the CLI and skiff.client) imports, and gRPC's health service.
SKIFF_CLIENT_PACKAGES = ("skiff", "grpc", "google", "yaml", "_yaml", "cryptography", "cffi",
                         "_cffi_backend", "jwt", "croniter", "dateutil", "six", "pytz",
                         "typing_extensions")
_SKIP_STDLIB = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "site-packages",
                "__pycache__", "pydoc_data", "config-3.11-x86_64-linux-gnu"}
_LDD_LINE = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x")


def _package_paths(name: str) -> list:
    """The file or directory holding top-level module `name`, or [] when absent."""
    spec = importlib.util.find_spec(name)
    if spec is None:
        return []
    if spec.submodule_search_locations:
        return sorted(set(spec.submodule_search_locations))
    return [spec.origin] if spec.origin and os.path.exists(spec.origin) else []


def _walk(root: str, skip=frozenset({"__pycache__"})):
    """(absolute path, path relative to root) of every file under root, sorted."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in skip)
        for f in sorted(filenames):
            if f.endswith(".pyc"):
                continue
            full = os.path.join(dirpath, f)
            yield full, os.path.relpath(full, root)


def _linked_libraries(binaries) -> list:
    """Absolute paths of the shared libraries the given ELF files load (ldd), sorted."""
    found = set()
    for path in binaries:
        r = subprocess.run(["ldd", path], capture_output=True, text=True)
        for line in r.stdout.splitlines():
            m = _LDD_LINE.search(line)
            if m and os.path.exists(m.group(1)):
                found.add(m.group(1))
    return sorted(found)


def python_archive(packages=SKIFF_CLIENT_PACKAGES, extra_files=None, tag: str = PYTHON_IMAGE,
                   cmd=None, env=None) -> bytes:
    """The docker-archive of a Python image (see the module docstring). packages missing
    on this host are skipped (optional dependencies of optional dependencies)."""
    interpreter = os.path.realpath(sys.executable)
    stdlib = sysconfig.get_paths()["stdlib"]
    files = {}          # arcname -> host path
    for full, rel in _walk(stdlib, frozenset(_SKIP_STDLIB)):
        files[os.path.join(stdlib, rel).lstrip("/")] = full
    for name in packages:
        for path in _package_paths(name):
            if os.path.isdir(path):
                for full, rel in _walk(path):
                    files[f"{SITE}/{name}/{rel}"] = full
            else:
                files[f"{SITE}/{os.path.basename(path)}"] = path
    elf = [interpreter] + [p for p in files.values() if p.endswith(".so") or ".so." in p]
    libs = _linked_libraries(elf)
    with open(images._find_busybox(), "rb") as f:
        busybox = f.read()

    def build(tar):
        made = set()

        def parents(arcname):
            parts = arcname.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in made:
                    made.add(d)
                    images._add_dir(tar, d, 0o1777 if d == "tmp" else 0o755)

        def add_host_file(arcname, host):
            parents(arcname)
            with open(host, "rb") as f:
                images._add_file(tar, arcname, f.read(), os.stat(host).st_mode & 0o777)

        for d in ("tmp", "etc", "root", "bin", "usr/local/bin"):
            parents(d + "/x")
        images._add_file(tar, "bin/busybox", busybox)
        for applet in ("sh", "cat", "id", "ls", "sleep", "echo", "env", "wget", "touch", "grep"):
            images._add_symlink(tar, f"bin/{applet}", "busybox")
        images._add_file(tar, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"
                         b"nobody:x:65534:65534:nobody:/:/bin/false\n", 0o644)
        images._add_file(tar, "etc/group", b"root:x:0:\nnobody:x:65534:\n", 0o644)
        add_host_file(interpreter.lstrip("/"), interpreter)
        images._add_symlink(tar, "usr/local/bin/python3", interpreter)
        images._add_symlink(tar, "usr/local/bin/python", interpreter)
        added = set()
        for lib in libs:
            arc, real = lib.lstrip("/"), os.path.realpath(lib)
            if arc in files or arc in added:
                continue
            if real.lstrip("/") not in added and real.lstrip("/") not in files:
                add_host_file(real.lstrip("/"), real)
                added.add(real.lstrip("/"))
            if real != lib:
                parents(arc)
                images._add_symlink(tar, arc, real)
                added.add(arc)
        for arcname in sorted(files):
            add_host_file(arcname, files[arcname])
        for arcname in sorted(extra_files or {}):
            value = extra_files[arcname]
            data, mode = value if isinstance(value, tuple) else (value, 0o644)
            parents(arcname)
            images._add_file(tar, arcname, data, mode)

    config = {"Env": [images._PATH_ENV, f"PYTHONPATH=/{SITE}", "PYTHONDONTWRITEBYTECODE=1",
                      *[f"{k}={v}" for k, v in sorted((env or {}).items())]],
              "Cmd": list(cmd or ["python3"])}
    return images._archive(tag, images._layer(build), config)


def write_python_archive(path: str, **kw) -> str:
    """python_archive(**kw) written to path (atomically); returns path."""
    data = python_archive(**kw)
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.replace(path + ".tmp", path)
    return path
