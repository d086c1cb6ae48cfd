"""Leader-only: make sure the built-ins exist.

- the namespaces default, kube-system, kube-public, kube-node-lease;
- the built-in ClusterRoles cluster-admin, admin, edit, view and the ClusterRoleBinding
  cluster-admin (to system:masters), from controlplane/apiserver/authz/policy.py: created
  when missing, their rules put back when changed (unless annotated autoupdate "false");
- the Service default/kubernetes (ClusterIP: the first address of the service CIDR
  when free, port "grpc" 443) and its Endpoints: the in-cluster API address of every
  replica of the cluster, re-checked every period, so pods reach the API at
  kubernetes.default.svc and get KUBERNETES_SERVICE_HOST/PORT. With TLS that is each
  replica's join port (tls.joinAddress, peers[].joinAddress): TLS without a client
  certificate, bearer tokens, which is what a pod holds; the API port requires a client
  certificate (gRPC Python cannot make one optional: docs/security.md).

Runs while this replica leads, started and stopped by the leader supervisor with the
controllers (controlplane.main), as a bounded-frequency runner of the reconcile
toolkit. Period and cost: a pass every period_s (PERIOD_S, 1 s: a built-in a user
deleted is back within a second; Kubernetes' bootstrap controller re-checks every
10 s), retried after RETRY_S (0.25 s, doubling up to period_s) while the store is not
ready, so a new cluster gets its namespaces at once. An idle pass is eleven reads of
this replica's applied state (no API call, no Raft entry); at the former 0.25 s
period the thread measured 0.13-0.15 % of a core, a quarter of that now. Writes through the
API's own path (admission + log) with fixed request ids, so each built-in is created once whoever
leads. The desired Endpoints come from a pure function (api_endpoints).
"""

import ipaddress
import logging
import uuid

from controlplane.apiserver import admission
from controlplane.apiserver.authz import policy
from controlplane.store.commands import Create, Update
from controlplane.store.store import StoreUnavailable
from skiff.api import kinds
from skiff.api import objects_pb2 as pb
from skiff.api.wellknown import now_rfc3339
from skiff.reconcile import BoundedFrequencyRunner

log = logging.getLogger("skiff.bootstrap")

BUILTIN_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def _create(store, msg, request_id: str, settings=None) -> tuple:
    """Admit msg and create it through the log (the API's own path); the store's result."""
    admission.admit(kinds.of_message(msg), msg, creating=True)
    cmd = Create(request_id, kinds.encode(kinds.wrap(msg)), now_rfc3339(), str(uuid.uuid4()), settings)
    return store.propose(cmd, 5.0)


def ensure_namespaces(store) -> None:
    for name in BUILTIN_NAMESPACES:
        if store.get(("Namespace", "", name)) is not None:
            continue
        # A fixed request id per namespace: two leaders racing create it once.
        result = _create(store, pb.Namespace(metadata=pb.ObjectMeta(name=name)), f"bootstrap-namespace-{name}")
        log.info("event=bootstrap_namespace name=%s result=%s", name, result[1])


def ensure_rbac_defaults(store) -> None:
    """The built-in ClusterRoles and binding: created once (a fixed request id per object and
    store version), put back by an update when their rules or subjects were changed."""
    for desired in policy.cluster_roles() + policy.cluster_role_bindings():
        kind = kinds.of_message(desired)
        current = store.get((kind.name, "", desired.metadata.name))
        if current is None:
            result = _create(store, desired, f"bootstrap-rbac-{desired.metadata.name}-{kind.name}-"
                                              f"{store.resource_version()}")
        else:
            have = kinds.unwrap(current)[1]
            if not policy.needs_update(have, desired):
                continue
            fixed = policy.reconciled(have, desired)
            admission.admit(kind, fixed, old=have, creating=False)
            cmd = Update(f"bootstrap-rbac-{uuid.uuid4()}", kinds.encode(kinds.wrap(fixed)), "",
                         have.metadata.resource_version)
            result = store.propose(cmd, 5.0)
        log.info("event=bootstrap_rbac kind=%s name=%s result=%s", kind.name, desired.metadata.name, result[1])


API_SERVICE = "kubernetes"
API_PORT_NAME = "grpc"
API_SERVICE_PORT = 443


