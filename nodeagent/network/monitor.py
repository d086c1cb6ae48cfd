"""The kernel event monitor: netlink multicast events -> repairs of the pod network.

pyroute2's monitor pattern (an IPRoute socket bound to multicast groups, then read):
here two plain netlink sockets read by one thread with select(), whose messages are
decoded with pyroute2's own rtnetlink marshal:

- rtnetlink, bound to RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE |
  RTMGRP_NEIGH (neighbours and bridge FDB entries share the group);
- nfnetlink, bound to NFNLGRP_NFTABLES: with iptables-nft (docs/networking.md fact 13; this project's
  iptables is 1.8 with the nf_tables backend) every rule or chain change is such a
  message; reading rules (-S, iptables-save) sends none. With the legacy backend the
  socket stays silent and only the slow full check sees iptables drift.

Each batch of messages (all that are ready, read without blocking) is mapped to
repairs by the pure events.repairs_for() and handed to on_repairs(set) — called on
the monitor thread, so it must only ask for work (e.g. BoundedFrequencyRunner.run()).
Nothing is called for a batch that means nothing (pod veths, ARP, learned MACs).

Subtleties:
- Multicast delivery is lossy: when the receive buffer overflows the kernel drops
  events and recv() fails with ENOBUFS. That is reported as FULL ("check everything
  now"), never ignored. The buffer is RCVBUF bytes to make that rare.
- The sockets see only the network namespace they were created in: the agent runs in
  its node's namespace; tests pass a named namespace (/var/run/netns/NAME) and the
  sockets are created on a short-lived thread that setns()'ed into it.
- The agent's own changes produce events too; events.py explains why that costs one
  extra pass and never a loop.
Cost when nothing changes: one thread blocked in select(), no wake-ups.
"""

import ctypes
import errno
import logging
import os
import select
import socket
import threading

from pyroute2.netlink.rtnl import (RTM_DELADDR, RTM_DELLINK, RTM_DELNEIGH, RTM_DELROUTE, RTM_NEWADDR,
                                   RTM_NEWLINK, RTM_NEWNEIGH, RTM_NEWROUTE, RTMGRP_IPV4_IFADDR,
                                   RTMGRP_IPV4_ROUTE, RTMGRP_LINK, RTMGRP_NEIGH)
from pyroute2.netlink.rtnl.marshal import MarshalRtnl

from nodeagent.network import events as ev

log = logging.getLogger("skiff.agent.network")

NETLINK_NETFILTER = 12
NFNLGRP_NFTABLES = 7
RCVBUF = 4 * 1024 * 1024          # bytes; bursts (a node's pods starting) fit, overruns stay rare
RECV_SIZE = 256 * 1024
AF_BRIDGE = 7
RTNL_GROUPS = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_NEIGH
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL("libc.so.6", use_errno=True)

_OPS = {RTM_NEWLINK: (ev.LINK, ev.NEW), RTM_DELLINK: (ev.LINK, ev.DEL),
        RTM_NEWADDR: (ev.ADDR, ev.NEW), RTM_DELADDR: (ev.ADDR, ev.DEL),
        RTM_NEWROUTE: (ev.ROUTE, ev.NEW), RTM_DELROUTE: (ev.ROUTE, ev.DEL),
        RTM_NEWNEIGH: (ev.NEIGH, ev.NEW), RTM_DELNEIGH: (ev.NEIGH, ev.DEL)}


def to_event(msg):
    """A decoded rtnetlink message -> events.Event (None for kinds we do not watch)."""
    kind_op = _OPS.get(msg["header"]["type"])
    if kind_op is None:
        return None
    kind, op = kind_op
    if kind == ev.LINK:
        return ev.Event(kind, op, ifindex=msg["index"], ifname=msg.get_attr("IFLA_IFNAME") or "")
    if kind == ev.ADDR:
        return ev.Event(kind, op, ifindex=msg["index"])
    if kind == ev.ROUTE:
        if msg["family"] != socket.AF_INET:
            return None
        dst = msg.get_attr("RTA_DST") or "0.0.0.0"
        return ev.Event(kind, op, ifindex=msg.get_attr("RTA_OIF") or 0, proto=msg["proto"],
                        table=msg.get_attr("RTA_TABLE") or msg["table"], dst=f"{dst}/{msg['dst_len']}")
    if msg["family"] == AF_BRIDGE:
        return ev.Event(ev.FDB, op, ifindex=msg["ifindex"], state=msg["state"])
    if msg["family"] != socket.AF_INET:
        return None     # IPv6 neighbour discovery on our devices (link-local) is not ours
    return ev.Event(ev.NEIGH, op, ifindex=msg["ifindex"], state=msg["state"])


