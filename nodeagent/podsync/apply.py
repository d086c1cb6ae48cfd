"""The applier: carries out the planner's actions on the engine, idempotently.

- CreateSandbox: the pod's files (volumes, /etc/hosts), the pause image, then the
  pause container (network none, hostname, shareable IPC), then the pod network
  (nodeagent.network: veth into the pause's netns, pod IP) and /etc/hosts again with
  the pod IP; a node whose network is not ready yet (no podCIDR) creates no sandbox;
- before any container starts, the sandbox's network is ensured (a sandbox whose
  network setup failed never runs containers without it);
- StartContainer: image per imagePullPolicy (with the credentials of the pod's
  imagePullSecrets that match the image's registry: podsync/pullsecrets.py; after a failed
  pull, ImagePullBackOff: podsync/pullbackoff.py), the securityContext's checks (runAsNonRoot
  against the image's user), environment, mounts, then create +
  start (events Pulled, Created, Started), then the postStart hook (a failed hook
  kills the container: event FailedPostStartHook); the back-off entry the planner
  computed is recorded before the start, as kubelet does;
- KillContainer: event Killing, the preStop hook (bounded by the grace period),
  then docker stop with what is left of it (at least 2 s unless the grace is 0):
  SIGTERM, SIGKILL at the end; kills of init/app containers that follow each
  other run in parallel, a sandbox is stopped after them;
- RemoveContainer; FinalizePod: remove every container of the pod, unmount and
  remove its directory, release its IP and veth, then (a pod being deleted) delete it
  in the API with grace 0 and the uid as precondition.

A start that fails records (reason, message) per container in start_errors (the
status shows it as the container's waiting reason) and a Warning event; the other
actions still run. Outcome.failed tells the caller to retry with back-off.
"""

import concurrent.futures
import logging
import os
import threading
import time
from dataclasses import dataclass

import docker.errors

from nodeagent.dns import resolvconf
from nodeagent.podsync import env as envmod
from nodeagent.podsync import projected as projectedmod
from nodeagent.podsync import pullbackoff, pullsecrets, spechash, volumes
from nodeagent.podsync.model import (
    CreateSandbox, FinalizePod, KillContainer, RemoveContainer, StartContainer, WaitBackoff)
from nodeagent.podsync.plan import MIN_GRACE_S, pod_grace_s
from nodeagent.podsync.projected import ProjectedVolumes
from nodeagent.podsync.service_env import service_env
from nodeagent.probes import handlers
from nodeagent.runtime import labels as L
from nodeagent.runtime import security
from nodeagent.runtime import spec as specmod
from nodeagent.runtime.container import APP, INIT, SANDBOX
from nodeagent.runtime.docker import ImageError
from skiff import client as clientmod
from skiff.api.defaults import default_pull_policy

log = logging.getLogger("skiff.agent.apply")

POST_START_TIMEOUT_S = 30.0
EVENTS_FLUSH_S = 2.0         # a pod's status write waits at most this long for its events (skiff/events.py)
PULL_RETRY_AFTER_S = 300.0   # after a failed "Always" pull, use the local image without asking again


@dataclass
class Outcome:
    changed: bool = False
    failed: bool = False
    finalized: bool = False


class StartError(Exception):
    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason
        self.message = message


