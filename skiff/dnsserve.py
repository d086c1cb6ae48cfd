"""A DNS server's plumbing, for any dnslib resolver: UDP and TCP on one address and port.

Two servers use it: the node's cluster DNS (nodeagent/dns/server.py, the cluster zone
over the API) and the lab's upstream resolver (skiff/lab/upstream_dns.py, the `lab.`
zone). What is answered is the resolver's job; this module only binds, serves one
thread per protocol (dnslib's DNSServer) and keeps dnslib's per-query logging quiet.
"""

import logging

from dnslib.server import DNSServer

log = logging.getLogger("skiff.dns")


def parse_upstream(text: str) -> tuple | None:
    """"ip[:port]" -> (ip, port), port 53 when absent; "" -> None (the agent's dnsUpstream form)."""
    if not text:
        return None
    host, sep, port = text.rpartition(":")
    if sep and port.isdigit():
        return host, int(port)
    return text, 53


class QuietLogger:
    """dnslib logs every query to stdout by default; only errors go to our log."""

    def log_recv(self, *a): pass
    def log_send(self, *a): pass
    def log_request(self, *a): pass
    def log_reply(self, *a): pass
    def log_truncated(self, *a): pass
    def log_data(self, *a): pass

    def log_error(self, handler, e):
        log.info("event=dns_request_error client=%s error=%s", handler.client_address[0],
                 str(e)[:100].replace(" ", "_"))


class DnsServer:
    """UDP + TCP servers on (address, port) answering with `resolver` (dnslib's interface:
    resolve(request, handler) -> reply). start() binds both or raises OSError; port 0 binds
    a free port, read back from .port after start()."""

    def __init__(self, resolver, address: str, port: int = 53):
        self.address, self.port = address, port
        self.resolver = resolver
        self._servers = []

    def start(self) -> "DnsServer":
        for tcp in (False, True):
            srv = DNSServer(self.resolver, address=self.address, port=self.port, tcp=tcp, logger=QuietLogger())
            self._servers.append(srv)
        for srv in self._servers:
            srv.start_thread()
        if self.port == 0:
            self.port = self._servers[0].server.server_address[1]
        log.info("event=dns_started address=%s port=%d", self.address, self.port)
        return self

    def stop(self) -> None:
        for srv in self._servers:
            try:
                srv.stop()
                srv.server.server_close()
            except Exception:  # noqa: BLE001 - stopping what is half-started or already closed
                pass
        self._servers = []
