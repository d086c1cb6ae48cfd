"""The replicated state machine: every API object, the store-wide resourceVersion,
remembered request ids, and the bounded log of changes that watches resume from.

Invariants (these are what clients may rely on):
- apply() is deterministic: it reads nothing but its arguments and the state
  (no clock, no randomness, no uuids: the proposer passes time and uid in), so
  every replica that applies the same log holds byte-identical state.
- resourceVersion (self.rv) grows by exactly one per object change, store-wide;
  the change log therefore holds contiguous versions, and a watch resumes from
  any version still in it with no gap and no duplicate.
- A command whose request id was seen before returns the remembered result and
  changes nothing (retries after "outcome unknown" are safe).
- apply() never raises: PySyncObj would retry a raising command forever. Every
  check happens before the first mutation, so a refused command changes nothing.

Commands are plain tuples (pickled into the Raft log):
  ("create", request_id, env_bytes, now, uid[, alloc])
  ("update", request_id, env_bytes, subresource, expected_rv[, alloc])
  ("apply",  request_id, env_bytes, now, uid[, alloc])
  ("delete", request_id, key, expected_rv, expected_uid[, grace_s, now])
  ("barrier", request_id)
  ("batch", "", [command, ...])   -> [result, ...]  (proposals coalesced into one entry)
Results: ("ok", outcome, env_bytes_or_None, rv) or ("error", code, message).

Services get their clusterIP, nodePorts and LoadBalancer ingress here, in the one
ordered apply (skiff/api/svcalloc.py, the Service kind's store hook), so allocation is race-free; `alloc`
is the proposer's allocation settings (ServicesConfig.alloc_settings()), carried in
the command so that every replica decides the same. status.loadBalancer belongs to
the allocator: a status write keeps the assigned ingress.
"""

from collections import OrderedDict, deque
from itertools import islice

from skiff.api import svcalloc
from skiff.api import kinds, validation
from skiff.api.assigned import carry_over_assigned
from skiff.api import objects_pb2 as pb

EVENT_LOG_SIZE = 20000
REMEMBERED_REQUESTS = 20000

# Top-level fields that belong to the object's identity or status, not its content.
_NOT_CONTENT = ("api_version", "kind", "metadata", "status")