def api_service(service_cidr: str) -> pb.Service:
    first = str(ipaddress.ip_network(service_cidr, strict=False).network_address + 1)
    svc = pb.Service(metadata=pb.ObjectMeta(name=API_SERVICE, namespace="default",
                                            labels={"component": "apiserver", "provider": "skiff"}))
    svc.spec.type, svc.spec.cluster_ip = "ClusterIP", first
    svc.spec.ports.add(name=API_PORT_NAME, port=API_SERVICE_PORT, protocol="TCP")
    return svc


def api_endpoints(cfg) -> pb.Endpoints:
    """default/kubernetes: the in-cluster API address of every replica of the cluster
    (its join address when known, else its API address), one subset per port. Static on
    purpose: following Raft connectivity rewrote the object whenever a replica came or
    went, racing every reader that compares states across restarts."""
    by_port: dict = {}
    for peer in (cfg.self_peer, *cfg.peers):
        host, _, port = (peer.join_address or peer.api_address).rpartition(":")
        try:
            ip = str(ipaddress.IPv4Address(host))
        except ValueError:
            continue   # a host name: Endpoints hold addresses only
        by_port.setdefault(int(port), []).append(ip)
    ep = pb.Endpoints(metadata=pb.ObjectMeta(name=API_SERVICE, namespace="default"))
    for port in sorted(by_port):
        sub = ep.subsets.add()
        for ip in sorted(set(by_port[port]), key=lambda a: int(ipaddress.IPv4Address(a))):
            sub.addresses.add(ip=ip)
        sub.ports.add(name=API_PORT_NAME, port=port, protocol="TCP")
    return ep


def ensure_api_service(store, cfg) -> None:
    if store.get(("Service", "default", API_SERVICE)) is None:
        svc = api_service(cfg.services.service_cidr)
        for attempt, cluster_ip in enumerate((svc.spec.cluster_ip, "")):
            svc.spec.cluster_ip = cluster_ip     # the first address, or any when it is taken
            # The id names the store version too: a leader racing another at the same state
            # creates it once, and after a user deleted it a new id creates it again (a fixed
            # id would just replay the first result).
            result = _create(store, svc, f"bootstrap-api-service-{attempt}-{store.resource_version()}",
                             cfg.services.alloc_settings())
            log.info("event=bootstrap_api_service cluster_ip=%s result=%s", cluster_ip or "auto", result[1])
            if result[0] == "ok" or result[1] == "already_exists":
                break
    desired = api_endpoints(cfg)
    key = ("Endpoints", "default", API_SERVICE)
    current = store.get(key)
    if current is None:
        result = _create(store, desired, f"bootstrap-api-endpoints-{uuid.uuid4()}")
    else:
        have = kinds.unwrap(current)[1]
        if list(have.subsets) == list(desired.subsets):
            return
        desired.metadata.resource_version = have.metadata.resource_version
        admission.admit(kinds.BY_NAME["Endpoints"], desired, creating=False)
        cmd = Update(f"bootstrap-api-endpoints-{uuid.uuid4()}", kinds.encode(kinds.wrap(desired)),
                     "", have.metadata.resource_version)
        result = store.propose(cmd, 5.0)
    log.info("event=bootstrap_api_endpoints addresses=%d result=%s",
             sum(len(s.addresses) for s in desired.subsets), result[1])


PERIOD_S = 1.0
RETRY_S = 0.25


class Bootstrapper:
    """Re-checks the built-ins every period_s for one term of leadership: the leader
    supervisor builds one per term, start()s it on winning and stop()s it on losing."""

    def __init__(self, store, cfg=None, period_s: float = None):
        self.store = store
        self.cfg = cfg
        self.period_s = PERIOD_S if period_s is None else period_s
        self.runner = BoundedFrequencyRunner("bootstrap", self.ensure, max_interval_s=self.period_s,
                                             retry_base_s=min(RETRY_S, self.period_s),
                                             retry_max_s=self.period_s, logger=log)

    def start(self) -> "Bootstrapper":
        self.runner.start()
        return self

    def stop(self) -> None:
        self.runner.stop()

    def ensure(self) -> float | None:
        """One pass over the built-ins; a store that cannot commit yet is retried after
        RETRY_S (returned: the runner's next delay), else the next pass is period_s later."""
        try:
            ensure_namespaces(self.store)
            ensure_rbac_defaults(self.store)
            if self.cfg is not None and getattr(self.cfg, "services", None) is not None:
                ensure_api_service(self.store, self.cfg)
        except StoreUnavailable as exc:
            log.info("event=bootstrap_retry reason=%s", str(exc).replace(" ", "_")[:80])
            return min(RETRY_S, self.period_s)
        return None
