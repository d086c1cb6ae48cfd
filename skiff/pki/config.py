"""The `tls:` section of the replica's and the agent's config files (camelCase keys).

    tls:                                  # absent: plaintext gRPC (switchable; the lab has it on)
      caFile: /etc/skiff/pki/ca.crt       # the cluster CA: peers must present certificates it issued
      certFile: /etc/skiff/pki/cp1.crt    # this process's certificate (serves and calls with it)
      keyFile: /etc/skiff/pki/cp1.key
      caKeyFile: /etc/skiff/pki/ca.key    # replicas only: lets this replica issue certificates
                                          # (its own renewal, join CSRs, agent renewals)
      certLifetimeS: 31536000             # replicas only: lifetime of what it issues (default 1 year)
      joinAddress: 0.0.0.0:7300           # replicas only, optional: a second API port whose TLS asks
                                          # no client certificate, for Join (bootstrap tokens) and
                                          # bearer-token callers (controlplane/apiserver/join.py)
      joinToken: SKIFF1-...               # agents only, optional: join with this token when certFile
                                          # does not exist yet (writes caFile, certFile, keyFile)
      joinServers: ["10.0.0.11:7300"]     # agents only, with joinToken: the replicas' join ports

Every path is required to exist when the process starts; errors name the file and key.
"""

import functools
import os
from dataclasses import dataclass

from skiff.pki import certs
from skiff.pki.tls import Credentials

KEYS = ("caFile", "certFile", "keyFile", "caKeyFile", "certLifetimeS", "joinAddress")
AGENT_KEYS = ("caFile", "certFile", "keyFile", "joinToken", "joinServers")


class TLSConfigError(ValueError):
    pass


@dataclass(frozen=True)
class TLSConfig:
    ca_file: str
    cert_file: str
    key_file: str
    ca_key_file: str = ""
    cert_lifetime_s: float = certs.CERT_LIFETIME_S
    join_address: str = ""
    join_token: str = ""
    join_servers: tuple = ()

    def credentials(self) -> Credentials:
        """This process's Credentials for these files (one object per file set, so every
        server and client of the process sees the same renewals)."""
        return _credentials(self.ca_file, self.cert_file, self.key_file)

    def to_doc(self) -> dict:
        doc = {"caFile": self.ca_file, "certFile": self.cert_file, "keyFile": self.key_file}
        if self.ca_key_file:
            doc["caKeyFile"] = self.ca_key_file
        if self.cert_lifetime_s != certs.CERT_LIFETIME_S:
            doc["certLifetimeS"] = self.cert_lifetime_s
        if self.join_address:
            doc["joinAddress"] = self.join_address
        if self.join_token:
            doc["joinToken"] = self.join_token
            doc["joinServers"] = list(self.join_servers)
        return doc


@functools.lru_cache(maxsize=None)
def _credentials(ca_file, cert_file, key_file) -> Credentials:
    return Credentials.from_files(ca_file, cert_file, key_file)


def parse(doc, where: str, allow_ca_key: bool = True, must_exist: bool = True) -> TLSConfig | None:
    """The tls: section (None when absent)."""
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise TLSConfigError(f"{where}: tls: expected a mapping (caFile, certFile, keyFile)")
    known = KEYS if allow_ca_key else AGENT_KEYS
    unknown = sorted(str(k) for k in doc if k not in known)
    if unknown:
        raise TLSConfigError(f"{where}: tls: unknown key(s) {', '.join(unknown)} (known: {', '.join(known)})")
    paths = {}
    token = doc.get("joinToken") or ""
    if token:
        from skiff.pki import tokens
        try:
            tokens.parse_token(token)
        except tokens.TokenError as exc:
            raise TLSConfigError(f"{where}: tls.joinToken: {exc}") from None
        servers = doc.get("joinServers")
        if not isinstance(servers, list) or not servers or not all(isinstance(x, str) and ":" in x
                                                                   for x in servers):
            raise TLSConfigError(f"{where}: tls.joinServers: expected a list of host:port (the replicas' "
                                 f"join ports), got {servers!r}")
    for key in ("caFile", "certFile", "keyFile", "caKeyFile"):
        value = doc.get(key)
        if value is None and key == "caKeyFile":
            paths[key] = ""
            continue
        if not isinstance(value, str) or not value:
            raise TLSConfigError(f"{where}: tls.{key}: expected a file path, got {value!r}")
        # With a join token the files are what joining writes.
        if must_exist and not token and not os.path.exists(value):
            raise TLSConfigError(f"{where}: tls.{key}: {value}: no such file")
        paths[key] = value
    lifetime = doc.get("certLifetimeS", certs.CERT_LIFETIME_S)
    if isinstance(lifetime, bool) or not isinstance(lifetime, (int, float)) or lifetime <= 0:
        raise TLSConfigError(f"{where}: tls.certLifetimeS: expected a positive number of seconds, "
                             f"got {lifetime!r}")
    join = doc.get("joinAddress") or ""
    if join:
        host, _, port = str(join).rpartition(":")
        if not host or not port.isdigit():
            raise TLSConfigError(f"{where}: tls.joinAddress: expected host:port, got {join!r}")
    return TLSConfig(ca_file=paths["caFile"], cert_file=paths["certFile"], key_file=paths["keyFile"],
                     ca_key_file=paths["caKeyFile"], cert_lifetime_s=float(lifetime), join_address=join,
                     join_token=token, join_servers=tuple(doc.get("joinServers") or ()))
