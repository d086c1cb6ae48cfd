"""The serviceaccounts controller (leader-only): a `default` ServiceAccount in every namespace.

sync(namespace name), level-triggered: the Namespace and the namespace's ServiceAccounts
from the informer caches; if the pure needs_default() says so, create `default` (an
AlreadyExists means another writer was first: done). Enqueued when a Namespace is added or
changed and when a `default` ServiceAccount is deleted (it is re-created, as in Kubernetes).

Period and cost: event-driven, plus a resync of every namespace every resync_s (30 s); a
namespace that has its account costs one cache lookup, no API call.
"""

import logging

from controlplane.controllers.serviceaccount_plan import DEFAULT_NAME, needs_default
from skiff import client as clientmod
from skiff.api import objects_pb2 as pb
from skiff.reconcile import BACKOFF, Loop

log = logging.getLogger("skiff.controllers.serviceaccount")


class ServiceAccountsController(Loop):
    def __init__(self, client, namespaces, accounts, resync_s: float = 30.0):
        self.client = client
        self.namespaces = namespaces
        self.accounts = accounts
        super().__init__("serviceaccounts", self.sync, informers=(namespaces, accounts),
                         list_keys=lambda: [n.metadata.name for n in namespaces.list()],
                         workers=1, resync_s=resync_s)
        namespaces.add_handler(on_add=self._on_namespace, on_update=lambda old, new: self._on_namespace(new),
                               on_delete=lambda n: None)
        accounts.add_handler(on_delete=self._on_account_deleted)

    def _on_namespace(self, ns):
        self.enqueue(ns.metadata.name)

    def _on_account_deleted(self, sa):
        if sa.metadata.name == DEFAULT_NAME:
            self.enqueue(sa.metadata.namespace)

    def sync(self, name):
        ns = self.namespaces.get(name)
        names = {a.metadata.name for a in self.accounts.list(name)}
        if not needs_default(ns, names):
            return None
        sa = pb.ServiceAccount(metadata=pb.ObjectMeta(name=DEFAULT_NAME, namespace=name))
        try:
            self.client.create(sa)
        except clientmod.AlreadyExists:
            return None
        except clientmod.NotFound:   # the namespace went away meanwhile
            return None
        except clientmod.ApiError as exc:
            log.info("event=default_serviceaccount_retry namespace=%s error=%s", name, str(exc)[:160].replace(" ", "_"))
            return BACKOFF
        log.info("event=default_serviceaccount_created namespace=%s", name)
        return None
