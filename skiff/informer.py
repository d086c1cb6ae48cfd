"""An informer: a local cache of one kind, kept current by list + watch, with handlers.

Invariants:
- handlers run on the informer's own thread, in event order, after the cache
  has been updated; they must only enqueue work (never block);
- after a watch error the informer re-lists (after "expired") or resumes from
  the last version seen, so the cache converges on the store's state;
- a re-list emits synthetic updates for objects that changed and deletes for
  objects that vanished while the watch was down;
- cached objects are shared: callers must copy before modifying;
- a handler added to a running informer is first given an add for every cached
  object (it may see an object's add twice around the first list; handlers
  only enqueue, so that is harmless).

InformerFactory hands out one Informer per kind per process: every loop of a
process that reads a kind reads the same cache, fed by one watch.

Period and cost: no timer of its own beyond the watch slice. The watch is
re-opened every WATCH_SLICE_S (30 s; Kubernetes' reflectors use 5-10 min) from
the last version seen, so a periodic resync (resync_s) is noticed at the end of
a slice; stop() cancels the open stream, so stopping never waits for a slice
to end. Idle, an informer costs one Watch call per slice on its replica and
nothing else; each event costs its decode and the handlers. (Slices were 5 s:
the 80 watches of 20 agents re-opened 16 Watch calls a second on a replica.)
"""

import logging
import threading
import time

from skiff import client as clientmod

log = logging.getLogger("skiff.informer")

WATCH_SLICE_S = 30.0


def key_of(obj) -> str:
    """namespace/name (or name for cluster-scoped objects), like client-go's MetaNamespaceKey."""
    ns = obj.metadata.namespace
    return f"{ns}/{obj.metadata.name}" if ns else obj.metadata.name


class Informer:
    def __init__(self, client: clientmod.Client, kind: str, namespace: str = "",
                 label_selector: str = "", resync_s: float = 0.0, name: str = "",
                 field_selector: str = ""):
        self.client = client
        self.kind = kind
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.resync_s = resync_s
        self._cache: dict = {}
        self._lock = threading.RLock()
        self._handlers = []
        self._dispatch = threading.RLock()   # handlers run one event at a time, in order
        self._synced = threading.Event()
        self._stop = threading.Event()
        self._stream = None                  # the open watch call (stop() cancels it)
        self._thread = threading.Thread(target=self._run, name=name or f"informer-{kind}", daemon=True)

    # ------------------------------------------------------------ handlers

    def add_handler(self, on_add=None, on_update=None, on_delete=None) -> None:
        handler = (on_add, on_update, on_delete)
        with self._dispatch:
            self._handlers.append(handler)
            if on_add is not None:
                for obj in self.list():
                    self._call(handler, 0, obj)

    def _emit(self, which, *args):
        with self._dispatch:
            for handler in self._handlers:
                self._call(handler, which, *args)

    def _call(self, handler, which, *args):
        fn = handler[which]
        if fn is None:
            return
        try:
            fn(*args)
        except Exception:  # noqa: BLE001 - a handler bug must not stop the informer
            log.exception("event=handler_failed kind=%s", self.kind)

    # ------------------------------------------------------------ cache

    def get(self, key: str):
        with self._lock:
            return self._cache.get(key)

    def list(self, namespace: str = ""):
        with self._lock:
            items = list(self._cache.values())
        if namespace:
            items = [o for o in items if o.metadata.namespace == namespace]
        return items

    def keys(self):
        with self._lock:
            return list(self._cache)

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    def wait_synced(self, timeout_s: float = 30.0) -> bool:
        return self._synced.wait(timeout_s)

    # ------------------------------------------------------------ lifecycle

    def start(self) -> "Informer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None:
            stream.cancel()

    def _on_stream(self, stream) -> None:
        self._stream = stream
        if self._stop.is_set():      # stop() ran between the check and the call: end it
            stream.cancel()

    def _relist(self) -> str:
        items, rv = self.client.list(self.kind, namespace=self.namespace,
                                     label_selector=self.label_selector,
                                     field_selector=self.field_selector)
        fresh = {key_of(o): o for o in items}
        with self._lock:
            old = self._cache
            self._cache = fresh
        for k, obj in fresh.items():
            prev = old.get(k)
            if prev is None:
                self._emit(0, obj)
            elif prev.metadata.resource_version != obj.metadata.resource_version:
                self._emit(1, prev, obj)
        for k, prev in old.items():
            if k not in fresh:
                self._emit(2, prev)
        self._synced.set()
        return rv

    def _run(self):
        rv = None
        last_resync = time.monotonic()
        while not self._stop.is_set():
            try:
                if rv is None:
                    rv = self._relist()
                    last_resync = time.monotonic()
                # Watch in slices so periodic resyncs are noticed (stop() cancels the stream).
                for typ, obj, ev_rv in self.client.watch(
                        self.kind, namespace=self.namespace, label_selector=self.label_selector,
                        field_selector=self.field_selector, resource_version=rv, timeout_s=WATCH_SLICE_S,
                        on_stream=self._on_stream):
                    rv = ev_rv
                    self._apply(typ, obj)
                    if self._stop.is_set():
                        return
                if self.resync_s and time.monotonic() - last_resync >= self.resync_s:
                    last_resync = time.monotonic()
                    for obj in self.list():
                        self._emit(1, obj, obj)
            except clientmod.Expired:
                log.info("event=watch_expired kind=%s action=relist", self.kind)
                rv = None
            except clientmod.ApiError as exc:
                log.info("event=watch_error kind=%s error=%s", self.kind, str(exc)[:200].replace(" ", "_"))
                self._stop.wait(0.5)
            except Exception:  # noqa: BLE001
                log.exception("event=informer_failed kind=%s", self.kind)
                rv = None
                self._stop.wait(1.0)

    def _apply(self, typ, obj):
        k = key_of(obj)
        with self._lock:
            prev = self._cache.get(k)
            if typ == "DELETED":
                self._cache.pop(k, None)
            else:
                self._cache[k] = obj
        if typ == "DELETED":
            self._emit(2, prev or obj)
        elif prev is None:
            self._emit(0, obj)
        else:
            self._emit(1, prev, obj)


