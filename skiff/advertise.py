"""Advertise-address checks every daemon runs before it starts.

A replica's raftAddress / apiAddress / advertiseApiAddress and an agent's address
(the Node's InternalIP: the host-gw next hop and VXLAN endpoint other nodes use) and
listen are what the rest of the cluster dials. An address that is not bound on the
machine makes a daemon that looks started but that nobody can reach (or a Raft member
that never hears its peers), so the daemons refuse it with a clear error. 0.0.0.0 as a
*listen* address is fine (never advertised).

Vagrant's NAT interface has 10.0.2.15 on every VM (flannel's Vagrant notes): bound, but
the same on all machines, so advertising it breaks every peer; the daemons warn.
"""

import socket

VAGRANT_NAT = "10.0.2.15"


def _host(address: str) -> str:
    host = address.rpartition(":")[0] if ":" in address else address
    return host.strip("[]")


def bound(host: str) -> str:
    """"" if host (an IP or a name) is an address of this machine (network namespace),
    else why not. The test is the kernel's own: bind a UDP socket to it, port 0."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        return f"{host!r} does not resolve ({exc.strerror})"
    last = ""
    for family, _, _, _, sockaddr in infos:
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.bind((sockaddr[0], 0) + tuple(sockaddr[2:]))
            return ""
        except OSError as exc:
            last = exc.strerror or str(exc)
    return f"{host} is not an address of this machine ({last})"


def local_addresses() -> list[str]:
    """The IPv4 addresses of this network namespace (for the error message); [] if unknown."""
    try:
        from pyroute2 import IPRoute
        with IPRoute() as ipr:
            return sorted({a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(family=socket.AF_INET)})
    except Exception:  # noqa: BLE001 - only decorates an error message
        return []


def check(addresses: list[tuple[str, str]], listen_only=()) -> tuple[list[str], list[str]]:
    """addresses: (config key, host or host:port). Returns (errors, warnings).
    Keys in listen_only may be the wildcard (0.0.0.0 / ::)."""
    errors, warnings = [], []
    for key, value in addresses:
        if not value:
            continue
        host = _host(value)
        if host in ("0.0.0.0", "::", ""):
            if key not in listen_only:
                errors.append(f"{key}: {value!r} cannot be advertised; use an address of this machine")
            continue
        why = bound(host)
        if why:
            have = local_addresses()
            errors.append(f"{key}: {value!r}: {why}" + (f"; this machine has {', '.join(have)}" if have else ""))
        elif host == VAGRANT_NAT:
            warnings.append(f"{key}: {value!r} is Vagrant's NAT address ({VAGRANT_NAT} on every VM); other "
                            "machines cannot reach this one there: use the private-network address")
    return errors, warnings
