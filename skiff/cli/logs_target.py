"""Which pod `skiff logs KIND/NAME` reads, as kubectl's polymorphic LogsForObject picks it.

pod/NAME (or a bare NAME) is that pod. A workload (job/NAME, deploy/NAME, rs/NAME, any kind
whose spec has a label selector) reads the first of the pods its selector matches, in
kubectl's ByLogging order: bound to a node first, then Running before Unknown before
Pending (and finished), ready first, more restarts first, older first. With more than
one pod kubectl says which it used ("Found 3 pods, using pod/pi-abc12") on stderr.
"""

from skiff.api import kinds
from skiff.api import selectors
from skiff.api.wellknown import parse_rfc3339
from skiff.cli.errors import CliError

_PHASE_ORDER = {"Running": 0, "Unknown": 1}   # anything else (Pending, finished) after


def _by_logging(pod):
    ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)
    restarts = max((c.restart_count for c in pod.status.container_statuses), default=0)
    created = parse_rfc3339(pod.metadata.creation_timestamp)
    return (0 if pod.spec.node_name else 1, _PHASE_ORDER.get(pod.status.phase, 2), 0 if ready else 1,
            -restarts, created.timestamp() if created else 0.0, pod.metadata.name)


def resolve(client, word: str, namespace: str):
    """(pod name, note for stderr or "") for what the user typed after `logs`."""
    if "/" not in word:
        return word, ""
    kind_word, _, name = word.partition("/")
    try:
        kind = kinds.lookup(kind_word)
    except KeyError as exc:
        raise CliError(exc.args[0]) from None
    if kind is kinds.lookup("pods"):
        return name, ""
    obj = client.get(kind, name, namespace)
    spec = getattr(obj, "spec", None)
    field = spec.DESCRIPTOR.fields_by_name.get("selector") if spec is not None else None
    if field is None or field.message_type is None:
        raise CliError(f"cannot get the logs of a {kind.name}: it selects no pods")
    if field.message_type.GetOptions().map_entry:      # a ReplicationController's plain map
        selector = str(selectors.from_map(dict(spec.selector)))
    else:
        selector = str(selectors.from_label_selector(spec.selector))
    pods, _ = client.list("pods", namespace, label_selector=selector)
    owned = [p for p in pods if any(r.uid == obj.metadata.uid for r in p.metadata.owner_references)] or pods
    if not owned:
        raise CliError(f"timed out waiting for the condition: no pods of {kind.name.lower()}/{name} yet")
    first = sorted(owned, key=_by_logging)[0]
    note = f"Found {len(owned)} pods, using pod/{first.metadata.name}" if len(owned) > 1 else ""
    return first.metadata.name, note
