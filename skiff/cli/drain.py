"""`skiff drain NODE`: cordon the node, then evict its pods through their disruption budgets.

As kubectl drain (staging/src/k8s.io/kubectl/pkg/drain):
- which pods (select()): a pod of a `daemon` kind (a DaemonSet's) would come straight
  back: refused unless --ignore-daemonsets, then left with a warning; a pod no
  controller would replace is refused unless --force, then deleted with a warning; a
  finished pod (Succeeded/Failed) needs no controller;
- every pod is evicted at once, each on its own: "evicting pod NS/NAME"; an eviction
  a PodDisruptionBudget refuses (429) is retried every EVICT_RETRY_S:
  `error when evicting pods/"NAME" -n "NS" (will retry after 5s): Cannot evict pod as
  it would violate the pod's disruption budget.`; any other error gives up on that pod;
  then the pod's deletion is awaited (gone, or a new pod with its name): "pod/NAME evicted";
- --disable-eviction deletes instead of evicting (budgets are not consulted):
  "pod/NAME deleted";
- --timeout: how long the whole drain may take; 0 (the default, as kubectl's) waits for
  ever — a budget that never allows a disruption then blocks the drain until ^C;
- --grace-period: the pods' grace period (-1, the default: each pod's own);
- "node/NAME drained" once every pod is gone; otherwise the pods still pending are
  listed and the command fails.
"""

import sys
import threading
import time
from dataclasses import dataclass, field

from skiff import client as clientmod
from skiff.api import kinds
from skiff.api.wellknown import POD_FINISHED_PHASES
from skiff.cli.common import client as _client
from skiff.cli.common import server_error as _server_error
from skiff.cli.errors import CliError
from skiff.cli.node_cmds import set_unschedulable

EVICT_RETRY_S = 5.0
DELETE_POLL_S = 1.0


def _pod_controllers(pod) -> list:
    """The kinds (registry records; None for a kind skiff does not know) of the controllers
    that would bring this pod back: controller ownerReferences of a kind that owns pods
    (Kind.owns) or of an unknown kind (given the benefit of the doubt)."""
    found = []
    for ref in pod.metadata.owner_references:
        kind = kinds.BY_NAME.get(ref.kind)
        if ref.controller and (kind is None or "Pod" in kind.owns):
            found.append((ref.kind, kind))
    return found


@dataclass
class Selection:
    victims: list = field(default_factory=list)
    warnings: list = field(default_factory=list)   # kubectl's "Warning: ..." lines
    errors: list = field(default_factory=list)     # why the drain cannot start


def select(pods, ignore_daemonsets: bool, force: bool) -> Selection:
    """Which pods to evict, kubectl's filters and messages (pure)."""
    out = Selection()
    daemons, unmanaged = [], []
    for p in pods:
        owners = _pod_controllers(p)
        name = f"{p.metadata.namespace}/{p.metadata.name}"
        if any(kind is not None and kind.daemon for _, kind in owners):
            daemons.append(name)
            continue
        if not owners and p.status.phase not in POD_FINISHED_PHASES:
            unmanaged.append(name)
            if not force:
                continue
        out.victims.append(p)
    if daemons:
        if ignore_daemonsets:
            out.warnings.append(f"ignoring DaemonSet-managed Pods: {', '.join(daemons)}")
        else:
            out.errors.append("cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): "
                              + ", ".join(daemons))
    if unmanaged:
        if force:
            out.warnings.append(f"deleting Pods that declare no controller: {', '.join(unmanaged)}")
        else:
            out.errors.append("cannot delete Pods that declare no controller (use --force to override): "
                              + ", ".join(unmanaged))
    return out


