"""The grpc probe: grpc.health.v1.Health/Check on the pod's IP and port, as kubelet does.

Why a bridge: the check must reach the pod from inside its network namespace (a pod
without a pod network has no address the node can reach), and network namespaces are
per thread, fixed when a socket is created. gRPC's C core creates its sockets on
whichever thread drives the connection (timer and event-engine threads on a retry),
so a channel opened from a thread that setns()ed into the pod would connect from an
unpredictable namespace. Instead the TCP connection is dialed here, on a fresh thread
inside the pod's namespace (netns.run_in_netns, like httpGet and tcpSocket), and gRPC
talks to a one-shot abstract unix socket in the agent's own namespace whose single
accepted connection is pumped byte for byte to that TCP socket. The channel has its
own subchannel pool (never shares a connection with another probe) and is closed
after the call: one fresh connection per probe, as kubelet makes.

Outcome and messages (Kubernetes' pkg/probe/grpc):
- SERVING: success ("service healthy");
- any other status: `service unhealthy (responded with "NOT_SERVING")`;
- no connection within the timeout (refused connections are retried until then, as
  grpc-go's blocking dial does): `timeout: failed to connect service "IP:PORT" within
  1s: <last error>`;
- the call not answered in time: `timeout: health rpc did not complete within 1s`;
- the server lacks the health service: `error: this server does not implement the grpc
  health protocol (grpc.health.v1.Health): ...`; any other gRPC error:
  `error: health rpc probe failed: rpc error: code = NotFound desc = unknown service`.
The whole check, dial and call, is bounded by the probe's timeout.
"""

import logging
import os
import secrets
import selectors
import socket
import struct
import threading
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

log = logging.getLogger("skiff.agent.probes")

USER_AGENT = "kube-probe/skiff"
_RETRY_S = 0.1          # pause between refused dials (grpc-go backs off from 1 s; a probe's budget is short)
_PUMP_POLL_S = 0.1      # how often the pump checks that the probe is over
_BUF = 64 * 1024


def _go_duration(seconds: float) -> str:
    return f"{seconds:g}s"


def _go_code(code: grpc.StatusCode) -> str:
    """grpc-go's name of a status code: NOT_FOUND -> NotFound."""
    return "".join(part.capitalize() for part in code.name.split("_"))


class DialAbort(Exception):
    """Raised by a connect function when retrying cannot help (the pod's network
    namespace is gone): the probe fails at once with this message."""


def dial(connect, addr: str, timeout_s: float, deadline: float):
    """A connected TCP socket from connect(remaining_s), retried until deadline while the
    pod refuses; (None, failure message) when none could be made in time."""
    last = "context deadline exceeded"
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            return connect(remaining), None
        except DialAbort as exc:
            return None, f'error: failed to connect service at "{addr}": {exc}'
        except TimeoutError:
            last = "context deadline exceeded"
            break
        except OSError as exc:
            last = f"dial tcp {addr}: connect: {exc.strerror or exc}"
        if deadline - time.monotonic() <= _RETRY_S:
            break
        time.sleep(_RETRY_S)
    return None, f'timeout: failed to connect service "{addr}" within {_go_duration(timeout_s)}: {last}'


def _from_this_process(conn: socket.socket) -> bool:
    """Whether the peer of an accepted unix connection is this process (SO_PEERCRED)."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, _uid, _gid = struct.unpack("3i", creds)
    return pid == os.getpid()


class _Bridge:
    """One accepted unix connection pumped to and from `upstream` (a TCP socket dialed
    elsewhere) until either side closes or close() is called. Abstract socket names
    belong to the network namespace of the thread that binds or connects: both the bind
    (here) and gRPC's connect happen in the agent's own namespace."""

    def __init__(self, upstream: socket.socket):
        self.upstream = upstream
        self.name = f"skiff-grpcprobe-{secrets.token_hex(8)}"
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind("\0" + self.name)
        self.listener.listen(1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="grpcprobe-pump")
        self._thread.start()

    @property
    def target(self) -> str:
        return f"unix-abstract:{self.name}"

    def _run(self):
        conn = None
        try:
            self.listener.settimeout(_PUMP_POLL_S)
            while conn is None and not self._stop.is_set():
                try:
                    conn, _ = self.listener.accept()
                except TimeoutError:
                    continue
                if not _from_this_process(conn):
                    # The name is visible in /proc/net/unix to anything in the agent's
                    # namespace: only our own gRPC channel may take the probe's connection.
                    conn.close()
                    conn = None
            self.listener.close()   # one connection only: a gRPC reconnect fails fast
            if conn is None:
                return
            conn.setblocking(True)
            peer = {conn: self.upstream, self.upstream: conn}
            with selectors.DefaultSelector() as sel:
                sel.register(conn, selectors.EVENT_READ)
                sel.register(self.upstream, selectors.EVENT_READ)
                while not self._stop.is_set():
                    for key, _ in sel.select(_PUMP_POLL_S):
                        data = key.fileobj.recv(_BUF)
                        if not data:
                            return
                        peer[key.fileobj].sendall(data)
        except OSError as exc:
            log.debug("event=grpcprobe_pump_closed error=%s", exc)
        finally:
            if conn is not None:
                conn.close()
            self.upstream.close()
            self.listener.close()

    def close(self):
        self._stop.set()
        self._thread.join(2 * _PUMP_POLL_S + 1.0)


def check(connect, host: str, port: int, service: str, timeout_s: float) -> tuple:
    """(ok, message) of one health check of service on host:port; connect(remaining_s)
    returns a TCP socket connected to host:port (made in whatever namespace it likes)."""
    addr = f"{host}:{port}"
    deadline = time.monotonic() + timeout_s
    sock, failure = dial(connect, addr, timeout_s, deadline)
    if sock is None:
        return False, failure
    bridge = _Bridge(sock)
    channel = grpc.insecure_channel(bridge.target, options=[
        ("grpc.use_local_subchannel_pool", 1),
        ("grpc.enable_retries", 0),
        ("grpc.default_authority", addr),
        ("grpc.primary_user_agent", USER_AGENT),
    ])
    try:
        stub = health_pb2_grpc.HealthStub(channel)
        remaining = max(0.001, deadline - time.monotonic())
        try:
            resp = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=remaining)
        except grpc.RpcError as err:
            code, details = err.code(), err.details() or ""
            if code == grpc.StatusCode.UNIMPLEMENTED:
                return False, ("error: this server does not implement the grpc health protocol "
                               f"(grpc.health.v1.Health): {details}")
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                return False, f"timeout: health rpc did not complete within {_go_duration(timeout_s)}"
            return False, f"error: health rpc probe failed: rpc error: code = {_go_code(code)} desc = {details}"
        if resp.status != health_pb2.HealthCheckResponse.SERVING:
            name = health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
            return False, f'service unhealthy (responded with "{name}")'
        return True, "service healthy"
    finally:
        channel.close()
        bridge.close()
