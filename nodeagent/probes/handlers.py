"""The actions of probes and lifecycle hooks: exec, httpGet, tcpSocket, grpc.

Each returns (ok, message). exec runs in the container (docker exec; exit 0 =
success). httpGet and tcpSocket connect from inside the pod's network namespace
(the pause container's), to 127.0.0.1 unless the action names a host: a pod
without a pod network has no address reachable from the node, and this is also
where a process listening on localhost only can be reached. httpGet succeeds on
status 200-399. grpc (probes only) dials the pod's IP, as kubelet does (127.0.0.1
when the pod has none), also from inside the pod's namespace: grpc_health.py.
"""

import socket

from nodeagent.probes import grpc_health
from nodeagent.probes.netns import NetnsError, run_in_netns

USER_AGENT = "skiff-probe/0.1"
MAX_BODY = 10 * 1024


def resolve_port(port, container) -> int:
    """An IntOrString port (a number, or the name of one of the container's ports)."""
    if port.HasField("int_val"):
        return port.int_val
    if port.HasField("str_val"):
        text = port.str_val
        if text.isdigit():
            return int(text)
        for p in container.ports:
            if p.name == text:
                return p.container_port
        raise ValueError(f"port {text!r} is not a named port of container {container.name}")
    raise ValueError("no port given")


def run_exec(runtime, container_id: str, command: list, timeout_s: float) -> tuple:
    try:
        code, output = runtime.exec(container_id, list(command), timeout_s)
    except TimeoutError as exc:
        return False, f"command {list(command)!r} timed out: {exc}"
    except Exception as exc:  # noqa: BLE001 - the container is gone, the engine refused, ...
        return False, f"exec {list(command)!r} failed: {exc}"
    if code == 0:
        return True, output
    out = output.strip()
    return False, out if out else f"command {list(command)!r} exited with {code}"


def http_get(netns_pid: int, host: str, port: int, path: str, headers=(), timeout_s: float = 1.0,
             scheme: str = "HTTP") -> tuple:
    if scheme and scheme.upper() != "HTTP":
        return False, f"scheme {scheme} is not supported (only HTTP)"
    host = host or "127.0.0.1"

    def do():
        with socket.create_connection((host, port), timeout=timeout_s) as s:
            s.settimeout(timeout_s)
            lines = [f"GET {path or '/'} HTTP/1.1", f"Host: {host}:{port}", f"User-Agent: {USER_AGENT}",
                     "Accept: */*", "Connection: close"]
            lines += [f"{h.name}: {h.value}" for h in headers]
            s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            data = b""
            while b"\r\n" not in data and len(data) < MAX_BODY:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        status_line = data.split(b"\r\n", 1)[0].decode("latin-1", errors="replace")
        parts = status_line.split()
        if len(parts) < 2 or not parts[1].isdigit():
            return False, f"HTTP probe failed: malformed response {status_line!r}"
        code = int(parts[1])
        if 200 <= code < 400:
            return True, status_line
        return False, f"HTTP probe failed with statuscode: {code}"

    try:
        return run_in_netns(netns_pid, do, timeout_s + 1.0)
    except TimeoutError:
        return False, f"Get \"http://{host}:{port}{path}\": context deadline exceeded"
    except OSError as exc:
        return False, f"Get \"http://{host}:{port}{path}\": dial tcp {host}:{port}: {exc.strerror or exc}"


def tcp_socket(netns_pid: int, host: str, port: int, timeout_s: float = 1.0) -> tuple:
    host = host or "127.0.0.1"

    def do():
        with socket.create_connection((host, port), timeout=timeout_s):
            return True, ""

    try:
        return run_in_netns(netns_pid, do, timeout_s + 1.0)
    except TimeoutError:
        return False, f"dial tcp {host}:{port}: i/o timeout"
    except OSError as exc:
        return False, f"dial tcp {host}:{port}: connect: {exc.strerror or exc}"


def grpc_check(netns_pid: int, host: str, port: int, service: str, timeout_s: float = 1.0) -> tuple:
    host = host or "127.0.0.1"

    def connect(remaining_s):
        try:
            return run_in_netns(netns_pid, lambda: socket.create_connection((host, port), timeout=remaining_s),
                                remaining_s + 1.0)
        except NetnsError as exc:
            raise grpc_health.DialAbort(exc.strerror or str(exc)) from exc

    return grpc_health.check(connect, host, port, service, timeout_s)


def run_handler(handler, runtime, container, container_id: str, netns_pid: int, timeout_s: float,
                pod_ip: str = "") -> tuple:
    """A Probe or LifecycleHandler message: whichever of exec/httpGet/tcpSocket/grpc it
    has (grpc: probes only; pod_ip is where it calls, 127.0.0.1 when empty)."""
    if handler.HasField("exec"):
        return run_exec(runtime, container_id, handler.exec.command, timeout_s)
    try:
        if handler.HasField("http_get"):
            a = handler.http_get
            return http_get(netns_pid, a.host, resolve_port(a.port, container), a.path or "/",
                            a.http_headers, timeout_s, a.scheme)
        if handler.HasField("tcp_socket"):
            a = handler.tcp_socket
            return tcp_socket(netns_pid, a.host, resolve_port(a.port, container), timeout_s)
        if "grpc" in handler.DESCRIPTOR.fields_by_name and handler.HasField("grpc"):
            return grpc_check(netns_pid, pod_ip, handler.grpc.port, handler.grpc.service, timeout_s)
    except ValueError as exc:
        return False, str(exc)
    return False, "no exec, httpGet, tcpSocket or grpc action"
