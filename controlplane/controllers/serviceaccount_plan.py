"""The serviceaccounts controller's pure decision: which namespaces lack their `default` account.

Kubernetes' ServiceAccountsController ensures a ServiceAccount named `default` in every
namespace that is not being deleted (it also re-creates one that was deleted). Objects
in, names out: no API, no clock.
"""

DEFAULT_NAME = "default"


def terminating(ns) -> bool:
    """A namespace being deleted (deletionTimestamp or phase Terminating) gets no new account."""
    return bool(ns.metadata.deletion_timestamp) or ns.status.phase == "Terminating"


def needs_default(namespace, account_names) -> bool:
    """namespace: the Namespace (None if gone); account_names: names of the ServiceAccounts
    in it. True when the controller must create `default` there."""
    if namespace is None or terminating(namespace):
        return False
    return DEFAULT_NAME not in account_names


def missing_defaults(namespaces, accounts) -> list:
    """The sorted names of the namespaces that lack `default` (accounts: every ServiceAccount)."""
    have = {a.metadata.namespace for a in accounts if a.metadata.name == DEFAULT_NAME}
    return sorted(ns.metadata.name for ns in namespaces
                  if not terminating(ns) and ns.metadata.name not in have)
