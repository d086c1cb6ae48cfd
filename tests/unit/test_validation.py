"""Validation: every rule is tried by breaking one valid object, and the error's exact path is checked."""

import copy

import pytest

from skiff.api import codec, kinds
from skiff.api.defaults import apply_defaults
from skiff.api.validation import validate, validate_update

CONTAINER = {"name": "web", "image": "nginx:1.27", "ports": [{"name": "http", "containerPort": 80}]}

BASES = {
    "Pod": {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"containers": [copy.deepcopy(CONTAINER)],
                 "volumes": [{"name": "data", "emptyDir": {}}]},
    },
    "Deployment": {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web", "tier": "fe"}},
                              "spec": {"containers": [copy.deepcopy(CONTAINER)]}}},
    },
    "ReplicaSet": {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web-abc12", "namespace": "default"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [copy.deepcopy(CONTAINER)]}}},
    },
    "DaemonSet": {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": "kube-system"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
                 "template": {"metadata": {"labels": {"app": "agent"}},
                              "spec": {"containers": [copy.deepcopy(CONTAINER)]}}},
    },
    "ReplicationController": {
        "apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 2, "selector": {"app": "web"},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [copy.deepcopy(CONTAINER)]}}},
    },
    "Service": {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    },
    "ConfigMap": {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "default"},
        "data": {"app.properties": "a=b", "KEY_1": "x"}, "binaryData": {"blob.bin": "AAEC"},
    },
    "Secret": {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "default"},
        "data": {"password": "aHVudGVyMg=="}, "stringData": {"user": "admin"},
    },
    "Node": {
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1.example", "labels": {"disk": "ssd"}},
        "spec": {"podCIDR": "10.244.1.0/24", "taints": [{"key": "dedicated", "value": "gpu",
                                                         "effect": "NoSchedule"}]},
        "status": {"capacity": {"cpu": "4", "memory": "8Gi"}, "allocatable": {"cpu": "3800m"}},
    },
    "Namespace": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}},
    "Endpoints": {
        "apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web", "namespace": "default"},
        "subsets": [{"addresses": [{"ip": "10.244.1.5"}], "ports": [{"name": "http", "port": 8080}]}],
    },
    "Event": {
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": "web.17a3", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
        "reason": "Scheduled", "type": "Normal",
    },
    "Lease": {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "node1", "namespace": "kube-node-lease",
                     "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": "node1", "uid": "u-1"}]},
        "spec": {"holderIdentity": "node1", "leaseDurationSeconds": 40,
                 "renewTime": "2024-05-01T12:00:00.123456Z"},
    },
    "PodDisruptionBudget": {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
    },
    "Role": {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "pod-reader", "namespace": "default"},
        "rules": [{"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]}],
    },
    "ClusterRole": {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "system:secret-reader"},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["db"]}],
    },
    "RoleBinding": {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "read-pods", "namespace": "default"},
        "subjects": [{"kind": "User", "name": "jane@example.com"}, {"kind": "ServiceAccount", "name": "ci"}],
        "roleRef": {"kind": "Role", "name": "pod-reader", "apiGroup": "rbac.authorization.k8s.io"},
    },
    "ClusterRoleBinding": {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "read-secrets-global"},
        "subjects": [{"kind": "Group", "name": "managers", "apiGroup": "rbac.authorization.k8s.io"},
                     {"kind": "ServiceAccount", "name": "ci", "namespace": "build"}],
        "roleRef": {"kind": "ClusterRole", "name": "system:secret-reader", "apiGroup": "rbac.authorization.k8s.io"},
    },
}


def decoded(doc: dict, defaults: bool = True):
    kind = kinds.for_manifest(doc["apiVersion"], doc["kind"])
    msg = codec.decode(kind.message, doc)
    if defaults:
        apply_defaults(kind, msg)
    return kind, msg


def errors_of(doc: dict, defaults: bool = True):
    kind, msg = decoded(doc, defaults)
    return validate(kind, msg)


# ---------------------------------------------------------------- helpers to break objects

def _walk(doc, dotted: str):
    """(parent, last key) for a dotted path; numeric parts index lists; missing maps are created."""
    parts = dotted.split(".")
    target = doc
    for part in parts[:-1]:
        target = target[int(part)] if part.isdigit() else target.setdefault(part, {})
    last = parts[-1]
    return target, int(last) if last.isdigit() else last


def put(dotted: str, value):
    def mutate(doc):
        parent, key = _walk(doc, dotted)
        if isinstance(parent, list) and key == len(parent):
            parent.append(value)
        else:
            parent[key] = value
    return mutate


def drop(dotted: str):
    def mutate(doc):
        parent, key = _walk(doc, dotted)
        del parent[key]
    return mutate


def both(*mutations):
    def mutate(doc):
        for m in mutations:
            m(doc)
    return mutate


C0 = "spec.containers.0"
T0 = "spec.template.spec.containers.0"
PC0 = "spec.containers[0]"
TC0 = "spec.template.spec.containers[0]"

