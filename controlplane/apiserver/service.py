"""The gRPC API servicer: admission, then the Raft log; reads from applied state.

It reaches the store only through its narrow interface (controlplane/store/store.py:
propose, dry_run, get, list, watch, view, resource_version, is_ready/has_leader,
raft_status), never its state, lock or change log. A dry run (WriteRequest.dry_run,
DeleteRequest.dry_run) runs admission and the state machine's own checks against this
replica's applied state and answers as the write would, storing nothing.

Status codes: see proto/skiff/api/service.proto.

Periods and costs: the servicer has no loop of its own except each open Watch's
wait. A Watch sleeps on its kind's condition (woken only by changes of that kind,
controlplane/store/reader.py) for at most WATCH_POLL_S (1 s) at a time: that bounds
how long a cancelled or expired stream holds its pool thread and how late a replica
without a Raft leader ends its watches (after WATCH_NO_LEADER_S, 2 s: within 3 s).
An idle watch therefore costs one wake-up a second (a condition wait, an is_active()
and a has_leader() check); a replica serving all 80 watches of 20 agents woke 80
times a second for them, and its API pool threads (which also served the agents'
Lease writes) measured 0.1-0.4 % of a core.
Informers re-open their watches every 30 s (skiff/informer.py), each a new call.
"""

import functools
import inspect
import logging
import os
import threading
import time
import uuid
from concurrent import futures

import grpc

from controlplane.apiserver import admission, guard, join, sa_tokens
from controlplane.apiserver.renewals import renewal_wait_s
from controlplane.store.commands import Apply, Barrier, Create, Delete, Evict, Update
from controlplane.store.encryption import DecryptError
from controlplane.store.reader import Expired
from controlplane.store.store import ROLE_NAMES, StoreUnavailable
from skiff.api import deletion, fields, kinds, selectors
from skiff.api import node_pb2_grpc as node_grpc
from skiff.api import service_pb2 as api
from skiff.api import service_pb2_grpc as api_grpc
from skiff.api.errors import ValidationError
from skiff.api.kinds.pod import POD
from skiff.api.wellknown import now_rfc3339
from skiff.pki import tls

log = logging.getLogger("skiff.apiserver")

_CODES = {
    "already_exists": grpc.StatusCode.ALREADY_EXISTS,
    "not_found": grpc.StatusCode.NOT_FOUND,
    "conflict": grpc.StatusCode.ABORTED,
    "invalid": grpc.StatusCode.INVALID_ARGUMENT,
    "forbidden": grpc.StatusCode.FAILED_PRECONDITION,
    "too_many_requests": grpc.StatusCode.RESOURCE_EXHAUSTED,   # HTTP 429: a refused eviction
    "internal": grpc.StatusCode.INTERNAL,
}
WRITE_TIMEOUT_S = 8.0
# An idle watch stream wakes every WATCH_POLL_S without a change of its kind: to end a
# stream whose client has gone (its context inactive) and to re-check that this replica
# has a Raft leader. Raft state changes wake every watch at once (Store._state_changed),
# so losing the leader is noticed then; once leaderless, a stream re-checks every
# WATCH_LEADERLESS_POLL_S and ends after WATCH_NO_LEADER_S. Cost: one wake per stream
# per period (~50 us); at 20 nodes a replica holds 40-60 streams (agents' and, on the
# leader, its own informers'): 1 s was 40-60 wakes a second per replica.
WATCH_POLL_S = 5.0
WATCH_LEADERLESS_POLL_S = 0.5
WATCH_NO_LEADER_S = 2.0
# Errors relayed from a node agent start with this, so clients can tell them from
# an unreachable replica (and do not fail over to another replica for them).
AGENT_ERROR_PREFIX = "node agent: "
PEER_STATUS_TIMEOUT_S = 0.7


