"""Fields skiff decodes but does not honour are refused, each with its full path.

Every row breaks one valid object with one such field and checks the exact path;
the rows that must pass check that the honoured neighbours of a refused field
(an emptyDir with a sizeLimit, hostPort with or without hostNetwork, the
"default" service account, nodeAffinity) stay accepted.
"""

import copy

import pytest

from skiff.api import codec, kinds, unsupported
from skiff.api.errors import ValidationError

CONTAINER = {"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}
POD_SPEC = {"containers": [CONTAINER], "volumes": [{"name": "data", "emptyDir": {}}]}


def pod(spec):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}, "spec": spec}


def templated(kind_name):
    def make(spec):
        return {"apiVersion": "apps/v1", "kind": kind_name, "metadata": {"name": "web"},
                "spec": {"selector": {"matchLabels": {"app": "web"}},
                         "template": {"metadata": {"labels": {"app": "web"}}, "spec": spec}}}
    return make


# (where the pod spec sits, how to build the object around a pod spec)
HOLDERS = [("spec", pod), ("spec.template.spec", templated("ReplicaSet")),
           ("spec.template.spec", templated("Deployment"))]


def spec_with(**changes):
    """The valid POD_SPEC with top-level fields replaced."""
    spec = copy.deepcopy(POD_SPEC)
    spec.update(copy.deepcopy(changes))
    return spec


def check(doc):
    kind = kinds.for_manifest(doc["apiVersion"], doc["kind"])
    return unsupported.check(kind, codec.decode(kind.message, doc))


