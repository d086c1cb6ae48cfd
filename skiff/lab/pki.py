"""The lab's PKI: the cluster CA and the certificates of its replicas, nodes and admin,
all under <lab>/pki (skiff/pki/authority.py's layout), and the tls: sections that name them.

The lab plays the installer's part: it holds the CA key, gives it to the replicas only
(caKeyFile in their tls: section: they renew their own certificates and sign join
requests), and gives each node and the admin a certificate of its own.
"""

import os

from skiff.pki import authority, certs
from skiff.pki.tls import Credentials


class LabPki:
    def __init__(self, pki_dir: str, cert_lifetime_s: float | None = None):
        kw = {"lifetime_s": cert_lifetime_s} if cert_lifetime_s else {}
        self.ca = authority.Authority(pki_dir, **kw)
        self.cert_lifetime_s = cert_lifetime_s

    def _hosts(self, address: str):
        host = address.rpartition(":")[0] if ":" in address else address
        try:
            import ipaddress
            ipaddress.ip_address(host)
            return [host], []
        except ValueError:
            return [], [host] if host else []

    def write_replicas(self, cp) -> None:
        self.ca.create()
        for name in cp.names:
            ips, dns = self._hosts(cp.api_address(name))
            self.ca.write_replica(name, ips=[i for i in ips if i != "0.0.0.0"], dns=dns,
                                  service_ip=authority.api_service_ip(
                                      cp.services.get("serviceCIDR", "10.96.0.0/12")))
        self.write_admin()

    def write_admin(self):
        # cert_lifetime_s is for the replicas (they renew themselves); the admin's and the
        # nodes' certificates get the default lifetime.
        return self.ca.write("admin", **authority.admin_identity(), lifetime_s=certs.CERT_LIFETIME_S)

    def replica_tls_doc(self, name: str) -> dict:
        doc = {"caFile": self.ca.ca_file, "certFile": self.ca.cert_file(name),
               "keyFile": self.ca.key_file(name), "caKeyFile": self.ca.ca_key_file}
        if self.cert_lifetime_s:
            doc["certLifetimeS"] = self.cert_lifetime_s
        return doc

    def node_tls_doc(self, node: str, address: str) -> dict:
        self.ca.create()
        ips, dns = self._hosts(address)
        self.ca.write(node, **authority.node_identity(node, ips, dns), lifetime_s=certs.CERT_LIFETIME_S)
        return {"caFile": self.ca.ca_file, "certFile": self.ca.cert_file(node),
                "keyFile": self.ca.key_file(node)}

    def admin_credentials(self) -> Credentials:
        self.ca.create()
        cert, key = self.write_admin()
        return Credentials.from_files(self.ca.ca_file, cert, key)

    def admin_pem(self) -> dict:
        cert, key = self.write_admin()
        out = {}
        for k, p in (("ca", self.ca.ca_file), ("cert", cert), ("key", key)):
            with open(p, "rb") as f:
                out[k] = f.read()
        return out

    def exists(self) -> bool:
        return os.path.exists(self.ca.ca_file)
