"""A replica's part of the cluster PKI: renewing its own certificate with the CA key it holds.

Period and cost: skiff/pki/renew.py (a runner waking at the certificate's renewal point,
at most hourly; nothing in between).
"""

from skiff.pki import certs
from skiff.pki.renew import Renewer


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def start_renewal(cfg):
    """A started Renewer for the replica's certificate, or None (no TLS, or no CA key here:
    then whoever holds the CA renews it)."""
    if cfg.tls is None or not cfg.tls.ca_key_file:
        return None
    tls = cfg.tls

    def issue(key_pem: bytes) -> bytes:
        return certs.sign_like(_read(tls.ca_file), _read(tls.ca_key_file), _read(tls.cert_file),
                               certs.load_key(key_pem).public_key(), lifetime_s=tls.cert_lifetime_s)

    return Renewer(tls.cert_file, tls.key_file, issue, name=f"cert-renewer-{cfg.name}").start()