class Applier:
    def __init__(self, *, runtime, node_name: str, data_dir: str, pause_image: str, host_ip: str,
                 recorder=None, get_configmap=None, get_secret=None, delete_pod=None, probes=None,
                 allocatable=None, network=None, list_services=None, cluster_dns=None, sa_tokens=None):
        self.runtime = runtime
        # ServiceAccount credentials (nodeagent/podsync/satoken.PodTokens), or None: none mounted.
        self.sa_tokens = sa_tokens
        # Service links and ClusterFirst DNS: list_services(ns) -> [Service];
        # cluster_dns() -> the node DNS address ("" while there is none).
        self.list_services = list_services or (lambda ns: [])
        self.cluster_dns = cluster_dns or (lambda: "")
        self.network = network             # nodeagent.network.manager.NetworkManager, or None (loopback only)
        self.node_name = node_name
        self.data_dir = data_dir
        self.pause_image = pause_image
        self.host_ip = host_ip
        self.recorder = recorder
        self.get_configmap = get_configmap or (lambda ns, name: None)
        self.get_secret = get_secret or (lambda ns, name: None)
        self.delete_pod = delete_pod
        self.probes = probes
        self.allocatable = allocatable or {}
        # downwardAPI and projected volumes: written at the start, refreshed on every sync.
        self.projected = ProjectedVolumes(data_dir, self.get_configmap, self.get_secret, tokens=sa_tokens,
                                          host_ip=host_ip, allocatable=self.allocatable)
        self.backoff_state: dict = {}
        self.start_errors: dict = {}       # pod uid -> {container name: (reason, message)}
        self._pull_failed: dict = {}       # image -> monotonic time of the last failed pull
        self.pull_backoff = pullbackoff.PullBackoff()   # ImagePullBackOff per (pod, image)
        self._backoff_events: set = set()  # (backoff key, delay) already announced
        self._lock = threading.Lock()

    # ------------------------------------------------------------ entry

    def apply(self, pod, uid: str, actions: list, observed: list) -> Outcome:
        """Run actions in order (pod is None for an orphan)."""
        out = Outcome()
        ctx = _Ctx(pod, uid, observed)
        i = 0
        while i < len(actions):
            action = actions[i]
            if isinstance(action, KillContainer) and action.kind != SANDBOX:
                batch = [action]
                while i + 1 < len(actions) and isinstance(actions[i + 1], KillContainer) \
                        and actions[i + 1].kind != SANDBOX:
                    i += 1
                    batch.append(actions[i])
                self._kill_batch(ctx, batch, out)
            else:
                self._one(ctx, action, out)
            if out.finalized:
                break
            i += 1
        return out

    def _one(self, ctx, action, out):
        try:
            if isinstance(action, CreateSandbox):
                self._create_sandbox(ctx, action, out)
            elif isinstance(action, StartContainer):
                self._start(ctx, action, out)
            elif isinstance(action, KillContainer):
                self._kill(ctx, action)
                out.changed = True
            elif isinstance(action, RemoveContainer):
                self.runtime.remove(action.container_id)
                out.changed = True
            elif isinstance(action, WaitBackoff):
                self._announce_backoff(ctx, action)
            elif isinstance(action, FinalizePod):
                self._finalize(ctx, action)
                out.changed = out.finalized = True
        except StartError as exc:
            out.failed = True
            log.info("event=action_failed pod=%s action=%s reason=%s", ctx.ref, type(action).__name__, exc.reason)
        except Exception as exc:  # noqa: BLE001 - one action failing must not stop the rest
            out.failed = True
            log.warning("event=action_failed pod=%s action=%s error=%s", ctx.ref, type(action).__name__,
                        str(exc)[:300].replace(" ", "_"))

    # ------------------------------------------------------------ sandbox

    def _create_sandbox(self, ctx, action, out):
        pod = ctx.pod
        if action.recreate:
            self._event(pod, "Normal", "SandboxChanged", "Pod sandbox changed, it will be killed and re-created.")
        try:
            ctx.volume_paths = volumes.prepare(self.data_dir, pod, self.get_configmap, self.get_secret,
                                               projected=self._prepare_projected)
        except volumes.VolumeError as exc:
            self._event(pod, "Warning", "FailedMount", str(exc))
            self._record_pod_error(pod, "ContainerCreating", str(exc))
            raise StartError("FailedMount", str(exc)) from None
        except clientmod.ApiError as exc:
            raise StartError("FailedMount", f"reading a volume's source: {exc}") from None
        volumes.write_hosts(self.data_dir, pod, self.pod_ip(pod))
        if self._wants_network(pod) and not self.network.ready():
            msg = "network is not ready: the node has no podCIDR yet"
            self._record_pod_error(pod, "ContainerCreating", msg)
            raise StartError("NetworkNotReady", msg)
        if not self.runtime.image_id(self.pause_image):
            try:
                self.runtime.pull(self.pause_image)
            except ImageError as exc:
                msg = f"Failed to create pod sandbox: {exc.message}"
                self._event(pod, "Warning", "FailedCreatePodSandBox", msg)
                self._record_pod_error(pod, "ContainerCreating", msg)
                raise StartError("FailedCreatePodSandBox", msg) from None
        meta = pod.metadata
        name = L.container_name(meta.name, meta.namespace, meta.uid, L.SANDBOX, action.attempt)
        labels = specmod.make_labels(pod, self.node_name, L.SANDBOX, SANDBOX, spechash.sandbox_hash(pod),
                                     0, action.attempt, pod_grace_s(pod))
        try:
            cid = self.runtime.create(specmod.sandbox_kwargs(pod, name=name, labels=labels, image=self.pause_image))
            self.runtime.start(cid)
        except docker.errors.APIError as exc:
            msg = f"Failed to create pod sandbox: {_explain(exc)}"
            self._event(pod, "Warning", "FailedCreatePodSandBox", msg)
            raise StartError("FailedCreatePodSandBox", msg) from None
        ctx.sandbox_id = cid
        out.changed = True
        log.info("event=sandbox_started pod=%s attempt=%d id=%s", ctx.ref, action.attempt, cid[:12])
        self.ensure_network(pod, cid)
        with self._lock:
            self.start_errors.pop(meta.uid, None)

    # ------------------------------------------------------------ containers

    def _start(self, ctx, action, out):
        pod = ctx.pod
        spec = _container_spec(pod, action.kind, action.container)
        if spec is None:
            return
        if action.remove_id:
            self.runtime.remove(action.remove_id)
            out.changed = True
        sandbox_id = ctx.current_sandbox()
        if not sandbox_id:
            raise StartError("NoSandbox", "the pod has no running sandbox")
        self.ensure_network(pod, sandbox_id)
        try:
            self._start_container(ctx, spec, action, sandbox_id)
        except StartError as exc:
            with self._lock:
                self.start_errors.setdefault(ctx.uid, {})[spec.name] = (exc.reason, exc.message)
            self._event(pod, "Warning", "Failed", f"Error: {exc.message}")
            raise
        out.changed = True
        with self._lock:
            errors = self.start_errors.get(ctx.uid)
            if errors:
                errors.pop(spec.name, None)

    def _start_container(self, ctx, spec, action, sandbox_id):
        pod = ctx.pod
        meta = pod.metadata
        if ctx.volume_paths is None:
            try:
                ctx.volume_paths = volumes.prepare(self.data_dir, pod, self.get_configmap, self.get_secret,
                                                   projected=self._prepare_projected)
            except volumes.VolumeError as exc:
                self._event(pod, "Warning", "FailedMount", str(exc))
                raise StartError("ContainerCreating", str(exc)) from None
            except clientmod.ApiError as exc:
                raise StartError("ContainerCreating", f"reading a volume's source: {exc}") from None
        else:
            self.refresh_volumes(pod)   # e.g. status.podIP, known once the sandbox's network is up
        # A hostNetwork pod sees the node's own /etc/hosts, as in Kubernetes.
        hosts = "" if pod.spec.host_network else volumes.write_hosts(self.data_dir, pod, self.pod_ip(pod))
        self._ensure_image(pod, spec)
        image_user, seccomp_json = self._security_inputs(pod, spec)
        try:
            env = envmod.resolve_env(pod, spec, self.get_configmap, self.get_secret,
                                     host_ip=self.host_ip, pod_ip=self.pod_ip(pod), allocatable=self.allocatable,
                                     service_vars=service_env(pod, self._link_services(meta.namespace)))
            command, args = envmod.command_and_args(spec, env)
            mounts = volumes.container_mounts(pod, spec, ctx.volume_paths, hosts)
            if self.sa_tokens is not None:
                self.sa_tokens.mount(pod, spec, mounts)
            resolv = self._write_resolv_conf(pod)
            if resolv and not any(t == "/etc/resolv.conf" for t, _, _ in mounts):
                mounts.append(("/etc/resolv.conf", resolv, False))
        except (envmod.EnvError, volumes.VolumeError) as exc:
            raise StartError("CreateContainerConfigError", str(exc)) from None
        except clientmod.ApiError as exc:
            raise StartError("CreateContainerConfigError", f"reading the environment's sources: {exc}") from None
        volumes.ensure_sub_paths(mounts, ctx.volume_paths)
        name = L.container_name(meta.name, meta.namespace, meta.uid, spec.name, action.attempt)
        labels = specmod.make_labels(pod, self.node_name, spec.name, action.kind, spechash.container_hash(spec),
                                     action.restart_count, action.attempt, pod_grace_s(pod))
        kwargs = specmod.container_kwargs(pod, spec, name=name, labels=labels, sandbox_id=sandbox_id, env=env,
                                          command=command, args=args, mounts=mounts, image_user=image_user,
                                          localhost_profile=seccomp_json)
        if action.backoff_key is not None and action.backoff_next is not None:
            with self._lock:
                self.backoff_state[action.backoff_key] = action.backoff_next
        try:
            cid = self.runtime.create(kwargs)
        except docker.errors.APIError as exc:
            raise StartError("CreateContainerError", _explain(exc)) from None
        self._event(pod, "Normal", "Created", f"Created container {spec.name}")
        try:
            self.runtime.start(cid)
        except docker.errors.APIError as exc:
            raise StartError("RunContainerError", _explain(exc)) from None
        self._event(pod, "Normal", "Started", f"Started container {spec.name}")
        log.info("event=container_started pod=%s container=%s kind=%s attempt=%d restarts=%d id=%s",
                 ctx.ref, spec.name, action.kind, action.attempt, action.restart_count, cid[:12])
        if spec.lifecycle.HasField("post_start"):
            ok, message = handlers.run_handler(spec.lifecycle.post_start, self.runtime, spec, cid,
                                               self._sandbox_pid(sandbox_id), POST_START_TIMEOUT_S)
            if not ok:
                self._event(pod, "Warning", "FailedPostStartHook", f"PostStartHook failed: {message}"[:1000])
                self._event(pod, "Normal", "Killing",
                            f"FailedPostStartHook: container {spec.name} will be killed and restarted")
                self.runtime.stop(cid, max(MIN_GRACE_S, pod_grace_s(pod)))

    def _security_inputs(self, pod, spec) -> tuple:
        """(image user, Localhost seccomp JSON) the securityContext needs; StartError
        CreateContainerConfigError when it forbids the start (runAsNonRoot on a root
        image, a Localhost profile missing on this node), as kubelet's generateContainerConfig."""
        image_user = ""
        if security.needs_image_user(pod, spec):
            image_user = self.runtime.image_user(spec.image)
        message = security.non_root_error(pod, spec, image_user)
        if message is not None:
            raise StartError(security.SecurityError.reason, message)
        eff = security.effective(pod, spec)
        if eff.seccomp_type != security.SECCOMP_LOCALHOST:
            return image_user, ""
        try:
            return image_user, security.read_localhost_profile(self.data_dir, eff.seccomp_localhost)
        except security.SecurityError as exc:
            raise StartError(exc.reason, str(exc)) from None

    def _ensure_image(self, pod, spec):
        ref = spec.image
        policy = spec.image_pull_policy or default_pull_policy(ref)
        present = self.runtime.image_id(ref)
        already = f'Container image "{ref}" already present on machine'
        if policy == "Never":
            if not present:
                msg = f'Container image "{ref}" is not present with pull policy of Never'
                self._event(pod, "Warning", "ErrImageNeverPull", msg)
                raise StartError("ErrImageNeverPull", msg)
            self._event(pod, "Normal", "Pulled", already)
            return
        if policy == "IfNotPresent" and present:
            self._event(pod, "Normal", "Pulled", already)
            return
        if policy == "Always" and present:
            with self._lock:
                failed_at = self._pull_failed.get(ref)
            if failed_at is not None and time.monotonic() - failed_at < PULL_RETRY_AFTER_S:
                self._event(pod, "Normal", "Pulled", already)
                return
        uid = pod.metadata.uid
        backing_off = self.pull_backoff.waiting(uid, ref, time.monotonic())
        if backing_off is not None:
            self._event(pod, "Normal", "BackOff", f'Back-off pulling image "{ref}"')
            raise StartError("ImagePullBackOff", backing_off)
        auths = self._pull_auths(pod, ref)
        self._event(pod, "Normal", "Pulling", f'Pulling image "{ref}"')
        t0 = time.monotonic()
        try:
            self.runtime.pull(ref, auths)
        except ImageError as exc:
            if present:
                with self._lock:
                    self._pull_failed[ref] = time.monotonic()
                self._event(pod, "Warning", "Failed", f"{exc.message}; using the image already present on "
                                                      "the machine (pull policy Always, no registry reachable)")
                return
            self.pull_backoff.failed(uid, ref, exc.message, time.monotonic())
            self._event(pod, "Warning", "Failed", exc.message)
            raise StartError(exc.reason, exc.message) from None
        self.pull_backoff.succeeded(uid, ref)
        with self._lock:
            self._pull_failed.pop(ref, None)
        self._event(pod, "Normal", "Pulled", f'Successfully pulled image "{ref}" in {time.monotonic() - t0:.3f}s')

    def _pull_auths(self, pod, ref) -> list:
        """The engine auth configs for pulling ref: the pod's imagePullSecrets matching its
        registry, most specific first. A secret that cannot be read does not stop the pull
        (it may be public): a Warning FailedToRetrieveImagePullSecret says so, as the kubelet."""
        if not pod.spec.image_pull_secrets:
            return []
        ring, missing = pullsecrets.Keyring.for_pod(pod, self.get_secret)
        if missing:
            self._event(pod, "Warning", "FailedToRetrieveImagePullSecret",
                        f"Unable to retrieve some image pull secrets ({', '.join(missing)}); "
                        "attempting to pull the image may not succeed.")
        matches = ring.lookup(ref)
        log.info("event=pull_credentials pod=%s image=%s matching=%d missing=%d",
                 pod.metadata.name, ref, len(matches), len(missing))
        return [cred.auth_config(key.split("/", 1)[0]) for key, cred in matches]

    # ------------------------------------------------------------ stopping

    def _kill_batch(self, ctx, batch, out):
        if len(batch) == 1:
            self._one(ctx, batch[0], out)
            return
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(batch), thread_name_prefix="kill") as pool:
            futures = [pool.submit(self._kill, ctx, a) for a in batch]
        for f in futures:
            try:
                f.result()
                out.changed = True
            except Exception as exc:  # noqa: BLE001
                out.failed = True
                log.warning("event=kill_failed pod=%s error=%s", ctx.ref, str(exc)[:300].replace(" ", "_"))

    def _kill(self, ctx, action: KillContainer):
        pod = ctx.pod
        t0 = time.monotonic()
        grace = max(0.0, action.grace_s)
        if pod is not None and action.message:
            self._event(pod, "Normal", "Killing", action.message)
        spec = _container_spec(pod, action.kind, action.container) if pod is not None else None
        if action.pre_stop and spec is not None and spec.lifecycle.HasField("pre_stop") and grace > 0:
            sandbox = ctx.sandbox_of(action.container_id)
            ok, message = handlers.run_handler(spec.lifecycle.pre_stop, self.runtime, spec, action.container_id,
                                               self._sandbox_pid(sandbox), grace)
            if not ok:
                self._event(pod, "Warning", "FailedPreStopHook", f"PreStopHook failed: {message}"[:1000])
            log.info("event=pre_stop_done pod=%s container=%s ok=%s duration_s=%.2f",
                     ctx.ref, action.container, ok, time.monotonic() - t0)
        remaining = grace - (time.monotonic() - t0)
        timeout = 0.0 if grace == 0 else max(float(MIN_GRACE_S), remaining)
        self.runtime.stop(action.container_id, timeout)
        log.info("event=container_stopped pod=%s container=%s kind=%s reason=%s duration_s=%.2f",
                 ctx.ref, action.container, action.kind, action.reason, time.monotonic() - t0)

    def _finalize(self, ctx, action: FinalizePod):
        uid = ctx.uid
        for o in self.runtime.list(uid):
            if o.running:
                self.runtime.stop(o.id, 0)
            self.runtime.remove(o.id)
        if self.probes is not None:
            self.probes.remove_pod(uid)
        volumes.cleanup(self.data_dir, uid)
        if self.network is not None:
            self.network.release_pod(uid)
        self.forget(uid)
        if self.sa_tokens is not None:
            self.sa_tokens.forget(uid)
        if action.delete_from_api and ctx.pod is not None and self.delete_pod is not None:
            self.flush_events(uid)
            self.delete_pod(ctx.pod)
        log.info("event=pod_finalized pod=%s uid=%s deleted_from_api=%s", ctx.ref, uid, action.delete_from_api)

    def forget(self, uid: str) -> None:
        self.pull_backoff.forget(uid)
        with self._lock:
            self.start_errors.pop(uid, None)
            for key in [k for k in self.backoff_state if k[0] == uid]:
                del self.backoff_state[key]
            self._backoff_events = {e for e in self._backoff_events if e[0][0] != uid}

    # ------------------------------------------------------------ network

    def _link_services(self, namespace: str) -> list:
        """The services a pod's environment may name: its namespace's, and the API's own
        (default/kubernetes), which every pod gets."""
        services = list(self.list_services(namespace))
        if namespace != "default":
            services += [s for s in self.list_services("default") if s.metadata.name == "kubernetes"]
        return services

    def _write_resolv_conf(self, pod) -> str:
        """<pod dir>/resolv.conf from the pod's dnsPolicy; "" = keep the engine's file."""
        node_resolv = ""
        if pod.spec.HasField("dns_config"):
            try:
                with open("/etc/resolv.conf", encoding="utf-8") as f:
                    node_resolv = f.read()
            except OSError:
                pass
        text = resolvconf.resolv_conf(pod, self.cluster_dns(), node_resolv)
        if text is None:
            return ""
        path = os.path.join(volumes.pod_dir(self.data_dir, pod.metadata.uid), "resolv.conf")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
        return path

    def _wants_network(self, pod) -> bool:
        return self.network is not None and not pod.spec.host_network

    def _prepare_projected(self, pod, vol) -> str:
        return self.projected.prepare(pod, vol, self.pod_ip(pod))

    def refresh_volumes(self, pod) -> None:
        """Rewrite the running pod's downwardAPI/projected files that changed (labels, tokens...)."""
        if any(projectedmod.is_projected(v) for v in pod.spec.volumes):
            self.projected.refresh(pod, self.pod_ip(pod))

    def pod_ip(self, pod) -> str:
        """The pod's IP: the node's address for hostNetwork pods, else its allocation
        (kept from the pod's first sandbox to its removal), else what the status says."""
        if pod.spec.host_network and self.network is not None:
            return self.host_ip
        if self.network is not None:
            return self.network.pod_ip(pod.metadata.uid) or pod.status.pod_ip
        return pod.status.pod_ip

    def ensure_network(self, pod, sandbox_id: str) -> None:
        """The sandbox's network is set up (cheap when already verified); StartError if not."""
        if not self._wants_network(pod):
            return
        uid = pod.metadata.uid
        if self.network.is_set_up(uid, sandbox_id):
            return
        from nodeagent.network.manager import NetworkNotReady
        try:
            ip = self.network.ensure_pod(uid, sandbox_id, self._sandbox_pid(sandbox_id))
        except NetworkNotReady as exc:
            self._record_pod_error(pod, "ContainerCreating", str(exc))
            raise StartError("NetworkNotReady", str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - netlink errors, IPAM full, ...
            msg = f"Failed to set up the pod network: {str(exc)[:300]}"
            self._event(pod, "Warning", "FailedCreatePodSandBox", msg)
            self._record_pod_error(pod, "ContainerCreating", msg)
            raise StartError("FailedCreatePodSandBox", msg) from None
        volumes.write_hosts(self.data_dir, pod, ip)

    # ------------------------------------------------------------ helpers

    def flush_events(self, uid: str) -> None:
        """Wait (bounded) until the events recorded about pod uid are written: called before
        its status is written or it is deleted, so the events are there when that is seen."""
        flush = getattr(self.recorder, "flush", None)
        if flush is not None:
            flush(uid, EVENTS_FLUSH_S)

    def waiting_reasons(self, uid: str) -> dict:
        with self._lock:
            return dict(self.start_errors.get(uid, {}))

    def _announce_backoff(self, ctx, action: WaitBackoff):
        pod = ctx.pod
        key = ((pod.metadata.uid, action.container), action.delay_s)
        with self._lock:
            if key in self._backoff_events:
                return
            self._backoff_events.add(key)
        meta = pod.metadata
        self._event(pod, "Warning", "BackOff", f"Back-off restarting failed container {action.container} in pod "
                                               f"{meta.name}_{meta.namespace}({meta.uid})")

    def _record_pod_error(self, pod, reason, message):
        with self._lock:
            errors = self.start_errors.setdefault(pod.metadata.uid, {})
            for c in list(pod.spec.init_containers[:1]) + list(pod.spec.containers):
                errors[c.name] = (reason, message)

    def _sandbox_pid(self, sandbox_id: str) -> int:
        if not sandbox_id:
            return 0
        o = self.runtime.get(sandbox_id)
        return o.pid if o is not None and o.running else 0

    def _event(self, pod, event_type, reason, message):
        if self.recorder is not None and pod is not None:
            self.recorder.event(pod, event_type, reason, message)


class _Ctx:
    """What one apply() run knows: the pod, its observed containers, the sandbox it made."""

    def __init__(self, pod, uid, observed):
        self.pod = pod
        self.uid = uid
        self.observed = observed
        self.sandbox_id = ""
        self.volume_paths = None
        self.ref = f"{pod.metadata.namespace}/{pod.metadata.name}" if pod is not None else f"uid:{uid}"

    def current_sandbox(self) -> str:
        if self.sandbox_id:
            return self.sandbox_id
        sandboxes = sorted((o for o in self.observed if o.kind == SANDBOX and o.pod_uid == self.uid),
                           key=lambda o: o.attempt)
        if sandboxes and sandboxes[-1].running:
            return sandboxes[-1].id
        return ""

    def sandbox_of(self, container_id: str) -> str:
        for o in self.observed:
            if o.id == container_id:
                return o.sandbox_id
        return ""


def _container_spec(pod, kind, name):
    if pod is None:
        return None
    group = pod.spec.init_containers if kind == INIT else pod.spec.containers if kind == APP else []
    for c in group:
        if c.name == name:
            return c
    return None


def _explain(exc) -> str:
    text = getattr(exc, "explanation", None) or str(exc)
    return str(text)[:500]
