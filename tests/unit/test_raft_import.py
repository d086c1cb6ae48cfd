"""Importing the store leaves the process's socket module intact: PySyncObj's import
replaces socket.inet_ntop with a Windows-only shim, which made pyroute2 read every
interface address as missing in a process that also held the store (a test run)."""

import subprocess
import sys

CHECK = ("import socket, controlplane.store.store; "
         "print(socket.inet_ntop(socket.AF_INET, bytes([10, 244, 1, 7])), "
         "socket.inet_ntop(socket.AF_INET6, bytes(15) + bytes([1])))")


def test_store_import_keeps_inet_ntop():
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["10.244.1.7", "::1"]


def test_pyroute2_reads_addresses_after_the_store_import():
    code = ("import controlplane.store.store; from pyroute2 import IPRoute\n"
            "with IPRoute() as ip:\n"
            "    print([a.get_attr('IFA_ADDRESS') for a in ip.get_addr(label='lo', family=2)])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "127.0.0.1" in out
