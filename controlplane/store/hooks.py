"""TEMPORARY until the kind registry lands: kind.store hooks for the old kinds.py."""

from types import SimpleNamespace

from controlplane.store import svcalloc


def _keep_lb(merged, old):
    merged.status.ClearField("load_balancer")
    if old.status.HasField("load_balancer"):
        merged.status.load_balancer.CopyFrom(old.status.load_balancer)


def _pod_grace(pod, requested):
    if not pod.spec.node_name:
        return 0
    if requested is None:
        return (pod.spec.termination_grace_period_seconds
                if pod.spec.HasField("termination_grace_period_seconds") else 30)
    return requested


_NONE = SimpleNamespace(allocate=None, settings_section="", keep_on_status_write=None,
                        graceful_delete_s=None, cascade_namespace=False)
_HOOKS = {
    "Service": SimpleNamespace(allocate=svcalloc.allocate, settings_section="services",
                               keep_on_status_write=_keep_lb, graceful_delete_s=None, cascade_namespace=False),
    "Pod": SimpleNamespace(allocate=None, settings_section="", keep_on_status_write=None,
                           graceful_delete_s=_pod_grace, cascade_namespace=False),
    "Namespace": SimpleNamespace(allocate=None, settings_section="", keep_on_status_write=None,
                                 graceful_delete_s=None, cascade_namespace=True),
}


def store_hooks(kind):
    return getattr(kind, "store", None) or _HOOKS.get(kind.name, _NONE)
