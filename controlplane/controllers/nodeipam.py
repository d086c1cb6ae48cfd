"""The node IPAM controller (leader-only): gives each Node a pod CIDR from the cluster CIDR.

sync(node name), level-triggered:
  1. the Node from the informer cache (skipped if gone: its block is free again,
     because allocations are only ever read back from the Nodes themselves);
  2. if it lacks spec.podCIDR or the network annotations: list the Nodes from this
     replica (the leader's applied state, so our own previous allocations are in it
     even when the informer has not caught up), ask the pure plan_node() for the
     first free block, and write spec.podCIDR + spec.podCIDRs + annotations with an
     Update carrying the resourceVersion just read (compare-and-swap). A Conflict
     (a heartbeat, another writer) re-reads and retries with back-off.
One worker only: two allocations never race inside this process, and the CAS
makes a write based on a stale view fail instead of doubling a block.

Annotations written on every Node: skiff.io/network-backend (host-gw|vxlan) and
skiff.io/cluster-cidr; agents read them (nodeagent/network).

Period and cost: event-driven (Node adds and changes), plus a resync of every Node
every resync_s (30 s); a Node that has its block costs a cache read and nothing else.
"""

import logging

from controlplane.controllers.nodeipam_plan import (BACKEND_ANNOTATION, CLUSTER_CIDR_ANNOTATION, duplicates,
                                                    plan_node)
from controlplane.controllers.podutil import copy
from skiff import client as clientmod
from skiff.reconcile import BACKOFF, Loop

log = logging.getLogger("skiff.controllers.nodeipam")


class NodeIpamController(Loop):
    def __init__(self, client, nodes, network, resync_s: float = 30.0):
        self.client = client
        self.nodes = nodes
        self.network = network
        super().__init__("nodeipam", self.sync, informers=(nodes,), list_keys=self._keys,
                         workers=1, resync_s=resync_s)
        nodes.add_handler(on_add=self._on_node, on_update=lambda old, new: self._on_node(new),
                          on_delete=lambda n: None)

    def _keys(self):
        return [n.metadata.name for n in self.nodes.list()]

    def _on_node(self, node):
        if not node.spec.pod_cidr or any(
                node.metadata.annotations.get(k) != v for k, v in self._annotations().items()):
            self.enqueue(node.metadata.name)

    def _annotations(self):
        return {BACKEND_ANNOTATION: self.network.backend, CLUSTER_CIDR_ANNOTATION: self.network.cluster_cidr}

    def sync(self, name):
        cached = self.nodes.get(name)
        if cached is None:
            return None
        net = self.network
        change = plan_node(cached, (), net.cluster_cidr, net.node_cidr_mask_size, net.backend)
        if change.empty:
            return None
        # Fresh state from this replica: our own earlier allocations are in it.
        try:
            node = self.client.get("nodes", name, "")
        except clientmod.NotFound:
            return None
        all_nodes = self.client.list("nodes")[0]
        used = [n.spec.pod_cidr for n in all_nodes if n.metadata.name != name and n.spec.pod_cidr]
        used += [c for n in all_nodes if n.metadata.name != name for c in n.spec.pod_cidrs]
        dups = duplicates(all_nodes)
        if dups:
            log.warning("event=pod_cidr_duplicates cidrs=%s", dups)
        change = plan_node(node, used, net.cluster_cidr, net.node_cidr_mask_size, net.backend)
        if change.empty:
            return None
        if not node.spec.pod_cidr and not change.pod_cidr:
            log.warning("event=cluster_cidr_full node=%s cluster_cidr=%s", name, net.cluster_cidr)
        updated = copy(node)
        if change.pod_cidr:
            updated.spec.pod_cidr = change.pod_cidr
            del updated.spec.pod_cidrs[:]
            updated.spec.pod_cidrs.append(change.pod_cidr)
        updated.metadata.annotations.update(change.annotations)
        try:
            self.client.update(updated)
        except clientmod.Conflict:
            return BACKOFF
        except clientmod.NotFound:
            return None
        if change.pod_cidr:
            log.info("event=pod_cidr_allocated node=%s pod_cidr=%s", name, change.pod_cidr)
        if not node.spec.pod_cidr and not change.pod_cidr:
            return BACKOFF
        return None
