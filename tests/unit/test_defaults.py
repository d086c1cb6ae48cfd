import base64

import pytest

from skiff.api import codec, kinds
from skiff.api.defaults import apply_defaults, default_pull_policy


def defaulted(doc: dict) -> dict:
    """decode -> apply_defaults -> encode, checking that defaulting twice changes nothing."""
    kind = kinds.for_manifest(doc["apiVersion"], doc["kind"])
    msg = codec.decode(kind.message, doc)
    apply_defaults(kind, msg)
    once = codec.encode(msg)
    apply_defaults(kind, msg)
    assert codec.encode(msg) == once, "apply_defaults must be idempotent"
    return once


def pod(**spec) -> dict:
    spec.setdefault("containers", [{"name": "app", "image": "nginx:1.27"}])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}


def test_api_version_and_kind_filled():
    kind = kinds.BY_NAME["Deployment"]
    msg = kind.message()
    apply_defaults(kind, msg)
    assert (msg.api_version, msg.kind) == ("apps/v1", "Deployment")


def test_pod_spec_defaults():
    spec = defaulted(pod())["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["dnsPolicy"] == "ClusterFirst"
    assert spec["schedulerName"] == "default-scheduler"
    container = spec["containers"][0]
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["terminationMessagePath"] == "/dev/termination-log"


def test_pod_defaults_keep_user_values():
    spec = defaulted(pod(restartPolicy="Never", terminationGracePeriodSeconds=0, dnsPolicy="Default",
                         schedulerName="mine",
                         containers=[{"name": "a", "image": "x", "imagePullPolicy": "Never"}]))["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["terminationGracePeriodSeconds"] == 0  # explicit zero is kept
    assert spec["dnsPolicy"] == "Default"
    assert spec["schedulerName"] == "mine"
    assert spec["containers"][0]["imagePullPolicy"] == "Never"


@pytest.mark.parametrize("image, policy", [
    ("nginx", "Always"),
    ("nginx:latest", "Always"),
    ("nginx:1.27", "IfNotPresent"),
    ("localhost:5000/nginx", "Always"),
    ("localhost:5000/nginx:1", "IfNotPresent"),
    ("localhost:5000/nginx:latest", "Always"),
    ("nginx@sha256:" + "a" * 64, "IfNotPresent"),
    ("registry.example.com/team/app:v2", "IfNotPresent"),
])
def test_image_pull_policy(image, policy):
    assert default_pull_policy(image) == policy


def test_container_defaults_apply_to_init_containers_ports_probes_and_handlers():
    container = {
        "name": "app", "image": "app:1",
        "ports": [{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}],
        "livenessProbe": {"httpGet": {"port": 80}},
        "readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 3},
        "lifecycle": {"preStop": {"httpGet": {"port": 80}}},
        "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
    }
    spec = defaulted(pod(containers=[container], initContainers=[{"name": "init", "image": "busybox"}]))["spec"]
    c = spec["containers"][0]
    assert [p["protocol"] for p in c["ports"]] == ["TCP", "UDP"]
    assert c["livenessProbe"] == {"httpGet": {"path": "/", "port": 80, "scheme": "HTTP"}, "timeoutSeconds": 1,
                                  "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}
    assert c["readinessProbe"]["periodSeconds"] == 3
    assert c["readinessProbe"]["timeoutSeconds"] == 1
    assert c["lifecycle"]["preStop"]["httpGet"] == {"path": "/", "port": 80, "scheme": "HTTP"}
    assert c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"] == "v1"
    init = spec["initContainers"][0]
    assert init["imagePullPolicy"] == "Always"
    assert init["terminationMessagePath"] == "/dev/termination-log"


def test_volume_default_mode():
    spec = defaulted(pod(volumes=[{"name": "c", "configMap": {"name": "cm"}},
                                  {"name": "s", "secret": {"secretName": "s", "defaultMode": 0o400}},
                                  {"name": "e", "emptyDir": {}}]))["spec"]
    assert spec["volumes"][0]["configMap"]["defaultMode"] == 0o644
    assert spec["volumes"][1]["secret"]["defaultMode"] == 0o400
    assert spec["volumes"][2] == {"name": "e", "emptyDir": {}}


def deployment(**spec) -> dict:
    spec.setdefault("selector", {"matchLabels": {"app": "web"}})
    spec.setdefault("template", {"metadata": {"labels": {"app": "web"}, "namespace": "other"},
                                 "spec": {"containers": [{"name": "web", "image": "nginx"}]}})
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": spec}


def test_deployment_defaults():
    spec = defaulted(deployment())["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "RollingUpdate",
                                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    assert spec["template"]["spec"]["restartPolicy"] == "Always"
    assert spec["template"]["spec"]["containers"][0]["imagePullPolicy"] == "Always"
    assert spec["template"]["metadata"]["namespace"] == "other"  # untouched


def test_deployment_keeps_explicit_values():
    spec = defaulted(deployment(replicas=0, revisionHistoryLimit=0,
                                strategy={"rollingUpdate": {"maxSurge": 0}}))["spec"]
    assert spec["replicas"] == 0
    assert spec["revisionHistoryLimit"] == 0
    assert spec["strategy"]["rollingUpdate"] == {"maxUnavailable": "25%", "maxSurge": 0}


def test_recreate_gets_no_rolling_update():
    spec = defaulted(deployment(strategy={"type": "Recreate"}))["spec"]
    assert spec["strategy"] == {"type": "Recreate"}


def test_replica_set_defaults():
    doc = deployment()
    doc["kind"] = "ReplicaSet"
    spec = defaulted(doc)["spec"]
    assert spec["replicas"] == 1
    assert spec["template"]["spec"]["dnsPolicy"] == "ClusterFirst"


def replication_controller(**spec) -> dict:
    spec.setdefault("template", {"metadata": {"labels": {"app": "web"}},
                                 "spec": {"containers": [{"name": "c", "image": "nginx"}]}})
    return {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "web"}, "spec": spec}


def test_replication_controller_defaults_selector_and_labels_from_the_template():
    doc = defaulted(replication_controller())
    assert doc["spec"]["selector"] == {"app": "web"}
    assert doc["metadata"]["labels"] == {"app": "web"}
    assert doc["spec"]["replicas"] == 1
    assert doc["spec"]["template"]["spec"]["dnsPolicy"] == "ClusterFirst"


def test_replication_controller_keeps_what_is_set():
    rc = replication_controller(selector={"app": "web"}, replicas=0)
    rc["metadata"]["labels"] = {"team": "a"}
    rc["spec"]["template"]["metadata"]["labels"]["v"] = "1"
    doc = defaulted(rc)
    assert doc["spec"]["selector"] == {"app": "web"} and doc["spec"]["replicas"] == 0
    assert doc["metadata"]["labels"] == {"team": "a"}


def service(**spec) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": spec}


def test_service_defaults():
    spec = defaulted(service(ports=[{"port": 80}, {"port": 443, "targetPort": "https"},
                                    {"port": 53, "protocol": "UDP", "targetPort": 5353}]))["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["sessionAffinity"] == "None"
    assert "sessionAffinityConfig" not in spec
    assert [(p["protocol"], p["targetPort"]) for p in spec["ports"]] == [
        ("TCP", 80), ("TCP", "https"), ("UDP", 5353)]


def test_service_client_ip_affinity_timeout():
    spec = defaulted(service(ports=[{"port": 80}], sessionAffinity="ClientIP"))["spec"]
    assert spec["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}


def test_secret_defaults_merge_string_data():
    doc = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
           "data": {"a": base64.b64encode(b"old").decode(), "b": base64.b64encode(b"kept").decode()},
           "stringData": {"a": "new ✓"}}
    out = defaulted(doc)
    assert out["type"] == "Opaque"
    assert "stringData" not in out
    assert base64.b64decode(out["data"]["a"]) == "new ✓".encode("utf-8")
    assert base64.b64decode(out["data"]["b"]) == b"kept"


def test_secret_type_kept():
    doc = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": "kubernetes.io/tls"}
    assert defaulted(doc)["type"] == "kubernetes.io/tls"


def test_namespace_phase():
    out = defaulted({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
    assert out["status"] == {"phase": "Active"}
    out = defaulted({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"},
                     "status": {"phase": "Terminating"}})
    assert out["status"] == {"phase": "Terminating"}


def test_kinds_without_defaults_only_get_type_meta():
    doc = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}}
    assert defaulted(doc) == doc
