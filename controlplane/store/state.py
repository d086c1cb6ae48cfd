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
- check() (server-side dry run) runs the very same code as apply() and stops where
  apply() would store: it changes nothing at all (objects, rv, events, remembered
  request ids) and answers as apply() would have.

Commands are the named types of controlplane/store/commands.py (Create, Update,
Apply, Delete, Evict, Barrier, Batch; Evict checks and charges the pod's
PodDisruptionBudget, controlplane/store/eviction.py); positional tuples from older journals are read
through commands.from_legacy. Results: ("ok", outcome, env_bytes_or_None, rv) or
("error", code, message).

What differs per kind comes from the kind registry's store hooks (kind.store):
allocation at create and spec update (a Service's clusterIP, nodePorts and LB
ingress, from the settings the proposer put in the command, so every replica
decides the same; race-free because this apply is the one total order), what a
status write must keep (the allocator's status.loadBalancer), graceful deletion (a
bound pod is marked deleting and its node removes it), re-encryption (a Secret's
sealed fields rewritten by the store, subresource "encryption", controlplane/store/
sealing.py: Secrets reach this state machine sealed, it never decrypts), and cascade (a Namespace
takes everything in it along). Finalizers are generic (skiff/api/deletion.py): a
delete marks an object that has some (or gets one from its propagation policy) with
deletionTimestamp instead of removing it, and the update that empties them removes it; see skiff/api/kinds/registry.py (StoreHooks). Pods can be bound (controlplane/store/binding.py).

