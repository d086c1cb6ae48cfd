"""A pod's /etc/resolv.conf by dnsPolicy (nodeagent/dns/resolvconf.py, pure)."""

import pytest

from nodeagent.dns.resolvconf import parse, resolv_conf
from skiff.api import objects_pb2 as pb

NODE = "nameserver 192.0.2.53\nsearch lab.example\noptions timeout:2\n"
CLUSTER = ["10.244.1.1"], ["apps.svc.cluster.local", "svc.cluster.local", "cluster.local"], ["ndots:5"]


def pod(policy="ClusterFirst", host_network=False, dns_config=None):
    p = pb.Pod()
    p.metadata.name, p.metadata.namespace = "p", "apps"
    p.spec.dns_policy = policy
    p.spec.host_network = host_network
    if dns_config is not None:
        ns, search, opts = dns_config
        p.spec.dns_config.nameservers.extend(ns)
        p.spec.dns_config.searches.extend(search)
        for o in opts:
            name, _, value = o.partition(":")
            p.spec.dns_config.options.add(name=name, value=value)
    return p


@pytest.mark.parametrize("the_pod,cluster_dns,want", [
    (pod(), "10.244.1.1", CLUSTER),
    (pod(""), "10.244.1.1", CLUSTER),                                   # unset = ClusterFirst
    (pod("ClusterFirstWithHostNet", host_network=True), "10.244.1.1", CLUSTER),
    (pod(host_network=True), "10.244.1.1", None),                       # falls back to Default
    (pod("Default"), "10.244.1.1", None),                               # the engine's copy of the node's
    (pod(), "", None),                                                  # no cluster DNS on this node
    (pod(dns_config=(["10.0.0.9"], ["x.lab"], ["ndots:2", "edns0"])), "10.244.1.1",
     (["10.244.1.1", "10.0.0.9"], CLUSTER[1] + ["x.lab"], ["ndots:2", "edns0"])),
    (pod("Default", dns_config=([], ["x.lab"], [])), "10.244.1.1",
     (["192.0.2.53"], ["lab.example", "x.lab"], ["timeout:2"])),
    (pod("None", dns_config=(["1.2.3.4"], ["a.lab"], ["ndots:1"])), "10.244.1.1",
     (["1.2.3.4"], ["a.lab"], ["ndots:1"])),
    (pod("None", dns_config=(["1.1.1.1", "1.1.1.2", "1.1.1.3", "1.1.1.4"], [], [])), "",
     (["1.1.1.1", "1.1.1.2", "1.1.1.3"], [], [])),                     # at most 3 nameservers
])
def test_resolv_conf(the_pod, cluster_dns, want):
    text = resolv_conf(the_pod, cluster_dns, NODE)
    if want is None:
        assert text is None
    else:
        ns, search, opts = parse(text)
        assert (ns, search, opts) == (list(want[0]), list(want[1]), list(want[2]))


def test_cluster_first_text():
    assert resolv_conf(pod(), "10.244.1.1").splitlines()[1:] == [
        "nameserver 10.244.1.1",
        "search apps.svc.cluster.local svc.cluster.local cluster.local",
        "options ndots:5",
    ]
