"""The agent's gRPC server: container logs, exec (stdin, TTY) and image loading.

The API server proxies `skiff logs/exec` and `skiff lab load` here, the way the
Kubernetes API server reaches the kubelet. Containers are found by skiff's labels
(nodeagent/runtime/labels.py), so this server needs no state of its own.
"""

import logging
import queue
import socket
import struct
import tempfile
import threading
from concurrent import futures

import grpc

from nodeagent.runtime import labels as L
from skiff.api import node_pb2 as npb
from skiff.api import node_pb2_grpc as npb_grpc
from skiff.api.identity import CONTROLPLANE_GROUP
from skiff.pki import tls

log = logging.getLogger("skiff.agent.server")
_CHUNK = 64 * 1024


class NotFoundError(Exception):
    pass


def find_container(docker_client, namespace: str, pod: str, container: str, previous: bool = False):
    """The pod's container (current instance, or the one before with previous=True)."""
    found = docker_client.containers.list(all=True, filters={"label": [
        f"{L.POD_NAMESPACE}={namespace}", f"{L.POD_NAME}={pod}", f"{L.MANAGED}=true"]})
    apps = [c for c in found if c.labels.get(L.CONTAINER_NAME) != L.SANDBOX]
    if not found:
        raise NotFoundError(f'pod "{pod}" has no containers on this node (namespace {namespace})')
    names = sorted({c.labels.get(L.CONTAINER_NAME, "") for c in apps
                    if c.labels.get(L.CONTAINER_KIND, "app") == "app"})
    if not container:
        if len(names) != 1:
            raise NotFoundError(f"a container name must be specified for pod {pod}, "
                                f"choose one of: [{' '.join(names)}]")
        container = names[0]
    mine = [c for c in apps if c.labels.get(L.CONTAINER_NAME) == container]
    if not mine:
        raise NotFoundError(f'container "{container}" is not valid for pod "{pod}"'
                            + (f" (containers: {' '.join(names)})" if names else ""))

    def order(c):
        try:
            attempt = int(c.labels.get(L.ATTEMPT, "0"))
        except ValueError:
            attempt = 0
        return (attempt, c.attrs.get("Created", ""))

    mine.sort(key=order, reverse=True)
    if previous:
        if len(mine) < 2:
            raise NotFoundError(f'previous terminated container "{container}" in pod "{pod}" not found')
        return mine[1]
    return mine[0]


class NodeAgentService(npb_grpc.NodeAgentServicer):
    def __init__(self, docker_client, node_name: str, scratch_dir: str | None = None):
        self.docker = docker_client
        self.node_name = node_name
        self.scratch_dir = scratch_dir

    # ------------------------------------------------------------ logs

    def Logs(self, request, context):
        _only_controlplane(context)
        try:
            c = find_container(self.docker, request.namespace or "default", request.pod,
                               request.container, request.previous)
        except NotFoundError as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        tail = request.tail_lines if request.HasField("tail_lines") else "all"
        kwargs = dict(stdout=True, stderr=True, timestamps=request.timestamps, tail=tail)
        if request.follow:
            stream = c.logs(stream=True, follow=True, **kwargs)
            try:
                for data in stream:
                    if not context.is_active():
                        break
                    yield npb.LogChunk(data=data)
            finally:
                close = getattr(stream, "close", None)
                if close:
                    close()
        else:
            data = c.logs(stream=False, **kwargs)
            for i in range(0, len(data), _CHUNK):
                yield npb.LogChunk(data=data[i:i + _CHUNK])

    # ------------------------------------------------------------ exec

    def Exec(self, request_iterator, context):
        _only_controlplane(context)
        first = next(request_iterator, None)
        if first is None or not first.HasField("start"):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first exec message must carry `start`")
        start = first.start
        if not start.command:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "exec needs a command")
        try:
            c = find_container(self.docker, start.namespace or "default", start.pod, start.container)
        except NotFoundError as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        c.reload()
        if c.status != "running":
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f'container "{c.labels.get(L.CONTAINER_NAME)}" is not running ({c.status})')
        api = self.docker.api
        exec_id = api.exec_create(c.id, list(start.command), stdin=start.stdin, tty=start.tty,
                                  stdout=True, stderr=True)["Id"]
        sock = api.exec_start(exec_id, socket=True, tty=start.tty)
        raw = getattr(sock, "_sock", sock)
        if start.tty and start.size.width:
            _resize(api, exec_id, start.size)
        out: queue.Queue = queue.Queue(maxsize=256)
        threading.Thread(target=_pump_output, args=(raw, start.tty, out), daemon=True).start()
        if start.stdin:
            threading.Thread(target=_pump_input, args=(request_iterator, raw, api, exec_id),
                             daemon=True).start()
        try:
            while True:
                item = out.get()
                if item is None:
                    break
                if not context.is_active():
                    break
                yield item
            code = api.exec_inspect(exec_id).get("ExitCode")
            yield npb.ExecOutput(exit_code=code if code is not None else -1)
        finally:
            try:
                raw.close()
            except OSError:
                pass

    # ------------------------------------------------------------ images

    def LoadImage(self, request_iterator, context):
        _only_controlplane(context)
        with tempfile.TemporaryFile(prefix="skiff-image-", dir=self.scratch_dir) as f:
            size = 0
            for chunk in request_iterator:
                f.write(chunk.data)
                size += len(chunk.data)
            if size == 0:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "empty image archive")
            f.seek(0)
            try:
                images = self.docker.images.load(f)
            except Exception as exc:  # noqa: BLE001 - docker's errors vary; report them
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"docker load failed: {exc}")
        tags = sorted(t for img in images for t in (img.tags or [img.short_id]))
        log.info("event=image_loaded node=%s images=%s bytes=%d", self.node_name, ",".join(tags), size)
        return npb.LoadImageResponse(images=tags, node=self.node_name)


