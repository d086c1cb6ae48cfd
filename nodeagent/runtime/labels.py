"""Labels skiff puts on every container it runs, and the container names it uses.

They make the engine's state self-describing: an agent that restarts finds its
pods' containers by these labels and adopts them instead of starting new ones.
The spec hash is versioned ("v1:<hex>") so a change of hashing scheme is seen as
such rather than as a changed spec.
"""

MANAGED = "io.skiff.managed"            # "true" on everything skiff runs
NODE = "io.skiff.node"
POD_UID = "io.skiff.pod.uid"
POD_NAME = "io.skiff.pod.name"
POD_NAMESPACE = "io.skiff.pod.namespace"
CONTAINER_NAME = "io.skiff.container.name"   # the pod's container name; "POD" for the pause container
CONTAINER_KIND = "io.skiff.container.kind"   # sandbox, init, app
SPEC_HASH = "io.skiff.container.hash"
RESTART_COUNT = "io.skiff.container.restartCount"
ATTEMPT = "io.skiff.container.attempt"
TERMINATION_GRACE = "io.skiff.pod.terminationGracePeriod"

SANDBOX = "POD"
HASH_VERSION = "v1"


def container_name(pod_name: str, namespace: str, uid: str, container: str, attempt: int) -> str:
    """Docker name, like the kubelet's k8s_<container>_<pod>_<ns>_<uid>_<attempt>."""
    return f"skiff_{container}_{pod_name}_{namespace}_{uid[:8]}_{attempt}"


# Values of CONTAINER_KIND.
KIND_SANDBOX = "sandbox"
KIND_INIT = "init"
KIND_APP = "app"
