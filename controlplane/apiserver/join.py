"""Joining agents: the Join RPC and the port it is served on.

A replica with `tls.joinAddress` (controlplane/config.py) serves the same API on a second
port whose TLS does not ask for a client certificate (gRPC Python cannot make a client
certificate optional on one port: ssl_server_credentials either requires it or never asks
for it). On that port the only call allowed without credentials is Join; any other call
must carry a bearer token (ServiceAccounts) or is refused UNAUTHENTICATED before its
handler runs (the API's guard, controlplane/apiserver/guard.py, lets JOIN_METHOD through
untouched and sends every other call through authn.authenticate).

The join port serves the replica's certificate followed by the CA certificate, so a
joining agent can read the CA from the handshake and pin it by the token's digest before
it sends the token's secret (nodeagent/join.py).

Join checks the token (skiff/pki/tokens.py: a Secret bootstrap-token-<id> in kube-system
holding the secret's SHA-256; deleted or expired tokens are refused with a clear
message), or, without a token, that the caller's client certificate is that very node's
(an agent renewing its certificate, as the kubelet's certificate rotation does), and signs
the agent's CSR as CN skiff:node:<node>, O skiff:nodes, with the
node's addresses as SANs. Only a replica holding the CA key (tls.caKeyFile) can sign.
"""

import logging

import grpc

from controlplane.apiserver import authn
from skiff.api import kinds
from skiff.api import service_pb2 as api
from skiff.pki import authority, certs, tokens

log = logging.getLogger("skiff.apiserver.join")
JOIN_METHOD = "/skiff.api.Api/Join"


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def join(store, cfg, request, context):
    """The Join RPC (called from ApiService.Join)."""
    if cfg.tls is None or not cfg.tls.ca_key_file:
        context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                      f"replica {cfg.name} cannot sign certificates (no tls.caKeyFile)")
    if not request.node_name:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "node_name is required")
    caller = authn.peer_identity(context)
    if not request.token_id and caller is not None:
        if caller.node_name != request.node_name:
            context.abort(grpc.StatusCode.PERMISSION_DENIED,
                          f"{caller.user} may renew only its own node certificate, not {request.node_name}'s")
        # Same identity and SANs as the certificate it holds: a node cannot add addresses.
        old = (context.auth_context().get("x509_pem_cert") or [b""])[0]
        return _sign(cfg, request, context, how="renewed", like=old)
    env = store.get(("Secret", tokens.NAMESPACE, tokens.secret_name(request.token_id)))
    data = None
    if env is not None:
        secret = kinds.unwrap(env)[1]
        if secret.type == tokens.SECRET_TYPE:
            data = {k: v.decode() for k, v in secret.data.items()}
    try:
        tokens.check(data, request.token_id, request.token_secret)
    except tokens.TokenError as exc:
        log.info("event=join_refused node=%s token_id=%s reason=%s", request.node_name, request.token_id,
                 str(exc).replace(" ", "_"))
        context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
    return _sign(cfg, request, context, how="joined")


def _sign(cfg, request, context, how, like=b""):
    tls = cfg.tls
    try:
        if like:
            cert = certs.sign_like(_read(tls.ca_file), _read(tls.ca_key_file), like,
                                   certs.csr_public_key(request.csr_pem), lifetime_s=tls.cert_lifetime_s)
        else:
            cert = certs.sign_csr(_read(tls.ca_file), _read(tls.ca_key_file), request.csr_pem,
                                  lifetime_s=tls.cert_lifetime_s,
                                  **authority.node_identity(request.node_name, list(request.addresses)))
    except certs.CertError as exc:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"csr_pem: {exc}")
    log.info("event=node_%s node=%s token_id=%s", how, request.node_name, request.token_id or "-")
    return api.JoinResponse(certificate_pem=cert, ca_pem=_read(tls.ca_file))
