"""ServiceAccounts on a real 3-replica control plane (loopback; the lab's configs, so all
replicas read the one signing key the lab wrote).

- the serviceaccounts controller gives every namespace a `default` account, and makes it
  again when it is deleted;
- a pod is refused when it names an account that does not exist, admitted when it does;
- CreateToken issues a token bound to a pod; WhoAmI with it answers
  system:serviceaccount:NS:NAME on every replica; the token stops authenticating once its
  pod or its account is deleted; a token that is not one of the cluster's is UNAUTHENTICATED.
"""

import grpc
import pytest

from skiff import client as clientmod
from skiff.api import objects_pb2 as pb
from tests.helpers import scratch_namespace, wait_until


def _pod(name, ns, account=""):
    p = pb.Pod(metadata=pb.ObjectMeta(name=name, namespace=ns))
    p.spec.containers.add(name="c", image="busybox:1.36", command=["sleep", "3600"])
    p.spec.service_account_name = account
    return p


def _account(name, ns, automount=None):
    sa = pb.ServiceAccount(metadata=pb.ObjectMeta(name=name, namespace=ns))
    if automount is not None:
        sa.automount_service_account_token = automount
    return sa


def _has(client, ns, name):
    try:
        client.get("serviceaccounts", name, ns)
        return True
    except clientmod.NotFound:
        return False


def _unauthenticated(client, token):
    try:
        client.whoami(token)
    except clientmod.ApiError as exc:
        return exc.code == grpc.StatusCode.UNAUTHENTICATED
    return False


def test_every_namespace_gets_a_default_account_back_after_deletion(client):
    for ns in ("default", "kube-system"):
        wait_until(lambda: _has(client, ns, "default"), 20, f"{ns}/default exists")
    with scratch_namespace(client, "sa") as ns:
        wait_until(lambda: _has(client, ns, "default"), 20, f"{ns}/default created")
        client.delete("serviceaccounts", "default", ns)
        wait_until(lambda: _has(client, ns, "default"), 20, f"{ns}/default made again")
        names = [a.metadata.name for a in client.list("serviceaccounts", ns)[0]]
        assert names == ["default"]


def test_a_pod_naming_a_missing_account_is_refused(client):
    with scratch_namespace(client, "sa") as ns:
        with pytest.raises(clientmod.ApiError) as exc:
            client.create(_pod("web", ns, "robot"))
        assert exc.value.code == grpc.StatusCode.FAILED_PRECONDITION
        assert f'error looking up service account {ns}/robot: serviceaccount "robot" not found' in str(exc.value)
        client.create(_account("robot", ns, automount=False))
        pod = client.create(_pod("web", ns, "robot"))
        assert pod.spec.service_account_name == "robot"
        assert pod.spec.automount_service_account_token is False    # the account's choice, recorded
        plain = client.create(_pod("plain", ns))
        assert plain.spec.service_account_name == "default" and plain.spec.automount_service_account_token


def test_a_bound_token_authenticates_on_every_replica_until_its_pod_or_account_goes(cluster, client):
    assert client.whoami()[0] == "skiff:admin"          # no token: the admin certificate's user
    with scratch_namespace(client, "sa") as ns:
        client.create(_account("robot", ns))
        pod = client.create(_pod("web", ns, "robot"))
        resp = client.request_token(ns, "robot", pod_name="web", pod_uid=pod.metadata.uid, expiration_s=3607)
        assert resp.expiration_seconds == 3607 and resp.expiration_timestamp.endswith("Z")
        want = f"system:serviceaccount:{ns}:robot"
        for endpoint in cluster.endpoints:                # the same key on every replica
            one = cluster.client([endpoint])
            try:
                wait_until(lambda: one.whoami(resp.token)[0] == want, 10, f"token accepted by {endpoint}")
                user, groups = one.whoami(resp.token)
                assert set(groups) == {"system:serviceaccounts", f"system:serviceaccounts:{ns}",
                                       "system:authenticated"}
            finally:
                one.close()
        client.delete("pods", "web", ns)
        wait_until(lambda: _unauthenticated(client, resp.token), 10, "a deleted pod's token refused")

        client.create(_pod("web2", ns, "robot"))
        token2 = client.request_token(ns, "robot", pod_name="web2").token
        assert client.whoami(token2)[0] == want
        client.delete("serviceaccounts", "robot", ns)
        wait_until(lambda: _unauthenticated(client, token2), 10, "a deleted account's token refused")