def _resize(api, exec_id, size):
    try:
        api.exec_resize(exec_id, height=size.height, width=size.width)
    except Exception:  # noqa: BLE001 - a resize is best effort
        pass


def _pump_output(raw, tty, out):
    """Socket -> ExecOutput messages; without a TTY Docker multiplexes stdout/stderr frames."""
    try:
        if tty:
            while True:
                data = raw.recv(_CHUNK)
                if not data:
                    break
                out.put(npb.ExecOutput(stdout=data))
        else:
            buf = b""
            while True:
                data = raw.recv(_CHUNK)
                if not data:
                    break
                buf += data
                while len(buf) >= 8:
                    stream, size = struct.unpack(">BxxxL", buf[:8])
                    if len(buf) < 8 + size:
                        break
                    payload, buf = buf[8:8 + size], buf[8 + size:]
                    if stream == 2:
                        out.put(npb.ExecOutput(stderr=payload))
                    else:
                        out.put(npb.ExecOutput(stdout=payload))
    except OSError:
        pass
    finally:
        out.put(None)


def _pump_input(request_iterator, raw, api, exec_id):
    try:
        for msg in request_iterator:
            if msg.stdin:
                raw.sendall(msg.stdin)
            if msg.HasField("resize"):
                _resize(api, exec_id, msg.resize)
            if msg.stdin_eof:
                break
        raw.shutdown(socket.SHUT_WR)
    except (OSError, grpc.RpcError, ValueError):
        pass


def _only_controlplane(context) -> None:
    """With TLS on, only the control plane (a certificate in group skiff:controlplane) may
    read logs, exec or load images here: the kubelet's API is for the API server, and a
    node's certificate must not reach into another node's pods. Plaintext: everyone may
    (TLS off is the unauthenticated lab)."""
    if not tls.is_tls(context):
        return
    who = tls.peer_identity(context)
    if who is None or not who.in_group(CONTROLPLANE_GROUP):
        context.abort(grpc.StatusCode.PERMISSION_DENIED,
                      f"{who.user if who else 'anonymous'} may not call the node agent "
                      f"(only group {CONTROLPLANE_GROUP} may)")


def serve(listen: str, docker_client, node_name: str, scratch_dir: str | None = None,
          creds=None) -> grpc.Server:
    """Start the agent's gRPC server on listen (host:port); creds (skiff.pki.tls.Credentials):
    mTLS with client certificates from the cluster CA, None = plaintext."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=64, thread_name_prefix="agent-rpc"),
                         options=[("grpc.max_receive_message_length", 8 * 1024 * 1024)])
    npb_grpc.add_NodeAgentServicer_to_server(NodeAgentService(docker_client, node_name, scratch_dir), server)
    if tls.add_port(server, listen, creds) == 0:
        raise OSError(f"cannot listen on {listen}")
    server.start()
    log.info("event=agent_server_started listen=%s tls=%s", listen, "on" if creds else "off")
    return server


