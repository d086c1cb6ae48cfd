"""Read-modify-write with compare-and-swap, retried on conflict (client-go's RetryOnConflict).

update_on_conflict() reads the live object, lets `mutate` change it, and writes it with
the resourceVersion it read, so a concurrent writer is never overwritten: on a conflict
it reads again (through the log: the answering replica's copy may lag) and re-applies
the change, at most `attempts` times. Used by the CLI (scale, cordon, label, annotate)
and the garbage collector.
"""

from skiff import client as clientmod

ATTEMPTS = 10


class GaveUp(clientmod.Conflict):
    """Every attempt conflicted with another writer."""


def update_on_conflict(client, kind, name, namespace, mutate, uid: str = "", attempts: int = ATTEMPTS):
    """The updated object, or the live one unchanged when mutate(obj) returned False (nothing
    to do). mutate changes the freshly read obj in place. NotFound when the object is gone
    (or, with uid, was replaced by another of the same name); GaveUp after `attempts` conflicts."""
    for attempt in range(attempts):
        obj = client.get(kind, name, namespace, linearizable=attempt > 0)
        if uid and obj.metadata.uid != uid:
            raise clientmod.NotFound(f"{name}: uid {uid} is gone (now {obj.metadata.uid})")
        if mutate(obj) is False:
            return obj
        try:
            return client.update(obj)
        except clientmod.Conflict:
            continue
    raise GaveUp(f"{kind}/{name}: kept conflicting with other writers; try again")