class Evictor:
    """Evicts (or deletes) one pod and waits for it to be gone; run on its own thread."""

    def __init__(self, client, pod, *, use_eviction: bool, grace_s, stop: threading.Event, say):
        self.client = client
        self.pod = pod
        self.use_eviction = use_eviction
        self.grace_s = grace_s
        self.stop = stop
        self.say = say
        self.done = False
        self.error = ""

    def run(self) -> None:
        try:
            if self._remove():
                self._wait_gone()
        except clientmod.ApiError as exc:
            self.error = _server_error(exc)

    def _remove(self) -> bool:
        """True once the eviction or deletion is accepted (or the pod is gone already)."""
        meta = self.pod.metadata
        if not self.use_eviction:
            try:
                self.client.delete("pods", meta.name, meta.namespace, uid=meta.uid,
                                   grace_period_seconds=self.grace_s)
            except (clientmod.NotFound, clientmod.Conflict):
                pass   # gone, or a new pod by that name: not the one we drain
            return True
        self.say(f"evicting pod {meta.namespace}/{meta.name}")
        while not self.stop.is_set():
            try:
                self.client.evict(meta.name, meta.namespace, grace_period_s=self.grace_s)
                return True
            except clientmod.NotFound:
                return True
            except clientmod.TooManyRequests as exc:
                self.say(f'error when evicting pods/"{meta.name}" -n "{meta.namespace}" (will retry after '
                         f"{EVICT_RETRY_S:g}s): {exc.message}", err=True)
                self.stop.wait(EVICT_RETRY_S)
            except clientmod.ApiError as exc:
                self.error = f'error when evicting pods/"{meta.name}" -n "{meta.namespace}": {exc.message}'
                return False
        return False

    def _wait_gone(self) -> None:
        meta = self.pod.metadata
        while not self.stop.is_set():
            try:
                current = self.client.get("pods", meta.name, meta.namespace)
            except clientmod.NotFound:
                current = None
            if current is None or current.metadata.uid != meta.uid:
                self.done = True
                self.say(f"pod/{meta.name} {'evicted' if self.use_eviction else 'deleted'}")
                return
            self.stop.wait(DELETE_POLL_S)


def _printer():
    lock = threading.Lock()

    def say(line: str, err: bool = False) -> None:
        stream = sys.stderr if err else sys.stdout
        with lock:
            print(line, file=stream, flush=True)
    return say


def drain(c, node: str, *, ignore_daemonsets=False, force=False, disable_eviction=False,
          grace_s=None, timeout_s: float = 0.0, say=None) -> None:
    """The whole drain; raises CliError (the node stays cordoned, as kubectl leaves it)."""
    say = say or _printer()
    before = c.get("node", node, "")
    set_unschedulable(c, node, True)
    say(f"node/{node} cordoned" if not before.spec.unschedulable else f"node/{node} already cordoned")
    pods, _ = c.list("pods", field_selector=f"spec.nodeName={node}")
    chosen = select(pods, ignore_daemonsets, force)
    if chosen.errors:
        raise CliError(f'unable to drain node "{node}" due to error: ' + "; ".join(chosen.errors))
    for warning in chosen.warnings:
        say(f"Warning: {warning}", err=True)
    stop = threading.Event()
    workers = [Evictor(c, p, use_eviction=not disable_eviction, grace_s=grace_s, stop=stop, say=say)
               for p in chosen.victims]
    threads = [threading.Thread(target=w.run, name=f"drain-{w.pod.metadata.name}", daemon=True) for w in workers]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout_s if timeout_s > 0 else None
    for t in threads:
        t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
    stop.set()
    pending = [w for w in workers if not w.done]
    if not pending:
        say(f"node/{node} drained")
        return
    errors = [w.error for w in pending if w.error]
    if not errors:
        errors = [f"drain did not complete within {timeout_s:g}s"]
    say(f'There are pending pods in node "{node}" when an error occurred: {"; ".join(errors)}', err=True)
    for w in pending:
        say(f"pod/{w.pod.metadata.name}", err=True)
    raise CliError("; ".join(errors))


def cmd_drain(args) -> int:
    c = _client(args)
    try:
        drain(c, args.node, ignore_daemonsets=args.ignore_daemonsets, force=args.force,
              disable_eviction=args.disable_eviction,
              grace_s=args.grace_period if args.grace_period >= 0 else None, timeout_s=args.timeout)
    except clientmod.ApiError as exc:
        raise CliError(_server_error(exc)) from None
    return 0


def add_parsers(sub, common) -> None:
    p = sub.add_parser("drain", parents=[common], help="cordon a node and evict its pods (through their budgets)")
    p.add_argument("node")
    p.add_argument("--ignore-daemonsets", action="store_true", help="leave DaemonSet-managed pods")
    p.add_argument("--force", action="store_true", help="also delete pods no controller would replace")
    p.add_argument("--disable-eviction", action="store_true",
                   help="delete pods instead of evicting them: PodDisruptionBudgets are not consulted")
    p.add_argument("--grace-period", type=int, default=-1, help="seconds each pod gets to stop (-1: its own)")
    p.add_argument("--timeout", type=float, default=0.0, help="give up after this many seconds (0: never)")
    p.set_defaults(func=cmd_drain)
