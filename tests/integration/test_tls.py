"""mTLS on real processes: the lab's 3 replicas with TLS on (the default), and an agent
server in this process with a node certificate.

Refused: plain TCP, a TLS client without a certificate, a certificate from a foreign CA
(all fail the handshake: the client sees UNAVAILABLE); a node's certificate calling the
agent's exec/logs (PERMISSION_DENIED). Renewal: replicas with 6 s certificates serve and
call each other with new ones, no restart."""

import os
import socket
import ssl

import grpc
import pytest

from nodeagent import server as agentserver
from skiff import client as clientmod
from skiff.api import node_pb2 as npb
from skiff.api import node_pb2_grpc as npb_grpc
from skiff.pki import authority, certs
from skiff.pki.tls import Credentials
from tests.helpers import free_port_block, remove, temp_dir, wait_until
from tests.integration.conftest import dump_logs, make_cluster


def _refused(client_kw, cluster):
    c = clientmod.Client(cluster.endpoints, call_timeout_s=2.0, failover_budget_s=2.0, **client_kw)
    try:
        with pytest.raises(clientmod.Unavailable):
            c.get("namespace", "default")
    finally:
        c.close()


def test_the_admin_certificate_is_accepted(cluster, client):
    assert client.tls is not None
    assert client.get("namespace", "default").metadata.name == "default"
    st = client.cluster_status()
    assert all(r.reachable for r in st.replicas), st    # replicas call each other with mTLS


def test_plain_tcp_is_refused(cluster):
    _refused({"tls": None}, cluster)


def test_tls_without_a_client_certificate_is_refused(cluster):
    _refused({"tls": Credentials(ca=cluster.admin_credentials.ca)}, cluster)


def test_a_certificate_from_a_foreign_ca_is_refused(cluster):
    foreign = certs.create_ca("foreign")
    cert, key = certs.issue(*foreign, common_name="skiff:admin", groups=("system:masters",))
    # it trusts the real CA (the server's certificate verifies), but presents a foreign one
    _refused({"tls": Credentials(ca=cluster.admin_credentials.ca, cert=cert, key=key)}, cluster)


def test_a_server_certificate_from_a_foreign_ca_is_refused_by_the_client(cluster):
    foreign = certs.create_ca("foreign")
    cert, key = certs.issue(*foreign, common_name="skiff:admin", groups=("system:masters",))
    _refused({"tls": Credentials(ca=foreign[0], cert=cert, key=key)}, cluster)


# ------------------------------------------------------------ the agent's server

class _NoDocker:
    """Enough of a docker client for find_container to say "not found"."""
    class containers:   # noqa: N801 - mimics docker.DockerClient.containers
        @staticmethod
        def list(**_kw):
            return []


@pytest.fixture(scope="module")
def agent_server(cluster):
    pki = authority.Authority(os.path.join(cluster.lab_dir, "pki"))
    cert, key = pki.write_node("tlsnode", ips=["127.0.0.1"])
    creds = Credentials.from_files(pki.ca_file, cert, key)
    port = free_port_block(1)
    server = agentserver.serve(f"127.0.0.1:{port}", _NoDocker(), "tlsnode", creds=creds)
    yield f"127.0.0.1:{port}", pki
    server.stop(0)


def _agent_stub(target, pki, name, identity):
    cert, key = pki.write(name, **identity)
    ch = grpc.secure_channel(target, Credentials.from_files(pki.ca_file, cert, key).channel_credentials())
    return ch, npb_grpc.NodeAgentStub(ch)


@pytest.mark.parametrize("who, identity, code", [
    ("node-other", authority.node_identity("other", ips=["127.0.0.2"]), grpc.StatusCode.PERMISSION_DENIED),
    ("admin-user", authority.admin_identity(), grpc.StatusCode.PERMISSION_DENIED),
    ("cp-replica", authority.replica_identity("cpx"), grpc.StatusCode.NOT_FOUND),   # allowed: no such pod
])
def test_only_the_control_plane_may_exec_or_read_logs_on_an_agent(agent_server, who, identity, code):
    target, pki = agent_server
    ch, stub = _agent_stub(target, pki, who, identity)
    try:
        start = npb.ExecInput(start=npb.ExecStart(namespace="default", pod="p", command=["true"]))
        with pytest.raises(grpc.RpcError) as err:
            list(stub.Exec(iter([start]), timeout=5))
        assert err.value.code() == code, err.value.details()
        with pytest.raises(grpc.RpcError) as err:
            list(stub.Logs(npb.LogsRequest(namespace="default", pod="p"), timeout=5))
        assert err.value.code() == code, err.value.details()
        if code == grpc.StatusCode.PERMISSION_DENIED:
            assert "skiff:controlplane" in err.value.details()
    finally:
        ch.close()


