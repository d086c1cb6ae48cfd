"""A private Docker engine for integration tests (root namespace, no networking of its own).

Its data-root, exec-root, socket and pidfile live in one skiff-prefixed temp dir;
stop() removes its containers, kills the engine by pid and removes the dir.
"""

import os
import shutil
import signal
import subprocess

import docker

from skiff.lab import images
from tests.helpers import temp_dir, wait_until


class PrivateDockerd:
    def __init__(self, tag: str = "dockerd"):
        # Short paths: containerd's socket path under exec-root has a length limit.
        self.root = temp_dir(tag)
        self.exec_root = f"/run/skiff-t-{os.path.basename(self.root)[-8:]}"
        self.socket = os.path.join(self.exec_root, "docker.sock")
        self.base_url = f"unix://{self.socket}"
        self.proc = None
        self.client = None

    def start(self, load_images: bool = True) -> "PrivateDockerd":
        try:
            return self._start(load_images)
        except BaseException:
            self.stop()  # a half-started engine must not outlive the test
            raise

    def _start(self, load_images: bool) -> "PrivateDockerd":
        os.makedirs(self.exec_root, exist_ok=True)
        log = open(os.path.join(self.root, "dockerd.log"), "ab")
        self.proc = subprocess.Popen(
            ["dockerd", "--data-root", os.path.join(self.root, "data"), "--exec-root", self.exec_root,
             "-H", self.base_url, "--pidfile", os.path.join(self.root, "dockerd.pid"),
             "--bridge=none", "--iptables=false", "--ip-masq=false", "--ip-forward=false"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        wait_until(self._answers, 60, "private dockerd answering")
        if load_images:
            for path in images.build_all(os.path.join(self.root, "images")).values():
                with open(path, "rb") as f:
                    self.client.images.load(f)
        return self

    def _answers(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"dockerd exited with {self.proc.returncode}; see {self.root}/dockerd.log")
        try:
            if self.client is None:
                self.client = docker.DockerClient(base_url=self.base_url, timeout=60)
            return self.client.ping()
        except Exception:  # noqa: BLE001 - not up yet
            return False

    def stop(self) -> None:
        try:
            if self.client is not None and self.proc is not None and self.proc.poll() is None:
                for c in self.client.containers.list(all=True):
                    try:
                        c.remove(force=True)
                    except Exception:  # noqa: BLE001 - best effort before the engine goes
                        pass
        finally:
            if self.proc is not None and self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(10)
            # containerd and shims of this engine: their command lines name our exec-root.
            for pid in _pids_mentioning(self.exec_root):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            subprocess.run(["umount", "-R", self.exec_root], capture_output=True)
            shutil.rmtree(self.exec_root, ignore_errors=True)
            subprocess.run(["umount", "-R", os.path.join(self.root, "data")], capture_output=True)
            shutil.rmtree(self.root, ignore_errors=True)


def _pids_mentioning(marker: str) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    out.append(int(entry))
        except OSError:
            pass
    return out
