"""The lab's upstream resolver: what a VM's /etc/resolv.conf would point at.

`skiff lab up` runs it in the lab namespace on the gateway address, port 53 (UDP and
TCP), and every node's DNS forwards the names outside cluster.local to it (agent config
`dnsUpstream`). It is authoritative for one zone, `lab.` by default:

    <machine>.lab   A   the machine's address (cp1.., node1.., host, gateway)

Every other name gets NXDOMAIN at once: there is no internet in the lab, and nothing
here ever asks the machine's own resolver (test traffic stays inside the lab). Known
names asked for another type get an empty NOERROR (NODATA), as a real server answers.

Run: python -m skiff.lab.upstream_dns --config <lab dir>/upstream-dns.yaml
  (yaml: {listen: "10.200.0.254:53", zone: lab, records: {node1: 10.200.0.21, ...}})
It serves until SIGTERM/SIGINT.
"""

import argparse
import ipaddress
import logging
import os
import signal
import sys
import threading

import yaml
from dnslib import QTYPE, RCODE, RR, A

from skiff.dnsserve import DnsServer, parse_upstream

log = logging.getLogger("skiff.lab.dns")

DEFAULT_ZONE = "lab"
TTL_S = 30


class ZoneResolver:
    """dnslib resolver interface. records: {"node1": "10.200.0.21", ...} inside zone."""

    def __init__(self, zone: str, records: dict):
        self.zone = zone.strip(".").lower()
        self.records = {f"{name.lower()}.{self.zone}": str(ipaddress.IPv4Address(ip))
                        for name, ip in records.items()}

    def resolve(self, request, handler):
        reply = request.reply()
        qname = str(request.q.qname).rstrip(".").lower()
        ip = self.records.get(qname)
        if ip is None and qname != self.zone:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        reply.header.aa = 1
        if ip is not None and request.q.qtype in (QTYPE.A, QTYPE.ANY):
            reply.add_answer(RR(qname + ".", QTYPE.A, rdata=A(ip), ttl=TTL_S))
        return reply


def serve(listen: tuple[str, int], zone: str, records: dict):
    """Start the UDP and TCP servers (skiff/dnsserve.py, as the node DNS) with our resolver;
    .stop() ends them."""
    return DnsServer(ZoneResolver(zone, records), listen[0], listen[1]).start()


# ------------------------------------------------------------ the lab's side

PORT = 53


def lab_records(plan) -> dict:
    """Every machine of the lab by name, plus the host and the gateway."""
    out = {m.name: m.address for m in plan.members}
    out.update(host=plan.host_address, gateway=plan.gateway)
    return out


class LabDns:
    """Start/stop/check the lab's resolver process (pid recorded in lab.json by the caller).

    The process is known by its config path: a pid is only signalled while its command
    line still names that file."""

    def __init__(self, plan):
        self.plan = plan
        self.config = os.path.join(plan.lab_dir, "upstream-dns.yaml")
        self.log_path = os.path.join(plan.lab_dir, "logs", "upstream-dns.log")
        self.address = plan.gateway

    @property
    def upstream(self) -> str:
        """What the agents' dnsUpstream is set to."""
        return f"{self.address}:{PORT}"

    def write_config(self) -> None:
        with open(self.config, "w", encoding="utf-8") as f:
            yaml.safe_dump({"listen": self.upstream, "zone": DEFAULT_ZONE,
                            "records": lab_records(self.plan)}, f, sort_keys=False)

    def start(self, env=None) -> int:
        from skiff.lab import procs
        self.write_config()
        argv = ["nsenter", f"--net=/var/run/netns/{self.plan.lab_netns}", sys.executable, "-m",
                "skiff.lab.upstream_dns", "--config", self.config]
        return procs.spawn(argv, self.log_path, env=env, cwd=self.plan.lab_dir)

    def alive(self, pid: int) -> bool:
        from skiff.lab import procs
        return procs.alive(pid, self.config)

    def stop(self, pid: int) -> None:
        """Stop it: the recorded pid, and any process naming our config (a pid that never
        made it into lab.json)."""
        from skiff.lab import procs
        for p in {pid, *procs.find_by_path_arg([self.config])} - {0}:
            procs.stop(p, self.config, timeout_s=3.0)

    def wait(self, pid: int, timeout_s: float = 20.0) -> None:
        """Until it answers a query for the gateway's own name (from the host, which sits on
        the lab bridge); RuntimeError with the log's tail if it exits or stays silent."""
        from dnslib import DNSRecord

        from skiff.lab import procs
        query = DNSRecord.question(f"gateway.{DEFAULT_ZONE}")

        def answers():
            reply = DNSRecord.parse(query.send(self.address, PORT, timeout=0.5))
            return [str(r.rdata) for r in reply.rr] == [self.address]
        try:
            procs.wait_answering(answers, procs.running(pid), timeout_s)
        except procs.NotAnswering as exc:
            raise RuntimeError(f"the lab's DNS on {self.upstream} {exc}; see {self.log_path}:\n"
                               f"{procs.tail(self.log_path, 10)}") from None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="skiff-lab-dns", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s level=%(levelname)s %(message)s")
    with open(args.config, encoding="utf-8") as f:
        doc = yaml.safe_load(f) or {}
    listen = parse_upstream(str(doc["listen"]))      # "ip[:port]", the same form as dnsUpstream
    zone = doc.get("zone") or DEFAULT_ZONE
    server = serve(listen, zone, doc.get("records") or {})
    log.info("event=lab_dns_started listen=%s:%d zone=%s records=%d", *listen, zone,
             len(doc.get("records") or {}))
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