def test_token_requests_that_kubernetes_refuses(client):
    with scratch_namespace(client, "sa") as ns:
        client.create(_account("robot", ns))
        wait_until(lambda: _has(client, ns, "default"), 20, "default made")
        client.create(_pod("web", ns))                   # runs as `default`
        with pytest.raises(clientmod.NotFound):
            client.request_token(ns, "nobody")
        with pytest.raises(clientmod.Invalid, match="different serviceaccount name"):
            client.request_token(ns, "robot", pod_name="web")
        with pytest.raises(clientmod.Invalid, match="less than 600 seconds"):
            client.request_token(ns, "robot", expiration_s=60)
    assert _unauthenticated(client, "eyJhbGciOiJFUzI1NiJ9.e30.bm90LWEtc2lnbmF0dXJl")


def test_a_token_client_reaches_the_api_on_the_ports_pods_are_sent_to(cluster, client, tmp_path):
    """skiff.client with token= / token_file= (what an in-pod `skiff` uses) on the join
    ports, which the Service default/kubernetes's Endpoints name (the API port requires a
    client certificate; a pod has a token). There, gRPC Python never asks for a client
    certificate (ssl_server_credentials(require_client_auth=False) means "don't request"),
    so a certificate from the cluster CA is not even seen: no token -> UNAUTHENTICATED."""
    from skiff.pki.tls import Credentials
    joins = [cluster.join_address(n) for n in cluster.names]
    eps = client.get("endpoints", "kubernetes", "default")
    assert sorted(f"{a.ip}:{p.port}" for s in eps.subsets for a in s.addresses for p in s.ports) == sorted(joins)
    ca = cluster.admin_credentials.ca
    with scratch_namespace(client, "sa") as ns:
        client.create(_account("robot", ns))
        pod = client.create(_pod("web", ns, "robot"))
        token = client.request_token(ns, "robot", pod_name="web", pod_uid=pod.metadata.uid).token
        want = f"system:serviceaccount:{ns}:robot"
        robot = clientmod.Client(joins, tls=Credentials(ca=ca), token=token, call_timeout_s=5.0)
        try:
            assert robot.whoami()[0] == want
            with pytest.raises(clientmod.Forbidden, match=f'User "{want}" cannot list resource "pods"'):
                robot.list("pods", ns)
        finally:
            robot.close()
        # tokenFile: re-read when the agent renews it in place (here: another pod's token)
        client.create(_pod("web2", ns, "robot"))
        token_file = tmp_path / "token"
        token_file.write_text(token)
        robot = clientmod.Client(joins, tls=Credentials(ca=ca), token_file=str(token_file))
        try:
            assert robot.whoami()[0] == want
            client.delete("pods", "web", ns)
            wait_until(lambda: _unauthenticated(client, token), 10, "the first pod's token refused")
            token_file.write_text(client.request_token(ns, "robot", pod_name="web2").token)
            assert robot.whoami()[0] == want      # the new token, same client
        finally:
            robot.close()
    # No token: the admin's certificate is not requested on these ports, so nobody is known.
    admin = cluster.admin_credentials
    anon = clientmod.Client(joins, tls=Credentials(ca=ca, cert=admin.cert, key=admin.key), call_timeout_s=5.0)
    try:
        with pytest.raises(clientmod.Unauthorized, match="no client certificate and no bearer token"):
            anon.list("pods", "default")
    finally:
        anon.close()
    # Plain TCP is refused there too.
    plain = clientmod.Client(joins, call_timeout_s=2.0, failover_budget_s=2.0)
    try:
        with pytest.raises(clientmod.Unavailable):
            plain.get("namespace", "default")
    finally:
        plain.close()
