"""The cluster's shared secrets and this replica's certificates, for the installer.

Shared secrets live in the join directory's control-plane-only part,
`<join-dir>/controlplane/` (0700; on machines without a shared folder, copy it to the
other replicas only, never to agents):

  ca.crt, ca.key           the cluster CA (skiff/pki/authority.py: EC P-256, ~10 years)
  encryption-config.yaml   the Secret encryption keys (skiff/encryption_config.py)
  sa.key                   the ServiceAccount token signing key (skiff/satoken.py)
  admin.crt, admin.key     the administrator's client certificate (CN skiff:admin,
                           O system:masters): every replica renders the same admin config

The first replica to install creates each of them with an exclusive create (like the Raft
password), so replicas installing at once end up with the same ones; every replica copies
them into /etc/skiff (render.py). A pair (CA, admin) is made in a private temporary
directory and renamed into place as a directory: rename(2) of a directory onto an existing
non-empty one fails, so exactly one pair wins and nobody sees half of one.

replica_cert() decides about a replica's serving certificate: the current one is kept while
it is valid, issued by this CA, for its key and names exactly the wanted SANs; otherwise a
new key and certificate are issued. So a rerun re-issues nothing, and a changed address
re-issues exactly that replica's certificate.
"""

import datetime
import os
import shutil
import tempfile
from dataclasses import dataclass

from cryptography import x509

from skiff import encryption_config, satoken
from skiff.pki import authority, certs

PART = "controlplane"


@dataclass(frozen=True)
class Material:
    """PEM/text of the cluster's shared secrets (bytes for PEM, str for the YAML)."""
    ca_crt: bytes
    ca_key: bytes
    encryption_config: str
    sa_key: bytes
    admin_crt: bytes
    admin_key: bytes


def _read(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _exclusive_pair(directory: str, name: str, make) -> None:
    """Create directory/<name>/ holding what make(tmpdir) writes, unless it exists."""
    final = os.path.join(directory, name)
    if os.path.isdir(final):
        return
    tmp = tempfile.mkdtemp(prefix=f".{name}-", dir=directory)
    try:
        make(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not os.path.isdir(final):
                raise
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)


def ensure(join_dir: str) -> Material:
    """The cluster's secrets from join_dir/controlplane/, each created if absent."""
    part = os.path.join(join_dir, PART)
    os.makedirs(part, mode=0o700, exist_ok=True)
    os.chmod(part, 0o700)

    def make_ca(d):
        authority.Authority(d).create()
    _exclusive_pair(part, "ca", make_ca)
    ca = authority.Authority(os.path.join(part, "ca"))

    def make_admin(d):
        cert, key = certs.issue(ca.ca_pem(), _read(ca.ca_key_file), **authority.admin_identity())
        with open(os.path.join(d, "admin.crt"), "wb") as f:
            f.write(cert)
        fd = os.open(os.path.join(d, "admin.key"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
    _exclusive_pair(part, "admin", make_admin)
    enc = os.path.join(part, "encryption-config.yaml")
    encryption_config.write_new(enc)     # O_EXCL inside
    sa = os.path.join(part, "sa.key")
    try:
        satoken.ensure_signing_key(sa)
    except FileExistsError:              # another replica created it between check and create
        pass
    with open(enc, encoding="utf-8") as f:
        enc_text = f.read()
    return Material(ca_crt=ca.ca_pem(), ca_key=_read(ca.ca_key_file), encryption_config=enc_text,
                    sa_key=_read(sa), admin_crt=_read(os.path.join(part, "admin", "admin.crt")),
                    admin_key=_read(os.path.join(part, "admin", "admin.key")))


def cert_sans(cert_pem: bytes) -> tuple[frozenset, frozenset]:
    try:
        san = certs.load_cert(cert_pem).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return frozenset(), frozenset()
    return (frozenset(str(i) for i in san.get_values_for_type(x509.IPAddress)),
            frozenset(san.get_values_for_type(x509.DNSName)))


def replica_sans(name: str, address: str, hostname: str) -> dict:
    """sign() arguments of replica `name`'s certificate: SANs its advertise address,
    127.0.0.1, its name, hostname and localhost (authority.replica_identity)."""
    dns = tuple(dict.fromkeys(h for h in (hostname, hostname.split(".")[0]) if h))
    return authority.replica_identity(name, ips=(address,), dns=dns)


def cert_fits(cert_pem: bytes, key_pem: bytes, ca_pem: bytes, identity: dict,
              now: datetime.datetime | None = None) -> str:
    """"" if cert_pem can stay, else why it must be re-issued."""
    try:
        if not certs.issued_by(cert_pem, ca_pem):
            return "not issued by the cluster CA"
        if not certs.key_matches(cert_pem, key_pem):
            return "key does not match"
        _, not_after = certs.validity(cert_pem)
        if (now or datetime.datetime.now(datetime.timezone.utc)) >= not_after:
            return "expired"
        if certs.subject(cert_pem) != (identity["common_name"], tuple(identity["groups"])):
            return "another identity"
        if cert_sans(cert_pem) != (frozenset(identity["ips"]), frozenset(identity["dns"])):
            return "other addresses"
    except certs.CertError as exc:
        return str(exc)
    return ""


def replica_cert(material: Material, name: str, address: str, hostname: str,
                 current: tuple | None, lifetime_s: float = certs.CERT_LIFETIME_S,
                 now: datetime.datetime | None = None) -> tuple[bytes, bytes, str]:
    """(certificate PEM, key PEM, why re-issued or "") for replica `name`; current is
    (cert PEM, key PEM) as installed, or None."""
    ident = replica_sans(name, address, hostname)
    if current is not None:
        why = cert_fits(current[0], current[1], material.ca_crt, ident, now)
        if not why:
            return current[0], current[1], ""
    else:
        why = "none yet"
    cert, key = certs.issue(material.ca_crt, material.ca_key, lifetime_s=lifetime_s, now=now, **ident)
    return cert, key, why