Objects are indexed by kind and namespace (self._index, derived from self.objects,
never pickled: rebuilt when a dump is loaded), so listing one kind or emptying one
namespace touches only those objects.
"""

from collections import OrderedDict, deque
from itertools import islice
from typing import NamedTuple

from controlplane.store import binding, eviction
from controlplane.store.commands import WRITES, Apply, Barrier, Batch, Create, Delete, Evict, Update, from_legacy
from controlplane.store.sealing import REWRITE
from skiff.api import deletion, kinds, validation
from skiff.api.assigned import carry_over_assigned
from skiff.api.kinds.policy import POD_DISRUPTION_BUDGET
from skiff.api import objects_pb2 as pb

EVENT_LOG_SIZE = 20000
REMEMBERED_REQUESTS = 20000

# Top-level fields that belong to the object's identity or status, not its content.
_NOT_CONTENT = ("api_version", "kind", "metadata", "status")


class Change(NamedTuple):
    """One entry of the change log. previous rides along so a filtered watch can tell
    an object that starts or stops matching (ADDED/DELETED for that watcher)."""
    rv: int
    type: str              # ADDED, MODIFIED, DELETED
    key: tuple             # (kind, namespace, name)
    object: pb.Object
    previous: pb.Object | None


class StoreState:
    def __init__(self, event_log_size: int = EVENT_LOG_SIZE,
                 remembered_requests: int = REMEMBERED_REQUESTS):
        self.rv = 0
        self.objects: dict = {}          # (kind, namespace, name) -> pb.Object
        self.requests: OrderedDict = OrderedDict()  # request_id -> result
        self.remembered_requests = remembered_requests
        # Change for every change, contiguous in rv.
        self.events: deque = deque(maxlen=event_log_size)
        self._index: dict = {}           # kind -> namespace -> name -> pb.Object

    # ------------------------------------------------------------ snapshots

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_index", None)        # derived: a dump holds each object once
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._index = {}
        for key, env in self.objects.items():
            self._index_put(key, env)

    # ------------------------------------------------------------ reads

    def get(self, key):
        return self.objects.get(key)

    def list(self, kind: str, namespace: str = "") -> list:
        """The stored envelopes of one kind ("" = every namespace), by (namespace, name)."""
        by_ns = self._index.get(kind, {})
        spaces = [namespace] if namespace else sorted(by_ns)
        out = []
        for ns in spaces:
            names = by_ns.get(ns, {})
            out.extend(names[n] for n in sorted(names))
        return out

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
        if isinstance(cmd, tuple):
            cmd = from_legacy(cmd)
        if isinstance(cmd, Batch):
            # Several proposals in one log entry; each keeps its own request id.
            return [self.apply(inner) for inner in cmd.commands]
        request_id = ""
        try:
            request_id = getattr(cmd, "request_id", "")
            if request_id and request_id in self.requests:
                return self.requests[request_id]
            result = self._dispatch(cmd, dry=False)
        except Exception as exc:  # noqa: BLE001 - must never raise, see module doc
            return ("error", "internal", f"store could not apply {type(cmd).__name__}: {exc!r}")
        if request_id and not isinstance(cmd, Barrier):
            self.requests[request_id] = result
            while len(self.requests) > self.remembered_requests:
                self.requests.popitem(last=False)
        return result

    def check(self, cmd):
        """Dry run: the result apply(cmd) would give now, changing nothing (see module doc).
        Request ids are neither consulted nor remembered: a dry run is not a write."""
        if not isinstance(cmd, WRITES):
            return ("error", "invalid", f"cannot dry-run {type(cmd).__name__}")
        try:
            return self._dispatch(cmd, dry=True)
        except Exception as exc:  # noqa: BLE001 - same contract as apply()
            return ("error", "internal", f"store could not check {type(cmd).__name__}: {exc!r}")

    def _dispatch(self, cmd, dry: bool):
        match cmd:
            case Create():
                return self._create(_parse(cmd.object), cmd.now, cmd.uid, cmd.settings, dry)
            case Update():
                return self._update(_parse(cmd.object), cmd.subresource, cmd.expected_rv, "updated",
                                    cmd.settings, cmd.now, dry)
            case Apply():
                env = _parse(cmd.object)
                kind, msg = kinds.unwrap(env)
                if kinds.key_of(kind, msg) not in self.objects:
                    return self._create(env, cmd.now, cmd.uid, cmd.settings, dry)
                return self._update(env, "", msg.metadata.resource_version, "configured",
                                    cmd.settings, cmd.now, dry)
            case Delete():
                return self._delete(tuple(cmd.key), cmd.expected_rv, cmd.expected_uid,
                                    cmd.grace_s, cmd.now, dry, cmd.propagation)
            case Evict():
                return self._evict(tuple(cmd.key), cmd.grace_s, cmd.now, dry)
            case Barrier():
                return ("ok", "barrier", None, self.rv)
        return ("error", "invalid", f"unknown store command {type(cmd).__name__}: {cmd!r:.80}")

    def _create(self, env, now, uid, settings, dry):
        kind, msg = kinds.unwrap(env)
        key = kinds.key_of(kind, msg)
        if key in self.objects:
            return ("error", "already_exists", f'{kind.resource} "{key[2]}" already exists')
        if kind.namespaced and ("Namespace", "", key[1]) not in self.objects:
            return ("error", "not_found", f'namespaces "{key[1]}" not found')
        meta = msg.metadata
        meta.uid = uid   # before allocation: a Job's generated selector is its uid
        err = self._allocate(kind, key, msg, None, settings)
        if err:
            return err
        if kind.store.status_from_controller_only:
            msg.ClearField("status")
        meta.creation_timestamp = now
        meta.generation = 1 if kind.has_spec else 0
        meta.ClearField("deletion_timestamp")
        return self._commit("ADDED", key, env, "created", dry)

    def _update(self, env, subresource, expected_rv, outcome, settings, now, dry):
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
        hooks = kind.store
        if subresource == "status":
            merged.ClearField("status")
            if msg.HasField("status"):
                merged.status.CopyFrom(msg.status)
            if hooks.keep_on_status_write is not None:
                hooks.keep_on_status_write(merged, old)
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
            err = self._finalizers_update(kind, key, merged, old) or self._allocate(kind, key, merged, old, settings)
            if err:
                return err
        elif subresource == REWRITE and hooks.reseal is not None:
            # The store re-encrypting what it decrypted at exactly expected_rv (sealing.py):
            # only the sealed fields change, so an immutable Secret can be rewritten too.
            if not expected_rv:
                return ("error", "invalid", f"subresource {REWRITE} needs the stored resourceVersion")
            hooks.reseal(merged, msg)
        elif subresource == "binding" and binding.supports(kind):
            refused = binding.bind(merged, msg, now)
            if refused:
                return ("error", *refused)
        else:
            return ("error", "invalid", f"unknown subresource {subresource!r} of {kind.resource}")
        if merged == old:
            return ("ok", "unchanged", kinds.encode(current), self.rv)
        if kind.has_spec and merged.spec != old.spec:
            merged.metadata.generation = old.metadata.generation + 1
        meta = merged.metadata
        if meta.deletion_timestamp and not meta.finalizers and not meta.deletion_grace_period_seconds:
            # The last finalizer of an object being deleted is gone: it goes now.
            return self._remove_object(kind, key, dry, kinds.wrap(merged))
        return self._commit("MODIFIED", key, kinds.wrap(merged), outcome, dry)

    @staticmethod
    def _finalizers_update(kind, key, merged, old):
        """Kubernetes' rule: no new finalizers on an object being deleted."""
        if not old.metadata.deletion_timestamp:
            return None
        added = [f for f in merged.metadata.finalizers if f not in old.metadata.finalizers]
        if not added:
            return None
        shown = ", ".join(f'"{f}"' for f in added)
        return ("error", "invalid", f'{kind.name} "{key[2]}" is invalid: metadata.finalizers: Forbidden: '
                f"no new finalizers can be added if the object is being deleted, found new finalizers [{shown}]")

    def _delete(self, key, expected_rv, expected_uid, grace_s, now, dry, propagation=""):
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
        hooks = kind.store
        # Propagation finalizers only on kinds that own others: nothing can wait on the
        # dependents of a kind whose controller creates none (the GC watches no others).
        finalizers = deletion.finalizers_for(obj.metadata.finalizers, propagation if kind.owns else "")
        grace_s = hooks.graceful_delete_s(obj, grace_s) if hooks.graceful_delete_s is not None else 0
        if grace_s or finalizers:
            return self._mark_deleting(key, kind, obj, grace_s, finalizers, now, dry)
        return self._remove_object(kind, key, dry)

    def _evict(self, key, grace_s, now, dry):
        """The eviction subresource: the pod's budget charged and its deletion started in
        one step, or a refusal that changes nothing (see controlplane/store/eviction.py)."""
        current = self.objects.get(key)
        if current is None:
            return ("error", "not_found", f'pods "{key[2]}" not found')
        _, pod = kinds.unwrap(current)
        budgets = [kinds.unwrap(env)[1] for env in self.list(POD_DISRUPTION_BUDGET.name, key[1])]
        refused, charged = eviction.check(pod, budgets, now)
        if refused:
            return ("error", *refused)
        if charged is not None:
            self._commit("MODIFIED", kinds.key_of(POD_DISRUPTION_BUDGET, charged), kinds.wrap(charged),
                         "updated", dry)
        result = self._delete(key, "", "", grace_s, now, dry)
        return ("ok", "evicted", *result[2:]) if result[0] == "ok" else result

    def _mark_deleting(self, key, kind, obj, grace_s, finalizers, now, dry):
        """Graceful deletion and finalizers: the object stays, marked with deletionTimestamp,
        until its node stopped it (a delete with grace 0) and its finalizers are gone.

        A second delete may shorten the grace period, never lengthen it, and may change
        the propagation finalizers (skiff/api/deletion.finalizers_for).
        """
        meta = obj.metadata
        if (meta.deletion_timestamp and meta.deletion_grace_period_seconds <= grace_s
                and list(meta.finalizers) == finalizers):
            return ("ok", "deleting", kinds.encode(self.objects[key]), self.rv)
        marked = kind.message()
        marked.CopyFrom(obj)
        if not marked.metadata.deletion_timestamp:
            marked.metadata.deletion_timestamp = now
            marked.metadata.deletion_grace_period_seconds = grace_s
        else:
            marked.metadata.deletion_grace_period_seconds = min(grace_s, meta.deletion_grace_period_seconds)
        del marked.metadata.finalizers[:]
        marked.metadata.finalizers.extend(finalizers)
        if not finalizers and not marked.metadata.deletion_grace_period_seconds:
            return self._remove_object(kind, key, dry, kinds.wrap(marked))
        return self._commit("MODIFIED", key, kinds.wrap(marked), "deleting", dry)

    def _remove_object(self, kind, key, dry, final=None):
        """Remove key (as `final` when given: the last state with its finalizers emptied)."""
        if kind.store.cascade_namespace and not dry:
            # A namespace takes everything in it along (Kubernetes does this in a
            # controller; here it is one atomic step with one event per object).
            for inner in self._keys_in_namespace(key[2]):
                self._remove(inner, dry)
        return self._remove(key, dry, final)

    def _allocate(self, kind, key, new, old, settings):
        """What the cluster assigns to new (a fresh message, not stored state), if the kind
        allocates: from the other stored objects of the kind and the command's settings."""
        allocate = kind.store.allocate
        if allocate is None:
            return None
        others = []
        for env in self.list(kind.name):
            _, other = kinds.unwrap(env)
            if kinds.key_of(kind, other) != key:
                others.append(other)
        err = allocate(new, old, others, settings)
        if err:
            return ("error", "invalid", f'{kind.name} "{key[2]}" is invalid: {err}')
        return None

    def _keys_in_namespace(self, namespace: str) -> list:
        """Every namespaced object's key in namespace, sorted (from the index, not a scan)."""
        return sorted((kind, namespace, name) for kind, by_ns in self._index.items()
                      for name in by_ns.get(namespace, {}))

    # ------------------------------------------------------------ mutation

    def _remove(self, key, dry, last=None):
        if dry:
            return ("ok", "deleted", kinds.encode(last or self.objects[key]), self.rv)
        env = self.objects.pop(key)
        self._index_drop(key)
        self.rv += 1
        final = pb.Object()
        final.CopyFrom(last or env)
        _, msg = kinds.unwrap(final)
        msg.metadata.resource_version = str(self.rv)
        self.events.append(Change(self.rv, "DELETED", key, final, None))
        return ("ok", "deleted", kinds.encode(final), self.rv)

    def _commit(self, event_type, key, env, outcome, dry):
        if dry:
            # What would be stored, without the version it would get: nothing was stored.
            return ("ok", outcome, kinds.encode(env), self.rv)
        self.rv += 1
        _, msg = kinds.unwrap(env)
        msg.metadata.resource_version = str(self.rv)
        previous = self.objects.get(key)
        self.objects[key] = env
        self._index_put(key, env)
        self.events.append(Change(self.rv, event_type, key, env, previous))
        return ("ok", outcome, kinds.encode(env), self.rv)

    def _index_put(self, key, env):
        kind, ns, name = key
        self._index.setdefault(kind, {}).setdefault(ns, {})[name] = env

    def _index_drop(self, key):
        kind, ns, name = key
        by_ns = self._index.get(kind, {})
        names = by_ns.get(ns, {})
        names.pop(name, None)
        if not names:
            by_ns.pop(ns, None)


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
