"""The resolver's view of the cluster, read from informers (services, endpoints, pods).

The informers' caches are read, never mutated; the resolver only reads fields."""

from skiff.informer import Informer


class InformerView:
    def __init__(self, client):
        self.services = Informer(client, "services", name="dns-informer-services")
        self.endpoints_inf = Informer(client, "endpoints", name="dns-informer-endpoints")
        self.pods = Informer(client, "pods", name="dns-informer-pods")
        self._all = (self.services, self.endpoints_inf, self.pods)

    def start(self) -> "InformerView":
        for inf in self._all:
            inf.start()
        return self

    def stop(self) -> None:
        for inf in self._all:
            inf.stop()

    @property
    def synced(self) -> bool:
        return all(inf.synced for inf in self._all)

    def service(self, ns: str, name: str):
        return self.services.get(f"{ns}/{name}")

    def endpoints(self, ns: str, name: str):
        return self.endpoints_inf.get(f"{ns}/{name}")

    def pod_ip_exists(self, ns: str, ip: str) -> bool:
        return any(p.status.pod_ip == ip for p in self.pods.list(ns))

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