# (base kind, mutation, expected path, text in the detail)
INVALID = [
    # ---- metadata
    ("Pod", drop("metadata.name"), "metadata.name", "Required value"),
    ("Pod", put("metadata.name", "Web"), "metadata.name", "RFC 1123 subdomain"),
    ("Pod", put("metadata.name", "a" * 254), "metadata.name", "no more than 253"),
    ("Pod", both(drop("metadata.name"), put("metadata.generateName", "Web-")), "metadata.generateName",
     "RFC 1123"),
    ("Namespace", put("metadata.name", "team.a"), "metadata.name", "RFC 1123 label"),
    ("Namespace", put("metadata.name", "a" * 64), "metadata.name", "no more than 63"),
    ("Service", put("metadata.name", "1web"), "metadata.name", "DNS-1035"),
    ("Pod", put("metadata.namespace", "Team_A"), "metadata.namespace", "RFC 1123 label"),
    ("Node", put("metadata.namespace", "default"), "metadata.namespace", "not namespaced"),
    ("Pod", put("metadata.labels", {"-app": "web"}), "metadata.labels[-app]", "invalid label key"),
    ("Pod", put("metadata.labels", {"app": "a b"}), "metadata.labels[app]", "invalid label value"),
    ("Pod", put("metadata.labels", {"app": "v" * 64}), "metadata.labels[app]", "no more than 63"),
    ("Pod", put("metadata.annotations", {"bad key": "x"}), "metadata.annotations[bad key]",
     "invalid annotation key"),
    ("Pod", put("metadata.annotations", {"big": "x" * (256 * 1024)}), "metadata.annotations", "Too long"),
    ("Pod", put("metadata.ownerReferences", [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs"}]),
     "metadata.ownerReferences[0].uid", "Required value"),
    ("Pod", put("metadata.ownerReferences", [
        {"apiVersion": "v1", "kind": "A", "name": "a", "uid": "1", "controller": True},
        {"apiVersion": "v1", "kind": "B", "name": "b", "uid": "2", "controller": True}]),
     "metadata.ownerReferences", "only one reference"),
    # ---- pod: containers
    ("Pod", put("spec.containers", []), "spec.containers", "at least one container"),
    ("Pod", put(f"{C0}.name", "Web"), f"{PC0}.name", "RFC 1123 label"),
    ("Pod", drop(f"{C0}.name"), f"{PC0}.name", "Required value"),
    ("Pod", put("spec.initContainers", [{"name": "web", "image": "busybox"}]), f"{PC0}.name",
     "Duplicate value"),
    ("Pod", put("spec.containers.1", {"name": "web", "image": "x"}), "spec.containers[1].name",
     "Duplicate value"),
    ("Pod", drop(f"{C0}.image"), f"{PC0}.image", "Required value"),
    ("Pod", put(f"{C0}.image", " nginx"), f"{PC0}.image", "whitespace"),
    ("Pod", put(f"{C0}.imagePullPolicy", "Sometimes"), f"{PC0}.imagePullPolicy", "Unsupported value"),
    ("Pod", put("spec.restartPolicy", "Sometimes"), "spec.restartPolicy", "Unsupported value"),
    ("Pod", put("spec.dnsPolicy", "Custom"), "spec.dnsPolicy", "Unsupported value"),
    ("Pod", put("spec.dnsPolicy", "None"), "spec.dnsConfig.nameservers", "Required value"),
    ("Pod", put("spec.terminationGracePeriodSeconds", -1), "spec.terminationGracePeriodSeconds",
     "greater than or equal to 0"),
    ("Pod", put("spec.activeDeadlineSeconds", 0), "spec.activeDeadlineSeconds", "greater than 0"),
    ("Pod", put("spec.nodeName", "Node_1"), "spec.nodeName", "RFC 1123 subdomain"),
    # ---- pod: ports
    ("Pod", put(f"{C0}.ports.0.containerPort", 70000), f"{PC0}.ports[0].containerPort", "between 1 and 65535"),
    ("Pod", put(f"{C0}.ports.0.containerPort", 0), f"{PC0}.ports[0].containerPort", "Required value"),
    ("Pod", put(f"{C0}.ports.0.hostPort", 70000), f"{PC0}.ports[0].hostPort", "between 0 and 65535"),
    ("Pod", put(f"{C0}.ports.0.protocol", "HTTP"), f"{PC0}.ports[0].protocol", "Unsupported value"),
    ("Pod", put(f"{C0}.ports.0.name", "HTTP"), f"{PC0}.ports[0].name", "lower case"),
    ("Pod", put(f"{C0}.ports.0.name", "8080"), f"{PC0}.ports[0].name", "at least one letter"),
    ("Pod", put(f"{C0}.ports.0.name", "a--b"), f"{PC0}.ports[0].name", "consecutive hyphens"),
    ("Pod", put(f"{C0}.ports.0.name", "-ab"), f"{PC0}.ports[0].name", "begin or end"),
    ("Pod", put(f"{C0}.ports.0.name", "abcdefghijklmnop"), f"{PC0}.ports[0].name", "no more than 15"),
    ("Pod", put(f"{C0}.ports.1", {"name": "http", "containerPort": 81}), f"{PC0}.ports[1].name",
     "Duplicate value"),
    ("Pod", both(put("spec.hostNetwork", True), put(f"{C0}.ports.0.hostPort", 8080)),
     f"{PC0}.ports[0].hostPort", "must match `containerPort`"),
    ("Pod", both(put(f"{C0}.ports.0.hostPort", 80), put("spec.containers.1", {
        "name": "b", "image": "b", "ports": [{"containerPort": 81, "hostPort": 80}]})),
     "spec.containers[1].ports[0].hostPort", "Duplicate value"),
    # ---- pod: env
    ("Pod", put(f"{C0}.env", [{"name": "1X", "value": "v"}]), f"{PC0}.env[0].name", "environment variable"),
    ("Pod", put(f"{C0}.env", [{"value": "v"}]), f"{PC0}.env[0].name", "Required value"),
    ("Pod", put(f"{C0}.env", [{"name": "X", "value": "v", "valueFrom": {"fieldRef": {
        "fieldPath": "metadata.name"}}}]), f"{PC0}.env[0].valueFrom", "when `value` is not empty"),
    ("Pod", put(f"{C0}.env", [{"name": "X", "valueFrom": {}}]), f"{PC0}.env[0].valueFrom", "must specify one of"),
    ("Pod", put(f"{C0}.env", [{"name": "X", "valueFrom": {
        "fieldRef": {"fieldPath": "metadata.name"}, "secretKeyRef": {"name": "s", "key": "k"}}}]),
     f"{PC0}.env[0].valueFrom", "more than one"),
    ("Pod", put(f"{C0}.env", [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm"}}}]),
     f"{PC0}.env[0].valueFrom.configMapKeyRef.key", "Required value"),
    ("Pod", put(f"{C0}.env", [{"name": "X", "valueFrom": {"secretKeyRef": {"key": "k"}}}]),
     f"{PC0}.env[0].valueFrom.secretKeyRef.name", "Required value"),
    ("Pod", put(f"{C0}.env", [{"name": "X", "valueFrom": {"fieldRef": {}}}]),
     f"{PC0}.env[0].valueFrom.fieldRef.fieldPath", "Required value"),
    ("Pod", put(f"{C0}.env", [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.secret"}}}]),
     f"{PC0}.env[0].valueFrom.fieldRef.fieldPath", "Unsupported value"),
    ("Pod", put(f"{C0}.env", [{"name": "X", "valueFrom": {"resourceFieldRef": {"resource": "limits.gpu"}}}]),
     f"{PC0}.env[0].valueFrom.resourceFieldRef.resource", "Unsupported value"),
    ("Pod", put(f"{C0}.envFrom", [{"configMapRef": {"name": "a"}, "secretRef": {"name": "b"}}]),
     f"{PC0}.envFrom[0]", "exactly one of"),
    ("Pod", put(f"{C0}.envFrom", [{"prefix": "P_"}]), f"{PC0}.envFrom[0]", "exactly one of"),
    ("Pod", put(f"{C0}.envFrom", [{"configMapRef": {}}]), f"{PC0}.envFrom[0].configMapRef.name", "Required"),
    # ---- pod: resources
    ("Pod", put(f"{C0}.resources", {"limits": {"cpu": "12x"}}), f"{PC0}.resources.limits[cpu]",
     "unknown suffix 'x'"),
    ("Pod", put(f"{C0}.resources", {"requests": {"memory": "-1Gi"}}), f"{PC0}.resources.requests[memory]",
     "greater than or equal to 0"),
    ("Pod", put(f"{C0}.resources", {"limits": {"gpu": "1"}}), f"{PC0}.resources.limits[gpu]",
     "standard resource"),
    ("Pod", put(f"{C0}.resources", {"limits": {"memory": "1Gi"}, "requests": {"memory": "2Gi"}}),
     f"{PC0}.resources.requests[memory]", "less than or equal to memory limit of 1Gi"),
    ("Pod", put(f"{C0}.resources", {"limits": {"cpu": "500m"}, "requests": {"cpu": "0.6"}}),
     f"{PC0}.resources.requests[cpu]", "less than or equal to cpu limit"),
    # ---- pod: volumes and mounts
    ("Pod", put(f"{C0}.volumeMounts", [{"name": "nope", "mountPath": "/data"}]), f"{PC0}.volumeMounts[0].name",
     "Not found"),
    ("Pod", put(f"{C0}.volumeMounts", [{"name": "data", "mountPath": "data"}]),
     f"{PC0}.volumeMounts[0].mountPath", "absolute"),
    ("Pod", put(f"{C0}.volumeMounts", [{"name": "data"}]), f"{PC0}.volumeMounts[0].mountPath", "Required"),
    ("Pod", put(f"{C0}.volumeMounts", [{"name": "data", "mountPath": "/d"}, {"name": "data", "mountPath": "/d"}]),
     f"{PC0}.volumeMounts[1].mountPath", "unique"),
    ("Pod", put(f"{C0}.volumeMounts", [{"name": "data", "mountPath": "/d", "subPath": "../etc"}]),
     f"{PC0}.volumeMounts[0].subPath", "'..'"),
    ("Pod", put("spec.volumes.0.name", "Data"), "spec.volumes[0].name", "RFC 1123 label"),
    ("Pod", put("spec.volumes.1", {"name": "data", "emptyDir": {}}), "spec.volumes[1].name", "Duplicate value"),
    ("Pod", put("spec.volumes.1", {"name": "empty"}), "spec.volumes[1]", "must specify a volume type"),
    ("Pod", put("spec.volumes.1", {"name": "two", "emptyDir": {}, "hostPath": {"path": "/x"}}),
     "spec.volumes[1].hostPath", "more than 1 volume type"),
    ("Pod", put("spec.volumes.1", {"name": "h", "hostPath": {"path": "var/log"}}), "spec.volumes[1].hostPath.path",
     "absolute"),
    ("Pod", put("spec.volumes.1", {"name": "h", "hostPath": {"path": "/x", "type": "Dir"}}),
     "spec.volumes[1].hostPath.type", "Unsupported value"),
    ("Pod", put("spec.volumes.1", {"name": "c", "configMap": {}}), "spec.volumes[1].configMap.name", "Required"),
    ("Pod", put("spec.volumes.1", {"name": "s", "secret": {}}), "spec.volumes[1].secret.secretName", "Required"),
    ("Pod", put("spec.volumes.1", {"name": "p", "persistentVolumeClaim": {}}),
     "spec.volumes[1].persistentVolumeClaim.claimName", "Required"),
    ("Pod", put("spec.volumes.1", {"name": "c", "configMap": {"name": "c", "items": [{"key": "k", "path": "/abs"}]}}),
     "spec.volumes[1].configMap.items[0].path", "relative"),
    ("Pod", put("spec.volumes.1", {"name": "e", "emptyDir": {"sizeLimit": "1 Gi"}}),
     "spec.volumes[1].emptyDir.sizeLimit", "whitespace"),
    # ---- pod: probes and lifecycle
    ("Pod", put(f"{C0}.livenessProbe", {"periodSeconds": 5}), f"{PC0}.livenessProbe",
     "must specify a handler type: one of exec, httpGet, tcpSocket or grpc"),
    ("Pod", put(f"{C0}.readinessProbe", {"grpc": {}}), f"{PC0}.readinessProbe.grpc.port",
     "Invalid value: 0: must be between 1 and 65535, inclusive"),
    ("Pod", put(f"{C0}.startupProbe", {"grpc": {"port": 70000, "service": "x"}}), f"{PC0}.startupProbe.grpc.port",
     "between 1 and 65535"),
    ("Pod", put(f"{C0}.livenessProbe", {"tcpSocket": {"port": 80}, "grpc": {"port": 9000}}),
     f"{PC0}.livenessProbe.grpc", "more than 1 handler"),
    ("Pod", put(f"{C0}.livenessProbe", {"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}}),
     f"{PC0}.livenessProbe.tcpSocket", "more than 1 handler"),
    ("Pod", put(f"{C0}.livenessProbe", {"exec": {}}), f"{PC0}.livenessProbe.exec.command", "Required"),
    ("Pod", put(f"{C0}.livenessProbe", {"httpGet": {"path": "/"}}), f"{PC0}.livenessProbe.httpGet.port",
     "Required"),
    ("Pod", put(f"{C0}.livenessProbe", {"httpGet": {"port": 70000}}), f"{PC0}.livenessProbe.httpGet.port",
     "between 1 and 65535"),
    ("Pod", put(f"{C0}.readinessProbe", {"httpGet": {"port": "HTTP"}}), f"{PC0}.readinessProbe.httpGet.port",
     "lower case"),
    ("Pod", put(f"{C0}.readinessProbe", {"tcpSocket": {"port": "8080"}}), f"{PC0}.readinessProbe.tcpSocket.port",
     "at least one letter"),
    ("Pod", put(f"{C0}.readinessProbe", {"tcpSocket": {"port": 80}, "periodSeconds": -1}),
     f"{PC0}.readinessProbe.periodSeconds", "greater than or equal to 0"),
    ("Pod", put(f"{C0}.livenessProbe", {"tcpSocket": {"port": 80}, "successThreshold": 2}),
     f"{PC0}.livenessProbe.successThreshold", "must be 1"),
    ("Pod", put(f"{C0}.startupProbe", {"tcpSocket": {"port": 80}, "successThreshold": 3}),
     f"{PC0}.startupProbe.successThreshold", "must be 1"),
    ("Pod", put(f"{C0}.lifecycle", {"postStart": {}}), f"{PC0}.lifecycle.postStart",
     "must specify a handler type: one of exec, httpGet or tcpSocket"),
    ("Pod", put(f"{C0}.lifecycle", {"preStop": {"exec": {"command": ["x"]}, "httpGet": {"port": 80}}}),
     f"{PC0}.lifecycle.preStop.httpGet", "more than 1 handler"),
    ("Pod", put("spec.initContainers", [{"name": "init", "image": "b", "livenessProbe": {"exec": {
        "command": ["x"]}}}]), "spec.initContainers[0].livenessProbe", "init containers"),
    # ---- pod: native sidecars (restartPolicy on containers), Kubernetes' messages
    ("Pod", put(f"{C0}.restartPolicy", "Always"), f"{PC0}.restartPolicy",
     "Forbidden: may not be set for non-init containers"),
    ("Pod", put("spec.initContainers", [{"name": "init", "image": "b", "restartPolicy": "OnFailure"}]),
     "spec.initContainers[0].restartPolicy", 'Unsupported value: "OnFailure": supported values: "Always"'),
    ("Pod", put("spec.initContainers", [{"name": "init", "image": "b", "readinessProbe": {"exec": {
        "command": ["x"]}}}]), "spec.initContainers[0].readinessProbe",
     "Forbidden: may not be set for init containers without restartPolicy=Always"),
    ("Pod", put("spec.initContainers", [{"name": "init", "image": "b", "lifecycle": {"preStop": {"exec": {
        "command": ["x"]}}}}]), "spec.initContainers[0].lifecycle",
     "Forbidden: may not be set for init containers without restartPolicy=Always"),
    ("Pod", put("spec.initContainers", [{"name": "side", "image": "b", "restartPolicy": "Always",
                                         "livenessProbe": {"exec": {"command": ["x"]}, "successThreshold": 2}}]),
     "spec.initContainers[0].livenessProbe.successThreshold", "must be 1"),
    # ---- pod: scheduling
    ("Pod", put("spec.nodeSelector", {"disk": "s s d"}), "spec.nodeSelector[disk]", "invalid label value"),
    ("Pod", put("spec.tolerations", [{"key": "k", "operator": "Maybe"}]), "spec.tolerations[0].operator",
     "Unsupported value"),
    ("Pod", put("spec.tolerations", [{"key": "k", "operator": "Exists", "value": "v"}]),
     "spec.tolerations[0].value", "must be empty"),
    ("Pod", put("spec.tolerations", [{"key": "k", "value": "v", "effect": "Never"}]), "spec.tolerations[0].effect",
     "Unsupported value"),
    ("Pod", put("spec.tolerations", [{"operator": "Equal", "value": "v"}]), "spec.tolerations[0].operator",
     "must be Exists when `key` is empty"),
    ("Pod", put("spec.tolerations", [{"key": "k", "operator": "Exists", "effect": "NoSchedule",
                                      "tolerationSeconds": 5}]), "spec.tolerations[0].effect", "NoExecute"),
    ("Pod", put("spec.affinity", {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "disk", "operator": "Like", "values": ["a"]}]}]}}}),
     "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]"
     ".matchExpressions[0].operator", "Unsupported value"),
    ("Pod", put("spec.affinity", {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "disk", "operator": "In"}]}]}}}),
     "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]"
     ".matchExpressions[0].values", "Required"),
    ("Pod", put("spec.affinity", {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "disk", "operator": "Exists", "values": ["x"]}]}]}}}),
     "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]"
     ".matchExpressions[0].values", "Forbidden"),
    ("Pod", put("spec.affinity", {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "cpus", "operator": "Gt", "values": ["1", "2"]}]}]}}}),
     "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]"
     ".matchExpressions[0].values", "single integer"),
    ("Pod", put("spec.affinity", {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "cpus", "operator": "Lt", "values": ["many"]}]}]}}}),
     "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]"
     ".matchExpressions[0].values[0]", "integer"),
    ("Pod", put("spec.affinity", {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": []}}}),
     "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms", "Required"),
    ("Pod", put("spec.affinity", {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 0, "preference": {}}]}}),
     "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight", "between 1 and 100"),
    ("Pod", put("spec.affinity", {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "web"}}}]}}),
     "spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey", "Required"),
    # ---- Deployment / ReplicaSet
    ("Deployment", put(f"{T0}.ports.0.containerPort", 70000), f"{TC0}.ports[0].containerPort",
     "between 1 and 65535"),
    ("Deployment", put(f"{T0}.resources", {"limits": {"cpu": "12x"}}), f"{TC0}.resources.limits[cpu]",
     "unknown suffix"),
    ("Deployment", put("spec.selector", {"matchLabels": {"app": "api"}}), "spec.selector",
     "`selector` does not match template `labels`"),
    ("Deployment", put("spec.selector", {"matchExpressions": [{"key": "tier", "operator": "NotIn",
                                                               "values": ["fe"]}]}),
     "spec.selector", "`selector` does not match template `labels`"),
    ("Deployment", drop("spec.selector"), "spec.selector", "Required value"),
    ("Deployment", put("spec.selector", {"matchLabels": {}}), "spec.selector", "Required value"),
    ("Deployment", put("spec.selector", {"matchExpressions": [{"key": "app", "operator": "Equals"}]}),
     "spec.selector.matchExpressions[0].operator", "Unsupported value"),
    ("Deployment", put("spec.selector", {"matchExpressions": [{"key": "app", "operator": "In"}]}),
     "spec.selector.matchExpressions[0].values", "Required"),
    ("Deployment", put("spec.selector", {"matchLabels": {"app": "-web"}}), "spec.selector.matchLabels[app]",
     "invalid label value"),
    ("Deployment", put("spec.template.metadata.labels", {"app": "web", "bad key": "x"}),
     "spec.template.metadata.labels[bad key]", "invalid label key"),
    ("Deployment", put("spec.replicas", -1), "spec.replicas", "greater than or equal to 0"),
    ("Deployment", put("spec.strategy", {"type": "BlueGreen"}), "spec.strategy.type", "Unsupported value"),
    ("Deployment", put("spec.strategy", {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}),
     "spec.strategy.rollingUpdate", "'Recreate'"),
    ("Deployment", put("spec.strategy", {"rollingUpdate": {"maxSurge": "lots"}}),
     "spec.strategy.rollingUpdate.maxSurge", "percentage"),
    ("Deployment", put("spec.strategy", {"rollingUpdate": {"maxSurge": -1}}),
     "spec.strategy.rollingUpdate.maxSurge", "greater than or equal to 0"),
    ("Deployment", put("spec.strategy", {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}),
     "spec.strategy.rollingUpdate.maxUnavailable", "may not be 0 when `maxSurge` is 0"),
    ("Deployment", put("spec.strategy", {"rollingUpdate": {"maxUnavailable": "150%"}}),
     "spec.strategy.rollingUpdate.maxUnavailable", "100%"),
    ("Deployment", put("spec.revisionHistoryLimit", -1), "spec.revisionHistoryLimit", "greater than or equal"),
    ("Deployment", put("spec.progressDeadlineSeconds", 0), "spec.progressDeadlineSeconds", "greater than 0"),
    ("Deployment", both(put("spec.minReadySeconds", 10), put("spec.progressDeadlineSeconds", 5)),
     "spec.progressDeadlineSeconds", "minReadySeconds"),
    ("Deployment", put("spec.template.spec.restartPolicy", "Never"), "spec.template.spec.restartPolicy",
     'supported values: "Always"'),
    ("Deployment", put("spec.template.spec.containers", []), "spec.template.spec.containers", "at least one"),
    ("ReplicaSet", put("spec.template.metadata.labels", {"app": "other"}), "spec.selector",
     "`selector` does not match template `labels`"),
    ("ReplicaSet", put("spec.replicas", -2), "spec.replicas", "greater than or equal to 0"),
    ("ReplicaSet", put("spec.template.spec.activeDeadlineSeconds", 5), "spec.template.spec.activeDeadlineSeconds",
     "Forbidden"),
    ("ReplicationController", put("spec.selector", {"app": "other"}), "spec.selector",
     "`selector` does not match template `labels`"),
    ("ReplicationController", both(drop("spec.selector"), put("spec.template.metadata.labels", {})),
     "spec.selector", "Required value"),
    ("ReplicationController", put("spec.selector", {"app": "web", "tier": "-bad-"}),
     "spec.selector[tier]", "Invalid value"),
    ("ReplicationController", put("spec.replicas", -1), "spec.replicas", "greater than or equal to 0"),
    ("ReplicationController", put("spec.minReadySeconds", -1), "spec.minReadySeconds", "greater than or equal"),
    ("ReplicationController", put("spec.template.spec.restartPolicy", "Never"), "spec.template.spec.restartPolicy",
     'supported values: "Always"'),
    # ---- Service
    ("Service", drop("spec.ports"), "spec.ports", "Required value"),
    ("Service", put("spec.ports.0.port", 70000), "spec.ports[0].port", "between 1 and 65535"),
    ("Service", drop("spec.ports.0.port"), "spec.ports[0].port", "Required"),
    ("Service", put("spec.ports.0", {"name": "http"}), "spec.ports[0].port", "Required"),
    ("Service", put("spec.ports.0", {"port": 70000}), "spec.ports[0].port", "between 1 and 65535"),
    ("Service", put("spec.ports.0.targetPort", 70000), "spec.ports[0].targetPort", "between 1 and 65535"),
    ("Service", put("spec.ports.0.targetPort", "HTTP"), "spec.ports[0].targetPort", "lower case"),
    ("Service", put("spec.ports.0.protocol", "ICMP"), "spec.ports[0].protocol", "Unsupported value"),
    ("Service", put("spec.ports.0.nodePort", 30080), "spec.ports[0].nodePort", "Forbidden"),
    ("Service", both(put("spec.type", "NodePort"), put("spec.ports.0.nodePort", 8080)), "spec.ports[0].nodePort",
     "between 30000 and 32767"),
    ("Service", put("spec.ports.1", {"port": 443}), "spec.ports[1].name", "Required value"),
    ("Service", put("spec.ports.1", {"name": "http", "port": 443}), "spec.ports[1].name", "Duplicate value"),
    ("Service", put("spec.ports.1", {"name": "again", "port": 80}), "spec.ports[1]", "Duplicate value"),
    ("Service", put("spec.ports.0.name", "Http"), "spec.ports[0].name", "RFC 1123 label"),
    ("Service", put("spec.type", "Magic"), "spec.type", "Unsupported value"),
    ("Service", put("spec.type", "ExternalName"), "spec.externalName", "Required value"),
    ("Service", both(put("spec.type", "ExternalName"), put("spec.externalName", "Not_A_Host")),
     "spec.externalName", "RFC 1123 subdomain"),
    ("Service", both(put("spec.type", "ExternalName"), put("spec.externalName", "db.example.com"),
                     put("spec.clusterIP", "10.0.0.1")), "spec.clusterIP", "ExternalName"),
    ("Service", put("spec.sessionAffinity", "Sticky"), "spec.sessionAffinity", "Unsupported value"),
    ("Service", put("spec.sessionAffinityConfig", {"clientIP": {"timeoutSeconds": 5}}),
     "spec.sessionAffinityConfig", "Forbidden"),
    ("Service", both(put("spec.sessionAffinity", "ClientIP"),
                     put("spec.sessionAffinityConfig", {"clientIP": {"timeoutSeconds": 0}})),
     "spec.sessionAffinityConfig.clientIP.timeoutSeconds", "between 1 and 86400"),
    ("Service", put("spec.clusterIP", "10.0.0.300"), "spec.clusterIP", "IPv4"),
    ("Service", put("spec.clusterIP", "fd00::1"), "spec.clusterIP", "IPv4"),
    ("Service", both(put("spec.type", "NodePort"), put("spec.clusterIP", "None")), "spec.clusterIP",
     "NodePort"),
    ("Service", put("spec.selector", {"app": "w b"}), "spec.selector[app]", "invalid label value"),
    ("Service", put("spec.externalIPs", ["1.2.3"]), "spec.externalIPs[0]", "IPv4"),
    ("Service", put("spec.externalTrafficPolicy", "Local"), "spec.externalTrafficPolicy",
     "externally-accessible"),
    ("Service", both(put("spec.type", "NodePort"), put("spec.externalTrafficPolicy", "local")),
     "spec.externalTrafficPolicy", "Unsupported value"),
    # ---- ConfigMap / Secret
    ("ConfigMap", put("data", {"a b": "x"}), "data[a b]", "valid config key"),
    ("ConfigMap", put("data", {"..x": "x"}), "data[..x]", "'..'"),
    ("ConfigMap", put("data", {"k" * 254: "x"}), "data[" + "k" * 254 + "]", "no more than 253"),
    ("ConfigMap", put("data", {"blob.bin": "x"}), "binaryData[blob.bin]", "Duplicate value"),
    ("ConfigMap", put("data", {"big": "x" * (1024 * 1024)}), "data", "Too long"),
    ("Secret", put("data", {"bad/key": "eA=="}), "data[bad/key]", "valid config key"),
    ("Secret", put("stringData", {"big": "x" * (1024 * 1024)}), "data", "Too long"),
    ("Secret", both(put("type", "kubernetes.io/tls"), put("data", {"tls.key": "eA=="})), "data[tls.crt]",
     "Required value"),
    # ---- Node, Endpoints, Event
    ("Node", put("spec.taints.0.effect", "Evict"), "spec.taints[0].effect", "Unsupported value"),
    ("Node", drop("spec.taints.0.effect"), "spec.taints[0].effect", "Required value"),
    ("Node", put("spec.taints.0.key", "bad key"), "spec.taints[0].key", "alphanumeric"),
    ("Node", put("spec.taints.1", {"key": "dedicated", "effect": "NoSchedule"}), "spec.taints[1]",
     "Duplicate value"),
    ("Node", put("spec.podCIDR", "10.244.1.0/33"), "spec.podCIDR", "CIDR"),
    ("Node", put("status.capacity", {"cpu": "four"}), "status.capacity[cpu]", "invalid quantity"),
    ("Endpoints", put("subsets.0.addresses.0.ip", "10.244.1"), "subsets[0].addresses[0].ip", "IPv4"),
    ("Endpoints", put("subsets.0.notReadyAddresses", [{"hostname": "x"}]), "subsets[0].notReadyAddresses[0].ip",
     "Required"),
    ("Endpoints", put("subsets.0.ports.0.port", 0), "subsets[0].ports[0].port", "between 1 and 65535"),
    ("Event", drop("involvedObject.kind"), "involvedObject.kind", "Required value"),
    ("Event", drop("involvedObject.name"), "involvedObject.name", "Required value"),
    ("Event", put("type", "Info"), "type", "Unsupported value"),
    # ---- Lease
    ("Lease", put("spec.leaseDurationSeconds", 0), "spec.leaseDurationSeconds", "greater than 0"),
    ("Lease", put("spec.leaseTransitions", -1), "spec.leaseTransitions", "greater than or equal to 0"),
    ("Lease", put("spec.renewTime", "yesterday"), "spec.renewTime", "RFC 3339"),
    ("Lease", put("spec.acquireTime", "2024-13-01T00:00:00Z"), "spec.acquireTime", "RFC 3339"),
    # ---- PodDisruptionBudget
    ("PodDisruptionBudget", put("spec.maxUnavailable", 1), "spec", "cannot be both set"),
    ("PodDisruptionBudget", drop("spec.minAvailable"), "spec", "one of minAvailable or maxUnavailable"),
    ("PodDisruptionBudget", put("spec.minAvailable", -1), "spec.minAvailable", "greater than or equal to 0"),
    ("PodDisruptionBudget", put("spec.minAvailable", "101%"), "spec.minAvailable", "not be greater than 100%"),
    ("PodDisruptionBudget", put("spec.minAvailable", "half"), "spec.minAvailable", "integer or a percentage"),
    ("PodDisruptionBudget", both(drop("spec.minAvailable"), put("spec.maxUnavailable", "1.5%")),
     "spec.maxUnavailable", "integer or a percentage"),
    ("PodDisruptionBudget", put("spec.selector.matchLabels", {"app": "-bad-"}), "spec.selector.matchLabels[app]",
     "Invalid value"),
    ("PodDisruptionBudget", put("spec.selector.matchExpressions", [{"key": "app", "operator": "In"}]),
     "spec.selector.matchExpressions[0].values", "Required value"),
    ("PodDisruptionBudget", put("spec.unhealthyPodEvictionPolicy", "Sometimes"), "spec.unhealthyPodEvictionPolicy",
     "Unsupported value"),
    # ---- RBAC
    ("Role", put("rules.0.verbs", []), "rules[0].verbs", "at least one value"),
    ("Role", put("rules.0.apiGroups", []), "rules[0].apiGroups", "at least one api group"),
    ("ClusterRole", put("rules.0.resources", []), "rules[0].resources", "at least one resource"),
    ("ClusterRole", put("metadata.name", "a/b"), "metadata.name", "may not contain \"/\""),
    ("RoleBinding", put("roleRef.kind", "Deployment"), "roleRef.kind", "Unsupported value"),
    ("RoleBinding", put("roleRef.apiGroup", "apps"), "roleRef.apiGroup", "Unsupported value"),
    ("RoleBinding", drop("roleRef.name"), "roleRef.name", "Required value"),
    ("RoleBinding", put("subjects.0.kind", "Robot"), "subjects[0].kind", "Unsupported value"),
    ("RoleBinding", put("subjects.0.name", ""), "subjects[0].name", "Required value"),
    ("RoleBinding", put("subjects.1.name", "CI_bot"), "subjects[1].name", "Invalid value"),
    ("RoleBinding", put("subjects.1.apiGroup", "rbac.authorization.k8s.io"), "subjects[1].apiGroup",
     "Unsupported value"),
    ("RoleBinding", put("subjects.0.namespace", "x"), "subjects[0].namespace", "has no namespace"),
    ("ClusterRoleBinding", put("roleRef.kind", "Role"), "roleRef.kind", "Unsupported value"),
    ("ClusterRoleBinding", drop("subjects.1.namespace"), "subjects[1].namespace", "Required value"),
]


