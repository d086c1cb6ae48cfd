"""The node DNS verifies pod records from the API on demand (no cluster-wide pod watch)."""

import pytest

from nodeagent.dns.view import ApiPodIps
from skiff import client as clientmod
from skiff.api import objects_pb2 as pb


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


class Client:
    def __init__(self):
        self.pods = {"apps": ["10.244.1.5"], "default": []}
        self.reads = []
        self.down = False

    def list(self, kind, namespace=""):
        assert kind == "pods" and namespace        # one namespace at a time, never the cluster
        self.reads.append(namespace)
        if self.down:
            raise clientmod.Unavailable("control plane down")
        return [pb.Pod(status=pb.PodStatus(pod_ip=ip)) for ip in self.pods[namespace]], "7"


def test_pod_ips_are_read_per_namespace_and_cached():
    client, clock = Client(), Clock()
    ips = ApiPodIps(client, ttl_s=5.0, miss_refresh_s=1.0, clock=clock)
    assert ips("apps", "10.244.1.5") and not ips("default", "10.244.1.5")
    assert client.reads == ["apps", "default"]
    clock.t += 0.5
    assert ips("apps", "10.244.1.5") and not ips("apps", "10.244.1.6")
    assert client.reads == ["apps", "default"]                  # both from the cache
    client.pods["apps"].append("10.244.1.6")                     # a new pod
    clock.t += 0.6
    assert ips("apps", "10.244.1.6")                             # a miss on a list > 1 s old re-reads
    assert client.reads[-1] == "apps"
    client.pods["apps"] = []                                     # pods gone: still known until the TTL
    clock.t += 2.0
    assert ips("apps", "10.244.1.5")
    clock.t += 5.0
    assert not ips("apps", "10.244.1.5")


def test_an_unreachable_api_is_an_error_not_a_guess():
    client = Client()
    client.down = True
    with pytest.raises(clientmod.ApiError):
        ApiPodIps(client, clock=Clock())("apps", "10.244.1.5")
