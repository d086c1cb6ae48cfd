"""gRPC transport security from the cluster's certificates: credentials for servers and
channels, and the identity of a verified peer.

Credentials hold PEM (CA, certificate, key) from files or from memory. Servers use
grpc.dynamic_ssl_server_credentials: gRPC asks `fetch` for the configuration at every new
handshake, which re-reads the files only when their mtime changed, so a renewed
certificate is served without a restart. Clients rebuild their channels when
`generation` changes (skiff/client.py).

Servers require a client certificate from the cluster CA (require_client_authentication):
no certificate, or one from another CA, fails the handshake before any call.
"""

import functools
import os
import threading

import grpc

from skiff.api.identity import AUTHENTICATED, Identity
from skiff.pki import certs


class TLSError(ValueError):
    pass


class Credentials:
    """A CA bundle plus this process's certificate and key.

    From files (ca_file, cert_file, key_file): re-read when a file's mtime changes
    (renewal writes new files). From memory (ca, cert, key PEM bytes): fixed."""

    def __init__(self, *, ca_file="", cert_file="", key_file="", ca=b"", cert=b"", key=b""):
        self.ca_file, self.cert_file, self.key_file = ca_file, cert_file, key_file
        self._lock = threading.Lock()
        self._stamp = None
        self._pem = (ca, cert, key)
        self.generation = 0
        if self.file_backed:
            self._reload()
        if not self._pem[0]:
            raise TLSError("TLS credentials need a CA certificate")

    @classmethod
    def from_files(cls, ca_file, cert_file, key_file) -> "Credentials":
        return cls(ca_file=ca_file, cert_file=cert_file, key_file=key_file)

    @property
    def file_backed(self) -> bool:
        return bool(self.ca_file)

    def _files(self):
        return [p for p in (self.ca_file, self.cert_file, self.key_file) if p]

    def _reload(self) -> bool:
        """Read the files if they changed since last time; True when they did."""
        try:
            stamp = tuple(os.stat(p).st_mtime_ns for p in self._files())
        except OSError as exc:
            if self._stamp is None:
                raise TLSError(f"TLS: {exc}") from None
            return False     # mid-rename: keep serving what we have
        if stamp == self._stamp:
            return False
        pem = []
        for p in (self.ca_file, self.cert_file, self.key_file):
            if p:
                with open(p, "rb") as f:
                    pem.append(f.read())
            else:
                pem.append(b"")
        if pem[1] and pem[2] and not certs.key_matches(pem[1], pem[2]):
            if self._stamp is None:
                raise TLSError(f"TLS: {self.key_file} is not the key of {self.cert_file}")
            return False     # mid-renewal (new key, old certificate): keep the current pair
        if pem[1] and not certs.issued_by(pem[1], pem[0]):
            raise TLSError(f"TLS: {self.cert_file} is not issued by the CA in {self.ca_file}")
        self._pem, self._stamp = tuple(pem), stamp
        self.generation += 1
        return True

    def refresh(self) -> bool:
        if not self.file_backed:
            return False
        with self._lock:
            return self._reload()

    @property
    def ca(self) -> bytes:
        return self._pem[0]

    @property
    def cert(self) -> bytes:
        return self._pem[1]

    @property
    def key(self) -> bytes:
        return self._pem[2]

    # ------------------------------------------------------------ gRPC

    def channel_credentials(self) -> grpc.ChannelCredentials:
        self.refresh()
        ca, cert, key = self._pem
        return grpc.ssl_channel_credentials(ca, key or None, cert or None)

    def server_credentials(self, require_client_cert: bool = True, send_ca: bool = False) -> grpc.ServerCredentials:
        """send_ca: the chain served is the certificate and the CA (a joining agent reads
        the CA from the handshake to pin it by digest: nodeagent/join.py)."""
        def config():
            ca, cert, key = self._pem
            chain = cert + (b"\n" + ca if send_ca else b"")
            return grpc.ssl_server_certificate_configuration([(key, chain)], root_certificates=ca)

        def fetch():
            # Called by gRPC at each handshake: cheap (a stat per file) unless renewed.
            try:
                return config() if self.refresh() else None
            except (TLSError, OSError, certs.CertError):
                return None   # a half-written renewal: keep the current configuration
        if not (self.cert and self.key):
            raise TLSError("a TLS server needs a certificate and a key")
        return grpc.dynamic_ssl_server_credentials(config(), fetch,
                                                   require_client_authentication=require_client_cert)


