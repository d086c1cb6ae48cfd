"""The cluster CA on disk and the certificates a control-plane replica issues with it.

Layout of a PKI directory (the lab's `<lab>/pki`, the installer's /etc/skiff/pki):

    ca.crt  ca.key                 the cluster CA (the key only on control-plane replicas)
    <name>.crt  <name>.key         a certificate and its key (0600)

Who is who (skiff/api/identity.py): a replica is CN skiff:controlplane:<name> in groups
skiff:controlplane and system:masters and serves its API with the same certificate
(SANs: its addresses); an agent is CN skiff:node:<node> in skiff:nodes (SANs: the node's
address, for its own server); the administrator is CN skiff:admin in system:masters.
"""

import os

from skiff.api.identity import CONTROLPLANE_GROUP, CONTROLPLANE_PREFIX, MASTERS, NODE_PREFIX, NODES_GROUP
from skiff.pki import certs
from skiff.pki.tls import write_private

ADMIN_USER = "skiff:admin"
LOCAL_SANS_IPS = ("127.0.0.1",)
LOCAL_SANS_DNS = ("localhost",)
# How pods name the API (the Service default/kubernetes, controlplane/bootstrap.py): its
# ClusterIP (the first address of the default service CIDR 10.96.0.0/12) and DNS names,
# as kube-apiserver puts them in its serving certificate.
API_SERVICE_IP = "10.96.0.1"
API_SERVICE_DNS = ("kubernetes", "kubernetes.default", "kubernetes.default.svc",
                   "kubernetes.default.svc.cluster.local")


def api_service_ip(service_cidr: str) -> str:
    """The API Service's ClusterIP for a service CIDR: its first address (bootstrap.py)."""
    import ipaddress
    return str(ipaddress.ip_network(service_cidr, strict=False).network_address + 1)


class Authority:
    """A PKI directory; create() makes the CA once, later calls reuse it."""

    def __init__(self, pki_dir: str, lifetime_s: float = certs.CERT_LIFETIME_S):
        self.dir = os.path.abspath(pki_dir)
        self.lifetime_s = lifetime_s

    @property
    def ca_file(self) -> str:
        return os.path.join(self.dir, "ca.crt")

    @property
    def ca_key_file(self) -> str:
        return os.path.join(self.dir, "ca.key")

    def cert_file(self, name: str) -> str:
        return os.path.join(self.dir, f"{name}.crt")

    def key_file(self, name: str) -> str:
        return os.path.join(self.dir, f"{name}.key")

    def exists(self) -> bool:
        return os.path.exists(self.ca_file) and os.path.exists(self.ca_key_file)

    def create(self) -> None:
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        if self.exists():
            return
        cert, key = certs.create_ca()
        write_private(self.ca_key_file, key)
        write_private(self.ca_file, cert, 0o644)

    def ca_pem(self) -> bytes:
        with open(self.ca_file, "rb") as f:
            return f.read()

    def _ca_key_pem(self) -> bytes:
        with open(self.ca_key_file, "rb") as f:
            return f.read()

    def digest(self) -> str:
        return certs.ca_digest(self.ca_pem())

    def sign(self, public_key, **kw) -> bytes:
        kw.setdefault("lifetime_s", self.lifetime_s)
        return certs.sign(self.ca_pem(), self._ca_key_pem(), public_key, **kw)

    def sign_csr(self, csr_pem: bytes, **kw) -> bytes:
        return self.sign(certs.csr_public_key(csr_pem), **kw)

    def write(self, name: str, force: bool = False, **kw) -> tuple[str, str]:
        """Issue `name`.crt/.key (a new key) unless they exist; returns their paths."""
        cert_file, key_file = self.cert_file(name), self.key_file(name)
        if force or not (os.path.exists(cert_file) and os.path.exists(key_file)):
            key = certs.new_key_pem()
            cert = self.sign(certs.load_key(key).public_key(), **kw)
            write_private(key_file, key)
            write_private(cert_file, cert, 0o644)
        return cert_file, key_file

    # ------------------------------------------------------------ well-known certificates

    def write_replica(self, name: str, ips=(), dns=(), service_ip: str = API_SERVICE_IP) -> tuple[str, str]:
        return self.write(name, **replica_identity(name, ips, dns, service_ip))

    def write_node(self, node: str, ips=(), dns=()) -> tuple[str, str]:
        return self.write(node, **node_identity(node, ips, dns))

    def write_admin(self, name: str = "admin") -> tuple[str, str]:
        return self.write(name, **admin_identity())


def replica_identity(name: str, ips=(), dns=(), service_ip: str = API_SERVICE_IP) -> dict:
    """sign() arguments for replica `name`: serves its API and calls agents and peers.
    SANs: its addresses and names, loopback, and the API Service's ClusterIP (service_ip)
    and names, so a pod verifies it at kubernetes.default.svc as at 10.96.0.1."""
    return dict(common_name=CONTROLPLANE_PREFIX + name, groups=(CONTROLPLANE_GROUP, MASTERS),
                ips=tuple(dict.fromkeys((*ips, *LOCAL_SANS_IPS, *((service_ip,) if service_ip else ())))),
                dns=tuple(dict.fromkeys((name, *dns, *LOCAL_SANS_DNS, *API_SERVICE_DNS))),
                server=True, client=True)


def node_identity(node: str, ips=(), dns=()) -> dict:
    """sign() arguments for node `node`'s agent: serves logs/exec/load-image, calls the API."""
    return dict(common_name=NODE_PREFIX + node, groups=(NODES_GROUP,), ips=tuple(ips),
                dns=tuple(dict.fromkeys((node, *dns))), server=True, client=True)


def admin_identity(user: str = ADMIN_USER, groups=(MASTERS,)) -> dict:
    """sign() arguments for a user's client certificate (the admin: system:masters)."""
    return dict(common_name=user, groups=tuple(groups), server=False, client=True)