def _loud(method):
    """A Secret this replica cannot decrypt (controlplane/store/encryption.py) ends the call
    with INTERNAL and the reason, and is logged: never served, never a bare UNKNOWN."""
    def fail(context, exc):
        log.error("event=secret_undecryptable reason=%r", str(exc))
        context.abort(grpc.StatusCode.INTERNAL, str(exc))

    if inspect.isgeneratorfunction(method):
        @functools.wraps(method)
        def streaming(self, request, context):
            try:
                yield from method(self, request, context)
            except DecryptError as exc:
                fail(context, exc)
        return streaming

    @functools.wraps(method)
    def unary(self, request, context):
        try:
            return method(self, request, context)
        except DecryptError as exc:
            fail(context, exc)
    return unary


class ApiService(api_grpc.ApiServicer):
    def __init__(self, store, cfg, tokens=None):
        self.store = store
        self.cfg = cfg
        # ServiceAccount tokens: a sa_tokens.TokenAuthenticator, or None (no key file configured).
        self.tokens = tokens
        # What admission plugins see of the cluster: this replica's applied state, read-only.
        self._view = store.view()
        # TLS on: the replica calls peers and agents with its own certificate (skiff/pki).
        creds = cfg.tls.credentials() if cfg.tls else None
        self._peer_channels = tls.ChannelCache(creds)
        self._agent_channels = tls.ChannelCache(creds, options=[
            ("grpc.max_receive_message_length", 64 * 1024 * 1024)])

    # ------------------------------------------------------------ helpers

    def _unwrap(self, env, context):
        try:
            return kinds.unwrap(env)
        except ValidationError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

    def _write(self, cmd, context, dry_run: bool = False, wait_s: float = 0.0):
        """wait_s: how long the proposal may wait to share its Raft entry (a Lease renewal's,
        controlplane/apiserver/renewals.py; 0 for every other write)."""
        if dry_run:
            self._require_ready(context)
            result = self.store.dry_run(cmd)
            if result[0] == "error":
                context.abort(_CODES.get(result[1], grpc.StatusCode.UNKNOWN), result[2])
            return result
        timeout_s = WRITE_TIMEOUT_S
        remaining = context.time_remaining()
        if remaining is not None:
            timeout_s = max(0.1, min(timeout_s, remaining - 0.2))
        try:
            result = self.store.propose(cmd, timeout_s, wait_s=wait_s)
        except StoreUnavailable as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        if result[0] == "error":
            context.abort(_CODES.get(result[1], grpc.StatusCode.UNKNOWN), result[2])
        return result

    def _admit(self, kind, msg, context, *, old, creating):
        try:
            admission.admit(kind, msg, old=old, creating=creating, view=self._view)
        except ValidationError as exc:
            # An admission refusal may name its API status (.code: not_found for a write
            # into a missing namespace, ...); field errors are "invalid".
            code = getattr(exc, "code", "invalid")
            if code != "invalid":
                context.abort(_CODES.get(code, grpc.StatusCode.UNKNOWN), str(exc))
            name = msg.metadata.name or msg.metadata.generate_name
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f'{kind.name} "{name}" is invalid:\n{exc}')

    def _current(self, key):
        env = self.store.get(key)
        return None if env is None else kinds.unwrap(env)[1]

    def _require_ready(self, context):
        if not self.store.is_ready():
            context.abort(grpc.StatusCode.UNAVAILABLE,
                          f"replica {self.cfg.name} has not caught up with the Raft log yet")

    def _settings(self, kind):
        """Writes of a kind that allocates (a Service) carry this replica's allocation
        settings into the log, so the state machine allocates from the command, never
        from a replica's own file."""
        section = kind.store.settings_section
        config = getattr(self.cfg, section, None) if section else None
        return config.alloc_settings() if config is not None else None

    @staticmethod
    def _request_id(req):
        return req.request_id or uuid.uuid4().hex

    @staticmethod
    def _response(result):
        resp = api.WriteResponse(result=result[1])
        if result[2] is not None:
            resp.object.ParseFromString(result[2])
        return resp

    # ------------------------------------------------------------ writes

    @_loud
    def Create(self, request, context):
        if request.object.WhichOneof("object") == "eviction":
            return self._evict(request, context)
        kind, msg = self._unwrap(request.object, context)
        msg = _copy(msg)
        if not msg.metadata.name and msg.metadata.generate_name:
            msg.metadata.name = admission.generated_name(msg.metadata.generate_name, os.urandom(5))
        self._admit(kind, msg, context, old=None, creating=True)
        cmd = Create(self._request_id(request), kinds.encode(kinds.wrap(msg)), now_rfc3339(),
                     str(uuid.uuid4()), self._settings(kind))
        return self._response(self._write(cmd, context, request.dry_run))

    def _evict(self, request, context):
        """Create of an Eviction: Kubernetes' POST pods/NAME/eviction. The Eviction names the
        pod in its metadata and is never stored (it has no kind record, so it cannot be read
        back); the state machine checks the pod's budget and starts its deletion at once."""
        ev = request.object.eviction
        name, ns = ev.metadata.name, ev.metadata.namespace or "default"
        if not name:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          'Eviction is invalid:\nmetadata.name: Required value: the pod to evict')
        opts = ev.delete_options
        grace = opts.grace_period_seconds if opts.HasField("grace_period_seconds") else None
        if grace is not None and grace < 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "deleteOptions.gracePeriodSeconds must be >= 0")
        cmd = Evict(self._request_id(request), (POD.name, ns, name), grace, now_rfc3339())
        return self._response(self._write(cmd, context, request.dry_run))

    @_loud
    def Update(self, request, context):
        kind, msg = self._unwrap(request.object, context)
        msg = _copy(msg)
        if request.subresource not in ("", "status", "binding"):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"unknown subresource {request.subresource!r} (use \"\", \"status\" or \"binding\")")
        ns = msg.metadata.namespace or ("default" if kind.namespaced else "")
        old = self._current((kind.name, ns, msg.metadata.name))
        if old is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f'{kind.resource} "{msg.metadata.name}" not found')
        # Normalize identity before proposing: the store keys on it.
        msg.metadata.namespace = ns
        msg.api_version, msg.kind = kind.api_version, kind.name
        if request.subresource == "status":
            merged = _copy(old)
            merged.status.CopyFrom(msg.status)
            self._admit(kind, merged, context, old=None, creating=False)
        elif request.subresource == "":
            self._admit(kind, msg, context, old=old, creating=False)
        # "binding" carries only the node name: the state machine checks it against the
        # stored pod (unbound, not deleting) and writes node and PodScheduled at once.
        cmd = Update(self._request_id(request), kinds.encode(kinds.wrap(msg)), request.subresource,
                     msg.metadata.resource_version, self._settings(kind), now_rfc3339())
        wait_s = renewal_wait_s(kind.name, request.subresource, old, msg)
        return self._response(self._write(cmd, context, request.dry_run, wait_s))

    @_loud
    def Apply(self, request, context):
        kind, msg = self._unwrap(request.object, context)
        msg = _copy(msg)
        ns = msg.metadata.namespace or ("default" if kind.namespaced else "")
        old = self._current((kind.name, ns, msg.metadata.name))
        self._admit(kind, msg, context, old=old, creating=old is None)
        cmd = Apply(self._request_id(request), kinds.encode(kinds.wrap(msg)), now_rfc3339(),
                    str(uuid.uuid4()), self._settings(kind))
        return self._response(self._write(cmd, context, request.dry_run))

    @_loud
    def Delete(self, request, context):
        kind = self._kind(request.ref.kind, context)
        key = self._key(kind, request.ref)
        grace = request.grace_period_seconds if request.HasField("grace_period_seconds") else None
        if grace is not None and grace < 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "gracePeriodSeconds must be >= 0")
        bad_policy = deletion.check_policy(request.propagation_policy)
        if bad_policy:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, bad_policy)
        cmd = Delete(self._request_id(request), key, request.resource_version, request.uid,
                     grace, now_rfc3339(), request.propagation_policy)
        result = self._write(cmd, context, request.dry_run)
        resp = api.DeleteResponse()
        if result[2] is not None:
            resp.object.ParseFromString(result[2])
        return resp

    # ------------------------------------------------------------ reads

    def _kind(self, word, context):
        try:
            return kinds.lookup(word)
        except KeyError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.args[0])

    @staticmethod
    def _key(kind, ref):
        ns = (ref.namespace or "default") if kind.namespaced else ""
        return (kind.name, ns, ref.name)

    def _maybe_barrier(self, linearizable, context):
        if linearizable:
            self._write(Barrier(uuid.uuid4().hex), context)
        else:
            self._require_ready(context)

    @_loud
    def Get(self, request, context):
        kind = self._kind(request.ref.kind, context)
        self._maybe_barrier(request.linearizable, context)
        key = self._key(kind, request.ref)
        env = self.store.get(key)
        if env is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f'{kind.resource} "{key[2]}" not found')
        return env

    def _selector(self, request, context):
        """(label selector or None, field selector or None) from a List/Watch request."""
        try:
            labels = selectors.parse(request.label_selector) if request.label_selector else None
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"labelSelector: {exc}")
        try:
            by_field = fields.parse(request.field_selector, self._kind(request.kind, context))
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"fieldSelector: {exc}")
        return (labels, by_field) if labels or by_field else None

    @_loud
    def List(self, request, context):
        kind = self._kind(request.kind, context)
        sel = self._selector(request, context)
        self._maybe_barrier(request.linearizable, context)
        resp = api.ListResponse()
        # From the kind's index, in (namespace, name) order; read-only references.
        items, rv = self.store.list(kind.name, request.namespace)
        for env in items:
            if _selected(env, sel):
                resp.items.add().CopyFrom(env)
        resp.resource_version = str(rv)
        return resp

    @_loud
    def Watch(self, request, context):
        kind = self._kind(request.kind, context)
        sel = self._selector(request, context)
        self._require_ready(context)
        ns = request.namespace
        if request.resource_version:
            try:
                cursor = int(request.resource_version)
            except ValueError:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              f"resourceVersion {request.resource_version!r} is not a number")
        else:
            current, cursor = self.store.list(kind.name, ns)
            # The initial ADDED events carry no resume point of their own; the
            # BOOKMARK after them does (the version the listing was taken at).
            for env in current:
                if _selected(env, sel):
                    yield api.WatchEvent(type="ADDED", object=env)
            yield api.WatchEvent(type="BOOKMARK", resource_version=str(cursor))
        watch = self.store.watch(kind.name, cursor)
        leaderless_since = None
        while context.is_active():
            before = watch.rv
            try:
                events = watch.next(WATCH_LEADERLESS_POLL_S if leaderless_since else WATCH_POLL_S)
            except Expired as exc:
                context.abort(grpc.StatusCode.OUT_OF_RANGE, str(exc))
            if watch.rv != before:
                leaderless_since = None
            elif self.store.has_leader():
                leaderless_since = None
            else:
                # A replica cut off from the majority would show frozen state
                # forever; end the watch so the client resumes on another replica
                # (etcd's "require leader").
                leaderless_since = leaderless_since or time.monotonic()
                if time.monotonic() - leaderless_since > WATCH_NO_LEADER_S:
                    context.abort(grpc.StatusCode.UNAVAILABLE,
                                  f"replica {self.cfg.name} has no Raft leader; resume elsewhere")
            for rv, typ, key, env, *previous in events:
                typ = _filtered_type(typ, key, env, previous[0] if previous else None, kind.name, ns, sel)
                if typ:
                    yield api.WatchEvent(type=typ, object=env, resource_version=str(rv))

    # ------------------------------------------------------------ node proxy

    def _agent_for_node(self, node_name, context):
        """A NodeAgent stub for the node's agent (InternalIP + daemonEndpoints port)."""
        env = self.store.get(("Node", "", node_name))
        if env is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f'nodes "{node_name}" not found')
        node = kinds.unwrap(env)[1]
        ip = next((a.address for a in node.status.addresses if a.type == "InternalIP"), "")
        port = node.status.daemon_endpoints.kubelet_endpoint.port
        if not ip or not port:
            context.abort(grpc.StatusCode.UNAVAILABLE,
                          f"node {node_name} has not reported its agent's address yet")
        return node_grpc.NodeAgentStub(self._agent_channels.get(f"{ip}:{port}"))

    def _agent_for_pod(self, namespace, name, context):
        env = self.store.get(("Pod", namespace or "default", name))
        if env is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f'pods "{name}" not found')
        pod = kinds.unwrap(env)[1]
        if not pod.spec.node_name:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f'pod "{name}" is not scheduled to a node yet')
        return self._agent_for_node(pod.spec.node_name, context)

    def _relay(self, call, context):
        """Stream a proxied call's answers back; agent errors keep their code and message."""
        context.add_callback(call.cancel)
        try:
            for item in call:
                yield item
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.CANCELLED and not context.is_active():
                return
            context.abort(exc.code(), f"{AGENT_ERROR_PREFIX}{exc.details() or exc.code().name}")

    def PodLogs(self, request, context):
        self._require_ready(context)
        stub = self._agent_for_pod(request.namespace, request.pod, context)
        yield from self._relay(stub.Logs(request), context)

    def PodExec(self, request_iterator, context):
        self._require_ready(context)
        first = next(request_iterator, None)
        if first is None or not first.HasField("start"):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first exec message must carry `start`")
        stub = self._agent_for_pod(first.start.namespace, first.start.pod, context)

        def forward():
            yield first
            yield from request_iterator

        yield from self._relay(stub.Exec(forward()), context)

    def LoadImage(self, request_iterator, context):
        self._require_ready(context)
        first = next(request_iterator, None)
        if first is None or not first.node:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first image chunk must name the node")
        stub = self._agent_for_node(first.node, context)

        def forward():
            yield first
            yield from request_iterator

        call = stub.LoadImage.future(forward())
        context.add_callback(call.cancel)
        try:
            return call.result()
        except grpc.RpcError as exc:
            context.abort(exc.code(), f"{AGENT_ERROR_PREFIX}{exc.details() or exc.code().name}")

    def Join(self, request, context):
        self._require_ready(context)
        return join.join(self.store, self.cfg, request, context)

    # ------------------------------------------------------------ authorization

    def AccessReview(self, request, context):
        return guard.review(request, context)   # the guard knows the caller

    # ------------------------------------------------------------ ServiceAccount tokens

    def CreateToken(self, request, context):
        self._require_ready(context)
        return sa_tokens.create_token(self.tokens, request, context)

    def WhoAmI(self, request, context):
        return sa_tokens.whoami(self.tokens, context)

    # ------------------------------------------------------------ cluster status

    def ClusterStatus(self, request, context):
        resp = api.ClusterStatusResponse(answered_by=self.cfg.name)
        resp.replicas.append(self._local_status())
        if request.local_only:
            return resp
        results = {}
        threads = []
        for peer in self.cfg.peers:
            t = threading.Thread(target=self._peer_status, args=(peer, results), daemon=True)
            t.start()
            threads.append(t)
        for t in threads:
            t.join(PEER_STATUS_TIMEOUT_S + 0.3)
        for peer in self.cfg.peers:
            resp.replicas.append(results.get(peer.name) or api.ReplicaStatus(
                name=peer.name, api_address=peer.api_address, raft_address=peer.raft_address,
                role="unknown", reachable=False, error="no answer"))
        return resp

    def _local_status(self):
        st = self.store.raft_status()
        leader = st.get("leader")
        leader_name = ""
        for p in (self.cfg.self_peer, *self.cfg.peers):
            if leader is not None and str(leader) == p.raft_address:
                leader_name = p.name
        rv = self.store.resource_version()
        return api.ReplicaStatus(
            name=self.cfg.name, api_address=self.cfg.self_peer.api_address,
            raft_address=self.cfg.raft_address, role=ROLE_NAMES.get(st.get("state"), "unknown"),
            term=st.get("raft_term", 0), commit_index=st.get("commit_idx", 0),
            applied_index=st.get("last_applied", 0), reachable=True, leader=leader_name,
            resource_version=str(rv))

    def _peer_status(self, peer, results):
        try:
            stub = api_grpc.ApiStub(self._peer_channels.get(peer.api_address))
            r = stub.ClusterStatus(api.ClusterStatusRequest(local_only=True),
                                   timeout=PEER_STATUS_TIMEOUT_S)
            results[peer.name] = r.replicas[0]
        except grpc.RpcError as exc:
            results[peer.name] = api.ReplicaStatus(
                name=peer.name, api_address=peer.api_address, raft_address=peer.raft_address,
                role="unknown", reachable=False, error=exc.code().name)


