"""skiff/pki: the CA, issued certificates, CSRs, digests, credentials and renewal."""

import datetime
import os
import time

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from skiff.pki import authority, certs
from skiff.pki import config as tlsconfig
from skiff.pki.renew import Renewer
from skiff.pki.tls import Credentials, TLSError, write_private
from tests.helpers import wait_until

UTC = datetime.timezone.utc


@pytest.fixture(scope="module")
def ca():
    return certs.create_ca()


def test_ca_is_p256_ten_years_and_backdated(ca):
    cert = certs.load_cert(ca[0])
    assert cert.public_key().curve.name == "secp256r1"
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime >= datetime.timedelta(days=3650)
    assert cert.not_valid_before_utc <= datetime.datetime.now(UTC) - datetime.timedelta(seconds=certs.BACKDATE_S - 5)


def test_issued_certificate_carries_identity_sans_and_usages(ca):
    cert_pem, key_pem = certs.issue(*ca, common_name="skiff:node:n1", groups=("skiff:nodes",),
                                    ips=("10.0.0.5",), dns=("n1",), server=True, client=True, lifetime_s=3600)
    assert certs.subject(cert_pem) == ("skiff:node:n1", ("skiff:nodes",))
    assert certs.issued_by(cert_pem, ca[0])
    assert certs.key_matches(cert_pem, key_pem)
    cert = certs.load_cert(cert_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(i) for i in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.5"]
    assert san.get_values_for_type(x509.DNSName) == ["n1"]
    eku = list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert eku == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    nb, na = certs.validity(cert_pem)
    assert na - nb == datetime.timedelta(seconds=3600 + certs.BACKDATE_S)


def test_a_foreign_ca_did_not_issue_it(ca):
    other = certs.create_ca("other")
    cert_pem, _ = certs.issue(*other, common_name="mallory")
    assert not certs.issued_by(cert_pem, ca[0])


def test_csr_signing_takes_the_identity_from_the_issuer_not_the_request(ca):
    key = certs.new_key_pem()
    csr = certs.make_csr(key, "skiff:admin", ("system:masters",))
    cert_pem = certs.sign_csr(*ca, csr, common_name="skiff:node:n2", groups=("skiff:nodes",))
    assert certs.subject(cert_pem) == ("skiff:node:n2", ("skiff:nodes",))
    assert certs.key_matches(cert_pem, key)


def test_a_tampered_csr_is_refused(ca):
    csr = certs.make_csr(certs.new_key_pem(), "n")
    bad = csr.replace(csr.splitlines()[3], csr.splitlines()[3][:-4] + b"AAAA")
    with pytest.raises(certs.CertError):
        certs.sign_csr(*ca, bad, common_name="x")


@pytest.mark.parametrize("kw, message", [
    ({"common_name": ""}, "common name"),
    ({"common_name": "x", "lifetime_s": 0}, "lifetime"),
    ({"common_name": "x", "server": False, "client": False}, "server, a client"),
    ({"common_name": "x", "ips": ("not-an-ip",)}, "not an IP"),
])
def test_bad_issue_arguments_are_refused(ca, kw, message):
    with pytest.raises(certs.CertError, match=message):
        certs.issue(*ca, **kw)


def test_digest_is_sha256_of_the_der(ca):
    import hashlib
    from cryptography.hazmat.primitives import serialization
    der = certs.load_cert(ca[0]).public_bytes(serialization.Encoding.DER)
    assert certs.ca_digest(ca[0]) == "sha256:" + hashlib.sha256(der).hexdigest()


def test_certificates_never_outlive_the_ca():
    short_ca = certs.create_ca(lifetime_s=600)
    cert_pem, _ = certs.issue(*short_ca, common_name="x", lifetime_s=10 * 86400)
    assert certs.validity(cert_pem)[1] == certs.validity(short_ca[0])[1]


@pytest.mark.parametrize("elapsed_fraction, due", [(0.0, False), (0.5, False), (0.66, False), (0.67, True),
                                                    (1.5, True)])
def test_renewal_is_due_after_two_thirds_of_the_lifetime(ca, elapsed_fraction, due):
    now = datetime.datetime.now(UTC)
    cert_pem, _ = certs.issue(*ca, common_name="x", lifetime_s=3000, now=now)
    # counted from the issue time, not the backdated notBefore
    at = now + datetime.timedelta(seconds=3000 * elapsed_fraction)
    assert certs.renewal_due(cert_pem, now=at) is due


def test_sign_like_keeps_identity_sans_and_usages(ca):
    old, _ = certs.issue(*ca, common_name="skiff:controlplane:cp1", groups=("skiff:controlplane", "system:masters"),
                         ips=("127.0.0.1",), dns=("cp1",), server=True, lifetime_s=60)
    key = certs.new_key_pem()
    new = certs.sign_like(*ca, old, certs.load_key(key).public_key(), lifetime_s=120)
    assert certs.subject(new) == certs.subject(old)
    o, n = certs.load_cert(old), certs.load_cert(new)
    for ext in (x509.SubjectAlternativeName, x509.ExtendedKeyUsage):
        assert o.extensions.get_extension_for_class(ext).value == n.extensions.get_extension_for_class(ext).value
    assert certs.key_matches(new, key)


# ------------------------------------------------------------ authority on disk

def test_authority_creates_the_ca_once_and_the_well_known_identities(tmp_path):
    a = authority.Authority(str(tmp_path / "pki"))
    a.create()
    digest = a.digest()
    a.create()
    assert a.digest() == digest
    assert oct(os.stat(a.ca_key_file).st_mode & 0o777) == "0o600"
    cert_file, key_file = a.write_replica("cp1", ips=["10.0.0.11"])
    with open(cert_file, "rb") as f:
        pem = f.read()
    user, groups = certs.subject(pem)
    assert user == "skiff:controlplane:cp1" and set(groups) == {"skiff:controlplane", "system:masters"}
    assert oct(os.stat(key_file).st_mode & 0o777) == "0o600"
    # a pod verifies the replica at the API Service's ClusterIP and names (kube-apiserver's SANs)
    san = certs.load_cert(pem).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(i) for i in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.11", "127.0.0.1", "10.96.0.1"]
    assert san.get_values_for_type(x509.DNSName) == [
        "cp1", "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local"]
    with open(a.write_node("node1", ips=["10.0.0.21"])[0], "rb") as f:
        assert certs.subject(f.read()) == ("skiff:node:node1", ("skiff:nodes",))
    with open(a.write_admin()[0], "rb") as f:
        assert certs.subject(f.read()) == ("skiff:admin", ("system:masters",))


# ------------------------------------------------------------ credentials

def _pair(tmp_path, ca, name, **kw):
    cert, key = certs.issue(*ca, common_name=name, **kw)
    cf, kf = str(tmp_path / f"{name}.crt"), str(tmp_path / f"{name}.key")
    write_private(cf, cert, 0o644)
    write_private(kf, key)
    return cf, kf


def test_credentials_reload_changed_files_and_count_generations(tmp_path, ca):
    ca_file = str(tmp_path / "ca.crt")
    write_private(ca_file, ca[0], 0o644)
    cf, kf = _pair(tmp_path, ca, "a")
    creds = Credentials.from_files(ca_file, cf, kf)
    gen, first = creds.generation, creds.cert
    assert not creds.refresh()
    time.sleep(0.01)   # a distinct mtime
    cert, key = certs.issue(*ca, common_name="a")
    write_private(kf, key)
    # new key, old certificate (mid-renewal): the old pair stays in use
    assert not creds.refresh() and creds.cert == first
    write_private(cf, cert, 0o644)
    assert creds.refresh() and creds.cert == cert and creds.generation == gen + 1


def test_credentials_refuse_a_certificate_of_another_ca(tmp_path, ca):
    ca_file = str(tmp_path / "ca.crt")
    write_private(ca_file, ca[0], 0o644)
    cf, kf = _pair(tmp_path, certs.create_ca("other"), "m")
    with pytest.raises(TLSError, match="not issued by the CA"):
        Credentials.from_files(ca_file, cf, kf)


def test_renewer_replaces_the_files_before_expiry(tmp_path, ca):
    cf, kf = _pair(tmp_path, ca, "r", lifetime_s=0.3)   # due after 0.2 s
    with open(cf, "rb") as f:
        old = f.read()
    r = Renewer(cf, kf, lambda key: certs.sign_like(*ca, old, certs.load_key(key).public_key(), lifetime_s=3600))
    r.start()
    try:
        wait_until(lambda: r.renewals >= 1, 10, "the certificate renewed")
    finally:
        r.stop()
    with open(cf, "rb") as f, open(kf, "rb") as g:
        new, key = f.read(), g.read()
    assert new != old and certs.key_matches(new, key) and certs.subject(new) == ("r", ())
    assert not certs.renewal_due(new)


# ------------------------------------------------------------ the tls: config section

def test_tls_section_parses_and_names_bad_keys(tmp_path):
    for n in ("ca.crt", "c.crt", "c.key", "ca.key"):
        (tmp_path / n).write_text("x")
    doc = {"caFile": str(tmp_path / "ca.crt"), "certFile": str(tmp_path / "c.crt"),
           "keyFile": str(tmp_path / "c.key"), "caKeyFile": str(tmp_path / "ca.key"), "certLifetimeS": 60}
    t = tlsconfig.parse(doc, "cp.yaml")
    assert t.cert_lifetime_s == 60.0 and t.ca_key_file.endswith("ca.key")
    assert tlsconfig.parse(None, "cp.yaml") is None
    with pytest.raises(tlsconfig.TLSConfigError, match="cp.yaml: tls: unknown key"):
        tlsconfig.parse({**doc, "caKey": "x"}, "cp.yaml")
    with pytest.raises(tlsconfig.TLSConfigError, match=r"tls\.certFile: .*no such file"):
        tlsconfig.parse({**doc, "certFile": str(tmp_path / "missing")}, "cp.yaml")
    with pytest.raises(tlsconfig.TLSConfigError, match="unknown key"):
        tlsconfig.parse(doc, "agent.yaml", allow_ca_key=False)
    with pytest.raises(tlsconfig.TLSConfigError, match="certLifetimeS"):
        tlsconfig.parse({**doc, "certLifetimeS": -1}, "cp.yaml")
