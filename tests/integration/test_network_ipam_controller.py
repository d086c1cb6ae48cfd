"""The node IPAM controller on a real 3-replica control plane (network: section set).

Nodes get distinct pod CIDRs (first free, deterministic) and the network annotations;
a deleted Node's block goes to the next new Node; many Nodes registered at once never
share a block, even while their status is being written concurrently (CAS conflicts).
"""

import threading

import pytest

from skiff import client as clientmod
from skiff.api import objects_pb2 as pb
from skiff.lab.controlplane import ControlPlane
from tests.helpers import free_port_block, remove, temp_dir, wait_until


@pytest.fixture(scope="module")
def cp():
    base = free_port_block(6)
    cp = ControlPlane(temp_dir("ipam"), replicas=3, api_base_port=base, raft_base_port=base + 3,
                      network={"clusterCIDR": "10.250.0.0/16", "nodeCIDRMaskSize": 24, "backend": "vxlan"})
    cp.write_configs()
    cp.start_all()
    try:
        cp.wait_ready(60)
        yield cp
    finally:
        cp.stop_all()
        remove(cp.lab_dir)


def make_node(client, name):
    n = pb.Node(api_version="v1", kind="Node")
    n.metadata.name = name
    return client.create(n)


def cidr_of(client, name):
    try:
        return client.get("nodes", name, "").spec.pod_cidr
    except clientmod.NotFound:
        return ""


def test_allocation_release_and_no_duplicates(cp):
    client = cp.client()
    try:
        make_node(client, "ipam-a")
        a = wait_until(lambda: cidr_of(client, "ipam-a"), 20, "ipam-a podCIDR")
        assert a == "10.250.0.0/24"
        node = client.get("nodes", "ipam-a", "")
        assert list(node.spec.pod_cidrs) == [a]
        assert node.metadata.annotations["skiff.io/network-backend"] == "vxlan"
        assert node.metadata.annotations["skiff.io/cluster-cidr"] == "10.250.0.0/16"
        make_node(client, "ipam-b")
        assert wait_until(lambda: cidr_of(client, "ipam-b"), 20, "ipam-b podCIDR") == "10.250.1.0/24"
        client.delete("nodes", "ipam-a", "", grace_period_seconds=0)
        make_node(client, "ipam-c")
        assert wait_until(lambda: cidr_of(client, "ipam-c"), 20, "ipam-c podCIDR") == "10.250.0.0/24"

        # 20 nodes at once, each heartbeating its status meanwhile (writes that make the
        # controller's compare-and-swap fail and retry)
        names = [f"ipam-m{i}" for i in range(20)]
        stop = threading.Event()

        def heartbeat(name):
            while not stop.is_set():
                try:
                    n = client.get("nodes", name, "")
                    n.status.conditions.add(type="Ready", status="True")
                    del n.status.conditions[:-1]
                    client.update_status(n)
                except clientmod.ApiError:
                    pass
                stop.wait(0.02)

        threads = []
        for name in names:
            make_node(client, name)
            t = threading.Thread(target=heartbeat, args=(name,), daemon=True)
            t.start()
            threads.append(t)
        try:
            wait_until(lambda: all(cidr_of(client, n) for n in names), 60, "20 nodes with podCIDRs")
        finally:
            stop.set()
            for t in threads:
                t.join()
        all_cidrs = [n.spec.pod_cidr for n in client.list("nodes")[0] if n.metadata.name.startswith("ipam-")]
        assert len(all_cidrs) == 22 and len(set(all_cidrs)) == 22
        assert sorted(all_cidrs, key=lambda c: int(c.split(".")[2])) == [f"10.250.{i}.0/24" for i in range(22)]
    finally:
        client.close()