class StoreState:
    def __init__(self, event_log_size: int = EVENT_LOG_SIZE,
                 remembered_requests: int = REMEMBERED_REQUESTS):
        self.rv = 0
        self.objects: dict = {}          # (kind, namespace, name) -> pb.Object
        self.requests: OrderedDict = OrderedDict()  # request_id -> result
        self.remembered_requests = remembered_requests
        # (rv, type, key, pb.Object, previous pb.Object or None) for every change,
        # contiguous in rv.
        self.events: deque = deque(maxlen=event_log_size)

    # ------------------------------------------------------------ reads

    def get(self, key):
        return self.objects.get(key)

    def first_event_rv(self) -> int:
        """The oldest version a watch can still see; resuming from rv needs rv >= this - 1."""
        return self.events[0][0] if self.events else self.rv + 1

    def events_after(self, rv: int):
        """Changes with version > rv, oldest first; None if some were already dropped."""
        first = self.first_event_rv()
        if rv < first - 1:
            return None
        count = len(self.events) - (rv + 1 - first)
        if count <= 0:
            return []
        # From the right end: O(new events), not O(history) (a deque indexes from its ends;
        # every watcher calls this on every write).
        out = list(islice(reversed(self.events), count))
        out.reverse()
        return out

    def kinds_changed_after(self, rv: int) -> set:
        """The kinds of the changes with version > rv (all kinds kept if some were dropped)."""
        events = self.events_after(rv)
        if events is None:
            return {e[2][0] for e in self.events}
        return {e[2][0] for e in events}

    # ------------------------------------------------------------ apply

    def apply(self, cmd):
        if cmd[0] == "batch":
            # Several proposals in one log entry; each keeps its own request id.
            return [self.apply(inner) for inner in cmd[2]]
        try:
            request_id = cmd[1]
            if request_id and request_id in self.requests:
                return self.requests[request_id]
            result = self._dispatch(cmd)
        except Exception as exc:  # noqa: BLE001 - must never raise, see module doc
            return ("error", "internal", f"store could not apply {cmd[0]}: {exc!r}")
        if request_id and cmd[0] != "barrier":
            self.requests[request_id] = result
            while len(self.requests) > self.remembered_requests:
                self.requests.popitem(last=False)
        return result

    def _dispatch(self, cmd):
        op = cmd[0]
        if op == "create":
            _, _, env_bytes, now, uid, *alloc = cmd
            return self._create(_parse(env_bytes), now, uid, _first(alloc))
        if op == "update":
            _, _, env_bytes, subresource, expected_rv, *alloc = cmd
            return self._update(_parse(env_bytes), subresource, expected_rv, "updated", _first(alloc))
        if op == "apply":
            _, _, env_bytes, now, uid, *alloc = cmd
            env = _parse(env_bytes)
            kind, msg = kinds.unwrap(env)
            if kinds.key_of(kind, msg) not in self.objects:
                return self._create(env, now, uid, _first(alloc))
            expected = msg.metadata.resource_version
            return self._update(env, "", expected, "configured", _first(alloc))
        if op == "delete":
            key, expected_rv, expected_uid = cmd[2:5]
            grace_s, now = (cmd[5], cmd[6]) if len(cmd) > 6 else (0, "")
            return self._delete(tuple(key), expected_rv, expected_uid, grace_s, now)
        if op == "barrier":
            return ("ok", "barrier", None, self.rv)
        return ("error", "invalid", f"unknown store command {op!r}")

    def _create(self, env, now, uid, alloc=None):
        kind, msg = kinds.unwrap(env)
        key = kinds.key_of(kind, msg)
        if key in self.objects:
            return ("error", "already_exists", f'{kind.resource} "{key[2]}" already exists')
        if kind.namespaced and ("Namespace", "", key[1]) not in self.objects:
            return ("error", "not_found", f'namespaces "{key[1]}" not found')
        if kind.name == "Service":
            err = self._allocate(key, msg, None, alloc)
            if err:
                return err
        meta = msg.metadata
        meta.uid = uid
        meta.creation_timestamp = now
        meta.generation = 1 if kind.has_spec else 0
        meta.ClearField("deletion_timestamp")
        return self._commit("ADDED", key, env, "created")

    def _update(self, env, subresource, expected_rv, outcome, alloc=None):
        kind, msg = kinds.unwrap(env)
        key = kinds.key_of(kind, msg)
        current = self.objects.get(key)
        if current is None:
            return ("error", "not_found", f'{kind.resource} "{key[2]}" not found')
        _, old = kinds.unwrap(current)
        if expected_rv and expected_rv != old.metadata.resource_version:
            return ("error", "conflict",
                    f'Operation cannot be fulfilled on {kind.resource} "{key[2]}": the object has '
                    f"been modified (resourceVersion {expected_rv} is now "
                    f"{old.metadata.resource_version}); read it again and retry")
        if msg.metadata.uid and msg.metadata.uid != old.metadata.uid:
            return ("error", "conflict",
                    f'{kind.resource} "{key[2]}": uid {msg.metadata.uid} does not match '
                    f"the stored object's uid {old.metadata.uid} (it was deleted and recreated)")
        merged = kind.message()
        merged.CopyFrom(old)
        if subresource == "status":
            merged.ClearField("status")
            if msg.HasField("status"):
                merged.status.CopyFrom(msg.status)
            if kind.name == "Service":
                # The allocator owns status.loadBalancer (see module doc).
                merged.status.ClearField("load_balancer")
                if old.status.HasField("load_balancer"):
                    merged.status.load_balancer.CopyFrom(old.status.load_balancer)
        elif subresource == "":
            # Against the stored object, not the proposer's possibly stale copy:
            # keep what the cluster assigned (a pod's node, a Service's clusterIP)
            # and refuse changes to immutable fields.
            carry_over_assigned(kind, msg, old)
            errors = validation.validate_update(kind, msg, old)
            if errors:
                return ("error", "invalid", f'{kind.name} "{key[2]}" is invalid:\n'
                        + "\n".join(str(e) for e in errors))
            _merge_content(merged, msg)
            if kind.name == "Service":
                err = self._allocate(key, merged, old, alloc)
                if err:
                    return err
        else:
            return ("error", "invalid", f"unknown subresource {subresource!r}")
        if merged == old:
            return ("ok", "unchanged", kinds.encode(current), self.rv)
        if kind.has_spec and merged.spec != old.spec:
            merged.metadata.generation = old.metadata.generation + 1
        return self._commit("MODIFIED", key, kinds.wrap(merged), outcome)

    def _delete(self, key, expected_rv, expected_uid, grace_s=0, now=""):
        current = self.objects.get(key)
        kind = kinds.BY_NAME.get(key[0])
        if current is None or kind is None:
            resource = kind.resource if kind else key[0]
            return ("error", "not_found", f'{resource} "{key[2]}" not found')
        _, obj = kinds.unwrap(current)
        if expected_rv and expected_rv != obj.metadata.resource_version:
            return ("error", "conflict",
                    f'{kind.resource} "{key[2]}": resourceVersion {expected_rv} is now '
                    f"{obj.metadata.resource_version}; not deleted")
        if expected_uid and expected_uid != obj.metadata.uid:
            return ("error", "conflict", f'{kind.resource} "{key[2]}": uid precondition failed; not deleted')
        if kind.name == "Pod" and obj.spec.node_name and grace_s is None:
            grace_s = (obj.spec.termination_grace_period_seconds
                       if obj.spec.HasField("termination_grace_period_seconds") else 30)
        if kind.name == "Pod" and obj.spec.node_name and grace_s:
            return self._mark_deleting(key, kind, obj, grace_s, now)
        if kind.name == "Namespace":
            # A namespace takes everything in it along (Kubernetes does this in a
            # controller; here it is one atomic step with one event per object).
            for inner in sorted(k for k in self.objects if k[1] == key[2] and k[0] != "Namespace"):
                self._remove(inner)
        return self._remove(key)

    def _mark_deleting(self, key, kind, obj, grace_s, now):
        """Graceful deletion of a bound pod: its node stops it, then removes it (grace 0).

        A second delete may shorten the grace period, never lengthen it.
        """
        meta = obj.metadata
        if meta.deletion_timestamp and meta.deletion_grace_period_seconds <= grace_s:
            return ("ok", "deleting", kinds.encode(self.objects[key]), self.rv)
        marked = kind.message()
        marked.CopyFrom(obj)
        if not marked.metadata.deletion_timestamp:
            marked.metadata.deletion_timestamp = now
        marked.metadata.deletion_grace_period_seconds = grace_s
        return self._commit("MODIFIED", key, kinds.wrap(marked), "deleting")

    def _allocate(self, key, svc, old, alloc):
        """clusterIP/nodePorts/LB ingress for svc (a fresh message, not stored state)."""
        others = [kinds.unwrap(env)[1] for k, env in self.objects.items()
                  if k[0] == "Service" and k != key]
        err = svcalloc.allocate(svc, old, others, alloc)
        if err:
            return ("error", "invalid", f'Service "{key[2]}" is invalid: {err}')
        return None

    # ------------------------------------------------------------ mutation

    def _remove(self, key):
        env = self.objects.pop(key)
        self.rv += 1
        final = pb.Object()
        final.CopyFrom(env)
        _, msg = kinds.unwrap(final)
        msg.metadata.resource_version = str(self.rv)
        self.events.append((self.rv, "DELETED", key, final, None))
        return ("ok", "deleted", kinds.encode(final), self.rv)

    def _commit(self, event_type, key, env, outcome):
        self.rv += 1
        _, msg = kinds.unwrap(env)
        msg.metadata.resource_version = str(self.rv)
        previous = self.objects.get(key)
        self.objects[key] = env
        # The previous version rides along so a filtered watch can tell an object
        # that starts or stops matching (ADDED/DELETED for that watcher).
        self.events.append((self.rv, event_type, key, env, previous))
        return ("ok", outcome, kinds.encode(env), self.rv)


