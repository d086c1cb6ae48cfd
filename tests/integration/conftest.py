"""A real 3-process control plane on loopback, shared by a test module."""

import pytest

from skiff.lab.controlplane import ControlPlane
from tests.helpers import free_port_block, remove, temp_dir


def make_cluster(tag, replicas=3, raft=None, watch_history=None, **cp_kw):
    """raft: the replicas' raft: config section (camelCase keys), None = their defaults."""
    base = free_port_block(3 * replicas)
    cp = ControlPlane(temp_dir(tag), replicas=replicas, api_base_port=base,
                      raft_base_port=base + replicas, join_base_port=base + 2 * replicas, raft=raft,
                      watch_history=watch_history, **cp_kw)
    cp.write_configs()
    cp.start_all()
    try:
        cp.wait_ready(60)
    except Exception:
        dump_logs(cp)
        cp.stop_all()
        remove(cp.lab_dir)
        raise
    return cp


def dump_logs(cp):
    import os
    for name in cp.names:
        path = cp.log_path(name)
        if os.path.exists(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                tail = f.read()[-3000:]
            print(f"----- {name} log tail -----\n{tail}")


@pytest.fixture(scope="module")
def cluster(request):
    cp = make_cluster(request.module.__name__.rsplit(".", 1)[-1], watch_history=200)
    yield cp
    if request.session.testsfailed:
        dump_logs(cp)
    cp.stop_all()
    remove(cp.lab_dir)


@pytest.fixture
def client(cluster):
    c = cluster.client()
    yield c
    c.close()


@pytest.fixture
def cli_config(cluster, tmp_path, monkeypatch):
    """$SKIFF_CONFIG for CLI calls in this test: a context with the cluster's servers and, TLS
    being on, the admin's certificate (`--server` alone names servers, not credentials)."""
    from skiff import clientconfig
    path = str(tmp_path / "skiff-config")
    pem = cluster.pki.admin_pem() if cluster.tls else {}
    ctx = clientconfig.context_doc("admin@test", cluster.endpoints, user="skiff:admin" if pem else "", **pem)
    clientconfig.save(path, {"currentContext": ctx["name"], "contexts": [ctx]})
    monkeypatch.setenv("SKIFF_CONFIG", path)
    return path
