"""The resolver's view of the cluster: Services and Endpoints from informers, pod IPs from the API.

The informers' caches are read, never mutated; the resolver only reads fields.
Pod records are verified with ApiPodIps (see NodeDns for why not a pod informer)."""

import threading
import time

POD_IPS_TTL_S = 5.0        # the DNS records' TTL: a pod IP list this old is still a fair answer
POD_IPS_MISS_REFRESH_S = 1.0   # an unknown IP in a list older than this re-reads it (a new pod)
POD_IPS_MAX_NAMESPACES = 256


class ApiPodIps:
    """pod_ip_exists(ns, ip) from the namespace's pods, read from the API when asked and
    cached per namespace for POD_IPS_TTL_S. An API error propagates (the server answers
    SERVFAIL: it cannot verify), never a guess."""

    def __init__(self, client, ttl_s: float = POD_IPS_TTL_S, miss_refresh_s: float = POD_IPS_MISS_REFRESH_S,
                 clock=time.monotonic):
        self.client = client
        self.ttl_s = ttl_s
        self.miss_refresh_s = miss_refresh_s
        self._clock = clock
        self._cache: dict = {}    # ns -> (read at, frozenset of pod IPs)
        self._lock = threading.Lock()
        self.reads = 0

    def __call__(self, ns: str, ip: str) -> bool:
        now = self._clock()
        with self._lock:
            hit = self._cache.get(ns)
        if hit is not None:
            age = now - hit[0]
            if age < self.ttl_s and (ip in hit[1] or age < self.miss_refresh_s):
                return ip in hit[1]
        pods, _ = self.client.list("pods", namespace=ns)
        self.reads += 1
        ips = frozenset(p.status.pod_ip for p in pods if p.status.pod_ip)
        with self._lock:
            if len(self._cache) >= POD_IPS_MAX_NAMESPACES:
                self._cache.clear()
            self._cache[ns] = (now, ips)
        return ip in ips


class InformerView:
    """services, endpoints: shared informers (the agent's InformerFactory); pod_ips(ns, ip) -> bool."""

    def __init__(self, services, endpoints, pod_ips):
        self.services = services
        self.endpoints_inf = endpoints
        self._pod_ips = pod_ips

    @property
    def synced(self) -> bool:
        return self.services.synced and self.endpoints_inf.synced

    def service(self, ns: str, name: str):
        return self.services.get(f"{ns}/{name}")

    def endpoints(self, ns: str, name: str):
        return self.endpoints_inf.get(f"{ns}/{name}")

    def pod_ip_exists(self, ns: str, ip: str) -> bool:
        return self._pod_ips(ns, ip)

    def list_services(self, ns: str) -> list:
        return self.services.list(ns)


class DictView:
    """A fixed view for tests: {(ns, name): Service}, {(ns, name): Endpoints}, {(ns, ip)}."""

    def __init__(self, services=None, endpoints=None, pod_ips=None):
        self._services = dict(services or {})
        self._endpoints = dict(endpoints or {})
        self._pod_ips = set(pod_ips or ())

    def service(self, ns, name):
        return self._services.get((ns, name))

    def endpoints(self, ns, name):
        return self._endpoints.get((ns, name))

    def pod_ip_exists(self, ns, ip):
        return (ns, ip) in self._pod_ips

    def list_services(self, ns):
        return [s for (n, _), s in self._services.items() if n == ns]
