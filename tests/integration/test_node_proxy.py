"""logs/exec/image load through the API server to an agent's gRPC server (no pod sync:
the test creates the containers itself, labelled as the agent would)."""

import io
import os
import subprocess
import sys
import tarfile
import threading
import time

import pytest

from nodeagent import server as agent_server
from nodeagent.runtime import labels as L
from skiff import client as clientmod
from skiff.api import objects_pb2 as pb
from skiff.lab import images
from skiff.pki import config as tlsconfig
from tests.dockerd import PrivateDockerd
from tests.helpers import free_port_block, wait_until


@pytest.fixture(scope="module")
def engine():
    d = PrivateDockerd().start()
    yield d
    d.stop()


@pytest.fixture(scope="module")
def node(cluster, engine):
    """A Node object for the test's agent server, kept Ready by heartbeats (the node
    lifecycle controller would otherwise evict its pods after grace + eviction)."""
    port = free_port_block(1)
    creds = None
    if cluster.tls:   # the replicas call agents with mTLS: the agent serves a node certificate
        doc = cluster.pki.node_tls_doc("proxy-node", "127.0.0.1")
        creds = tlsconfig.parse(doc, "test_node_proxy", allow_ca_key=False).credentials()
    srv = agent_server.serve(f"127.0.0.1:{port}", engine.client, "proxy-node", engine.base, creds=creds)
    c = cluster.client()
    c.create(pb.Node(metadata=pb.ObjectMeta(name="proxy-node")))
    stop = threading.Event()

    def heartbeat():
        while not stop.is_set():
            try:
                n = c.get("node", "proxy-node", "")
                n.status.ClearField("addresses")
                n.status.addresses.add(type="InternalIP", address="127.0.0.1")
                n.status.daemon_endpoints.kubelet_endpoint.port = port
                n.status.ClearField("conditions")
                n.status.conditions.add(type="Ready", status="True", reason="KubeletReady",
                                        last_heartbeat_time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
                c.update_status(n)
            except clientmod.ApiError:
                pass
            stop.wait(1.0)

    beat = threading.Thread(target=heartbeat, daemon=True)
    beat.start()
    wait_until(lambda: c.get("node", "proxy-node", "").status.daemon_endpoints.kubelet_endpoint.port == port,
               10, "node status written")
    yield "proxy-node"
    stop.set()
    beat.join(5)
    c.delete("node", "proxy-node")
    c.close()
    srv.stop(0)


def run_labelled(engine, pod, container, cmd, attempt=0, uid="u1"):
    return engine.client.containers.run(
        images.BUSYBOX_IMAGE, cmd, detach=True, network_mode="none",
        name=L.container_name(pod, "default", uid, container, attempt),
        labels={L.MANAGED: "true", L.POD_NAME: pod, L.POD_NAMESPACE: "default", L.POD_UID: uid,
                L.CONTAINER_NAME: container, L.CONTAINER_KIND: "app", L.ATTEMPT: str(attempt)})


def bound_pod(client, name, node, containers):
    p = pb.Pod(metadata=pb.ObjectMeta(name=name, namespace="default"))
    for c in containers:
        p.spec.containers.add(name=c, image=images.BUSYBOX_IMAGE)
    p.spec.node_name = node
    return client.create(p)


def skiff(config, *args, input=None):
    env = dict(os.environ, SKIFF_CONFIG=config)   # the cluster's servers and admin certificate
    return subprocess.run([sys.executable, "-m", "skiff.cli.main", *args], input=input,
                          capture_output=True, env=env, timeout=60)


def test_logs_exec_and_errors_through_the_api(cluster, engine, node, client, cli_config):
    bound_pod(client, "talker", node, ["main"])
    old = run_labelled(engine, "talker", "main", ["sh", "-c", "echo previous-life"], attempt=0)
    old.wait(timeout=30)
    run_labelled(engine, "talker", "main",
                 ["sh", "-c", "for i in 1 2 3; do echo line $i; done; echo err >&2; sleep 300"], attempt=1)
    wait_until(lambda: b"line 3" in b"".join(client.logs("talker")), 20, "logs")
    out = skiff(cli_config, "logs", "talker")
    lines = out.stdout.splitlines()
    # stdout and stderr are both shown; their interleaving is the engine's business.
    assert out.returncode == 0 and [x for x in lines if x != b"err"] == [b"line 1", b"line 2", b"line 3"]
    assert b"err" in lines
    assert skiff(cli_config, "logs", "talker", "--tail", "1").stdout.strip() in (b"err", b"line 3")
    prev = skiff(cli_config, "logs", "talker", "--previous")
    assert prev.stdout == b"previous-life\n", prev
    r = skiff(cli_config, "exec", "talker", "--", "sh", "-c", "echo out; echo oops >&2; exit 7")
    assert r.returncode == 7 and r.stdout == b"out\n" and r.stderr == b"oops\n"
    r = skiff(cli_config, "exec", "-i", "talker", "--", "sh", "-c", "tr a-z A-Z", input=b"hello stdin\n")
    assert r.returncode == 0 and r.stdout == b"HELLO STDIN\n"
    r = skiff(cli_config, "exec", "talker", "-c", "nope", "--", "true")
    assert r.returncode == 1 and b'container "nope" is not valid' in r.stderr
    r = skiff(cli_config, "logs", "ghost")
    assert r.returncode == 1 and b'pods "ghost" not found' in r.stderr
    client.delete("po", "talker", grace_period_seconds=0)


def test_image_load_streams_to_the_node(cluster, engine, node, client):
    # A tiny one-layer image of our own, streamed in small chunks.
    buf = io.BytesIO()
    data = images.busybox_archive()
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        assert "manifest.json" in t.getnames()
    buf.write(data)
    engine.client.images.remove(images.BUSYBOX_IMAGE, force=True)
    chunks = (data[i:i + 100_000] for i in range(0, len(data), 100_000))
    resp = client.load_image(node, chunks)
    assert resp.node == node and images.BUSYBOX_IMAGE in list(resp.images)
    assert engine.client.images.get(images.BUSYBOX_IMAGE)
    with pytest.raises(clientmod.NotFound):
        client.load_image("no-such-node", iter([data[:10]]))
