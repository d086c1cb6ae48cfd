"""A pod's ServiceAccount credentials on the node, and their refresh (kubelet's token manager).

For a pod whose spec.automountServiceAccountToken is true (the ServiceAccount admission
plugin decides it at creation: skiff/satoken.py automount), the agent keeps

    <dataDir>/pods/<uid>/serviceaccount/token       a JWT bound to the pod (TokenRequest)
                                        ca.crt      the cluster CA (see below)
                                        namespace   the pod's namespace

and bind-mounts the directory read-only at /var/run/secrets/kubernetes.io/serviceaccount in
every container that does not mount something else there itself (Kubernetes skips those
containers too). With a pod fsGroup the directory and files are group-owned by it (volumes.
set_ownership), so a non-root user in that group reads the token. The directory is mounted, not the files, so a refreshed token (written to a
temporary file and renamed over the old one) is what the containers read next.

Tokens: asked for AGENT_EXPIRATION_S (3607 s) bound to the pod's name and uid; refreshed
once 80 % of their life has passed, as kubelet does. A failed refresh is retried on the
next pass; the old token stays until it expires. What a token is for (namespace, pod, uid,
account) is also kept next to the directory, in <dataDir>/pods/<uid>/serviceaccount.json
(not mounted): a restarted agent, which adopts running pods without starting their
containers, finds their tokens there on its first pass and renews them at once.

ca.crt: the CA the API server's certificate chains to. Until the API serves TLS there is
none: the agent writes the file named by its config's CA file when it has one, else an
empty ca.crt (the files' set is Kubernetes'; the content arrives with mTLS).

A control plane that issues no tokens (no serviceAccounts.keyFile) answers
FAILED_PRECONDITION: the pod still starts, with namespace and ca.crt and no token, and the
agent logs event=sa_token_unavailable once per pod.

Projected tokens (serviceAccountToken sources of projected volumes: podsync/projected.py):
projected_token(pod, audience, expiration_s) asks CreateToken for that audience and lifetime,
bound to the pod, keeps it in memory per (pod, audience, lifetime) and asks for a new one once
80 % of its life has passed; the pod's sync, which rewrites the volume, calls it (the agent's
resync, 5 s, so a token is renewed within a resync of its due time). They are forgotten with
the pod; a restarted agent asks for new ones on its first pass.

Period and cost: the refresh runner (start(): a BoundedFrequencyRunner) runs when the
earliest token is due, at the latest every REFRESH_CHECK_S (60 s); an idle pass walks this
node's pods' entries (a dict) and costs no API call.
"""

import json
import logging
import os
import threading
import time
from dataclasses import dataclass

import grpc

from skiff import client as clientmod
from skiff.reconcile import BoundedFrequencyRunner
from skiff.satoken import AGENT_EXPIRATION_S, MOUNT_PATH, REFRESH_FRACTION, automount

from nodeagent.podsync import volumes

log = logging.getLogger("skiff.agent.satoken")

REFRESH_CHECK_S = 60.0
DIR_NAME = "serviceaccount"


def token_dir(data_dir: str, uid: str) -> str:
    return os.path.join(volumes.pod_dir(data_dir, uid), DIR_NAME)


def _record_path(data_dir: str, uid: str) -> str:
    return os.path.join(volumes.pod_dir(data_dir, uid), DIR_NAME + ".json")


def refresh_at(issued_at: float, expires_at: float) -> float:
    """When a token issued at issued_at, expiring at expires_at, is renewed (unix seconds)."""
    return issued_at + REFRESH_FRACTION * max(0.0, expires_at - issued_at)


@dataclass
class _Projected:
    token: str
    refresh_at: float
    expires_at: float


@dataclass
class _Entry:
    namespace: str
    pod: str
    uid: str
    account: str
    refresh_at: float = 0.0
    expires_at: float = 0.0
    no_token: bool = False       # the control plane issues none (no signing key)


