"""skiff/lab/pyimage.py: the Python image made from the host's interpreter really runs
Python with the packages asked for, and building twice gives the same image."""

import hashlib
import io
import json
import os
import subprocess
import tarfile

import pytest

from skiff.lab import pyimage
from tests.helpers import remove, temp_dir

pytestmark = pytest.mark.integration


def _unpack(archive: bytes, into: str) -> str:
    with tarfile.open(fileobj=io.BytesIO(archive)) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))
        [layer] = manifest[0]["Layers"]
        with tarfile.open(fileobj=outer.extractfile(layer)) as tar:
            tar.extractall(into, filter="tar")
    return into


def test_the_image_runs_python_with_its_packages_and_is_deterministic():
    if os.geteuid() != 0:
        pytest.skip("chroot needs root (CI runs as root)")
    kw = dict(packages=("yaml", "_yaml"), extra_files={"app/hello.py": b"import yaml; print(yaml.safe_dump({'ok': 1}).strip())"})
    first = pyimage.python_archive(**kw)
    assert hashlib.sha256(first).digest() == hashlib.sha256(pyimage.python_archive(**kw)).digest()
    root = temp_dir("pyimage")
    try:
        _unpack(first, root)
        r = subprocess.run(["chroot", root, "/bin/sh", "-c",
                            "PYTHONPATH=/opt/skiff/site /usr/local/bin/python3 /app/hello.py && id -u"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == ["ok:", "1", "0"]
    finally:
        remove(root)
