"""The cluster's certificates: a CA, certificates it issues, CSRs, digests.

Everything is PEM bytes in and out (what files and gRPC want), made with the
`cryptography` package's x509 builder. Choices, as kubeadm makes them:
- keys are EC P-256 (ECDSA with SHA-256 signatures), small and fast to handshake;
- the CA lives about 10 years (CA_LIFETIME_S), issued certificates a year by default;
- every certificate's notBefore is backdated by BACKDATE_S (5 min) so a machine whose
  clock is a little behind the issuer's still accepts it (kubeadm backdates its CA too);
- identities go where kube-apiserver reads them: the user in the subject's CN, each
  group in an O attribute;
- a serving certificate names its addresses in subjectAltName (IPs and DNS names),
  which the gRPC client checks against the address it dialled;
- the CA's digest is `sha256:<hex>` of the CA certificate's DER (what a join token
  carries, like kubeadm's --discovery-token-ca-cert-hash pins the CA).
"""

import datetime
import hashlib
import ipaddress

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_LIFETIME_S = 10 * 365 * 86400
CERT_LIFETIME_S = 365 * 86400
BACKDATE_S = 300
CA_COMMON_NAME = "skiff-ca"


class CertError(ValueError):
    pass


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def new_key_pem() -> bytes:
    """A new EC P-256 private key, PKCS#8 PEM, unencrypted (files are 0600)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_key(pem: bytes):
    try:
        return serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise CertError(f"not a PEM private key: {exc}") from None


def load_cert(pem: bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise CertError(f"not a PEM certificate: {exc}") from None


def _name(common_name: str, groups=()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def create_ca(common_name: str = CA_COMMON_NAME, lifetime_s: float = CA_LIFETIME_S,
              now: datetime.datetime | None = None) -> tuple[bytes, bytes]:
    """A new self-signed CA: (certificate PEM, key PEM)."""
    now = now or _now()
    key_pem = new_key_pem()
    key = load_key(key_pem)
    name = _name(common_name)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(seconds=BACKDATE_S))
            .not_valid_after(now + datetime.timedelta(seconds=lifetime_s))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _sans(ips, dns):
    names = []
    for ip in ips:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(ip)))
        except ValueError:
            raise CertError(f"subjectAltName: {ip!r} is not an IP address") from None
    names += [x509.DNSName(d) for d in dns]
    return names


def sign(ca_cert_pem: bytes, ca_key_pem: bytes, public_key, *, common_name: str, groups=(),
         ips=(), dns=(), server: bool = False, client: bool = True,
         lifetime_s: float = CERT_LIFETIME_S, now: datetime.datetime | None = None) -> bytes:
    """A certificate for public_key issued by the CA; PEM. The identity (CN, O) and the
    SANs are the issuer's decision, never taken from a request."""
    if not common_name:
        raise CertError("a certificate needs a common name (the user)")
    if lifetime_s <= 0:
        raise CertError("lifetime must be > 0 seconds")
    now = now or _now()
    ca = load_cert(ca_cert_pem)
    ca_key = load_key(ca_key_pem)
    not_after = now + datetime.timedelta(seconds=lifetime_s)
    # Never outlive the CA: a certificate valid past its issuer would fail anyway.
    not_after = min(not_after, ca.not_valid_after_utc)
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + \
             ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
    if not usages:
        raise CertError("a certificate must be for a server, a client, or both")
    b = (x509.CertificateBuilder()
         .subject_name(_name(common_name, groups)).issuer_name(ca.subject)
         .public_key(public_key)
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(seconds=BACKDATE_S))
         .not_valid_after(not_after)
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, key_cert_sign=False,
                                      crl_sign=False, content_commitment=False, data_encipherment=False,
                                      key_agreement=False, encipher_only=False, decipher_only=False),
                        critical=True)
         .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                        critical=False))
    sans = _sans(ips, dns)
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return b.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def issue(ca_cert_pem: bytes, ca_key_pem: bytes, **kw) -> tuple[bytes, bytes]:
    """A new key and a certificate for it: (certificate PEM, key PEM). kw as sign()."""
    key_pem = new_key_pem()
    return sign(ca_cert_pem, ca_key_pem, load_key(key_pem).public_key(), **kw), key_pem


