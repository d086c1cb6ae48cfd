"""Pod and container specs -> keyword arguments of docker-py's containers.create() (pure).

- command/args follow Kubernetes over the image's ENTRYPOINT/CMD: command set ->
  Docker entrypoint = command and cmd = args (the image's CMD is dropped, as
  Docker does when the entrypoint is given); only args set -> the image's
  ENTRYPOINT with cmd = args; neither -> the image's own;
- resources like kubelet: limits.cpu -> CFS quota over a 100 ms period (at least
  1 ms), requests.cpu (defaulting to the limit) -> cpu shares (1024 per core, at
  least 2), limits.memory -> memory limit with no extra swap;
- the pause container: network 'none' (the node's network for hostNetwork pods),
  hostname = pod hostname, shareable IPC, the pod's sysctls (in its namespaces); init/app containers join its network
  and IPC (and PID with shareProcessNamespace) namespaces;
- securityContext: nodeagent/runtime/security.py.
"""

import docker.types

from nodeagent.runtime import labels as L
from nodeagent.runtime import security
from skiff.api import quantity

CPU_PERIOD_US = 100_000
MIN_QUOTA_US = 1_000
MIN_SHARES = 2
SHARES_PER_CPU = 1024


def resources_to_docker(resources) -> dict:
    limits = dict(resources.limits)
    requests = dict(resources.requests)
    out = {}
    cpu_limit = limits.get("cpu")
    cpu_request = requests.get("cpu", cpu_limit)
    if cpu_limit:
        milli = quantity.cpu_millicores(cpu_limit)
        out["cpu_period"] = CPU_PERIOD_US
        out["cpu_quota"] = max(MIN_QUOTA_US, milli * CPU_PERIOD_US // 1000)
    milli_request = quantity.cpu_millicores(cpu_request) if cpu_request else 0
    out["cpu_shares"] = max(MIN_SHARES, milli_request * SHARES_PER_CPU // 1000)
    mem_limit = limits.get("memory")
    if mem_limit:
        n = quantity.memory_bytes(mem_limit)
        out["mem_limit"] = n
        out["memswap_limit"] = n
    return out


def docker_command(command: list, args: list) -> tuple:
    """(entrypoint, cmd) for Docker; None means "the image's"."""
    if command:
        return list(command), list(args)
    if args:
        return None, list(args)
    return None, None


def make_labels(pod, node: str, container: str, kind: str, spec_hash: str, restart_count: int,
                attempt: int, grace_s: int) -> dict:
    meta = pod.metadata
    return {
        L.MANAGED: "true",
        L.NODE: node,
        L.POD_UID: meta.uid,
        L.POD_NAME: meta.name,
        L.POD_NAMESPACE: meta.namespace,
        L.CONTAINER_NAME: container,
        L.CONTAINER_KIND: kind,
        L.SPEC_HASH: spec_hash,
        L.RESTART_COUNT: str(restart_count),
        L.ATTEMPT: str(attempt),
        L.TERMINATION_GRACE: str(grace_s),
    }


def sandbox_kwargs(pod, *, name: str, labels: dict, image: str) -> dict:
    """The pause container; a hostNetwork pod's pause shares the node's network (and name)."""
    kw = {
        "image": image,
        "name": name,
        "labels": labels,
        "network_mode": "none",
        "ipc_mode": "shareable",
        "detach": True,
        "cpu_shares": MIN_SHARES,
    }
    sysctls = security.sandbox_sysctls(pod)
    if sysctls:
        kw["sysctls"] = sysctls
    if pod.spec.host_network:
        kw["network_mode"] = "host"
    else:
        kw["hostname"] = pod.spec.hostname or pod.metadata.name
    return kw


def container_kwargs(pod, container, *, name: str, labels: dict, sandbox_id: str, env: list,
                     command: list, args: list, mounts: list, image_user: str = "",
                     localhost_profile: str = "") -> dict:
    """mounts: [(target, source, read_only)] binds; image_user: the image's Config.User and
    localhost_profile: a Localhost seccomp profile's JSON, for the securityContext
    (nodeagent/runtime/security.py)."""
    entrypoint, cmd = docker_command(command, args)
    kw = {
        "image": container.image,
        "name": name,
        "labels": labels,
        "environment": [f"{k}={v}" for k, v in env],
        "network_mode": f"container:{sandbox_id}",
        "ipc_mode": f"container:{sandbox_id}",
        "mounts": [docker.types.Mount(target=t, source=s, type="bind", read_only=ro) for t, s, ro in mounts],
        "stdin_open": container.stdin,
        "tty": container.tty,
        "detach": True,
    }
    if pod.spec.share_process_namespace:
        kw["pid_mode"] = f"container:{sandbox_id}"
    if entrypoint is not None:
        kw["entrypoint"] = entrypoint
    if cmd is not None:
        kw["command"] = cmd
    if container.working_dir:
        kw["working_dir"] = container.working_dir
    kw.update(resources_to_docker(container.resources))
    kw.update(security.security_kwargs(pod, container, image_user, localhost_profile))
    return kw
