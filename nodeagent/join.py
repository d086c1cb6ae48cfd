"""An agent joining the cluster with a bootstrap token (skiff/pki/tokens.py).

1. Pin the CA: open TLS to a replica's join port without verifying, read the certificate
   chain it serves (its certificate, then the CA: controlplane/apiserver/join.py) and keep
   the certificate whose SHA-256 (DER) is the token's digest. None matches: refuse, having
   sent nothing secret (kubeadm's discovery-token-ca-cert-hash, Swarm's CA digest).
2. Make a key here (it never leaves the node) and a CSR for skiff:node:<node>.
3. Call Join over TLS verified against the pinned CA, with the token's id and secret and
   the CSR; write the CA, the key (0600) and the certificate it returns to the tls: files.

A replica that does not answer is retried (the next join server, growing delays up to
5 s), so agents may start before the control plane; a refusal (wrong digest, unknown,
expired or deleted token) is final: JoinError with the reason.
"""

import hashlib
import logging
import os
import socket
import ssl
import time

import grpc

from skiff.api import service_pb2 as api
from skiff.api import service_pb2_grpc as api_grpc
from skiff.api.identity import NODE_PREFIX, NODES_GROUP
from skiff.pki import certs, tokens
from skiff.pki.tls import write_private

log = logging.getLogger("skiff.agent.join")
CONNECT_TIMEOUT_S = 5.0


class JoinError(RuntimeError):
    pass


class _Retry(Exception):
    pass


def served_chain(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> list[bytes]:
    """The PEM certificates the TLS server at address presents, unverified."""
    host, _, port = address.rpartition(":")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s) as sock:
            with ctx.wrap_socket(sock, server_hostname=host) as s:
                # public as get_unverified_chain() from Python 3.13; the same method before
                chain_of = getattr(s, "get_unverified_chain", None) or s._sslobj.get_unverified_chain
                return [ssl.DER_cert_to_PEM_cert(c.public_bytes(ssl._ssl.ENCODING_DER)).encode()
                        for c in (chain_of() or [])]
    except (OSError, ssl.SSLError) as exc:
        raise _Retry(f"{address}: {exc}") from None


def pinned_ca(address: str, digest: str) -> bytes:
    chain = served_chain(address)
    for pem in chain:
        der = ssl.PEM_cert_to_DER_cert(pem.decode())
        if "sha256:" + hashlib.sha256(der).hexdigest() == digest:
            return pem
    raise JoinError(f"{address}: the cluster CA does not match the join token's digest {digest} "
                    f"(served: {', '.join(certs.ca_digest(p) for p in chain) or 'nothing'}); "
                    f"nothing secret was sent")


def _join_once(address, digest, token_id, secret, node, addresses, csr):
    ca = pinned_ca(address, digest)
    ch = grpc.secure_channel(address, grpc.ssl_channel_credentials(ca))
    try:
        resp = api_grpc.ApiStub(ch).Join(api.JoinRequest(
            token_id=token_id, token_secret=secret, node_name=node, csr_pem=csr,
            addresses=list(addresses)), timeout=10)
    except grpc.RpcError as exc:
        if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            raise _Retry(f"{address}: {exc.details()}") from None
        raise JoinError(f"join refused by {address}: {exc.details()}") from None
    finally:
        ch.close()
    return ca, resp.certificate_pem


def join(tls_cfg, node: str, addresses=(), deadline_s: float | None = None) -> None:
    """Join with tls_cfg.join_token; writes tls_cfg's caFile, keyFile, certFile."""
    digest, token_id, secret = tokens.parse_token(tls_cfg.join_token)
    key = certs.new_key_pem()
    csr = certs.make_csr(key, NODE_PREFIX + node, (NODES_GROUP,))
    servers = list(tls_cfg.join_servers)
    end = time.monotonic() + deadline_s if deadline_s else None
    delay, i = 0.2, 0
    while True:
        address = servers[i % len(servers)]
        try:
            ca, cert = _join_once(address, digest, token_id, secret, node, addresses, csr)
            break
        except _Retry as exc:
            log.info("event=join_retry server=%s error=%s", address, str(exc).replace(" ", "_"))
        i += 1
        if end is not None and time.monotonic() > end:
            raise JoinError(f"no replica answered the join ({', '.join(servers)})")
        if i % len(servers) == 0:
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
    if not certs.key_matches(cert, key) or not certs.issued_by(cert, ca):
        raise JoinError("the certificate returned by Join is not for our key or not from the pinned CA")
    for path in (tls_cfg.ca_file, tls_cfg.key_file, tls_cfg.cert_file):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_private(tls_cfg.ca_file, ca, 0o644)
    write_private(tls_cfg.key_file, key)
    write_private(tls_cfg.cert_file, cert, 0o644)
    log.info("event=joined node=%s server=%s token_id=%s", node, address, token_id)


def ensure_joined(cfg, deadline_s: float | None = None) -> bool:
    """Join if the agent config has a join token and its certificate does not exist yet;
    True when it joined now."""
    t = cfg.tls
    if t is None or not t.join_token:
        return False
    if all(os.path.exists(p) for p in (t.ca_file, t.cert_file, t.key_file)):
        return False
    join(t, cfg.node_name, [cfg.address], deadline_s)
    return True


def start_renewal(cfg, client):
    """A started Renewer of the agent's certificate through Join with its current one (the
    kubelet's client-certificate rotation), or None without TLS or without the CA key's help."""
    t = cfg.tls
    if t is None:
        return None
    from skiff.pki.renew import Renewer

    def issue(key_pem: bytes) -> bytes:
        csr = certs.make_csr(key_pem, NODE_PREFIX + cfg.node_name, (NODES_GROUP,))
        resp = client.join(api.JoinRequest(node_name=cfg.node_name, csr_pem=csr, addresses=[cfg.address]))
        if not certs.key_matches(resp.certificate_pem, key_pem):
            raise JoinError("the renewed certificate is not for our key")
        return resp.certificate_pem

    return Renewer(t.cert_file, t.key_file, issue, name=f"cert-renewer-{cfg.node_name}").start()