class PodTokens:
    """request(namespace, account, pod, uid, expiration_s) -> TokenResponse is the API's
    CreateToken; ca_bundle() -> bytes the cluster CA; clock: unix seconds."""

    def __init__(self, data_dir: str, request, ca_bundle=lambda: b"", clock=time.time,
                 expiration_s: int = AGENT_EXPIRATION_S):
        self.data_dir = data_dir
        self._request = request
        self._ca_bundle = ca_bundle
        self._clock = clock
        self.expiration_s = expiration_s
        self._entries: dict = {}
        self._projected: dict = {}      # (uid, audience, expiration_s) -> _Projected
        self._lock = threading.Lock()
        self.runner = None

    def start(self) -> "PodTokens":
        self.runner = BoundedFrequencyRunner("sa-tokens", self.refresh, max_interval_s=REFRESH_CHECK_S,
                                             retry_base_s=5.0, retry_max_s=REFRESH_CHECK_S, logger=log).start()
        return self

    def stop(self) -> None:
        if self.runner is not None:
            self.runner.stop()

    # ------------------------------------------------------------ mounting

    def mount(self, pod, container, mounts: list) -> None:
        """Append the credentials' bind to a container's mounts [(target, source, read_only)]
        when the pod automounts and the container mounts nothing of its own there.
        volumes.VolumeError when the token cannot be had (the start is retried)."""
        if not automount(pod) or any(t == MOUNT_PATH for t, _, _ in mounts):
            return
        mounts.append((MOUNT_PATH, self.ensure(pod), True))

    def ensure(self, pod) -> str:
        """The pod's credentials directory, complete; fetches the first token if needed."""
        meta = pod.metadata
        path = token_dir(self.data_dir, meta.uid)
        with self._lock:
            entry = self._entries.get(meta.uid)
            if entry is None:
                entry = _Entry(meta.namespace, meta.name, meta.uid, pod.spec.service_account_name or "default")
                self._entries[meta.uid] = entry
        os.makedirs(path, exist_ok=True)
        os.chmod(path, 0o755)
        _write_if_changed(_record_path(self.data_dir, meta.uid), json.dumps(
            {"namespace": entry.namespace, "pod": entry.pod, "uid": entry.uid, "account": entry.account},
            sort_keys=True).encode())
        _write_if_changed(os.path.join(path, "namespace"), meta.namespace.encode())
        _write_if_changed(os.path.join(path, "ca.crt"), self._ca_bundle() or b"")
        if not entry.no_token and (not os.path.exists(os.path.join(path, "token")) or
                                   self._clock() >= entry.refresh_at):
            try:
                self._fetch(entry, path)
            except clientmod.ApiError as exc:
                raise volumes.VolumeError(
                    f'MountVolume.SetUp failed for volume "kube-api-access": failed to fetch token: {exc}') from None
        gid = volumes.fs_group(pod)
        if gid is not None:
            # group-readable by the pod's fsGroup, as Kubernetes' projected kube-api-access
            # volume; a refreshed token is renamed in and inherits the setgid dir's group
            volumes.set_ownership(path, gid, read_only=True)
        return path

    def _fetch(self, entry: _Entry, path: str) -> None:
        now = self._clock()
        try:
            resp = self._request(entry.namespace, entry.account, entry.pod, entry.uid, self.expiration_s)
        except clientmod.ApiError as exc:
            if exc.code == grpc.StatusCode.FAILED_PRECONDITION:
                entry.no_token = True
                log.warning("event=sa_token_unavailable pod=%s/%s reason=control_plane_has_no_signing_key",
                            entry.namespace, entry.pod)
                return
            raise
        expires_at = now + max(1, resp.expiration_seconds)
        _write_atomic(os.path.join(path, "token"), resp.token.encode())
        entry.expires_at = expires_at
        entry.refresh_at = refresh_at(now, expires_at)
        log.info("event=sa_token_written pod=%s/%s account=%s expires_in_s=%d",
                 entry.namespace, entry.pod, entry.account, resp.expiration_seconds)

    def projected_token(self, pod, audience: str, expiration_s: int) -> str:
        """A token of the pod's account for audience ("" = the API server), bound to the pod:
        the one kept, or a new one once the kept one is 80 % through its life.
        volumes.VolumeError when none can be had (no signing key, or the API refused)."""
        meta = pod.metadata
        key = (meta.uid, audience, int(expiration_s))
        now = self._clock()
        with self._lock:
            kept = self._projected.get(key)
        if kept is not None and now < kept.refresh_at:
            return kept.token
        account = pod.spec.service_account_name or "default"
        try:
            resp = self._request(meta.namespace, account, meta.name, meta.uid, int(expiration_s),
                                 audiences=[audience] if audience else [])
        except clientmod.ApiError as exc:
            if kept is not None and now < kept.expires_at:
                log.info("event=sa_token_refresh_failed pod=%s/%s audience=%s error=%s", meta.namespace,
                         meta.name, audience, str(exc)[:160].replace(" ", "_"))
                return kept.token         # still valid: retried on the next sync
            raise volumes.VolumeError(f"failed to fetch token for audience {audience!r} "
                                      f"of serviceaccount {meta.namespace}/{account}: {exc}") from None
        expires_at = now + max(1, resp.expiration_seconds)
        with self._lock:
            self._projected[key] = _Projected(resp.token, refresh_at(now, expires_at), expires_at)
        log.info("event=sa_token_projected pod=%s/%s account=%s audience=%s expires_in_s=%d",
                 meta.namespace, meta.name, account, audience or "-", resp.expiration_seconds)
        return resp.token

    # ------------------------------------------------------------ refresh

    def refresh(self) -> float:
        """Renew every token that is due; forget pods whose directory is gone. Returns the
        seconds until the next one is due (at most REFRESH_CHECK_S)."""
        self._adopt()
        with self._lock:
            entries = list(self._entries.values())
        now = self._clock()
        next_due = now + REFRESH_CHECK_S
        for entry in entries:
            path = token_dir(self.data_dir, entry.uid)
            if not os.path.isdir(path):
                with self._lock:
                    self._entries.pop(entry.uid, None)
                continue
            if entry.no_token:
                continue
            if now >= entry.refresh_at:
                try:
                    self._fetch(entry, path)
                except clientmod.ApiError as exc:
                    log.info("event=sa_token_refresh_failed pod=%s/%s error=%s", entry.namespace, entry.pod,
                             str(exc)[:160].replace(" ", "_"))
                    continue
            next_due = min(next_due, entry.refresh_at)
        return max(1.0, next_due - now)

    def _adopt(self) -> None:
        """Entries for the pods whose credentials are on disk but not known here (an agent
        restart): due at once, since the expiry of the token on disk is not known."""
        for uid in volumes.pod_uids_on_disk(self.data_dir):
            with self._lock:
                if uid in self._entries:
                    continue
            try:
                with open(_record_path(self.data_dir, uid), encoding="utf-8") as f:
                    rec = json.load(f)
                entry = _Entry(rec["namespace"], rec["pod"], rec["uid"], rec["account"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if not os.path.isdir(token_dir(self.data_dir, uid)):
                continue
            with self._lock:
                self._entries.setdefault(uid, entry)

    def forget(self, uid: str) -> None:
        with self._lock:
            self._entries.pop(uid, None)
            for key in [k for k in self._projected if k[0] == uid]:
                del self._projected[key]

    def tracked(self) -> list:
        with self._lock:
            return sorted(self._entries)


def _write_if_changed(path: str, data: bytes) -> None:
    try:
        with open(path, "rb") as f:
            if f.read() == data:
                return
    except FileNotFoundError:
        pass
    _write_atomic(path, data)


def _write_atomic(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