REFUSED = [
    # (pod spec changes, path relative to the pod spec, a word the reason must contain)
    ({"priority": 0}, "priority", "priority"),
    ({"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "db"}}]},
     "volumes[0].persistentVolumeClaim", "persistent volumes"),
    ({"initContainers": [{"name": "side", "image": "busybox", "restartPolicy": "Always",
                          "ports": [{"containerPort": 80, "hostPort": 8080}]}]},
     "initContainers[0].ports[0].hostPort", "app containers only"),
    ({"containers": [dict(CONTAINER, ports=[{"containerPort": 80, "hostPort": 8080, "hostIP": "fd00::1"}])]},
     "containers[0].ports[0].hostIP", "IPv4 only"),
    # decoded since the pod-spec fields arrived in the API types; refused until honoured
]


@pytest.mark.parametrize("changes,rel,why", REFUSED, ids=[r[1] for r in REFUSED])
@pytest.mark.parametrize("at,holder", HOLDERS, ids=["Pod", "ReplicaSet", "Deployment"])
def test_refused_with_full_path(changes, rel, why, at, holder):
    errors = check(holder(spec_with(**changes)))
    assert [e.path for e in errors] == [f"{at}.{rel}"]
    assert errors[0].detail.startswith("Forbidden: not supported yet by skiff (")
    assert why in errors[0].detail
    assert str(errors[0]).startswith(f"{at}.{rel}: Forbidden: not supported yet by skiff")


ACCEPTED = [
    {},
    {"serviceAccountName": "default"},
    {"volumes": [{"name": "data", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}]},
    {"volumes": [{"name": "data", "emptyDir": {"medium": "Memory"}}]},
    {"hostNetwork": True, "containers": [dict(CONTAINER, ports=[{"containerPort": 80, "hostPort": 80}])]},
    {"containers": [dict(CONTAINER, ports=[{"containerPort": 80, "hostPort": 8080, "hostIP": "10.0.0.1"},
                                           {"containerPort": 53, "hostPort": 5353, "protocol": "UDP"}])]},
    {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}]}}}},
    {"containers": [dict(CONTAINER, stdin=True, stdinOnce=True, tty=True,
                         resources={"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}})]},
    {"terminationGracePeriodSeconds": 5, "restartPolicy": "Always"},
    # local ephemeral storage: counted by the scheduler, limits enforced by the agent's eviction
    {"containers": [dict(CONTAINER, resources={"requests": {"ephemeral-storage": "1Gi"},
                                               "limits": {"ephemeral-storage": "2Gi"}})],
     "initContainers": [{"name": "init", "image": "busybox", "resources": {"limits": {"ephemeral-storage": "1Gi"}}}]},
    {"volumes": [{"name": "data", "emptyDir": {"sizeLimit": "1Gi"}}]},
    {"containers": [dict(CONTAINER, securityContext={"runAsUser": 1000, "runAsGroup": 1000})]},
    # honoured by the node agent since issue 11 (nodeagent/podsync/projected.py)
    {"volumes": [{"name": "info", "downwardAPI": {"items": [
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}]},
    {"volumes": [{"name": "all", "projected": {"sources": [
        {"secret": {"name": "s"}}, {"configMap": {"name": "c"}},
        {"serviceAccountToken": {"audience": "vault", "expirationSeconds": 600, "path": "token"}}]}}]},
    # honoured by the scheduler since issue 11
    {"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"}]}}},
    {"affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 1, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname"}}]}}},
    {"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                    "whenUnsatisfiable": "DoNotSchedule"}]},
    {"containers": [dict(CONTAINER, livenessProbe={"grpc": {"port": 9000}},
                         readinessProbe={"grpc": {"port": 9000, "service": "ready"}},
                         startupProbe={"grpc": {"port": 9000}})]},
    # securityContext, honoured by the node agent (nodeagent/runtime/security.py)
    {"securityContext": {"runAsUser": 1000, "runAsGroup": 1000, "runAsNonRoot": True, "fsGroup": 2000,
                         "supplementalGroups": [3000], "seccompProfile": {"type": "RuntimeDefault"},
                         "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "80"}]}},
    {"containers": [dict(CONTAINER, securityContext={
        "runAsGroup": 1000, "runAsNonRoot": True, "allowPrivilegeEscalation": False, "privileged": False,
        "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "Unconfined"}})]},
    # native sidecars (issue 11): honoured by the node agent
    {"initContainers": [{"name": "side", "image": "busybox", "restartPolicy": "Always",
                         "readinessProbe": {"exec": {"command": ["true"]}}}]},
    {"schedulingGates": [{"name": "example.com/wait"}]},
    {"imagePullSecrets": [{"name": "regcred"}]},
]


@pytest.mark.parametrize("changes", ACCEPTED)
@pytest.mark.parametrize("at,holder", HOLDERS, ids=["Pod", "ReplicaSet", "Deployment"])
def test_honoured_fields_pass(changes, at, holder):
    assert check(holder(spec_with(**changes))) == []


def test_every_refusal_is_reported_at_once():
    spec = spec_with(priority=1,
                     volumes=[{"name": "a", "persistentVolumeClaim": {"claimName": "x"}},
                              {"name": "b", "persistentVolumeClaim": {"claimName": "y"}}])
    assert [e.path for e in check(pod(spec))] == [
        "spec.priority",
        "spec.volumes[0].persistentVolumeClaim", "spec.volumes[1].persistentVolumeClaim"]


def test_kinds_without_pod_specs_have_nothing_to_refuse():
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
           "spec": {"ports": [{"port": 80}], "selector": {"app": "web"}}}
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "b"}}
    assert check(svc) == [] and check(cm) == []


def test_issue_11_service_and_account_fields_are_honoured():
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
           "spec": {"ports": [{"port": 80}], "selector": {"app": "web"},
                    "ipFamilyPolicy": "PreferDualStack", "ipFamilies": ["IPv4"]}}
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot"},
          "imagePullSecrets": [{"name": "regcred"}]}
    assert check(svc) == [] and check(sa) == []


def test_pod_specs_found_by_type_not_by_kind():
    kind = kinds.BY_NAME["Deployment"]
    msg = codec.decode(kind.message, templated("Deployment")(POD_SPEC))
    assert [path for path, _ in unsupported.pod_specs(msg)] == ["spec.template.spec"]


NOT_IN_API = [
    # (pod spec changes, path, a word the reason must contain)
    ({"priorityClassName": "high"}, "spec.priorityClassName", "priority"),
    ({"serviceAccount": "default"}, "spec.serviceAccount", "deprecated name of serviceAccountName"),
    ({"volumes": [{"name": "vol", "cinder": {"volumeID": "x"}}]}, "spec.volumes[0].cinder", "no cinder volumes"),
    ({"volumes": [{"name": "vol", "nfs": {"server": "s", "path": "/"}}]}, "spec.volumes[0].nfs", "hostPath"),
    ({"securityContext": {"seLinuxOptions": {"level": "s0"}}}, "spec.securityContext.seLinuxOptions", "SELinux"),
    ({"volumes": [{"name": "ca", "projected": {"sources": [{"clusterTrustBundle": {"name": "x", "path": "ca"}}]}}]},
     "spec.volumes[0].projected.sources[0].clusterTrustBundle", "ConfigMap"),
    ({"securityContext": {"appArmorProfile": {"type": "RuntimeDefault"}}}, "spec.securityContext.appArmorProfile",
     "AppArmor"),
    ({"containers": [dict(CONTAINER, securityContext={"procMount": "Unmasked"})]},
     "spec.containers[0].securityContext.procMount", "/proc"),
]


@pytest.mark.parametrize("changes,path,why", NOT_IN_API, ids=[r[1] for r in NOT_IN_API])
def test_kubernetes_fields_skiff_types_lack_are_not_supported_yet_not_unknown(changes, path, why):
    """The decoder names them as real fields skiff does not support yet."""
    with pytest.raises(ValidationError) as exc:
        codec.decode(kinds.BY_NAME["Pod"].message, pod(spec_with(**changes)))
    [error] = exc.value.errors
    assert error.path == path
    assert error.detail.startswith("Forbidden: not supported yet by skiff (") and why in error.detail


def test_a_typo_is_still_an_unknown_field():
    with pytest.raises(ValidationError) as exc:
        codec.decode(kinds.BY_NAME["Pod"].message, pod(spec_with(serviceAcountName="x")))
    assert [str(e) for e in exc.value.errors] == ["spec.serviceAcountName: unknown field"]


def test_pod_active_deadline_is_honoured_now():
    """Lifted: the node agent stops a pod at spec.activeDeadlineSeconds (reason DeadlineExceeded)."""
    assert check(pod(spec_with(activeDeadlineSeconds=60))) == []


JOB_SPEC_NOT_IN_API = [
    ("podFailurePolicy", {"rules": []}, "backoffLimit"),
    ("backoffLimitPerIndex", 1, "per-index"),
    ("maxFailedIndexes", 1, "backoffLimitPerIndex"),
    ("podReplacementPolicy", "Failed", "TerminatingOrFailed"),
    ("successPolicy", {"rules": []}, "every index"),
    ("managedBy", "example.com/x", "job controller"),
]


@pytest.mark.parametrize("field,value,why", JOB_SPEC_NOT_IN_API, ids=[r[0] for r in JOB_SPEC_NOT_IN_API])
def test_job_fields_skiff_lacks_are_not_supported_yet(field, value, why):
    doc = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
           "spec": {field: value, "template": {"spec": dict(POD_SPEC, restartPolicy="Never")}}}
    with pytest.raises(ValidationError) as exc:
        codec.decode(kinds.BY_NAME["Job"].message, doc)
    [error] = exc.value.errors
    assert error.path == f"spec.{field}"
    assert error.detail.startswith("Forbidden: not supported yet by skiff (") and why in error.detail
