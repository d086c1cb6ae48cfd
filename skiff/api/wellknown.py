"""The shared vocabulary: well-known annotations, labels, taints, pod phases, and API time.

One place for the strings the control plane, the agent and the CLI must agree on,
so a typo cannot make two of them disagree silently. Values are Kubernetes' where
Kubernetes has one; skiff's own annotations live under skiff.io/.

API time is RFC 3339 in UTC with whole seconds ("2024-05-01T12:00:00Z"), as
Kubernetes writes metav1.Time.
"""

import datetime

# ------------------------------------------------------------ annotations (Node, written by node IPAM)

BACKEND_ANNOTATION = "skiff.io/network-backend"      # host-gw | vxlan: how pod traffic crosses nodes
CLUSTER_CIDR_ANNOTATION = "skiff.io/cluster-cidr"    # the whole pod network (masquerade, proxy)
VTEP_MAC_ANNOTATION = "skiff.io/vtep-mac"            # the node's VXLAN device MAC (the agent publishes it)

# ------------------------------------------------------------ labels (Node)

LABEL_HOSTNAME = "kubernetes.io/hostname"
LABEL_OS = "kubernetes.io/os"
LABEL_ARCH = "kubernetes.io/arch"
LABEL_NODE_ROLE_PREFIX = "node-role.kubernetes.io/"

# ------------------------------------------------------------ taints (Node)

TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"       # node lifecycle: the node went silent
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"   # cordon (spec.unschedulable)

# ------------------------------------------------------------ pod phases

POD_PENDING = "Pending"
POD_RUNNING = "Running"
POD_SUCCEEDED = "Succeeded"
POD_FAILED = "Failed"
POD_UNKNOWN = "Unknown"
POD_FINISHED_PHASES = (POD_SUCCEEDED, POD_FAILED)   # terminal: no container of the pod runs again

# ------------------------------------------------------------ containers

SIDECAR_RESTART_POLICY = "Always"   # an init container's restartPolicy that makes it a sidecar


def is_sidecar(container) -> bool:
    """Whether a Container of a pod's initContainers is a native sidecar (restartPolicy Always):
    kept running beside the app containers (the agent, the scheduler and the CLI agree on it)."""
    return container.HasField("restart_policy") and container.restart_policy == SIDECAR_RESTART_POLICY

# ------------------------------------------------------------ time

RFC3339 = "%Y-%m-%dT%H:%M:%SZ"


def rfc3339(when) -> str:
    """An epoch float (wall clock) or a datetime (naive ones are taken as UTC) as
    "2024-05-01T12:00:00Z" (whole seconds, UTC); "" for 0 / None (an unset API time)."""
    if isinstance(when, datetime.datetime):
        if when.tzinfo is not None:
            when = when.astimezone(datetime.timezone.utc)
        return when.strftime(RFC3339)
    if not when:
        return ""
    return datetime.datetime.fromtimestamp(int(when), datetime.timezone.utc).strftime(RFC3339)


def now_rfc3339() -> str:
    """The current time as an API timestamp."""
    return datetime.datetime.now(datetime.timezone.utc).strftime(RFC3339)


def parse_rfc3339(text: str) -> datetime.datetime | None:
    """The time of an RFC 3339 timestamp ("2024-05-01T10:00:00Z", fractions allowed), or None."""
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
