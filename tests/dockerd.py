"""A private Docker engine for integration tests (root namespace, no networking of its own).

Everything lives under one skiff-dockerd-* temp dir (data-root, exec-root, socket,
pidfile, log). Its HTTP(S) proxy points at a closed port on 127.0.0.1, so an image
pull fails at once instead of leaving the machine. stop() removes every container,
stops the engine by pid, kills the containerd/shims whose command line names our
dir, unmounts what is left below it and removes it - also after a failed start.
"""

import os
import shutil
import signal
import subprocess
import tempfile

import docker

from skiff.lab import images
from tests.helpers import wait_until


class PrivateDockerd:
    def __init__(self, argv_prefix=()):
        # argv_prefix: e.g. nsenter into a lab machine's namespaces (it must exec dockerd).
        self.argv_prefix = list(argv_prefix)
        self.base = tempfile.mkdtemp(prefix="skiff-dockerd-")
        self.sock = os.path.join(self.base, "docker.sock")
        self.host = f"unix://{self.sock}"
        self.proc = None
        self.client = None

    def start(self, load_images: bool = True) -> "PrivateDockerd":
        try:
            self._start()
            if load_images:
                with tempfile.TemporaryDirectory(prefix="skiff-images-") as tmp:
                    for path in images.build_all(tmp).values():
                        with open(path, "rb") as f:
                            self.client.images.load(f.read())
            return self
        except BaseException:
            self.stop()  # a half-started engine must not outlive the test
            raise

    def _start(self):
        argv = self.argv_prefix + ["dockerd", "--data-root", os.path.join(self.base, "data"),
                "--exec-root", os.path.join(self.base, "exec"), "-H", self.host,
                "--pidfile", os.path.join(self.base, "docker.pid"),
                "--bridge=none", "--iptables=false", "--ip-masq=false", "--ip-forward=false"]
        env = dict(os.environ, HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9", NO_PROXY="")
        with open(os.path.join(self.base, "dockerd.log"), "ab") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                         start_new_session=True)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"dockerd exited with {self.proc.returncode}: {self.log_tail()}")
            if not os.path.exists(self.sock):
                return False
            if self.client is None:
                self.client = docker.DockerClient(base_url=self.host, timeout=60)
            return self.client.ping()

        wait_until(up, 60, "the test's dockerd to answer", interval_s=0.2)

    def log_tail(self) -> str:
        try:
            with open(os.path.join(self.base, "dockerd.log"), "rb") as f:
                return f.read()[-2000:].decode(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.client is not None:
            try:
                for c in self.client.containers.list(all=True):
                    try:
                        c.remove(force=True)
                    except docker.errors.APIError:
                        pass
            except Exception:  # noqa: BLE001 - the engine may be gone already
                pass
            self.client.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        _kill_leftovers(self.base)
        unmount_below(self.base)
        shutil.rmtree(self.base, ignore_errors=True)


def _kill_leftovers(base):
    """containerd / shims that our dockerd started and left behind (their argv names our dir)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().decode(errors="replace")
        except OSError:
            continue
        if base in argv:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass


def unmount_below(path):
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        mounts = [line.split()[4] for line in f]
    for mnt in sorted((m for m in mounts if m.startswith(path + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", mnt], capture_output=True)
