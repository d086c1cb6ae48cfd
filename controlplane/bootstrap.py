"""Leader-only: make sure the built-in namespaces exist (default, kube-system, kube-public).

Runs on the Raft leader after each election; writes through the API's own path
(admission + log), so a namespace is created exactly once whoever leads.
"""

import logging
import threading
import uuid

from controlplane.apiserver import admission
from controlplane.apiserver.service import now_rfc3339
from controlplane.store.store import StoreUnavailable
from skiff.api import kinds
from skiff.api import objects_pb2 as pb

log = logging.getLogger("skiff.bootstrap")

BUILTIN_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def ensure_namespaces(store) -> None:
    kind = kinds.BY_NAME["Namespace"]
    for name in BUILTIN_NAMESPACES:
        if store.state.get(("Namespace", "", name)) is not None:
            continue
        ns = pb.Namespace(metadata=pb.ObjectMeta(name=name))
        admission.admit(kind, ns, creating=True)
        # A fixed request id per namespace: two leaders racing create it once.
        cmd = ("create", f"bootstrap-namespace-{name}", kinds.wrap(ns).SerializeToString(),
               now_rfc3339(), str(uuid.uuid4()))
        result = store.propose(cmd, 5.0)
        log.info("event=bootstrap_namespace name=%s result=%s", name, result[1])


class Bootstrapper:
    """Re-checks the built-ins whenever this replica leads (cheap when all exist)."""

    def __init__(self, store, period_s: float = 0.25):
        self.store = store
        self.period_s = period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bootstrap", daemon=True)

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()

    def _run(self):
        while not self._stop.is_set():
            if self.store.is_leader() and self.store.is_ready():
                try:
                    ensure_namespaces(self.store)
                except StoreUnavailable as exc:
                    log.info("event=bootstrap_retry reason=%s", str(exc).replace(" ", "_")[:80])
                except Exception:  # noqa: BLE001 - keep the loop alive, retry next period
                    log.exception("event=bootstrap_failed")
            self._stop.wait(self.period_s)