def test_the_agent_server_refuses_plain_tcp(agent_server):
    target, _pki = agent_server
    ch = grpc.insecure_channel(target)
    try:
        with pytest.raises(grpc.RpcError) as err:
            list(npb_grpc.NodeAgentStub(ch).Logs(npb.LogsRequest(pod="p"), timeout=3))
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        ch.close()


# ------------------------------------------------------------ renewal

def _served_serial(address: str, admin: Credentials, tmp: str) -> int:
    """The serial number of the certificate the server at address presents now."""
    for name, pem in (("ca", admin.ca), ("crt", admin.cert), ("key", admin.key)):
        with open(os.path.join(tmp, name), "wb") as f:
            f.write(pem)
    ctx = ssl.create_default_context(cafile=os.path.join(tmp, "ca"))
    ctx.load_cert_chain(os.path.join(tmp, "crt"), os.path.join(tmp, "key"))
    ctx.set_alpn_protocols(["h2"])
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        with ctx.wrap_socket(sock, server_hostname=host) as s:
            return certs.load_cert(ssl.DER_cert_to_PEM_cert(s.getpeercert(binary_form=True)).encode()).serial_number


def test_replicas_renew_their_certificates_without_a_restart():
    cp = make_cluster("tlsrenew", cert_lifetime_s=6)
    tmp = temp_dir("tlsrenew-probe")
    try:
        pids = dict(cp.pids)
        first = _served_serial(cp.endpoints[0], cp.admin_credentials, tmp)
        # renewed at 2/3 of 6 s; served from the next handshake on
        wait_until(lambda: _served_serial(cp.endpoints[0], cp.admin_credentials, tmp) != first, 20,
                   "cp1 serving a renewed certificate")
        c = cp.client(call_timeout_s=3.0, failover_budget_s=5.0)
        try:
            before = _served_serial(cp.endpoints[1], cp.admin_credentials, tmp)
            wait_until(lambda: _served_serial(cp.endpoints[1], cp.admin_credentials, tmp) != before, 20,
                       "cp2 renewed again")
            # the peers' calls (each replica's status of the others) use the renewed certificates
            wait_until(lambda: all(r.reachable for r in c.cluster_status().replicas), 10,
                       "every replica reachable from cp1 with renewed certificates")
            c.create(_cm("after-renewal"))
            assert c.get("configmap", "after-renewal").metadata.name == "after-renewal"
            # an agent's certificate (6 s too, signed at the join) is renewed through Join with itself
            _agent_renews(cp, c, tmp)
        finally:
            c.close()
        assert cp.pids == pids and all(cp.is_running(n) for n in cp.names)
    except Exception:
        dump_logs(cp)
        raise
    finally:
        cp.stop_all()
        remove(cp.lab_dir)
        remove(tmp)


def _agent_renews(cp, admin_client, tmp):
    from types import SimpleNamespace

    from nodeagent.join import join, start_renewal
    from skiff.pki import tokens
    from skiff.pki.config import TLSConfig
    t = TLSConfig(ca_file=os.path.join(tmp, "node-ca.crt"), cert_file=os.path.join(tmp, "node.crt"),
                  key_file=os.path.join(tmp, "node.key"), join_token=tokens.create(admin_client, 600),
                  join_servers=tuple(cp.join_address(n) for n in cp.names))
    join(t, "rn1", ["127.0.0.1"], deadline_s=20)
    first = open(t.cert_file, "rb").read()
    node_client = clientmod.Client(cp.endpoints, tls=t.credentials(), call_timeout_s=3, failover_budget_s=3)
    renewer = start_renewal(SimpleNamespace(tls=t, node_name="rn1", address="127.0.0.1"), node_client)
    try:
        wait_until(lambda: renewer.renewals >= 2, 20, "the agent's certificate renewed twice")
        now = open(t.cert_file, "rb").read()
        assert now != first and certs.subject(now) == ("skiff:node:rn1", ("skiff:nodes",))
        assert node_client.cluster_status().replicas    # calls keep working with the renewed one
    finally:
        renewer.stop()
        node_client.close()


def _cm(name):
    from skiff.api import objects_pb2 as pb
    cm = pb.ConfigMap(api_version="v1", kind="ConfigMap")
    cm.metadata.name, cm.metadata.namespace = name, "default"
    return cm