def _case_id(case):
    kind, _, path, _ = case
    return f"{kind}:{path}"


@pytest.mark.parametrize("kind", sorted(BASES))
def test_base_objects_are_valid(kind):
    assert errors_of(copy.deepcopy(BASES[kind])) == []


@pytest.mark.parametrize("case", INVALID, ids=[_case_id(c) for c in INVALID])
def test_invalid(case):
    kind, mutate, path, text = case
    doc = copy.deepcopy(BASES[kind])
    mutate(doc)
    errors = errors_of(doc)
    shown = "\n".join(str(e) for e in errors)
    matching = [e for e in errors if e.path == path]
    assert matching, f"no error at {path}; got:\n{shown}"
    assert any(text in e.detail for e in matching), f"{text!r} not in:\n{shown}"
    assert len(errors) == 1, f"expected only the error at {path}; got:\n{shown}"


VALID_VARIANTS = [
    ("Service", both(put("spec.type", "LoadBalancer"), put("spec.externalTrafficPolicy", "Local"))),
    ("Service", both(put("spec.externalIPs", ["10.200.0.250"]), put("spec.externalTrafficPolicy", "Cluster"))),
    ("Pod", both(drop("metadata.name"), put("metadata.generateName", "web-"))),
    ("Pod", put("metadata.name", "web.example-1")),
    ("Pod", put("metadata.labels", {"app.kubernetes.io/name": "web", "empty": ""})),
    ("Pod", put("metadata.ownerReferences", [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs",
                                              "uid": "u-1", "controller": True}])),
    ("Pod", put(f"{C0}.resources", {"limits": {"cpu": "1", "memory": "128Mi", "example.com/gpu": "1"},
                                    "requests": {"cpu": "500m", "memory": "128Mi", "ephemeral-storage": "1Gi"}})),
    ("Pod", put(f"{C0}.env", [
        {"name": "A", "value": "1"}, {"name": "my.var-x", "value": ""},
        {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "app.properties"}}},
        {"name": "C", "valueFrom": {"secretKeyRef": {"name": "s", "key": "password"}}},
        {"name": "D", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "E", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "F", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}}])),
    ("Pod", put(f"{C0}.envFrom", [{"configMapRef": {"name": "cfg"}}, {"prefix": "S_", "secretRef": {"name": "s"}}])),
    ("Pod", put(f"{C0}.volumeMounts", [{"name": "data", "mountPath": "/data"},
                                       {"name": "data", "mountPath": "/cache", "subPath": "cache"}])),
    ("Pod", put("spec.volumes", [{"name": "data", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
                                 {"name": "logs", "hostPath": {"path": "/var/log", "type": "Directory"}},
                                 {"name": "cfg", "configMap": {"name": "cfg", "items": [{"key": "k", "path": "k"}]}},
                                 {"name": "sec", "secret": {"secretName": "s", "defaultMode": 0o400}},
                                 {"name": "pvc", "persistentVolumeClaim": {"claimName": "claim"}}])),
    ("Pod", put(f"{C0}.livenessProbe", {"httpGet": {"path": "/healthz", "port": "http"}, "initialDelaySeconds": 3})),
    ("Pod", put(f"{C0}.readinessProbe", {"tcpSocket": {"port": 80}, "successThreshold": 3})),
    ("Pod", put(f"{C0}.startupProbe", {"exec": {"command": ["cat", "/ready"]}, "failureThreshold": 30})),
    ("Pod", put(f"{C0}.livenessProbe", {"grpc": {"port": 9000}})),
    ("Pod", put(f"{C0}.readinessProbe", {"grpc": {"port": 65535, "service": "skiff.Echo"}})),
    ("Pod", put(f"{C0}.lifecycle", {"preStop": {"exec": {"command": ["sleep", "5"]}},
                                    "postStart": {"httpGet": {"port": 80}}})),
    ("Pod", put("spec.initContainers", [{"name": "init", "image": "busybox", "command": ["true"]}])),
    ("Pod", put("spec.initContainers", [{"name": "side", "image": "busybox", "restartPolicy": "Always",
                                         "startupProbe": {"exec": {"command": ["true"]}},
                                         "livenessProbe": {"exec": {"command": ["true"]}},
                                         "readinessProbe": {"tcpSocket": {"port": 80}},
                                         "lifecycle": {"preStop": {"exec": {"command": ["true"]}}}}])),
    ("Pod", put("spec.restartPolicy", "OnFailure")),
    ("Pod", both(put("spec.dnsPolicy", "None"), put("spec.dnsConfig", {"nameservers": ["1.1.1.1"]}))),
    ("Pod", both(put("spec.hostNetwork", True), put(f"{C0}.ports.0.hostPort", 80))),
    ("Pod", put("spec.nodeSelector", {"disk": "ssd", "kubernetes.io/hostname": "node-1"})),
    ("Pod", put("spec.tolerations", [{"operator": "Exists"}, {"key": "k", "operator": "Equal", "value": "v",
                                                              "effect": "NoExecute", "tolerationSeconds": 30},
                                     {"key": "k2", "effect": "NoSchedule"}])),
    ("Pod", put("spec.affinity", {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]},
                                      {"key": "gpu", "operator": "DoesNotExist"},
                                      {"key": "cpus", "operator": "Gt", "values": ["2"]}],
                 "matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["node-9"]}]}]},
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 50, "preference": {"matchExpressions": [{"key": "zone", "operator": "Exists"}]}}]},
        "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "web"}},
                                                "topologyKey": "kubernetes.io/hostname"}}]}})),
    ("Pod", put("spec.activeDeadlineSeconds", 60)),
    ("Deployment", put("spec.replicas", 0)),
    ("Deployment", put("spec.strategy", {"type": "Recreate"})),
    ("Deployment", put("spec.strategy", {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})),
    ("Deployment", put("spec.strategy", {"rollingUpdate": {"maxSurge": "0%", "maxUnavailable": "100%"}})),
    ("Deployment", put("spec.selector", {"matchLabels": {"app": "web"}, "matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["fe", "be"]}, {"key": "canary", "operator": "DoesNotExist"}]})),
    ("Deployment", put("spec.revisionHistoryLimit", 0)),
    ("Service", drop("spec.selector")),
    ("Service", both(put("spec.clusterIP", "None"), drop("spec.ports"))),
    ("Service", both(put("spec.type", "ExternalName"), put("spec.externalName", "db.example.com"),
                     drop("spec.ports"))),
    ("Service", put("spec.clusterIP", "10.96.0.10")),
    ("Service", both(put("spec.type", "NodePort"), put("spec.ports.0.nodePort", 30080))),
    ("Service", both(put("spec.type", "LoadBalancer"), put("spec.ports.0.nodePort", 32767))),
    ("Service", put("spec.ports", [{"name": "http", "port": 80, "targetPort": 8080},
                                   {"name": "dns", "port": 53, "protocol": "UDP"},
                                   {"name": "dns-tcp", "port": 53, "protocol": "TCP"}])),
    ("Service", put("spec.sessionAffinity", "ClientIP")),
    ("ConfigMap", put("data", {"-_.": "x", "a": ""})),
    ("Secret", both(put("type", "kubernetes.io/tls"), put("data", {"tls.crt": "eA==", "tls.key": "eA=="}))),
    ("Secret", put("type", "example.com/custom")),
    ("Node", put("spec.taints", [{"key": "a", "effect": "NoSchedule"}, {"key": "a", "effect": "NoExecute"}])),
    ("Endpoints", put("subsets", [])),
    ("PodDisruptionBudget", put("spec.minAvailable", "100%")),
    ("PodDisruptionBudget", put("spec.minAvailable", 0)),
    ("PodDisruptionBudget", both(drop("spec.minAvailable"), put("spec.maxUnavailable", "25%"))),
    ("PodDisruptionBudget", put("spec.selector", {})),
    ("PodDisruptionBudget", drop("spec.selector")),
    ("PodDisruptionBudget", put("spec.unhealthyPodEvictionPolicy", "AlwaysAllow")),
    ("PodDisruptionBudget", put("spec.unhealthyPodEvictionPolicy", "IfHealthyBudget")),
]


@pytest.mark.parametrize("case", VALID_VARIANTS, ids=[f"{k}-{i}" for i, (k, _) in enumerate(VALID_VARIANTS)])
def test_valid_variants(case):
    kind, mutate = case
    doc = copy.deepcopy(BASES[kind])
    mutate(doc)
    errors = errors_of(doc)
    assert errors == [], "\n".join(str(e) for e in errors)


def test_errors_are_collected_not_stopped_at_first():
    doc = copy.deepcopy(BASES["Deployment"])
    doc["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = 70000
    doc["spec"]["selector"] = {"matchLabels": {"app": "api"}}
    doc["spec"]["replicas"] = -1
    paths = {e.path for e in errors_of(doc)}
    assert paths == {"spec.template.spec.containers[0].ports[0].containerPort", "spec.selector", "spec.replicas"}


def test_secret_type_required_without_defaults():
    doc = copy.deepcopy(BASES["Secret"])
    errors = errors_of(doc, defaults=False)
    assert [e.path for e in errors] == ["type"]


def test_fields_defaulting_fills_are_required():
    doc = copy.deepcopy(BASES["Pod"])
    errors = {e.path for e in errors_of(doc, defaults=False)}
    assert {"spec.restartPolicy", "spec.dnsPolicy", f"{PC0}.imagePullPolicy"} <= errors


# ---------------------------------------------------------------- updates

def update_errors(kind_name: str, change) -> list:
    old_doc = copy.deepcopy(BASES[kind_name])
    new_doc = copy.deepcopy(old_doc)
    change(new_doc)
    kind, old = decoded(old_doc)
    _, new = decoded(new_doc)
    return validate_update(kind, new, old)


def with_old(kind_name: str, prepare, change) -> list:
    """Like update_errors, with the old object first changed by prepare."""
    base = copy.deepcopy(BASES[kind_name])
    prepare(base)
    old_doc, new_doc = base, copy.deepcopy(base)
    change(new_doc)
    kind, old = decoded(old_doc)
    _, new = decoded(new_doc)
    return validate_update(kind, new, old)


@pytest.mark.parametrize("kind, change", [
    ("Deployment", put("spec.replicas", 5)),
    ("Deployment", put(f"{T0}.image", "nginx:1.28")),
    ("Deployment", put("spec.template.metadata.labels", {"app": "web", "version": "2"})),
    ("ReplicaSet", put("spec.replicas", 0)),
    ("ReplicationController", both(put("spec.selector", {"app": "web", "v": "2"}),
                                   put("spec.template.metadata.labels", {"app": "web", "v": "2"}))),
    ("Service", put("spec.clusterIP", "10.96.0.5")),  # "" -> allocated
    ("Service", put("spec.ports.0.port", 8080)),
    ("Pod", put(f"{C0}.image", "nginx:1.28")),
    ("Pod", put("spec.initContainers", [])),
    ("Pod", put("spec.activeDeadlineSeconds", 30)),
    ("Pod", put("spec.tolerations", [{"key": "k", "operator": "Exists"}])),
    ("Pod", put("spec.nodeName", "node-1")),
    ("Pod", put("metadata.labels", {"app": "web", "extra": "x"})),
    ("ConfigMap", put("data", {"changed": "yes"})),
    ("Secret", put("data", {"changed": "eQ=="})),
    ("Node", put("spec.unschedulable", True)),
    ("RoleBinding", put("subjects", [{"kind": "Group", "name": "devs"}])),
    ("ClusterRole", put("rules", [])),
])
def test_allowed_updates(kind, change):
    errors = update_errors(kind, change)
    assert errors == [], "\n".join(str(e) for e in errors)


@pytest.mark.parametrize("kind, change, path, text", [
    ("Deployment", put("spec.selector", {"matchLabels": {"app": "web", "tier": "fe"}}), "spec.selector",
     "field is immutable"),
    ("ReplicaSet", put("spec.selector", {"matchLabels": {"app": "other"}}), "spec.selector", "field is immutable"),
    ("Pod", put(f"{C0}.ports.0.containerPort", 8080), "spec", "pod updates may not change fields other than"),
    ("Pod", put(f"{C0}.env", [{"name": "A", "value": "1"}]), "spec", "spec.containers[0].env"),
    ("Pod", put("spec.restartPolicy", "Never"), "spec", "spec.restartPolicy"),
    ("Pod", put("spec.containers.1", {"name": "b", "image": "b"}), "spec", "spec.containers"),
    ("RoleBinding", put("roleRef.name", "other"), "roleRef", "field is immutable"),
    ("ClusterRoleBinding", put("roleRef.name", "view"), "roleRef", "field is immutable"),
])
def test_forbidden_updates(kind, change, path, text):
    errors = update_errors(kind, change)
    shown = "\n".join(str(e) for e in errors)
    assert [e.path for e in errors] == [path], shown
    assert text in errors[0].detail, shown


def test_service_cluster_ip_is_immutable_once_set():
    set_ip = put("spec.clusterIP", "10.96.0.10")
    errors = with_old("Service", set_ip, put("spec.clusterIP", "10.96.0.11"))
    assert [(e.path, "field is immutable" in e.detail) for e in errors] == [("spec.clusterIP", True)]
    errors = with_old("Service", set_ip, put("spec.clusterIP", ""))
    assert [e.path for e in errors] == ["spec.clusterIP"]
    # changing to ExternalName releases the cluster IP
    to_external = both(put("spec.type", "ExternalName"), put("spec.externalName", "db.example.com"),
                       put("spec.clusterIP", ""))
    assert with_old("Service", set_ip, to_external) == []


def test_pod_binding_only_from_empty():
    bound = put("spec.nodeName", "node-1")
    assert with_old("Pod", bound, put("spec.nodeName", "node-1")) == []
    errors = with_old("Pod", bound, put("spec.nodeName", "node-2"))
    assert [e.path for e in errors] == ["spec"]
    assert "spec.nodeName" in errors[0].detail


def test_pod_tolerations_only_added():
    one = put("spec.tolerations", [{"key": "a", "operator": "Exists"}])
    assert with_old("Pod", one, put("spec.tolerations", [{"key": "a", "operator": "Exists"},
                                                          {"key": "b", "operator": "Exists"}])) == []
    errors = with_old("Pod", one, put("spec.tolerations", []))
    assert [e.path for e in errors] == ["spec"]
    assert "spec.tolerations" in errors[0].detail


def test_pod_active_deadline_only_lowered():
    set_deadline = put("spec.activeDeadlineSeconds", 60)
    assert with_old("Pod", set_deadline, put("spec.activeDeadlineSeconds", 30)) == []
    errors = with_old("Pod", set_deadline, put("spec.activeDeadlineSeconds", 90))
    assert [e.path for e in errors] == ["spec.activeDeadlineSeconds"]
    errors = with_old("Pod", set_deadline, drop("spec.activeDeadlineSeconds"))
    assert [e.path for e in errors] == ["spec.activeDeadlineSeconds"]


def test_immutable_config_map_and_secret():
    immutable = put("immutable", True)
    errors = with_old("ConfigMap", immutable, put("data", {"x": "y"}))
    assert [e.path for e in errors] == ["data"]
    errors = with_old("ConfigMap", immutable, put("immutable", False))
    assert [e.path for e in errors] == ["immutable"]
    assert with_old("ConfigMap", immutable, put("metadata.labels", {"a": "b"})) == []
    errors = with_old("Secret", immutable, put("data", {"x": "eQ=="}))
    assert [e.path for e in errors] == ["data"]


def test_secret_type_is_immutable():
    errors = update_errors("Secret", put("type", "example.com/other"))
    assert [e.path for e in errors] == ["type"]
    assert "field is immutable" in errors[0].detail