def _open_sockets(nft: bool):
    rt = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
    rt.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    rt.bind((0, RTNL_GROUPS))
    nf = None
    if nft:
        try:
            nf = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_NETFILTER)
            nf.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            nf.bind((0, 1 << (NFNLGRP_NFTABLES - 1)))
        except OSError as exc:
            log.warning("event=nft_monitor_unavailable error=%s", str(exc).replace(" ", "_"))
            nf = None
    return rt, nf


def open_in_netns(netns: str | None, nft: bool):
    """The two sockets, created in the named namespace (None: this thread's)."""
    if not netns:
        return _open_sockets(nft)
    box = {}

    def target():
        fd = os.open(netns if netns.startswith("/") else f"/var/run/netns/{netns}", os.O_RDONLY | os.O_CLOEXEC)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                box["error"] = OSError(ctypes.get_errno(), f"setns {netns}")
                return
        finally:
            os.close(fd)
        try:
            box["value"] = _open_sockets(nft)
        except OSError as exc:
            box["error"] = exc

    t = threading.Thread(target=target, name="netmon-open", daemon=True)   # exits: never reused elsewhere
    t.start()
    t.join(10.0)
    if "error" in box:
        raise box["error"]
    return box["value"]


class KernelMonitor:
    """on_repairs(frozenset) for every batch of events that calls for a repair;
    owned() -> events.Owned, read per batch (the devices change when re-created)."""

    def __init__(self, on_repairs, owned=lambda: ev.Owned(), *, netns: str | None = None, rtnl: bool = True,
                 nft: bool = True, name: str = "netmon"):
        self.on_repairs = on_repairs
        self.owned = owned
        self.netns = netns
        self.want_rtnl = rtnl
        self.want_nft = nft
        self.name = name
        self.batches = 0            # batches that asked for a repair (tests, logs)
        self.overruns = 0
        self.nft_available = False
        self._socks = []
        self._wake_r, self._wake_w = os.pipe()
        self._stop = threading.Event()
        self._thread = None
        self._marshal = MarshalRtnl()

    def start(self) -> "KernelMonitor":
        """Opens the sockets (raises OSError if netlink is unavailable) and starts the thread."""
        rt, nf = open_in_netns(self.netns, self.want_nft)
        if not self.want_rtnl:
            rt.close()
            rt = None
        self._rt, self._nf = rt, nf
        self.nft_available = nf is not None
        self._socks = [s for s in (rt, nf) if s is not None]
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        os.write(self._wake_w, b"x")
        if self._thread is not None and self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(2.0)
        for s in self._socks:
            s.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _drain(self, sock) -> tuple:
        """All messages ready on sock, without blocking: (list of datagrams, overrun?)."""
        out, overrun = [], False
        while True:
            try:
                out.append(sock.recv(RECV_SIZE, socket.MSG_DONTWAIT))
            except BlockingIOError:
                return out, overrun
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                overrun = True          # events were lost; the socket keeps working

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select(self._socks + [self._wake_r], [], [])
            except (OSError, ValueError):
                return
            if self._stop.is_set():
                return
            batch = []
            try:
                for sock in ready:
                    if sock is self._wake_r:
                        continue
                    datagrams, overrun = self._drain(sock)
                    if overrun:
                        self.overruns += 1
                        batch.append(ev.Event(ev.OVERRUN))
                        log.warning("event=netlink_overrun monitor=%s action=full_check", self.name)
                    if sock is self._nf:
                        if datagrams:
                            batch.append(ev.Event(ev.NFT))
                        continue
                    for data in datagrams:
                        for msg in self._marshal.parse(data):
                            e = to_event(msg)
                            if e is not None:
                                batch.append(e)
            except Exception:  # noqa: BLE001 - a bad message must not kill the monitor: check everything
                log.exception("event=netlink_monitor_error monitor=%s action=full_check", self.name)
                batch.append(ev.Event(ev.OVERRUN))
            todo = ev.repairs_for(batch, self.owned())
            if todo:
                self.batches += 1
                self.on_repairs(todo)
