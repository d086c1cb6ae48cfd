"""Shared test helpers: free ports, temp dirs with the skiff- prefix, waiting with deadlines."""

import contextlib
import gzip
import os
import random
import shutil
import socket
import tempfile
import time
import uuid


def free_port_block(count: int) -> int:
    """A base port such that base..base+count-1 are free on 127.0.0.1 (checked, not reserved)."""
    for _ in range(200):
        base = random.randint(20000, 40000)
        socks = []
        try:
            for i in range(count):
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", base + i))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port block")


def temp_dir(tag: str) -> str:
    return tempfile.mkdtemp(prefix=f"skiff-test-{tag}-")


def remove(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def wait_until(predicate, timeout_s: float, what: str, interval_s: float = 0.05):
    """Poll predicate until it returns a truthy value; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout_s
    last_exc = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - reported if the deadline passes
            last_exc = exc
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}"
                         + (f" (last error: {last_exc!r})" if last_exc else ""))


def settled_namespace(client, name: str, timeout_s: float = 20.0) -> str:
    """Wait until the serviceaccounts controller has made namespace name's `default`
    account: after that nothing writes into a new, empty namespace on its own (tests that
    compare the store's resource version before and after rely on it)."""
    wait_until(lambda: client.get("serviceaccounts", "default", name), timeout_s,
               f"serviceaccount {name}/default")
    return name


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_replica_config(tmp_path, extra: str = "", file_name: str = "cp.yaml") -> tuple[str, str]:
    """A minimal control-plane replica config (+ its Raft password file) in tmp_path, with
    `extra` YAML appended; returns (config path, password file path)."""
    pw = tmp_path / "pw"
    pw.write_text("p" * 24)
    path = tmp_path / file_name
    path.write_text(f"name: cp1\ndataDir: {tmp_path}/d\napiAddress: 127.0.0.1:7100\n"
                    f"raftAddress: 127.0.0.1:7200\nraftPasswordFile: {pw}\n{extra}")
    return str(path), str(pw)


@contextlib.contextmanager
def scratch_namespace(client, prefix: str):
    """A namespace named prefix-<random> for one test, deleted afterwards (with everything
    in it), also after a failure."""
    from skiff import client as clientmod
    from skiff.api import objects_pb2 as pb
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    client.create(pb.Namespace(metadata=pb.ObjectMeta(name=name)))
    try:
        yield name
    finally:
        try:
            client.delete("namespaces", name)
        except clientmod.NotFound:
            pass


def _readable(blob: bytes) -> bytes:
    """A file's bytes, and what they hold gzipped (PySyncObj gzips its dump)."""
    if blob[:2] == b"\x1f\x8b":
        try:
            return blob + gzip.decompress(blob)
        except (OSError, EOFError):     # a dump being written
            return blob
    return blob


def files_holding(dirs, needles, relative_to: str) -> dict:
    """{needle: [files under dirs (paths relative to relative_to) whose bytes, or what they
    hold gzipped, contain it]}: the search the Secrets-at-rest tests make of replicas' data
    directories (journal, dump, anything else there)."""
    found = {n: [] for n in needles}
    for top in dirs:
        for root, _, files in os.walk(top):
            for fn in files:
                path = os.path.join(root, fn)
                try:
                    with open(path, "rb") as f:
                        blob = _readable(f.read())
                except FileNotFoundError:       # a file replaced while we walk
                    continue
                for n in needles:
                    if n in blob:
                        found[n].append(os.path.relpath(path, relative_to))
    return found