def _first(rest):
    return rest[0] if rest else None


def _parse(env_bytes: bytes) -> pb.Object:
    env = pb.Object()
    env.ParseFromString(env_bytes)
    return env


def _merge_content(merged, new) -> None:
    """Replace what a user owns (labels, annotations, owners, finalizers, spec/data)
    with the new object's; identity, bookkeeping and status stay as stored."""
    meta, new_meta = merged.metadata, new.metadata
    for field in ("labels", "annotations"):
        getattr(meta, field).clear()
        getattr(meta, field).update(getattr(new_meta, field))
    for field in ("owner_references", "finalizers"):
        del getattr(meta, field)[:]
        getattr(meta, field).extend(getattr(new_meta, field))
    for field in merged.DESCRIPTOR.fields:
        if field.name in _NOT_CONTENT:
            continue
        merged.ClearField(field.name)
        if field.is_repeated:
            getattr(merged, field.name).MergeFrom(getattr(new, field.name))
        elif field.message_type is not None:
            if new.HasField(field.name):
                getattr(merged, field.name).CopyFrom(getattr(new, field.name))
        elif field.has_presence:
            if new.HasField(field.name):
                setattr(merged, field.name, getattr(new, field.name))
        else:
            setattr(merged, field.name, getattr(new, field.name))
