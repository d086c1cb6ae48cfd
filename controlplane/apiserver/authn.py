"""Authentication: the Identity (skiff/api/identity.py) a gRPC call is made as.

The seam the API's guard calls before any handler runs:

    authenticate(context, tokens=None) -> Identity   (or aborts with UNAUTHENTICATED)

Order, as kube-apiserver's union authenticator: a bearer token in the call's
`authorization` metadata (checked by `tokens.authenticate(token) -> Identity | None`,
ServiceAccount tokens), then the TLS client certificate of the connection, else the
call is refused. While the API runs without TLS every call without a token is
PLAINTEXT_ADMIN (the lab before mTLS; nothing can tell plaintext callers apart).
"""

import grpc

from skiff.api.identity import PLAINTEXT_ADMIN
from skiff.pki import tls


def bearer_token(context):
    """The token of an `authorization: Bearer <token>` metadata entry, or None."""
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and value.startswith("Bearer "):
            return value[len("Bearer "):].strip()
    return None


def peer_identity(context):
    """The identity of the connection's verified client certificate; None without TLS.

    CN -> user, O -> groups (plus system:authenticated), as kube-apiserver's x509
    authenticator reads them; gRPC verified the chain against the cluster CA in the
    handshake (skiff/pki/tls.py)."""
    return tls.peer_identity(context)


def authenticate(context, tokens=None):
    token = bearer_token(context)
    if token is not None:
        identity = tokens.authenticate(token) if tokens is not None else None
        if identity is None:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "invalid bearer token")
        return identity
    identity = peer_identity(context)
    if identity is not None:
        return identity
    if tls.is_tls(context):
        # A TLS connection without a client certificate (only possible on a port that
        # does not require one): nobody we know.
        context.abort(grpc.StatusCode.UNAUTHENTICATED,
                      "no client certificate and no bearer token: authentication required")
    return PLAINTEXT_ADMIN