def _copy(msg):
    out = type(msg)()
    out.CopyFrom(msg)
    return out


def _selected(env, sel) -> bool:
    if sel is None:
        return True
    labels, by_field = sel
    obj = kinds.unwrap(env)[1]
    if labels is not None and not labels.matches(obj.metadata.labels):
        return False
    return by_field is None or by_field.matches(obj)


def _matches(key, env, kind_name, namespace, sel) -> bool:
    if key[0] != kind_name or (namespace and key[1] != namespace):
        return False
    return _selected(env, sel)


def _filtered_type(typ, key, env, previous, kind_name, namespace, sel):
    """The event type a filtered watcher sees, as in Kubernetes: an object that starts
    matching is ADDED, one that stops matching is DELETED, else the change as is
    (None: not this watcher's business)."""
    now = _matches(key, env, kind_name, namespace, sel)
    if typ != "MODIFIED" or sel is None or previous is None:
        return typ if now else None
    before = _matches(key, previous, kind_name, namespace, sel)
    if now and before:
        return "MODIFIED"
    if now:
        return "ADDED"
    return "DELETED" if before else None


def serve(store, cfg, max_workers: int = 256, tokens=None):
    """Start the gRPC server on cfg.api_address; returns the grpc.Server. Every call passes
    the guard (authentication, then authorization) first; tokens authenticates bearer
    tokens (TokenAuthenticator: authenticate(token) -> Identity | None), by default the
    replica's ServiceAccount token authenticator (sa_tokens.from_config)."""
    if tokens is None:
        tokens = sa_tokens.from_config(cfg, store)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="api"),
        interceptors=[guard.Guard(guard.StoreView(store), tokens=tokens)],
        options=[("grpc.max_receive_message_length", 8 * 1024 * 1024),
                 ("grpc.max_send_message_length", 64 * 1024 * 1024),
                 ("grpc.so_reuseport", 0)])
    api_grpc.add_ApiServicer_to_server(ApiService(store, cfg, tokens), server)
    if tls.add_port(server, cfg.api_address, cfg.tls.credentials() if cfg.tls else None) == 0:
        raise OSError(f"cannot listen on {cfg.api_address}")
    if cfg.tls and cfg.tls.join_address and server.add_secure_port(
            cfg.tls.join_address, cfg.tls.credentials().server_credentials(False, send_ca=True)) == 0:
        raise OSError(f"cannot listen on {cfg.tls.join_address} (tls.joinAddress)")
    server.start()
    return server
