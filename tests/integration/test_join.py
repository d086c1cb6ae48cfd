"""Agents joining with bootstrap tokens against the real 3 replicas (their join ports):
the CA pinned by the token's digest, a CSR signed as skiff:node:<node>; a wrong digest,
an expired, deleted or wrong-secret token refused with a clear message; every other call
on the join port refused without credentials."""

import datetime
import os

import grpc
import pytest

from nodeagent.join import JoinError, join
from skiff import client as clientmod
from skiff.api import objects_pb2 as pb
from skiff.api import service_pb2 as api
from skiff.api import service_pb2_grpc as api_grpc
from skiff.pki import certs, tokens
from skiff.pki.config import TLSConfig
from skiff.pki.tls import Credentials


def _tls(tmp_path, cluster, token, name="n"):
    return TLSConfig(ca_file=str(tmp_path / "ca.crt"), cert_file=str(tmp_path / f"{name}.crt"),
                     key_file=str(tmp_path / f"{name}.key"), join_token=token,
                     join_servers=tuple(cluster.join_address(n) for n in cluster.names))


def test_an_agent_joins_with_a_token_and_gets_its_node_certificate(cluster, client, tmp_path):
    token = tokens.create(client, 600, "test")
    t = _tls(tmp_path, cluster, token, "jn1")
    join(t, "jn1", ["127.0.0.1"], deadline_s=20)
    cert = open(t.cert_file, "rb").read()
    assert certs.subject(cert) == ("skiff:node:jn1", ("skiff:nodes",))
    assert open(t.ca_file, "rb").read() == cluster.admin_credentials.ca
    assert certs.key_matches(cert, open(t.key_file, "rb").read())
    assert oct(os.stat(t.key_file).st_mode & 0o777) == "0o600"
    # the new certificate opens the API (as the node; what it may do is authorization's business)
    node_client = type(client)(cluster.endpoints, tls=Credentials.from_files(t.ca_file, t.cert_file, t.key_file),
                               call_timeout_s=3, failover_budget_s=3)
    try:
        assert node_client.cluster_status().replicas
    finally:
        node_client.close()


def test_a_wrong_ca_digest_is_refused_before_anything_secret_is_sent(cluster, client, tmp_path):
    token = tokens.create(client, 600)
    _digest, token_id, secret = tokens.parse_token(token)
    foreign = certs.ca_digest(certs.create_ca("foreign")[0])
    t = _tls(tmp_path, cluster, tokens.format_token(foreign, token_id, secret))
    with pytest.raises(JoinError, match="does not match the join token's digest"):
        join(t, "jn2", deadline_s=10)
    assert not os.path.exists(t.cert_file)


def _store(client, token_id, secret, **kw):
    s = pb.Secret(api_version="v1", kind="Secret", type=tokens.SECRET_TYPE)
    s.metadata.name, s.metadata.namespace = tokens.secret_name(token_id), tokens.NAMESPACE
    for k, v in tokens.stored_data(token_id, secret, **kw).items():
        s.data[k] = v.encode()
    client.create(s)


def test_an_expired_token_is_refused(cluster, client, tmp_path):
    token_id, secret = tokens.new_id_and_secret()
    _store(client, token_id, secret, ttl_s=60,
           now=datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1))
    token = tokens.format_token(certs.ca_digest(cluster.admin_credentials.ca), token_id, secret)
    with pytest.raises(JoinError, match=f"join token {token_id} expired at"):
        join(_tls(tmp_path, cluster, token), "jn3", deadline_s=10)


def test_a_deleted_token_is_refused(cluster, client, tmp_path):
    token = tokens.create(client, 600)
    token_id = tokens.parse_token(token)[1]
    client.delete("secret", tokens.secret_name(token_id), namespace=tokens.NAMESPACE)
    # every replica must have applied the delete before we can expect each to refuse
    client.get("namespace", "default", linearizable=True)
    with pytest.raises(JoinError, match=f"join token {token_id} does not exist"):
        join(_tls(tmp_path, cluster, token), "jn4", deadline_s=10)


def test_a_wrong_secret_is_refused(cluster, client, tmp_path):
    digest, token_id, _secret = tokens.parse_token(tokens.create(client, 600))
    with pytest.raises(JoinError, match="wrong secret"):
        join(_tls(tmp_path, cluster, tokens.format_token(digest, token_id, "x" * 16)), "jn5", deadline_s=10)


def test_the_join_port_refuses_every_other_call_without_credentials(cluster):
    ch = grpc.secure_channel(cluster.join_address(cluster.names[0]),
                             grpc.ssl_channel_credentials(cluster.admin_credentials.ca))
    try:
        stub = api_grpc.ApiStub(ch)
        with pytest.raises(grpc.RpcError) as err:
            stub.ClusterStatus(api.ClusterStatusRequest(), timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as err:
            list(stub.Watch(api.WatchRequest(kind="pods"), timeout=5))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as err:
            stub.Get(api.GetRequest(), timeout=5,
                     metadata=[("authorization", "Bearer made-up")])
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        ch.close()


def test_a_node_renews_only_its_own_certificate(cluster, client, tmp_path):
    token = tokens.create(client, 600)
    t = _tls(tmp_path, cluster, token, "jn6")
    join(t, "jn6", ["127.0.0.1"], deadline_s=20)
    node = type(client)(cluster.endpoints, tls=Credentials.from_files(t.ca_file, t.cert_file, t.key_file),
                        call_timeout_s=3, failover_budget_s=3)
    try:
        key = certs.new_key_pem()
        csr = certs.make_csr(key, "skiff:node:jn6")
        # addresses asked for are ignored on renewal: the SANs stay those of the current certificate
        resp = node.join(api.JoinRequest(node_name="jn6", csr_pem=csr, addresses=["10.9.9.9"]))
        assert certs.subject(resp.certificate_pem) == ("skiff:node:jn6", ("skiff:nodes",))
        assert certs.key_matches(resp.certificate_pem, key)
        assert b"10.9.9.9" not in open(t.cert_file, "rb").read()
        from cryptography import x509
        san = certs.load_cert(resp.certificate_pem).extensions.get_extension_for_class(x509.SubjectAlternativeName)
        assert [str(i) for i in san.value.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
        with pytest.raises(clientmod.ApiError, match="may renew only its own node certificate"):
            node.join(api.JoinRequest(node_name="other", csr_pem=csr))
    finally:
        node.close()
