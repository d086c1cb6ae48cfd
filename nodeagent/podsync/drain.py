"""Endpoints drain before SIGTERM: a pod being deleted leaves every Endpoints object
(and every node's proxier has had its chance to apply that) before its containers are
told to stop.

The order, for a pod with deletionTimestamp set and app containers still running:
  1. the endpoints controller drops the pod's IP from the ready addresses of every
     Endpoints that listed it (it does so as soon as deletionTimestamp is set);
  2. this agent sees that drop on its endpoints informer (the agent's shared one, the
     proxier's) and waits one more proxier sync interval (settle_s: the agents'
     min_sync_interval_s plus RESTORE_MARGIN_S for the restore), so the proxier of
     every node, the client's included, has removed the pod from its rules;
  3. only then the preStop hooks run and SIGTERM is sent (plan_termination).
The wait is bounded by drain_cap_s(grace) = min(CAP_S, CAP_FRACTION * grace) from the moment
this agent first saw the pod deleting, so a pod never waits long (an endpoints
controller that is down costs at most that); grace 0 (a forced delete) waits not at
all. The wait counts against terminationGracePeriodSeconds as Kubernetes' preStop does:
termination_grace_s() measures what is left from the deletionTimestamp.
A pod whose IP no Endpoints lists, and did not list lately (REMEMBER_S), skips the wait
at once: it is selected by no Service.

This is stricter than Kubernetes: kubelet does not wait for the endpoints; it runs the
preStop hook and sends SIGTERM as soon as it sees the deletion, and users add a
preStop `sleep` so the proxies catch up (the rolling-update guidance of the
Kubernetes docs). skiff's agent already watches Endpoints (its proxier), so it can
order the two; a preStop sleep still helps clients with long-lived connections.

Two event orders are both handled: the pod's deletion seen first (its IP still listed:
wait for the drop, woken by the endpoints event) or the endpoints drop seen first (its
removal time is remembered per IP: wait settle_s from then).

wait_s() is the pure decision; EndpointsDrain keeps what it needs (the removal times,
the first sight of each deleting pod) and wakes the pod sync loop when a waited-for IP
leaves the Endpoints.
"""

import logging
import threading
import time

log = logging.getLogger("skiff.agent.podsync")

CAP_S = 2.0            # a pod never waits longer than this for its endpoints to drain
CAP_FRACTION = 0.25    # ... nor longer than this share of its grace period
# After its minimum sync interval a proxier still needs the restore itself and the watch
# needs to bring the event to its node: 0.06-0.14 s on a quiet lab, up to ~0.45 s at a load
# of 20 on 2 CPUs (bench/README.md, rollout: rules dropped up to 0.95 s after the deletion).
RESTORE_MARGIN_S = 0.5
REMEMBER_S = 30.0      # removal times older than this are forgotten (the pod left long ago)


def drain_cap_s(grace_s: float) -> float:
    """The longest a pod with this grace period waits for its endpoints to drain."""
    return max(0.0, min(CAP_S, CAP_FRACTION * float(grace_s)))


def wait_s(*, listed: bool, removed_at, first_seen: float, now: float, settle_s: float, cap_s: float) -> float:
    """Seconds the pod still waits before its preStop hooks and SIGTERM; 0: stop it now.

    listed: its IP is in the ready addresses of some Endpoints now; removed_at: when
    (monotonic) this agent saw its IP leave the last Endpoints that listed it, or None
    if none did lately; first_seen: when this agent first saw the pod deleting
    (monotonic; the cap counts from there); settle_s: how long after the drop every
    proxier has applied it; cap_s: drain_cap_s(grace)."""
    cap_left = first_seen + cap_s - now
    if cap_left <= 0:
        return 0.0
    if listed:
        return cap_left                      # woken earlier by the drop
    if removed_at is None:
        return 0.0                           # no Service selects it
    return max(0.0, min(cap_left, removed_at + settle_s - now))


def ready_ips(endpoints) -> set:
    """The IPs an Endpoints object lists as ready (what the proxiers route to)."""
    return {a.ip for subset in endpoints.subsets for a in subset.addresses if a.ip}


class EndpointsDrain:
    """Per-agent drain state over the shared endpoints informer.

    Invariants: removal times are only recorded from informer events (an IP leaving
    an object's ready addresses, or the object deleted); an IP that is listed again
    loses its removal time; waiting pods are woken through wake(uid) when their IP
    leaves an Endpoints; forget(uid) when the pod is finalized."""

    def __init__(self, endpoints_informer, *, settle_s: float, wake=None, clock=time.monotonic):
        self.informer = endpoints_informer
        self.settle_s = settle_s
        self.wake = wake or (lambda uid: None)
        self.clock = clock
        self._lock = threading.Lock()
        self._removed: dict = {}      # ip -> monotonic time it left its last Endpoints
        self._first_seen: dict = {}   # uid -> monotonic time this agent first saw it deleting
        self._waiting: dict = {}      # uid -> ip of a pod waiting for its drop

    def start(self) -> "EndpointsDrain":
        self.informer.add_handler(on_add=self._added, on_update=self._updated, on_delete=self._deleted)
        return self

    # ------------------------------------------------------------ events

    def _added(self, ep):
        self._listed_again(ready_ips(ep))

    def _updated(self, old, new):
        fresh = ready_ips(new)
        self._listed_again(fresh)
        self._left(ready_ips(old) - fresh)

    def _deleted(self, ep):
        self._left(ready_ips(ep))

    def _listed_again(self, ips):
        with self._lock:
            for ip in ips:
                self._removed.pop(ip, None)

    def _left(self, ips):
        if not ips:
            return
        now = self.clock()
        with self._lock:
            for ip in ips:
                self._removed[ip] = now
            for ip, at in list(self._removed.items()):
                if at < now - REMEMBER_S:
                    del self._removed[ip]
            woken = [uid for uid, ip in self._waiting.items() if ip in ips]
        for uid in woken:
            self.wake(uid)

    # ------------------------------------------------------------ decision

    def _listed(self, ip: str) -> bool:
        return any(ip in ready_ips(ep) for ep in self.informer.list())

    def remaining_s(self, uid: str, ip: str, grace_s: float) -> tuple:
        """(seconds pod uid (IP ip, grace period grace_s) still waits before it is
        stopped, whether it was waiting before this call)."""
        now = self.clock()
        listed = bool(ip) and grace_s > 0 and self._listed(ip)
        with self._lock:
            was_waiting = uid in self._waiting
            if not ip or grace_s <= 0:
                left = 0.0
            else:
                first = self._first_seen.setdefault(uid, now)
                left = wait_s(listed=listed, removed_at=self._removed.get(ip), first_seen=first, now=now,
                              settle_s=self.settle_s, cap_s=drain_cap_s(grace_s))
            if left > 0:
                self._waiting[uid] = ip
            else:
                self._waiting.pop(uid, None)
        return left, was_waiting

    def waited_s(self, uid: str) -> float:
        """Seconds since this agent first saw pod uid deleting (0 if it did not)."""
        with self._lock:
            first = self._first_seen.get(uid)
        return 0.0 if first is None else max(0.0, self.clock() - first)

    def forget(self, uid: str) -> None:
        with self._lock:
            self._first_seen.pop(uid, None)
            self._waiting.pop(uid, None)