def _canonical(kind: str) -> str:
    """pods, po and Pod name one kind; the factory keys on its resource name."""
    from skiff.api import kinds   # lazily: the informer itself needs no kind registry
    try:
        return kinds.lookup(kind).resource
    except (KeyError, AttributeError):
        return kind


class InformerFactory:
    """One informer per kind per process (client-go's SharedInformerFactory).

    informer(kind) returns the same Informer every time it is asked for that kind;
    asking again with other selectors is an error (ValueError), so two loops never
    silently watch the same kind twice. start() starts every informer made so far
    (and any made later at once); stop() stops them all. Loops register their
    handlers before start(), or are given the cached objects as adds.
    """

    def __init__(self, client: clientmod.Client, name_prefix: str = "informer"):
        self.client = client
        self.name_prefix = name_prefix
        self._informers: dict = {}   # canonical kind -> Informer
        self._lock = threading.Lock()
        self._started = False

    def informer(self, kind: str, *, namespace: str = "", label_selector: str = "",
                 field_selector: str = "") -> Informer:
        key = _canonical(kind)
        with self._lock:
            inf = self._informers.get(key)
            if inf is None:
                inf = Informer(self.client, kind, namespace=namespace, label_selector=label_selector,
                               field_selector=field_selector, name=f"{self.name_prefix}-{key}")
                self._informers[key] = inf
                if self._started:
                    inf.start()
            elif (inf.namespace, inf.label_selector, inf.field_selector) != \
                    (namespace, label_selector, field_selector):
                raise ValueError(f"informer for {key} exists with namespace={inf.namespace!r} "
                                 f"labelSelector={inf.label_selector!r} fieldSelector={inf.field_selector!r}; "
                                 f"one informer per kind per process")
            return inf

    def informers(self) -> list:
        with self._lock:
            return list(self._informers.values())

    def start(self) -> "InformerFactory":
        with self._lock:
            if self._started:
                return self
            self._started = True
            for inf in self._informers.values():
                inf.start()
        return self

    def stop(self) -> None:
        for inf in self.informers():
            inf.stop()

    @property
    def synced(self) -> bool:
        return all(inf.synced for inf in self.informers())

    def wait_synced(self, timeout_s: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout_s
        return all(inf.wait_synced(max(0.0, deadline - time.monotonic())) for inf in self.informers())
