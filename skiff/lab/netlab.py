"""The lab's 'physical' network, with pyroute2: a lab namespace holding a bridge
(the L2 segment, with the gateway address), a veth from the root namespace into it
(the host's host-only address, like a Vagrant private network), and one namespace
per machine (node or control-plane replica) plugged into the bridge.

Why a namespace for the bridge: the host's firewall (Docker's FORWARD DROP,
br_netfilter) never sees lab traffic (docs/networking.md, fact 1).

Every function that makes something calls record(kind, name) first, so the lab's
state names it before it exists and `skiff lab down` can remove it after a crash
at any point. Functions that remove things tolerate their absence.
"""

import os
import random
import string
import subprocess

from pyroute2 import IPRoute, netns

from skiff.lab.plan import BRIDGE, HOST_PEER, MEMBER_IFNAME, NETNS_DIR, Member, Plan, overlaps


class NetError(RuntimeError):
    pass


def netns_path(name: str) -> str:
    return os.path.join(NETNS_DIR, name)


def netns_exists(name: str) -> bool:
    return os.path.exists(netns_path(name))


def _ipr(ns: str | None = None) -> IPRoute:
    # flags=0: a missing namespace raises instead of being created (docs/networking.md)
    return IPRoute(netns=ns, flags=0) if ns else IPRoute()


def _idx(ipr: IPRoute, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def link_exists(name: str, ns: str | None = None) -> bool:
    if ns and not netns_exists(ns):
        return False
    with _ipr(ns) as ipr:
        return _idx(ipr, name) is not None


def sysctl(ns: str, key: str, value: str) -> None:
    """Per-namespace sysctls (net.ipv4.ip_forward is one: docs/networking.md, fact 2)."""
    r = subprocess.run(["nsenter", f"--net={netns_path(ns)}", "sysctl", "-qw", f"{key}={value}"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise NetError(f"sysctl {key}={value} in {ns}: {r.stderr.strip()}")


def read_sysctl(ns: str, key: str) -> str:
    r = subprocess.run(["nsenter", f"--net={netns_path(ns)}", "sysctl", "-n", key],
                       capture_output=True, text=True)
    return r.stdout.strip()


def root_networks() -> list[str]:
    """Addresses (with prefix) and route destinations in the root namespace, to refuse a
    lab subnet that this machine already uses."""
    out = []
    with IPRoute() as ipr:
        for a in list(ipr.get_addr(family=2)):
            out.append(f"{a.get('IFA_ADDRESS')}/{a['prefixlen']}")
        for r in list(ipr.get_routes(family=2, table=254)):
            dst = r.get("RTA_DST")
            if dst and r["dst_len"] > 0:
                out.append(f"{dst}/{r['dst_len']}")
    return out


def pick_free_prefix_and_subnet() -> tuple[str, str]:
    """A random skiff-xxxx prefix and 10.2xx.yy.0/24 subnet that nothing here uses yet
    (for labs that must not collide with another one: tests, benchmarks)."""
    used = root_networks()
    taken_ns = set(os.listdir(NETNS_DIR)) if os.path.isdir(NETNS_DIR) else set()
    for _ in range(200):
        prefix = "skiff-" + "".join(random.choices(string.ascii_lowercase + string.digits, k=4))
        subnet = f"10.{random.randint(200, 239)}.{random.randint(0, 255)}.0/24"
        if any(n.startswith(prefix + "-") for n in taken_ns) or os.path.exists(f"/run/{prefix}-lab"):
            continue
        if overlaps(subnet, used):
            continue
        return prefix, subnet
    raise RuntimeError("no free lab prefix/subnet")


def create_netns(name: str, record) -> None:
    record("netns", name)
    netns.create(name)
    with _ipr(name) as ipr:
        ipr.link("set", index=_idx(ipr, "lo"), state="up")


def remove_netns(name: str) -> None:
    if netns_exists(name):
        netns.remove(name)


def remove_link(name: str) -> None:
    with IPRoute() as ipr:
        idx = _idx(ipr, name)
        if idx is not None:
            ipr.link("del", index=idx)


def build_segment(plan: Plan, record) -> None:
    """The lab namespace, its bridge with the gateway address, and the host's veth."""
    create_netns(plan.lab_netns, record)
    with _ipr(plan.lab_netns) as lab:
        lab.link("add", ifname=BRIDGE, kind="bridge")
        br = _idx(lab, BRIDGE)
        lab.addr("add", index=br, address=plan.gateway, prefixlen=plan.prefixlen)
        lab.link("set", index=br, state="up")
        record("link", plan.host_link)
        with IPRoute() as root:
            root.link("add", ifname=plan.host_link, kind="veth",
                      peer={"ifname": HOST_PEER, "net_ns_fd": plan.lab_netns})
            host = _idx(root, plan.host_link)
            root.addr("add", index=host, address=plan.host_address, prefixlen=plan.prefixlen)
            root.link("set", index=host, state="up")
        lab.link("set", index=_idx(lab, HOST_PEER), master=br, state="up")


def add_member(plan: Plan, m: Member, record, *, forwarding: bool) -> None:
    """A machine's namespace, cabled to the lab bridge: address, default route via the
    gateway (docs/networking.md, fact 4), and ip_forward for nodes (fact 2)."""
    create_netns(m.netns, record)
    with _ipr(plan.lab_netns) as lab:
        lab.link("add", ifname=m.port, kind="veth",
                 peer={"ifname": MEMBER_IFNAME, "net_ns_fd": m.netns, "address": m.mac})
        lab.link("set", index=_idx(lab, m.port), master=_idx(lab, BRIDGE), state="up")
    with _ipr(m.netns) as ipr:
        eth = _idx(ipr, MEMBER_IFNAME)
        ipr.addr("add", index=eth, address=m.address, prefixlen=plan.prefixlen)
        ipr.link("set", index=eth, state="up")
        ipr.route("add", dst="0.0.0.0/0", gateway=plan.gateway)
    sysctl(m.netns, "net.ipv4.ip_forward", "1" if forwarding else "0")


def set_port(plan: Plan, m: Member, up: bool) -> None:
    """Plug or pull the machine's cable (its port on the lab bridge)."""
    with _ipr(plan.lab_netns) as lab:
        idx = _idx(lab, m.port)
        if idx is None:
            raise NetError(f"{m.name} has no port on the lab bridge")
        lab.link("set", index=idx, state="up" if up else "down")


def port_state(plan: Plan, m: Member) -> str:
    if not netns_exists(plan.lab_netns):
        return "missing"
    with _ipr(plan.lab_netns) as lab:
        idx = _idx(lab, m.port)
        if idx is None:
            return "missing"
        link = lab.get_links(idx)[0]
        return "up" if link["flags"] & 1 else "down"
