"""Pod and container securityContext -> Docker's create() arguments (pure).

The effective settings are Kubernetes' (securitycontext.DetermineEffectiveSecurityContext):
a container's runAsUser, runAsGroup, runAsNonRoot and seccompProfile win over the pod's;
fsGroup, supplementalGroups and sysctls exist only at pod level.

- user: "uid" or "uid:gid"; a runAsGroup without runAsUser keeps the image's user
  ("<image user>:gid", root when the image names none), as the CRI runtimes do;
- groups: fsGroup, then supplementalGroups, added to the process (docker group_add);
  the image's own groups for the user stay (supplementalGroupsPolicy Merge);
- runAsNonRoot: checked against runAsUser, else the image's user (Config.User): a root
  or a non-numeric user stops the start with kubelet's message (non_root_error);
- privileged, readOnlyRootFilesystem, capabilities add/drop map one to one;
  allowPrivilegeEscalation: false -> no-new-privileges;
- seccomp: RuntimeDefault = the engine's default filter, which is also what a container
  without any profile gets (kubelet's seccompDefault: true); Unconfined = none;
  Localhost = the JSON profile the caller read from the node (localhost_profile());
- sysctls go on the pod's sandbox (sandbox_sysctls): the containers share its network
  and IPC namespaces, where the namespaced sysctls live.
"""

import os
from dataclasses import dataclass

from skiff.api.securitycontext_validation import normalize_sysctl

SECCOMP_RUNTIME_DEFAULT = "RuntimeDefault"
SECCOMP_UNCONFINED = "Unconfined"
SECCOMP_LOCALHOST = "Localhost"
SECCOMP_DIR = "seccomp"     # under the agent's data directory: Localhost profiles


class SecurityError(Exception):
    """A container that must not start as specified (the waiting reason is kubelet's)."""
    reason = "CreateContainerConfigError"


@dataclass(frozen=True)
class Effective:
    run_as_user: int | None
    run_as_group: int | None
    run_as_non_root: bool
    seccomp_type: str
    seccomp_localhost: str


def effective(pod, container) -> Effective:
    """The container's settings after the pod's defaults (the container's win)."""
    psc = pod.spec.security_context
    csc = container.security_context

    def pick(field):
        if csc.HasField(field):
            return getattr(csc, field)
        if psc.HasField(field):
            return getattr(psc, field)
        return None

    seccomp = csc.seccomp_profile if csc.HasField("seccomp_profile") else \
        psc.seccomp_profile if psc.HasField("seccomp_profile") else None
    return Effective(
        run_as_user=pick("run_as_user"),
        run_as_group=pick("run_as_group"),
        run_as_non_root=bool(pick("run_as_non_root")),
        seccomp_type=seccomp.type if seccomp is not None else "",
        seccomp_localhost=seccomp.localhost_profile if seccomp is not None else "",
    )


def needs_image_user(pod, container) -> bool:
    """Whether security_kwargs/non_root_error need the image's Config.User."""
    eff = effective(pod, container)
    return eff.run_as_user is None and (eff.run_as_non_root or eff.run_as_group is not None)


def pod_ref(pod) -> str:
    """kubelet's format.Pod: name_namespace(uid)."""
    meta = pod.metadata
    return f"{meta.name}_{meta.namespace}({meta.uid})"


def image_uid(image_user: str):
    """(uid or None, user name): the user part of an image's "user[:group]"; root when empty."""
    user = (image_user or "").split(":", 1)[0]
    if not user:
        return 0, ""
    if user.isdigit():
        return int(user), ""
    return None, user


def non_root_error(pod, container, image_user: str = "") -> str | None:
    """kubelet's verifyRunAsNonRoot: the message that stops the start, or None."""
    eff = effective(pod, container)
    if not eff.run_as_non_root:
        return None
    where = f'(pod: "{pod_ref(pod)}", container: {container.name})'
    if eff.run_as_user is not None:
        return f"container's runAsUser breaks non-root policy {where}" if eff.run_as_user == 0 else None
    uid, name = image_uid(image_user)
    if uid == 0:
        return f"container has runAsNonRoot and image will run as root {where}"
    if uid is None and name:
        return (f"container has runAsNonRoot and image has non-numeric user ({name}), "
                f"cannot verify user is non-root {where}")
    return None


def docker_user(pod, container, image_user: str = "") -> str | None:
    """Docker's user: "uid", "uid:gid", "<image user>:gid", or None (the image's)."""
    eff = effective(pod, container)
    if eff.run_as_user is not None:
        return str(eff.run_as_user) + (f":{eff.run_as_group}" if eff.run_as_group is not None else "")
    if eff.run_as_group is not None:
        user = (image_user or "").split(":", 1)[0] or "0"
        return f"{user}:{eff.run_as_group}"
    return None


def groups(pod) -> list:
    """fsGroup then supplementalGroups, without repeats (strings, as Docker takes them)."""
    psc = pod.spec.security_context
    out = []
    for gid in ([psc.fs_group] if psc.HasField("fs_group") else []) + list(psc.supplemental_groups):
        if str(gid) not in out:
            out.append(str(gid))
    return out


def localhost_profile_path(data_dir: str, name: str) -> str:
    """Where a Localhost profile lives on the node: <dataDir>/seccomp/<localhostProfile>
    (kubelet's <root-dir>/seccomp); validation keeps the name relative and descending."""
    return os.path.join(data_dir, SECCOMP_DIR, name)


def security_kwargs(pod, container, image_user: str = "", localhost_profile: str = "") -> dict:
    """Docker keyword arguments for the container's effective securityContext.
    localhost_profile: the JSON text of the Localhost profile, when that is the type."""
    sc = container.security_context
    kw: dict = {}
    user = docker_user(pod, container, image_user)
    if user is not None:
        kw["user"] = user
    extra = groups(pod)
    if extra:
        kw["group_add"] = extra
    if sc.HasField("privileged") and sc.privileged:
        kw["privileged"] = True
    if sc.HasField("read_only_root_filesystem") and sc.read_only_root_filesystem:
        kw["read_only"] = True
    if sc.capabilities.add:
        kw["cap_add"] = list(sc.capabilities.add)
    if sc.capabilities.drop:
        kw["cap_drop"] = list(sc.capabilities.drop)
    opts = []
    if sc.HasField("allow_privilege_escalation") and not sc.allow_privilege_escalation:
        opts.append("no-new-privileges")
    eff = effective(pod, container)
    if eff.seccomp_type == SECCOMP_UNCONFINED:
        opts.append("seccomp=unconfined")
    elif eff.seccomp_type == SECCOMP_LOCALHOST:
        opts.append(f"seccomp={localhost_profile}")
    if opts:
        kw["security_opt"] = opts
    return kw


def sandbox_sysctls(pod) -> dict:
    """The pod's sysctls for its sandbox container ({} when none)."""
    return {normalize_sysctl(s.name): s.value for s in pod.spec.security_context.sysctls}


def read_localhost_profile(data_dir: str, name: str) -> str:
    """The JSON text of a Localhost seccomp profile on this node; SecurityError if unreadable."""
    path = localhost_profile_path(data_dir, name)
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise SecurityError(f'cannot load seccomp profile "{path}": {exc.strerror or exc}') from None
