"""The skiff client library (what client-go is to Kubernetes).

Client(endpoints) talks to any control-plane replica and fails over to the next
endpoint when one is unreachable or has no quorum. Writes carry a request id
generated once per call and reused on every retry, so a write retried on
another replica is applied once.

Errors are ApiError subclasses named after what happened (NotFound, Conflict,
AlreadyExists, Invalid, Expired, Unavailable, TooManyRequests), with the server's message.
"""

import os
import time
import uuid

import grpc

from skiff import clientconfig
from skiff.api import kinds
from skiff.api import node_pb2 as npb
from skiff.api import objects_pb2 as pb
from skiff.api import service_pb2 as api
from skiff.api import service_pb2_grpc as api_grpc
from skiff.pki.tls import ChannelCache, bearer_credentials

DEFAULT_CONFIG = os.path.expanduser("~/.skiff/config")
AGENT_ERROR_PREFIX = "node agent: "  # see controlplane/apiserver/service.py
CALL_TIMEOUT_S = 10.0
FAILOVER_BUDGET_S = 20.0


class ApiError(Exception):
    code = None

    def __init__(self, message, code=None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class NotFound(ApiError):
    pass


class AlreadyExists(ApiError):
    pass


class Conflict(ApiError):
    pass


class Invalid(ApiError):
    pass


class Expired(ApiError):
    pass


class Unavailable(ApiError):
    pass


class TooManyRequests(ApiError):
    """HTTP 429: e.g. an eviction a PodDisruptionBudget refuses now; retry later."""


class Forbidden(ApiError):
    """HTTP 403: the caller may not do this (the message names identity, verb, resource)."""


class Unauthorized(ApiError):
    """HTTP 401: no valid credentials (gRPC UNAUTHENTICATED)."""


_ERRORS = {
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.ABORTED: Conflict,
    grpc.StatusCode.INVALID_ARGUMENT: Invalid,
    grpc.StatusCode.OUT_OF_RANGE: Expired,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: Unavailable,
    grpc.StatusCode.RESOURCE_EXHAUSTED: TooManyRequests,
    grpc.StatusCode.PERMISSION_DENIED: Forbidden,
    grpc.StatusCode.UNAUTHENTICATED: Unauthorized,
}
# Worth trying the next replica for.
_FAILOVER = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def _error(exc: grpc.RpcError) -> ApiError:
    cls = _ERRORS.get(exc.code(), ApiError)
    return cls(exc.details() or exc.code().name, exc.code())


def resolve_endpoints(server: str | None = None, config_path: str | None = None) -> list[str]:
    """--server, then $SKIFF_SERVER, then the config file ($SKIFF_CONFIG or ~/.skiff/config)."""
    return resolve(server, config_path)[0]


def resolve(server: str | None = None, config_path: str | None = None):
    """(endpoints, TLS credentials or None) as skiff/clientconfig.py finds them."""
    try:
        return clientconfig.resolve(server, config_path)
    except clientconfig.ConfigError as exc:
        raise ApiError(str(exc)) from None


class Client:
    def __init__(self, endpoints, call_timeout_s: float = CALL_TIMEOUT_S,
                 failover_budget_s: float = FAILOVER_BUDGET_S, tls=None, token: str = "",
                 token_file: str = ""):
        """tls: skiff.pki.tls.Credentials (the CA and our client certificate, if any), None =
        plaintext. token / token_file: a bearer token (a ServiceAccount's) sent with every
        call, the file re-read when it changes; only over TLS (gRPC never sends call
        credentials in clear)."""
        if isinstance(endpoints, str):
            endpoints = [e for e in endpoints.split(",") if e]
        if not endpoints:
            raise ApiError("no control-plane endpoints given")
        self.endpoints = list(endpoints)
        self.call_timeout_s = call_timeout_s
        self.failover_budget_s = failover_budget_s
        self._current = 0
        self.tls = tls
        if (token or token_file) and tls is None:
            raise ApiError("a bearer token needs TLS (a CA to verify the server with): "
                           "tokens are never sent in clear")
        self._channels = ChannelCache(tls, call_creds=bearer_credentials(token, token_file), options=[
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 1000)])

    @classmethod
    def from_config(cls, server=None, config_path=None, **kw):
        try:
            endpoints, tls, bearer = clientconfig.resolve_all(server, config_path)
        except clientconfig.ConfigError as exc:
            raise ApiError(str(exc)) from None
        kw.setdefault("tls", tls)
        for k, v in bearer.items():
            kw.setdefault(k, v)
        return cls(endpoints, **kw)

    def close(self):
        self._channels.close()

    # ------------------------------------------------------------ plumbing

    def _stub(self, endpoint):
        return api_grpc.ApiStub(self._channels.get(endpoint))

    @property
    def endpoint(self):
        return self.endpoints[self._current]

    def _tls_hint(self, exc) -> str:
        """What a refused handshake most likely means (gRPC only says the socket closed)."""
        details = (exc.details() or "").lower()
        if not any(w in details for w in ("socket closed", "handshake", "ssl", "certificate", "reset")):
            return ""
        if self.tls is None:
            return (" (this client speaks plaintext; a cluster with TLS on needs a context with its CA "
                    "and a client certificate: skiff config get-contexts)")
        if not self.tls.cert:
            return (" (TLS handshake refused: this client has no certificate, which a replica's API port "
                    "requires; a bearer-token client calls the join ports, tls.joinAddress, as pods do "
                    "through the Service default/kubernetes)")
        return (" (TLS handshake refused: is the client certificate, and the CA the server's certificate "
                "is checked against, this cluster's?)")

    def _call(self, method, request, timeout_s=None, metadata=None):
        """Call method on the current endpoint, rotating through the others on failure."""
        deadline = time.monotonic() + self.failover_budget_s
        last = None
        tried = 0
        while True:
            endpoint = self.endpoints[self._current]
            try:
                return getattr(self._stub(endpoint), method)(
                    request, timeout=timeout_s or self.call_timeout_s, metadata=metadata)
            except grpc.RpcError as exc:
                if exc.code() not in _FAILOVER:
                    raise _error(exc) from None
                last = exc
                tried += 1
                self._current = (self._current + 1) % len(self.endpoints)
                if time.monotonic() >= deadline:
                    raise Unavailable(f"no control-plane replica answered ({', '.join(self.endpoints)}): "
                                      f"{last.details() or last.code().name}{self._tls_hint(last)}") from None
                if tried % len(self.endpoints) == 0:
                    time.sleep(0.1)

    # ------------------------------------------------------------ API

    def join(self, request):
        """The Join RPC (a JoinRequest): an agent's certificate, for a bootstrap token or, with
        this client's node certificate and no token, a renewal (nodeagent/join.py)."""
        return self._call("Join", request)

    # dry_run=True on a write: the server runs its whole admission chain and the
    # store's checks and answers as the write would, but stores nothing.

    def create(self, obj, request_id=None, dry_run=False):
        return self._write("Create", obj, request_id, dry_run=dry_run)

    def update(self, obj, request_id=None, subresource="", dry_run=False):
        return self._write("Update", obj, request_id, subresource, dry_run=dry_run)

    def update_status(self, obj, request_id=None):
        return self._write("Update", obj, request_id, "status")

    def apply(self, obj, request_id=None, dry_run=False):
        """Create or update; returns (object, result) with result created/configured/unchanged."""
        resp = self._call("Apply", api.WriteRequest(object=kinds.wrap(obj),
                                                    request_id=request_id or uuid.uuid4().hex,
                                                    dry_run=dry_run))
        return kinds.unwrap(resp.object)[1], resp.result

    def _write(self, method, obj, request_id, subresource="", dry_run=False):
        req = api.WriteRequest(object=kinds.wrap(obj), request_id=request_id or uuid.uuid4().hex,
                               subresource=subresource, dry_run=dry_run)
        return kinds.unwrap(self._call(method, req).object)[1]

    def evict(self, name, namespace="default", grace_period_s=None, request_id=None, dry_run=False):
        """Evict a pod through its PodDisruptionBudget (policy/v1 Eviction); returns the pod as
        the eviction left it (being deleted, or gone). TooManyRequests: the budget refuses now."""
        ev = pb.Eviction(api_version="policy/v1", kind="Eviction")
        ev.metadata.name, ev.metadata.namespace = name, namespace
        if grace_period_s is not None:
            ev.delete_options.grace_period_seconds = grace_period_s
        req = api.WriteRequest(object=pb.Object(eviction=ev), request_id=request_id or uuid.uuid4().hex,
                               dry_run=dry_run)
        return kinds.unwrap(self._call("Create", req).object)[1]

    def request_token(self, namespace, service_account, pod_name="", pod_uid="", expiration_s=0, audiences=()):
        """A ServiceAccount token (TokenRequest), bound to the pod when named: TokenResponse."""
        return self._call("CreateToken", api.TokenRequest(
            namespace=namespace, service_account=service_account, bound_pod_name=pod_name,
            bound_pod_uid=pod_uid, expiration_seconds=expiration_s, audiences=list(audiences)))

    def whoami(self, token=None):
        """(user, [groups]) the API authenticates this call as; with token, as that bearer token."""
        metadata = (("authorization", f"Bearer {token}"),) if token else None
        resp = self._call("WhoAmI", api.WhoAmIRequest(), metadata=metadata)
        return resp.username, list(resp.groups)

    def get(self, kind, name, namespace="default", linearizable=False):
        k = kinds.lookup(kind) if isinstance(kind, str) else kind
        env = self._call("Get", api.GetRequest(
            ref=api.ObjectRef(kind=k.name, namespace=namespace if k.namespaced else "", name=name),
            linearizable=linearizable))
        return kinds.unwrap(env)[1]

    def list(self, kind, namespace="", label_selector="", linearizable=False, field_selector=""):
        """(items, resourceVersion); namespace "" = all namespaces."""
        k = kinds.lookup(kind) if isinstance(kind, str) else kind
        resp = self._call("List", api.ListRequest(kind=k.name, namespace=namespace,
                                                  label_selector=label_selector,
                                                  linearizable=linearizable,
                                                  field_selector=field_selector))
        return [kinds.unwrap(e)[1] for e in resp.items], resp.resource_version

    def delete(self, kind, name, namespace="default", resource_version="", uid="", request_id=None,
               grace_period_seconds=None, dry_run=False, propagation_policy=""):
        """Delete; a pod bound to a node is stopped gracefully first unless grace is 0.
        dry_run: the server checks the delete would succeed and removes nothing.
        propagation_policy: "" (Background), Background, Foreground or Orphan (what
        becomes of the objects it owns; skiff/api/deletion.py)."""
        k = kinds.lookup(kind) if isinstance(kind, str) else kind
        req = api.DeleteRequest(
            ref=api.ObjectRef(kind=k.name, namespace=namespace if k.namespaced else "", name=name),
            request_id=request_id or uuid.uuid4().hex, resource_version=resource_version, uid=uid,
            dry_run=dry_run, propagation_policy=propagation_policy)
        if grace_period_seconds is not None:
            req.grace_period_seconds = grace_period_seconds
        resp = self._call("Delete", req)
        return kinds.unwrap(resp.object)[1] if resp.object.WhichOneof("object") else None

    def watch(self, kind, namespace="", label_selector="", resource_version="", timeout_s=None,
              field_selector="", on_stream=None):
        """Yield (type, object, resourceVersion). Resumes on another replica after a
        failure from the last version seen: no gap, no duplicate. Raises Expired
        when the version is too old to resume from (re-list). on_stream(call), if
        given, gets each gRPC stream as it is opened: call.cancel() from another
        thread ends the watch (the generator returns)."""
        k = kinds.lookup(kind) if isinstance(kind, str) else kind
        cursor = resource_version
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        failures = 0
        while True:
            remaining = None if deadline is None else max(0.05, deadline - time.monotonic())
            stream = self._stub(self.endpoint).Watch(
                api.WatchRequest(kind=k.name, namespace=namespace, label_selector=label_selector,
                                 resource_version=cursor, field_selector=field_selector),
                timeout=remaining)
            if on_stream is not None:
                on_stream(stream)
            try:
                for ev in stream:
                    failures = 0
                    if ev.resource_version:
                        cursor = ev.resource_version
                    if ev.type == "BOOKMARK":
                        continue
                    yield ev.type, kinds.unwrap(ev.object)[1], ev.resource_version
                return
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED and deadline is not None \
                        and time.monotonic() >= deadline:
                    return
                if exc.code() == grpc.StatusCode.CANCELLED:
                    return
                if exc.code() not in _FAILOVER:
                    raise _error(exc) from None
                if not cursor:
                    # Broken during the initial listing: resuming from "" would repeat
                    # ADDED events and miss deletions. The caller must re-list.
                    raise Expired("watch broke during its initial listing; re-list") from None
                failures += 1
                self._current = (self._current + 1) % len(self.endpoints)
                if failures > 3 * len(self.endpoints) * 10:
                    raise Unavailable(f"watch: no replica answered: {exc.details()}") from None
                time.sleep(0.1 if failures < len(self.endpoints) else 0.5)
            finally:
                stream.cancel()

    # ------------------------------------------------------------ node proxy (streams)

    def _stream_call(self, method, request, timeout_s=None):
        """A streaming call: fail over only until the first answer arrives.

        request may be a callable returning a fresh request (iterator) per attempt:
        a request stream half-consumed by a failed attempt cannot be sent again.
        """
        deadline = time.monotonic() + self.failover_budget_s
        while True:
            req = request() if callable(request) else request
            call = getattr(self._stub(self.endpoint), method)(req, timeout=timeout_s)
            try:
                first = next(call)
            except StopIteration:
                return
            except grpc.RpcError as exc:
                if exc.code() in _FAILOVER and exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED \
                        and time.monotonic() < deadline and self._is_connect_error(exc):
                    self._current = (self._current + 1) % len(self.endpoints)
                    time.sleep(0.05)
                    continue
                raise _error(exc) from None
            yield first
            try:
                yield from call
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.CANCELLED:
                    return
                raise _error(exc) from None
            return

    @staticmethod
    def _is_connect_error(exc) -> bool:
        """UNAVAILABLE from the channel itself (replica down), not relayed from an agent."""
        details = exc.details() or ""
        if details.startswith(AGENT_ERROR_PREFIX):
            return False
        return "failed to connect" in details or "Connection refused" in details \
            or "Socket closed" in details or "connections to all backends failing" in details

    def logs(self, pod, namespace="default", container="", follow=False, tail_lines=None,
             previous=False, timestamps=False):
        """Yield the container's log output (bytes) through the control plane."""
        req = npb.LogsRequest(namespace=namespace, pod=pod, container=container, follow=follow,
                              previous=previous, timestamps=timestamps)
        if tail_lines is not None:
            req.tail_lines = tail_lines
        for chunk in self._stream_call("PodLogs", req):
            yield chunk.data

    def exec(self, pod, command, namespace="default", container="", stdin=None, tty=False, size=None):
        """Run command in the pod's container; yields ExecOutput messages (the last has exit_code).

        stdin: an iterable of bytes (sent as they come, then EOF), or None.
        """
        start = npb.ExecStart(namespace=namespace, pod=pod, container=container, command=list(command),
                              stdin=stdin is not None, tty=tty)
        if size:
            start.size.width, start.size.height = size

        def requests():
            yield npb.ExecInput(start=start)
            if stdin is not None:
                for data in stdin:
                    if isinstance(data, npb.ExecInput):
                        yield data
                    else:
                        yield npb.ExecInput(stdin=data)
                yield npb.ExecInput(stdin_eof=True)

        # stdin can be read only once: a retry on another replica is possible only
        # while nothing of it was sent, which is all the first-answer rule allows.
        yield from self._stream_call("PodExec", requests)

    def load_image(self, node, chunks):
        """Stream a `docker save` archive (an iterable of bytes) to the node's agent."""
        def requests():
            first = True
            for data in chunks:
                yield npb.ImageChunk(data=data, node=node if first else "")
                first = False
            if first:
                yield npb.ImageChunk(node=node)

        try:
            return self._stub(self.endpoint).LoadImage(requests(), timeout=600)
        except grpc.RpcError as exc:
            raise _error(exc) from None

    def cluster_status(self):
        return self._call("ClusterStatus", api.ClusterStatusRequest(), timeout_s=3.0)

    def access_review(self, verb, resource, group="", subresource="", namespace="", name="",
                      as_user=None, as_groups=()):
        """May the caller (or, with as_user, that user: impersonation) do this? An
        AccessReviewResponse (allowed, denied, reason, user, groups)."""
        metadata = []
        if as_user:
            metadata.append(("impersonate-user", as_user))
        metadata += [("impersonate-group", g) for g in as_groups]
        req = api.AccessReviewRequest(verb=verb, group=group, resource=resource, subresource=subresource,
                                      namespace=namespace, name=name)
        return self._call("AccessReview", req, metadata=metadata or None)
