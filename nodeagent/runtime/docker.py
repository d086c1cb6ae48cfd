"""The Docker runtime adapter: the engine's state as Observed containers, and idempotent
operations on it (docker SDK, docker.DockerClient(base_url=dockerHost)).

Everything skiff runs carries labels (nodeagent/runtime/labels.py); the engine is
the only record of what runs: list() reads it back from the labels, so an agent
that restarts sees exactly what its predecessor left. Operations tolerate the
state they aim for (stopping a stopped container, removing a missing one).

Inspect results are cached per (container id, state) because a container's
start/finish times and exit code do not change while its state does not.

create() goes through the low-level API with docker-py's own translation of the
high-level keyword arguments (models.containers._create_container_args, docker pinned
in pyproject.toml): ContainerCollection.create() does the same and then inspects the
new container to return a model object, a round trip to a busy engine per container
that the agent never used (it only needs the id).
"""

import logging
import os
import threading

import docker
import docker.errors
from docker.models.containers import _create_container_args

from nodeagent.runtime import labels as L
from nodeagent.runtime import timeutil
from nodeagent.runtime.container import Observed

log = logging.getLogger("skiff.agent.docker")


def connect(docker_host: str, timeout_s: float = 60.0) -> docker.DockerClient:
    # Sync workers, probes and heartbeats share the client: a pool big enough for all.
    return docker.DockerClient(base_url=docker_host, timeout=int(timeout_s), max_pool_size=64)


class ImageError(Exception):
    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason
        self.message = message


