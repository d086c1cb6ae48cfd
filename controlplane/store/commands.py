"""The commands of the replicated state machine (controlplane/store/state.py).

Each write the API server makes is one of these, pickled by PySyncObj into the
Raft log and applied by every replica in log order. They are plain, small and
picklable on purpose: frozen dataclasses of str/bytes/int/tuple/dict fields, no
protobuf messages (objects travel as their deterministic encoding) and nothing a
replica would compute differently (the proposer fills in time, uid and the
allocation settings; the state machine never reads a clock or a file).

Results stay plain tuples, as before:
    ("ok", outcome, env_bytes_or_None, rv)   outcome: created, updated, configured,
                                             unchanged, deleted, deleting, evicted, barrier
    ("error", code, message)                 code: already_exists, not_found,
                                             conflict, invalid, internal,
                                             forbidden, too_many_requests (Evict)

A command is pickled as its class and its field values in order (_Command), so
the log holds no field names; journals written by an older skiff must still
replay: a new field goes last, with a default; renaming or moving a class needs
an alias. from_legacy reads the positional tuples skiff wrote before these types.
"""

from dataclasses import dataclass


class _Command:
    """Pickled as (class, field values in order): no field names in the log, and a
    field appended with a default still reads entries written without it."""

    def __reduce__(self):
        # A dataclass's __init__ sets the fields in declaration order: __dict__ keeps it.
        return (type(self), tuple(self.__dict__.values()))


@dataclass(frozen=True)
class Create(_Command):
    """Create an object; refused if its key exists or its namespace does not."""
    request_id: str
    object: bytes          # pb.Object envelope, kinds.encode()d
    now: str               # RFC 3339, the proposer's clock: creationTimestamp
    uid: str               # the proposer's uuid: metadata.uid
    settings: dict | None = None   # the kind's allocation settings (kind.store.settings_section)


@dataclass(frozen=True)
class Update(_Command):
    """Update an existing object.

    subresource "": labels, annotations, owners, finalizers and spec (status kept);
    "status": status only; "binding": set spec.nodeName of an unbound pod and its
    PodScheduled condition in one write (the object carries the pod and node name).
    """
    request_id: str
    object: bytes
    subresource: str = ""
    expected_rv: str = ""  # precondition: "" = none
    settings: dict | None = None
    now: str = ""          # binding: lastTransitionTime of PodScheduled


@dataclass(frozen=True)
class Apply(_Command):
    """Create, or update the spec of, an object (kubectl apply); expected_rv comes
    from the object's own metadata.resourceVersion."""
    request_id: str
    object: bytes
    now: str
    uid: str
    settings: dict | None = None


@dataclass(frozen=True)
class Delete(_Command):
    """Delete the object at key = (kind name, namespace or "", name).

    grace_s: None = the kind's default (a bound pod: terminationGracePeriodSeconds),
    0 = remove at once, > 0 = how long a bound pod's node gets to stop it.
    propagation: "" (the default: Background), Background, Foreground or Orphan; the
    last two add their finalizer (skiff/api/deletion.py) to a kind that owns others.
    """
    request_id: str
    key: tuple
    expected_rv: str = ""
    expected_uid: str = ""
    grace_s: int | None = None
    now: str = ""          # deletionTimestamp of an object marked deleting
    propagation: str = ""


@dataclass(frozen=True)
class Evict(_Command):
    """Evict the pod at key = ("Pod", namespace, name) through its PodDisruptionBudget
    (controlplane/store/eviction.py): the budget check, the budget's decrement and the
    start of the pod's deletion in one step, or nothing at all.

    grace_s as Delete's (the Eviction's deleteOptions.gracePeriodSeconds); now is the
    time recorded in the budget's status.disruptedPods and the pod's deletionTimestamp.
    """
    request_id: str
    key: tuple
    grace_s: int | None = None
    now: str = ""


@dataclass(frozen=True)
class Barrier(_Command):
    """Changes nothing; once applied, a replica has applied everything before it."""
    request_id: str


@dataclass(frozen=True)
class Batch(_Command):
    """Several proposals in one Raft entry (the Batcher's), each with its own request id;
    the result is the list of their results."""
    commands: tuple
    request_id: str = ""   # a batch is never remembered itself, its commands are


WRITES = (Create, Update, Apply, Delete, Evict)


def payload_size(cmd) -> int:
    """How many bytes of objects a command carries into the log (the Batcher's byte cap)."""
    return len(getattr(cmd, "object", b"") or b"")


def from_legacy(cmd):
    """A positional tuple from a journal or dump written before these types, as a command.

    ("create", rid, env, now, uid[, alloc]), ("update", rid, env, sub, rv[, alloc]),
    ("apply", rid, env, now, uid[, alloc]), ("delete", rid, key, rv, uid[, grace_s, now]),
    ("barrier", rid), ("batch", "", [cmd, ...]). Anything else is returned as is (the
    state machine refuses it with an error, never an exception).
    """
    if not isinstance(cmd, tuple) or not cmd:
        return cmd
    op, rest = cmd[0], cmd[1:]
    tail = rest[4] if len(rest) > 4 else None
    if op == "create" and len(rest) >= 4:
        return Create(rest[0], rest[1], rest[2], rest[3], tail)
    if op == "update" and len(rest) >= 4:
        return Update(rest[0], rest[1], rest[2], rest[3], tail)
    if op == "apply" and len(rest) >= 4:
        return Apply(rest[0], rest[1], rest[2], rest[3], tail)
    if op == "delete" and len(rest) >= 4:
        grace_s, now = (rest[4], rest[5]) if len(rest) > 5 else (0, "")
        return Delete(rest[0], tuple(rest[1]), rest[2], rest[3], grace_s, now)
    if op == "barrier" and len(rest) >= 1:
        return Barrier(rest[0])
    if op == "batch" and len(rest) >= 2:
        return Batch(tuple(from_legacy(c) for c in rest[1]))
    return cmd