def make_csr(key_pem: bytes, common_name: str, groups=()) -> bytes:
    """A PKCS#10 request for key_pem's public key (the joining side: its key never leaves it)."""
    csr = (x509.CertificateSigningRequestBuilder().subject_name(_name(common_name, groups))
           .sign(load_key(key_pem), hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM)


def csr_public_key(csr_pem: bytes):
    """The public key of a CSR whose self-signature is valid (proof the sender holds the key)."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise CertError(f"not a PEM certificate signing request: {exc}") from None
    if not csr.is_signature_valid:
        raise CertError("the certificate signing request's signature is not valid")
    key = csr.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise CertError("the certificate signing request must carry an EC key")
    return key


def sign_csr(ca_cert_pem: bytes, ca_key_pem: bytes, csr_pem: bytes, **kw) -> bytes:
    """A certificate for the CSR's key; the identity and SANs come from kw (the issuer's
    decision), not from the CSR's subject."""
    return sign(ca_cert_pem, ca_key_pem, csr_public_key(csr_pem), **kw)


def ca_digest(ca_cert_pem: bytes) -> str:
    """`sha256:<hex>` of the CA certificate's DER encoding."""
    der = load_cert(ca_cert_pem).public_bytes(serialization.Encoding.DER)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def subject(cert_pem: bytes) -> tuple[str, tuple[str, ...]]:
    """(CN, O groups) of a certificate: the user and groups it authenticates as."""
    name = load_cert(cert_pem).subject
    cns = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    groups = tuple(a.value for a in name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
    return (cns[0].value if cns else ""), groups


def validity(cert_pem: bytes) -> tuple[datetime.datetime, datetime.datetime]:
    c = load_cert(cert_pem)
    return c.not_valid_before_utc, c.not_valid_after_utc


def issued_by(cert_pem: bytes, ca_cert_pem: bytes) -> bool:
    """cert_pem's signature verifies with the CA's key."""
    try:
        load_cert(cert_pem).verify_directly_issued_by(load_cert(ca_cert_pem))
        return True
    except (ValueError, TypeError, InvalidSignature):
        return False


def renewal_at(cert_pem: bytes, fraction: float = 2 / 3) -> datetime.datetime:
    """When `fraction` of the certificate's lifetime has passed (kubelet's certificate manager
    renews at 70-90 % of it; 2/3 leaves a third to retry in). The lifetime counts from the
    issue time, not from the backdated notBefore: else a short-lived certificate (tests)
    would be due again the moment it is issued."""
    not_before, not_after = validity(cert_pem)
    issued = min(not_before + datetime.timedelta(seconds=BACKDATE_S), not_after)
    return issued + (not_after - issued) * fraction


def renewal_due(cert_pem: bytes, now: datetime.datetime | None = None, fraction: float = 2 / 3) -> bool:
    return (now or _now()) >= renewal_at(cert_pem, fraction)


def sign_like(ca_cert_pem: bytes, ca_key_pem: bytes, old_cert_pem: bytes, public_key,
              lifetime_s: float = CERT_LIFETIME_S, now: datetime.datetime | None = None) -> bytes:
    """A renewal: a certificate for public_key with old_cert_pem's identity, SANs and usages."""
    old = load_cert(old_cert_pem)
    user, groups = subject(old_cert_pem)
    ips, dns, usages = [], [], []
    try:
        san = old.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        ips = [str(i) for i in san.get_values_for_type(x509.IPAddress)]
        dns = san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        pass
    try:
        usages = list(old.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        pass
    return sign(ca_cert_pem, ca_key_pem, public_key, common_name=user, groups=groups, ips=ips, dns=dns,
                server=ExtendedKeyUsageOID.SERVER_AUTH in usages,
                client=ExtendedKeyUsageOID.CLIENT_AUTH in usages or not usages,
                lifetime_s=lifetime_s, now=now)


def key_matches(cert_pem: bytes, key_pem: bytes) -> bool:
    """The private key belongs to the certificate (same public key)."""
    try:
        pub = load_cert(cert_pem).public_key()
        return pub == load_key(key_pem).public_key()
    except CertError:
        return False