class DockerRuntime:
    def __init__(self, client: docker.DockerClient, node_name: str, pull_client: docker.DockerClient | None = None):
        self.client = client
        self.api = client.api
        self.node_name = node_name
        # Pulls get a client of their own whose timeout is the pull timeout: a registry
        # that does not answer must not hold a pod's start for the main client's timeout.
        self.pull_client = pull_client or client
        self._inspect_cache: dict = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------ reading

    def _filters(self, pod_uid: str = "") -> dict:
        label = [f"{L.MANAGED}=true", f"{L.NODE}={self.node_name}"]
        if pod_uid:
            label.append(f"{L.POD_UID}={pod_uid}")
        return {"label": label}

    def list(self, pod_uid: str = "") -> list:
        """Observed containers of this node (of one pod when pod_uid is given)."""
        summaries = self.api.containers(all=True, filters=self._filters(pod_uid))
        out = []
        seen = set()
        for s in summaries:
            cid = s["Id"]
            seen.add(cid)
            obs = self._observe(cid, s.get("State", ""))
            if obs is not None:
                out.append(obs)
        if not pod_uid:
            with self._lock:
                for key in [k for k in self._inspect_cache if k[0] not in seen]:
                    del self._inspect_cache[key]
        return out

    def pod_uids(self) -> set:
        summaries = self.api.containers(all=True, filters=self._filters())
        return {s.get("Labels", {}).get(L.POD_UID, "") for s in summaries} - {""}

    def _observe(self, cid: str, summary_state: str):
        key = (cid, summary_state)
        with self._lock:
            cached = self._inspect_cache.get(key)
        if cached is not None:
            return cached
        try:
            info = self.api.inspect_container(cid)
        except docker.errors.NotFound:
            return None
        obs = observed_from_inspect(info)
        if obs.state == summary_state:
            with self._lock:
                for stale in [k for k in self._inspect_cache if k[0] == cid]:
                    del self._inspect_cache[stale]
                self._inspect_cache[key] = obs
        return obs

    def disk_usage(self, pod_uid: str) -> dict:
        """{container name: bytes} for a pod's init and app containers: the newest instance's
        writable layer (the engine's SizeRw: an engine list with size=1, which walks each
        layer's upper dir) plus its json-file log (LogPath, read from the host: the agent
        runs where the engine's data root is). Older instances are not counted, as the
        kubelet's stats keep only the latest container of each name."""
        summaries = self.api.containers(all=True, filters=self._filters(pod_uid), size=True)
        newest = {}
        for s in summaries:
            lab = s.get("Labels") or {}
            if lab.get(L.CONTAINER_KIND) not in (L.KIND_INIT, L.KIND_APP):
                continue
            name = lab.get(L.CONTAINER_NAME, "")
            rank = (_int(lab.get(L.ATTEMPT)), _int(lab.get(L.RESTART_COUNT)), s.get("Created", 0))
            if name not in newest or rank > newest[name][0]:
                newest[name] = (rank, s)
        out = {}
        for name, (_rank, s) in newest.items():
            out[name] = int(s.get("SizeRw") or 0) + self._log_size(s["Id"])
        return out

    def _log_size(self, cid: str) -> int:
        try:
            path = self.api.inspect_container(cid).get("LogPath") or ""
            return os.path.getsize(path) if path else 0
        except (docker.errors.NotFound, OSError):
            return 0

    def get(self, cid: str):
        try:
            return observed_from_inspect(self.api.inspect_container(cid))
        except docker.errors.NotFound:
            return None

    def version(self) -> str:
        return self.client.version().get("Version", "unknown")

    # ------------------------------------------------------------ images

    def image_id(self, ref: str) -> str:
        """The local image's id, or "" when the engine does not have it."""
        try:
            return self.api.inspect_image(ref)["Id"]
        except docker.errors.ImageNotFound:
            return ""
        except docker.errors.NotFound:
            return ""

    def image_user(self, ref: str) -> str:
        """The user the image runs as (its Config.User: "", "name", "uid", "uid:gid"...);
        "" when the engine does not have the image."""
        try:
            return (self.api.inspect_image(ref).get("Config") or {}).get("User") or ""
        except docker.errors.NotFound:
            return ""

    def images(self) -> list:
        """[(tags, size bytes)] of the engine's tagged images."""
        out = []
        for img in self.api.images():
            tags = tuple(t for t in img.get("RepoTags") or () if t != "<none>:<none>")
            if tags:
                out.append((tags, int(img.get("Size") or 0)))
        return out

    def pull(self, ref: str, auth_configs=()) -> None:
        """Pull ref, with each auth_config (docker's AuthConfig: username, password,
        serveraddress, ...) in turn until one succeeds, as the kubelet tries a pod's matching
        credentials; with none, anonymously. Every failure is in the ImageError's message."""
        repo, tag = _split_ref(ref)
        failures = []
        for auth in list(auth_configs) or [None]:
            try:
                self.pull_client.images.pull(repo, tag=tag, auth_config=auth)
                return
            except Exception as exc:  # noqa: BLE001 - the engine's errors, requests' timeouts and connection errors
                failures.append(_short(exc))
        raise ImageError("ErrImagePull", f'failed to pull image "{ref}": {"; ".join(failures)}')

    # ------------------------------------------------------------ containers

    def create(self, kwargs: dict) -> str:
        """Create a container; if one of that name exists already (an earlier try that
        was interrupted), that one is returned instead."""
        args = dict(kwargs)
        args.setdefault("command", None)
        args["version"] = self.api._version
        try:
            return self.api.create_container(**_create_container_args(args))["Id"]
        except docker.errors.APIError as exc:
            if exc.status_code == 409 and kwargs.get("name"):
                try:
                    return self.api.inspect_container(kwargs["name"])["Id"]
                except docker.errors.NotFound:
                    pass
            raise

    def start(self, cid: str) -> None:
        self.api.start(cid)

    def stop(self, cid: str, timeout_s: float) -> None:
        """SIGTERM (or the image's stop signal), SIGKILL after timeout_s."""
        try:
            self.api.stop(cid, timeout=max(0, int(round(timeout_s))))
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code != 304:  # already stopped
                raise

    def remove(self, cid: str) -> None:
        try:
            self.api.remove_container(cid, force=True, v=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if "is already in progress" not in str(exc):
                raise

    def exec(self, cid: str, cmd: list, timeout_s: float | None = None) -> tuple:
        """(exit code, combined output) of cmd in the container; raises TimeoutError."""
        result = {}

        def run():
            try:
                exec_id = self.api.exec_create(cid, cmd, stdout=True, stderr=True)["Id"]
                output = self.api.exec_start(exec_id)
                code = self.api.exec_inspect(exec_id).get("ExitCode")
                result["value"] = (code if code is not None else -1, output or b"")
            except Exception as exc:  # noqa: BLE001 - reported to the caller
                result["error"] = exc

        if timeout_s is None:
            run()
        else:
            t = threading.Thread(target=run, name="docker-exec", daemon=True)
            t.start()
            t.join(timeout_s)
            if t.is_alive():
                raise TimeoutError(f"command timed out after {timeout_s:g}s")
        if "error" in result:
            raise result["error"]
        code, output = result["value"]
        return code, output.decode("utf-8", errors="replace")

    def events(self, stop_event: threading.Event):
        """Yield (action, pod uid) for container events of this node until stop_event is set."""
        while not stop_event.is_set():
            try:
                stream = self.api.events(decode=True, filters={"type": "container", **self._filters()})
                for ev in stream:
                    if stop_event.is_set():
                        return
                    attrs = (ev.get("Actor") or {}).get("Attributes") or {}
                    uid = attrs.get(L.POD_UID)
                    if uid:
                        yield ev.get("Action", ""), uid
            except Exception as exc:  # noqa: BLE001 - the engine restarted or the stream broke
                log.info("event=docker_events_error error=%s", _short(exc).replace(" ", "_"))
            stop_event.wait(1.0)


def observed_from_inspect(info: dict) -> Observed:
    labels = info.get("Config", {}).get("Labels") or {}
    state = info.get("State") or {}
    network_mode = (info.get("HostConfig") or {}).get("NetworkMode") or ""
    sandbox_id = network_mode[len("container:"):] if network_mode.startswith("container:") else ""
    kind = labels.get(L.CONTAINER_KIND, "")
    return Observed(
        id=info["Id"],
        pod_uid=labels.get(L.POD_UID, ""),
        container=labels.get(L.CONTAINER_NAME, ""),
        kind=kind,
        attempt=_int(labels.get(L.ATTEMPT)),
        restart_count=_int(labels.get(L.RESTART_COUNT)),
        spec_hash=labels.get(L.SPEC_HASH, ""),
        state=state.get("Status", ""),
        exit_code=int(state.get("ExitCode") or 0),
        started_at=timeutil.parse(state.get("StartedAt", "")),
        finished_at=timeutil.parse(state.get("FinishedAt", "")),
        sandbox_id=sandbox_id,
        name=(info.get("Name") or "").lstrip("/"),
        pod_name=labels.get(L.POD_NAME, ""),
        pod_namespace=labels.get(L.POD_NAMESPACE, ""),
        image=(info.get("Config") or {}).get("Image", ""),
        image_id=info.get("Image", ""),
        pid=int(state.get("Pid") or 0),
        oom_killed=bool(state.get("OOMKilled")),
        error=state.get("Error", "") or "",
        grace_s=_int(labels.get(L.TERMINATION_GRACE), 30),
    )


def _int(text, default=0) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        return default


def _split_ref(ref: str) -> tuple:
    if "@" in ref:
        return ref, None
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = ref.rsplit(":", 1)
        return repo, tag
    return ref, "latest"


def _short(exc) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]
