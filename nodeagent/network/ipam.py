"""Pod IP allocation on one node, persisted on disk (host-local style).

Layout: <dataDir>/network/ipam/<ip>, one file per allocated address, holding
"<pod uid> <sandbox id>". The directory is the record: a restarted agent reads it
back, so a pod keeps its IP across agent restarts and nothing leaks.

Invariants:
- one address per pod uid (allocate() for a uid that has one returns it, updating
  the sandbox id it is recorded with);
- an address is taken by creating its file with O_EXCL: never two pods with one IP,
  even with several sync workers;
- the network address, the gateway (.1) and the broadcast address are never handed out;
- allocate() goes round-robin as the CNI host-local IPAM does: the first free address
  after the last one it handed out, wrapping around at the end of the range. A deleted
  pod's address is then not given to the next pod at once, so what still refers to the
  old pod (UDP conntrack flows, a DNS answer in a cache, a client's connection) reaches
  nobody instead of a stranger. The last address handed out is kept in
  <dataDir>/network/ipam/last_reserved_ip (not an IP-named file, so never an allocation)
  and survives agent restarts; one outside the current CIDR starts the range over;
- addresses outside the current pod CIDR are not reused (gc() releases them).
"""

import ipaddress
import os
import threading


LAST_RESERVED = "last_reserved_ip"


class IpamError(Exception):
    pass


def allocation_order(cidr: ipaddress.IPv4Network, last: str | None) -> list:
    """The addresses allocate() tries, in order: the hosts of cidr except the bridge
    (.1), starting right after `last` (the last one handed out) and wrapping around so
    that `last` itself comes last; from the first host when last is None or outside
    cidr (host-local's RangeIter)."""
    bridge = cidr.network_address + 1
    hosts = [a for a in cidr.hosts() if a != bridge]
    try:
        prev = ipaddress.IPv4Address(last) if last else None
    except ValueError:
        prev = None
    if prev is None or prev not in cidr:
        return [str(a) for a in hosts]
    start = next((i for i, a in enumerate(hosts) if a > prev), len(hosts))
    return [str(a) for a in hosts[start:] + hosts[:start]]


class PodIpam:
    def __init__(self, data_dir: str):
        self.dir = os.path.join(data_dir, "network", "ipam")
        os.makedirs(self.dir, exist_ok=True)
        self._lock = threading.Lock()
        self.cidr = None

    def set_cidr(self, pod_cidr: str) -> None:
        self.cidr = ipaddress.IPv4Network(pod_cidr)

    def allocations(self) -> dict:
        """{ip: (uid, sandbox id)} as on disk."""
        out = {}
        for name in os.listdir(self.dir):
            try:
                ipaddress.IPv4Address(name)
                with open(os.path.join(self.dir, name), encoding="utf-8") as f:
                    parts = f.read().split()
            except (ValueError, OSError):
                continue
            if parts:
                out[name] = (parts[0], parts[1] if len(parts) > 1 else "")
        return out

    def lookup(self, uid: str):
        """(ip, sandbox id) of uid, or None."""
        for ip, (owner, sandbox) in self.allocations().items():
            if owner == uid:
                return ip, sandbox
        return None

    def allocate(self, uid: str, sandbox_id: str = "") -> str:
        with self._lock:
            if self.cidr is None:
                raise IpamError("no pod CIDR yet")
            existing = self.lookup(uid)
            if existing is not None and ipaddress.IPv4Address(existing[0]) in self.cidr:
                if existing[1] != sandbox_id:
                    self._write(existing[0], uid, sandbox_id)
                return existing[0]
            for addr in allocation_order(self.cidr, self._last_reserved()):
                path = os.path.join(self.dir, addr)
                try:
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                except FileExistsError:
                    continue
                with os.fdopen(fd, "w") as f:
                    f.write(f"{uid} {sandbox_id}\n")
                self._replace(LAST_RESERVED, addr)
                return addr
            raise IpamError(f"pod CIDR {self.cidr} is full")

    def _last_reserved(self):
        try:
            with open(os.path.join(self.dir, LAST_RESERVED), encoding="utf-8") as f:
                return f.read().strip() or None
        except OSError:
            return None

    def _replace(self, name, text):
        tmp = os.path.join(self.dir, f".{name}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(f"{text}\n")
        os.replace(tmp, os.path.join(self.dir, name))

    def _write(self, ip, uid, sandbox_id):
        self._replace(ip, f"{uid} {sandbox_id}")

    def release(self, uid: str) -> list:
        """Free every address of uid; returns [(ip, sandbox id)] released."""
        out = []
        with self._lock:
            for ip, (owner, sandbox) in self.allocations().items():
                if owner == uid:
                    try:
                        os.unlink(os.path.join(self.dir, ip))
                    except FileNotFoundError:
                        pass
                    out.append((ip, sandbox))
        return out

    def gc(self, live_uids) -> list:
        """Release addresses whose pod is not in live_uids, or outside the pod CIDR.
        Only call this with a complete live_uids (after the pod informer synced)."""
        live = set(live_uids)
        out = []
        for ip, (owner, sandbox) in self.allocations().items():
            outside = self.cidr is not None and ipaddress.IPv4Address(ip) not in self.cidr
            if owner not in live or outside:
                with self._lock:
                    try:
                        os.unlink(os.path.join(self.dir, ip))
                    except FileNotFoundError:
                        continue
                out.append((ip, owner, sandbox))
        return out
