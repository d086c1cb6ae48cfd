"""The grpc probe handler against real in-process gRPC servers on loopback: each serving
status, unknown services, servers without the health service, refused and silent ports,
slow answers, a server that starts listening within the timeout; and the same check
through run_handler from inside a network namespace (setns)."""

import os
import socket
import threading
import time
from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from nodeagent.probes import grpc_health, handlers
from skiff.api import codec
from skiff.api import objects_pb2 as pb

ServingStatus = health_pb2.HealthCheckResponse


def start_server(port=0, servicer=None):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    if servicer is not None:
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    return server, bound


@pytest.fixture(scope="module")
def health_server():
    servicer = health.HealthServicer()
    server, port = start_server(servicer=servicer)
    servicer.set("", ServingStatus.SERVING)
    for name, status in (("skiff.Up", ServingStatus.SERVING), ("skiff.Down", ServingStatus.NOT_SERVING),
                         ("skiff.Unknown", ServingStatus.UNKNOWN),
                         ("skiff.ServiceUnknown", ServingStatus.SERVICE_UNKNOWN)):
        servicer.set(name, status)
    yield port
    server.stop(0)


def connect_loopback(port):
    return lambda remaining_s: socket.create_connection(("127.0.0.1", port), timeout=remaining_s)


def check(port, service="", timeout_s=1.0):
    return grpc_health.check(connect_loopback(port), "127.0.0.1", port, service, timeout_s)


STATUSES = [
    # (service, ok, message)
    ("", True, "service healthy"),
    ("skiff.Up", True, "service healthy"),
    ("skiff.Down", False, 'service unhealthy (responded with "NOT_SERVING")'),
    ("skiff.Unknown", False, 'service unhealthy (responded with "UNKNOWN")'),
    ("skiff.ServiceUnknown", False, 'service unhealthy (responded with "SERVICE_UNKNOWN")'),
    # grpcio's HealthServicer answers NOT_FOUND without details (grpc-go's says "unknown service")
    ("skiff.Missing", False, "error: health rpc probe failed: rpc error: code = NotFound desc = "),
]


@pytest.mark.parametrize("service,ok,message", STATUSES, ids=[s[0] or "overall" for s in STATUSES])
def test_statuses(health_server, service, ok, message):
    assert check(health_server, service) == (ok, message)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_without_health_service():
    server, port = start_server()
    try:
        ok, message = check(port)
    finally:
        server.stop(0)
    assert not ok
    assert message.startswith("error: this server does not implement the grpc health protocol "
                              "(grpc.health.v1.Health)"), message


def test_refused_port_fails_at_the_timeout_with_kubernetes_message():
    port = free_port()
    t0 = time.monotonic()
    ok, message = check(port, timeout_s=0.5)
    elapsed = time.monotonic() - t0
    assert not ok
    assert message == (f'timeout: failed to connect service "127.0.0.1:{port}" within 0.5s: '
                       f"dial tcp 127.0.0.1:{port}: connect: Connection refused")
    assert 0.3 <= elapsed < 1.5, elapsed


def test_server_listening_within_the_timeout_passes():
    """A refused dial is retried until the timeout, as grpc-go's blocking dial (kubelet's) does."""
    port = free_port()
    servicer = health.HealthServicer()
    started = []
    timer = threading.Timer(0.4, lambda: started.append(start_server(port, servicer)[0]))
    timer.start()
    try:
        assert check(port, timeout_s=3.0) == (True, "service healthy")
    finally:
        timer.join()
        for s in started:
            s.stop(0)


def test_silent_port_times_out_in_the_call():
    """A TCP listener that never speaks HTTP/2: connected, but the call cannot complete."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        t0 = time.monotonic()
        assert check(port, timeout_s=0.5) == (False, "timeout: health rpc did not complete within 0.5s")
        assert time.monotonic() - t0 < 1.5


class SlowHealth(health_pb2_grpc.HealthServicer):
    def Check(self, request, context):
        time.sleep(1.0)
        return health_pb2.HealthCheckResponse(status=ServingStatus.SERVING)


def test_slow_answer_is_a_timeout():
    server, port = start_server(servicer=SlowHealth())
    try:
        assert check(port, timeout_s=0.3) == (False, "timeout: health rpc did not complete within 0.3s")
    finally:
        server.stop(0)


def test_status_change_is_seen_by_the_next_probe():
    servicer = health.HealthServicer()
    server, port = start_server(servicer=servicer)
    try:
        servicer.set("", ServingStatus.SERVING)
        assert check(port)[0] is True
        servicer.set("", ServingStatus.NOT_SERVING)
        assert check(port) == (False, 'service unhealthy (responded with "NOT_SERVING")')
        servicer.set("", ServingStatus.SERVING)
        assert check(port)[0] is True
    finally:
        server.stop(0)


def test_run_handler_calls_from_inside_the_network_namespace(health_server):
    """The probe as the worker runs it: a Probe message, setns into a namespace (here the
    test's own: /proc/<pid>/ns/net), the pod's IP, the service from the action."""
    if os.geteuid() != 0:
        pytest.skip("setns needs root (CI runs as root)")
    probe = codec.decode(pb.Probe, {"grpc": {"port": health_server, "service": "skiff.Down"}})
    container = pb.Container(name="app")
    assert handlers.run_handler(probe, None, container, "cid", os.getpid(), 1.0, pod_ip="127.0.0.1") == \
        (False, 'service unhealthy (responded with "NOT_SERVING")')
    probe.grpc.ClearField("service")
    assert handlers.run_handler(probe, None, container, "cid", os.getpid(), 1.0) == (True, "service healthy")


def test_probes_leave_no_threads_or_sockets_behind(health_server):
    before = threading.active_count()
    for _ in range(20):
        assert check(health_server)[0] is True
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= before


def test_a_gone_network_namespace_fails_at_once():
    probe = codec.decode(pb.Probe, {"grpc": {"port": 9000}})
    t0 = time.monotonic()
    ok, message = handlers.run_handler(probe, None, pb.Container(name="app"), "cid", 2 ** 22 + 7, 5.0,
                                       pod_ip="10.244.0.9")
    assert not ok and time.monotonic() - t0 < 1.0
    assert message.startswith('error: failed to connect service at "10.244.0.9:9000": pod network namespace of pid'), \
        message


def test_the_bridge_refuses_a_connection_from_another_process():
    """The bridge's abstract unix name is visible to every process of the namespace: a
    foreign peer (SO_PEERCRED) is closed at once and the probe's own channel still gets it."""
    import subprocess
    import sys
    up_ours, up_theirs = socket.socketpair()
    bridge = grpc_health._Bridge(up_ours)
    try:
        intruder = subprocess.run(
            [sys.executable, "-c",
             "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect('\\0' + sys.argv[1]); "
             "s.settimeout(5); print(repr(s.recv(10)))", bridge.name],
            capture_output=True, text=True, timeout=30)
        assert intruder.returncode == 0 and intruder.stdout.strip() == "b''", intruder   # closed on it
        mine = socket.socket(socket.AF_UNIX)
        mine.connect("\0" + bridge.name)
        mine.sendall(b"ping")
        up_theirs.settimeout(5)
        assert up_theirs.recv(4) == b"ping"
        mine.close()
    finally:
        bridge.close()
        up_theirs.close()
