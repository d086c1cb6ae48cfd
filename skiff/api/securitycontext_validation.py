"""Validation of pod and container securityContext, with Kubernetes' messages.

Called by podspec_validation.validate_pod_spec for the pod's securityContext and each
container's. What Kubernetes' API server checks (ids in range, seccomp types, sysctl
names, privileged with allowPrivilegeEscalation: false) is checked here; so is what
kubelet refuses at pod admission on the node: a sysctl outside Kubernetes' safe set
("forbidden sysctl: ... not allowlisted"). skiff nodes have no --allowed-unsafe-sysctls,
so such a pod could never start: it is refused before it is stored.
"""

import re

from skiff.api.errors import FieldError, join
from skiff.api.validation import duplicate, enum, forbidden, in_range, invalid, required, validate_relative_path

MAX_ID = 2147483647
SECCOMP_TYPES = ("Localhost", "RuntimeDefault", "Unconfined")

# Kubernetes' safe sysctls (pkg/kubelet/sysctl/safe_sysctls.go): namespaced, and unable to
# affect other pods or the node. kernel.shm_rmid_forced lives in the pod's IPC namespace,
# the others in its network namespace.
SAFE_SYSCTLS = (
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
)
SYSCTL_MAX_LENGTH = 253
_SYSCTL_SEGMENT = r"[a-z0-9]([-_a-z0-9]*[a-z0-9])?"
SYSCTL_PATTERN = "^(" + _SYSCTL_SEGMENT + r"[\./])*" + _SYSCTL_SEGMENT + "$"
_SYSCTL = re.compile(SYSCTL_PATTERN)


def normalize_sysctl(name: str) -> str:
    """The dotted form of a sysctl name ("net/ipv4/x" -> "net.ipv4.x"), as kubelet's
    NormalizeName does when the first separator is a slash."""
    if "/" not in name or name.find(".") != -1 and name.find(".") < name.find("/"):
        return name
    return name.translate(str.maketrans({"/": ".", ".": "/"}))


def validate_pod_security_context(spec, path, errs) -> None:
    """spec.securityContext of a PodSpec at path."""
    if not spec.HasField("security_context"):
        return
    sc = spec.security_context
    scpath = join(path, "securityContext")
    _validate_ids(sc, scpath, errs)
    if sc.HasField("fs_group"):
        _id(errs, join(scpath, "fsGroup"), sc.fs_group)
    for i, gid in enumerate(sc.supplemental_groups):
        _id(errs, f"{scpath}.supplementalGroups[{i}]", gid)
    if sc.HasField("seccomp_profile"):
        _validate_seccomp(sc.seccomp_profile, join(scpath, "seccompProfile"), errs)
    seen = set()
    for i, s in enumerate(sc.sysctls):
        npath = f"{scpath}.sysctls[{i}].name"
        if not s.name:
            required(errs, npath)
            continue
        if len(s.name) > SYSCTL_MAX_LENGTH or not _SYSCTL.match(s.name):
            invalid(errs, npath, s.name, f"must have at most {SYSCTL_MAX_LENGTH} characters and match regex "
                    f"{SYSCTL_PATTERN}")
            continue
        name = normalize_sysctl(s.name)
        if name in seen:
            duplicate(errs, npath, s.name)
        seen.add(name)
        if spec.host_network and name.startswith("net."):
            invalid(errs, npath, s.name, "may not be specified when 'hostNetwork' is true")
        elif name not in SAFE_SYSCTLS:
            forbidden(errs, npath, f'forbidden sysctl: "{s.name}" not allowlisted (skiff nodes allow '
                                   "Kubernetes' safe sysctls only: " + ", ".join(SAFE_SYSCTLS) + ")")


def validate_security_context(container, path, errs) -> None:
    """containers[i].securityContext, path being the container's."""
    if not container.HasField("security_context"):
        return
    sc = container.security_context
    scpath = join(path, "securityContext")
    _validate_ids(sc, scpath, errs)
    if sc.HasField("seccomp_profile"):
        _validate_seccomp(sc.seccomp_profile, join(scpath, "seccompProfile"), errs)
    if sc.HasField("allow_privilege_escalation") and not sc.allow_privilege_escalation:
        if sc.HasField("privileged") and sc.privileged:
            errs.append(FieldError(scpath, "Invalid value: {allowPrivilegeEscalation: false, privileged: true}: "
                                           "cannot set `allowPrivilegeEscalation` to false and `privileged` to true"))
        if any(c.upper() in ("CAP_SYS_ADMIN", "SYS_ADMIN") for c in sc.capabilities.add):
            errs.append(FieldError(scpath, "Invalid value: {allowPrivilegeEscalation: false, capabilities.add: "
                                           "[CAP_SYS_ADMIN]}: cannot set `allowPrivilegeEscalation` to false and "
                                           "`capabilities.Add` CAP_SYS_ADMIN"))


def _validate_ids(sc, path, errs) -> None:
    for field, json_name in (("run_as_user", "runAsUser"), ("run_as_group", "runAsGroup")):
        if sc.HasField(field):
            _id(errs, join(path, json_name), getattr(sc, field))


def _id(errs, path, value) -> None:
    in_range(errs, path, value, 0, MAX_ID)


def _validate_seccomp(profile, path, errs) -> None:
    enum(errs, join(path, "type"), profile.type, SECCOMP_TYPES)
    lpath = join(path, "localhostProfile")
    if profile.type == "Localhost":
        if not profile.localhost_profile:
            required(errs, lpath, "must be set when seccomp type is Localhost")
        else:
            validate_relative_path(errs, lpath, profile.localhost_profile)
    elif profile.localhost_profile:
        invalid(errs, lpath, profile.localhost_profile, "can only be set when seccomp type is Localhost")
