"""The registry of API kinds (see registry.py) and the kinds skiff serves.

Importing this package registers every kind: one module per kind or small family
(cluster: Namespace, Node; pod; service: Service, Endpoints; config: ConfigMap,
Secret; workloads: ReplicaSet, Deployment; event; coordination: Lease; replicationcontroller;
job: Job; cronjob: CronJob; daemonset: DaemonSet; statefulset: StatefulSet; policy: PodDisruptionBudget; serviceaccount: ServiceAccount).
The import order below is the
order of KINDS.
"""

from skiff.api.kinds.registry import (  # noqa: F401 - the registry's public face
    BY_NAME, KINDS, Kind, StoreHooks, encode, for_manifest, get_all, key_of, lookup, of_message,
    register, unwrap, wrap,
)
from skiff.api.kinds import (  # noqa: F401,E402 - registers, in this order
    cluster, pod, service, config, workloads, event, coordination, replicationcontroller,
    job, cronjob, daemonset, statefulset, policy,
)
from skiff.api.kinds import rbac  # noqa: F401,E402 - Role, ClusterRole, RoleBinding, ClusterRoleBinding

from skiff.api.kinds import serviceaccount  # noqa: F401,E402 - registers ServiceAccount
