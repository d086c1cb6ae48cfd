"""Reads of a replica's applied state, the one way in for the API service and the
bootstrapper (they never touch StoreState, the store lock or the change log).

- get/list/resource_version: this replica's applied state, under the store lock,
  held only as long as a dict lookup or an index walk (never long enough to stall
  the Raft tick). list() walks the kind's index, not every object.
- watch(kind, rv): a cursor over the change log that sleeps on its kind's condition
  (a Pod watcher is not woken by ConfigMap writes) and hands out that kind's changes.
- view(): the read-only cluster view admission plugins get (typed copies).
- dry_run(cmd): what applying cmd would answer now, changing nothing.

Stored envelopes are never mutated after commit (the state machine replaces them),
so list() may hand out references; get() and the view hand out copies.

Secrets are stored sealed (controlplane/store/sealing.py): every read here opens them
(get, list, watch events, the view, dry-run results), and a dry run seals its command as
the write would; a Secret this replica cannot decrypt raises DecryptError, never garbage.
"""

from controlplane.store.encryption import DecryptError
from controlplane.store.sealing import SEALED_KIND, Sealer
from skiff.api import kinds


class Expired(Exception):
    """A watch cursor older than the change log keeps: re-list."""

    def __init__(self, rv: int, oldest: int):
        super().__init__(f"resourceVersion {rv} is too old (oldest kept is {oldest}): "
                         "expired, re-list and watch from the list's resourceVersion")
        self.rv, self.oldest = rv, oldest


class WatchCursor:
    """Changes of one kind after a version, in order, each exactly once.

    rv moves past every change seen, of any kind, so a quiet watcher's cursor keeps
    up with the store and does not expire while other kinds are written.
    """

    def __init__(self, consumer, kind: str, rv: int, sealer=None):
        self._consumer = consumer
        self._cond = consumer.changed_for(kind)
        self.kind = kind
        self.rv = rv
        # Secrets' events carry the opened object (`previous` stays sealed: it is only
        # matched against label and field selectors, which read no sealed field).
        self._sealer = sealer if kind == SEALED_KIND else None

    def next(self, timeout_s: float) -> list:
        """This kind's changes (state.Change) after the cursor, waiting up to timeout_s
        when there are none yet (may return [] on timeout). Raises Expired."""
        with self._cond:
            state = self._consumer.state     # re-read: loading a dump replaces it
            if state.rv <= self.rv:
                self._cond.wait(timeout_s)
                state = self._consumer.state
            events = state.events_after(self.rv)
            if events is None:
                raise Expired(self.rv, state.first_event_rv() - 1)
        if not events:
            return []
        mine = [e for e in events if e[2][0] == self.kind]
        if self._sealer is not None:
            mine = self._open(mine)
        self.rv = events[-1][0]
        return mine

    def _open(self, changes) -> list:
        """Secrets' changes opened. One sealed with a key this replica no longer holds (an
        old key dropped after a rotation) is history the watcher cannot be given: "expired,
        re-list", as for history dropped from the log; the re-list then shows current state,
        or fails loudly if even that cannot be decrypted."""
        out = []
        for change in changes:
            try:
                out.append(_opened(change, self._sealer))
            except DecryptError:
                raise Expired(self.rv, change[0]) from None
        return out


class ClusterView:
    """Read-only typed view of a replica's applied state (what admission plugins get).

    get(kind, namespace, name) -> typed message or None; list(kind, namespace="") ->
    typed messages ("" = every namespace, or a cluster-scoped kind). kind is a Kind's
    name ("Pod"); an unknown name is a KeyError (a programming error). Results are
    copies: a plugin cannot change stored state through them.
    """

    def __init__(self, reader):
        self._reader = reader

    def get(self, kind: str, namespace: str, name: str):
        k = kinds.BY_NAME[kind]
        ns = (namespace or "default") if k.namespaced else ""
        env = self._reader.get((kind, ns, name))
        return None if env is None else kinds.unwrap(env)[1]

    def list(self, kind: str, namespace: str = "") -> list:
        k = kinds.BY_NAME[kind]
        items, _ = self._reader.list(kind, namespace if k.namespaced else "")
        return [_copy(kinds.unwrap(env)[1]) for env in items]


class StoreReader:
    """Reads (and dry runs) against a StoreConsumer's applied state."""

    def __init__(self, consumer, sealer=None):
        self.consumer = consumer
        self.sealer = sealer or Sealer()

    def get(self, key):
        """A copy of the stored envelope at key = (kind, namespace, name), or None."""
        with self.consumer.lock:
            env = self.consumer.state.get(key)
        if env is None:
            return None
        return self.sealer.open_env(env) if key[0] == SEALED_KIND else _copy(env)

    def stored(self, key):
        """The stored envelope at key as the state holds it (sealed), or None: for the
        store's own sealing only. A read-only reference."""
        with self.consumer.lock:
            return self.consumer.state.get(key)

    def list(self, kind: str, namespace: str = "") -> tuple:
        """(the stored envelopes of kind, by namespace and name; the resourceVersion they
        are at). "" = every namespace. Read-only references, see module doc (Secrets:
        opened copies)."""
        with self.consumer.lock:
            state = self.consumer.state
            items, rv = state.list(kind, namespace), state.rv
        if kind == SEALED_KIND:
            items = [self.sealer.open_env(env) for env in items]
        return items, rv

    def resource_version(self) -> int:
        with self.consumer.lock:
            return self.consumer.state.rv

    def watch(self, kind: str, rv: int) -> WatchCursor:
        """A cursor over kind's changes after version rv (from list(), or a client's)."""
        return WatchCursor(self.consumer, kind, rv, self.sealer)

    def view(self) -> ClusterView:
        return ClusterView(self)

    def dry_run(self, cmd):
        """The result applying cmd would give on this replica now; nothing is stored,
        no version used, no request id remembered (StoreState.check). The command is
        sealed as propose() seals it, so the answer compares as the write would."""
        cmd = self.sealer.seal_command(cmd, self.stored)
        with self.consumer.lock:
            result = self.consumer.state.check(cmd)
        return self.sealer.open_result(result)


def _opened(change, sealer):
    """A change with its object opened (a Change; a plain tuple from an older dump stays one)."""
    if hasattr(change, "_replace"):
        return change._replace(object=sealer.open_env(change.object))
    return (*change[:3], sealer.open_env(change[3]), *change[4:])


def _copy(msg):
    out = type(msg)()
    out.CopyFrom(msg)
    return out