def channel(target: str, creds: "Credentials | None", options=None,
            call_creds: "grpc.CallCredentials | None" = None) -> grpc.Channel:
    """A secure channel with creds, or an insecure one without (TLS off). call_creds
    (bearer_credentials) add a token to every call; gRPC sends them on TLS channels only."""
    if creds is None:
        return grpc.insecure_channel(target, options=options)
    ch_creds = creds.channel_credentials()
    if call_creds is not None:
        ch_creds = grpc.composite_channel_credentials(ch_creds, call_creds)
    return grpc.secure_channel(target, ch_creds, options=options)


class _BearerPlugin(grpc.AuthMetadataPlugin):
    """`authorization: Bearer <token>` on every call. A token file is re-read when its
    mtime changes: the node agent renews a pod's token in place (as client-go re-reads
    its tokenFile), so a long-lived client keeps working past the first token's expiry."""

    def __init__(self, token: str = "", token_file: str = ""):
        self.token, self.token_file = token, token_file
        self._stamp = None
        self._lock = threading.Lock()

    def current(self) -> str:
        if not self.token_file:
            return self.token
        with self._lock:
            stamp = os.stat(self.token_file).st_mtime_ns
            if stamp != self._stamp:
                with open(self.token_file, encoding="utf-8") as f:
                    self.token, self._stamp = f.read().strip(), stamp
            return self.token

    def __call__(self, context, callback):
        try:
            callback((("authorization", f"Bearer {self.current()}"),), None)
        except OSError as exc:
            callback((), exc)


def bearer_credentials(token: str = "", token_file: str = "") -> "grpc.CallCredentials | None":
    """Call credentials carrying a bearer token (or the one in token_file); None without."""
    if not (token or token_file):
        return None
    return grpc.metadata_call_credentials(_BearerPlugin(token, token_file), name="bearer")


def add_port(server: grpc.Server, address: str, creds: "Credentials | None",
             require_client_cert: bool = True) -> int:
    if creds is None:
        return server.add_insecure_port(address)
    return server.add_secure_port(address, creds.server_credentials(require_client_cert))


@functools.lru_cache(maxsize=1024)
def _identity_of_pem(pem: bytes) -> Identity:
    user, groups = certs.subject(pem)
    groups = tuple(groups) + ((AUTHENTICATED,) if AUTHENTICATED not in groups else ())
    return Identity(user, groups)


def is_tls(context) -> bool:
    auth = context.auth_context() or {}
    return b"ssl" in auth.get("transport_security_type", ())


def peer_identity(context) -> Identity | None:
    """The identity (CN user, O groups) of the connection's verified client certificate;
    None without TLS or without a client certificate. gRPC verified the chain against
    the server's CA during the handshake; this only reads the subject."""
    auth = context.auth_context() or {}
    pems = auth.get("x509_pem_cert")
    if not pems:
        return None
    return _identity_of_pem(pems[0])


def write_private(path: str, data: bytes, mode: int = 0o600) -> None:
    """Write path atomically (temp file + rename) with mode (keys 0600): a reader never
    sees half a file, a renewal never leaves a key readable by others."""
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


class ChannelCache:
    """Channels by target, rebuilt when the credentials' files were renewed (a channel keeps
    the certificate it was made with across reconnects; after a renewal it must not)."""

    def __init__(self, creds: "Credentials | None", options=None, call_creds=None):
        self.creds = creds
        self.options = options
        self.call_creds = call_creds
        self._channels = {}
        self._generation = creds.generation if creds else 0
        self._lock = threading.Lock()

    def get(self, target: str) -> grpc.Channel:
        with self._lock:
            if self.creds is not None:
                self.creds.refresh()
                if self.creds.generation != self._generation:
                    # New calls get new channels; the old ones are dropped, not closed, so
                    # streams running on them (watches, exec) end on their own terms.
                    self._generation = self.creds.generation
                    self._channels = {}
            ch = self._channels.get(target)
            if ch is None:
                ch = self._channels[target] = channel(target, self.creds, self.options, self.call_creds)
            return ch

    def close(self) -> None:
        with self._lock:
            for ch in self._channels.values():
                ch.close()
            self._channels.clear()
