"""Automatic renewal of a certificate file before it expires.

A Renewer watches one certificate/key file pair and, once 2/3 of the certificate's
lifetime has passed (certs.renewal_due), asks `issue(key_pem) -> cert_pem` for a new
certificate for a freshly generated key and writes both files atomically. Who issues
is the caller's: a control-plane replica signs with the cluster CA it holds
(authority.py), an agent sends a CSR to the API with its current certificate
(nodeagent). Servers pick the new files up at their next handshake and clients rebuild
their channels (tls.Credentials re-reads files whose mtime changed), so nothing restarts.

Period: a BoundedFrequencyRunner whose sync returns the seconds until the certificate's
renewal point (capped at MAX_WAIT_S, at least MIN_WAIT_S), so it wakes about once per
certificate lifetime; a failed renewal retries after 1 s doubling to 60 s. Cost when
idle: nothing between wake-ups, one file read and a certificate parse per wake-up.
"""

import datetime
import logging

from skiff.pki import certs
from skiff.pki.tls import write_private
from skiff.reconcile import BoundedFrequencyRunner

log = logging.getLogger("skiff.pki")
MAX_WAIT_S = 3600.0
MIN_WAIT_S = 0.2


class Renewer:
    def __init__(self, cert_file: str, key_file: str, issue, name: str = "cert-renewer",
                 on_renewed=None):
        self.cert_file, self.key_file = cert_file, key_file
        self._issue = issue
        self._on_renewed = on_renewed
        self.renewals = 0
        self._runner = BoundedFrequencyRunner(name, self.sync, max_interval_s=MAX_WAIT_S,
                                              retry_base_s=1.0, retry_max_s=60.0)

    def sync(self) -> float:
        with open(self.cert_file, "rb") as f:
            cert = f.read()
        if certs.renewal_due(cert):
            key = certs.new_key_pem()
            new_cert = self._issue(key)
            # Key first: a reader pairing the new certificate with the old key would fail.
            write_private(self.key_file, key)
            write_private(self.cert_file, new_cert, 0o644)
            self.renewals += 1
            _, not_after = certs.validity(new_cert)
            log.info("event=certificate_renewed file=%s not_after=%s", self.cert_file, not_after.isoformat())
            if self._on_renewed:
                self._on_renewed()
            cert = new_cert
        wait = (certs.renewal_at(cert) - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
        return min(MAX_WAIT_S, max(MIN_WAIT_S, wait))

    def start(self) -> "Renewer":
        self._runner.start()
        return self

    def stop(self) -> None:
        self._runner.stop()
