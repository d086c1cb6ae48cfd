"""Tables and describe pages, rendered from the kinds' registry records as kubectl renders them."""

import datetime

from skiff.api import codec, kinds
from skiff.cli import printers
from skiff.cli.describe import describe

NOW = datetime.datetime(2026, 1, 2, tzinfo=datetime.timezone.utc)
YESTERDAY = "2026-01-01T00:00:00Z"


def obj(kind_word, doc):
    kind = kinds.lookup(kind_word)
    return kind, codec.decode(kind.message, doc)


def node():
    return obj("nodes", {
        "metadata": {"name": "n1", "creationTimestamp": YESTERDAY,
                     "labels": {"node-role.kubernetes.io/control-plane": ""}},
        "spec": {"unschedulable": True},
        "status": {"conditions": [{"type": "Ready", "status": "True"}],
                   "addresses": [{"type": "InternalIP", "address": "10.0.0.5"}],
                   "nodeInfo": {"kubeletVersion": "v1.0", "osImage": "Debian", "kernelVersion": "6.1",
                                "containerRuntimeVersion": "docker://27"}}})


def test_pod_table_plain_wide_all_namespaces_labels():
    kind, pod = obj("po", {
        "metadata": {"name": "web", "namespace": "ns", "labels": {"app": "web"}, "creationTimestamp": YESTERDAY},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "nginx"}]},
        "status": {"phase": "Running", "podIP": "10.244.1.2",
                   "containerStatuses": [{"name": "c", "ready": True, "restartCount": 2, "state": {"running": {}}}]}})
    assert printers.table(kind, [pod], now=NOW).splitlines() == [
        "NAME   READY   STATUS    RESTARTS   AGE",
        "web    1/1     Running   2          24h"]
    assert printers.table(kind, [pod], wide=True, all_namespaces=True, show_labels=True, now=NOW).splitlines() == [
        "NAMESPACE   NAME   READY   STATUS    RESTARTS   AGE   IP           NODE   LABELS",
        "ns          web    1/1     Running   2          24h   10.244.1.2   n1     app=web"]
    assert printers.table(kind, [pod], headers=False, now=NOW) == "web   1/1   Running   2   24h"


def _sidecar_pod(side_state, side_started, side_ready, initialized, app_state=None):
    status = {"phase": "Running" if initialized else "Pending",
              "conditions": [{"type": "Initialized", "status": "True" if initialized else "False"}],
              "initContainerStatuses": [
                  {"name": "side", "ready": side_ready, "started": side_started, "restartCount": 3,
                   "state": side_state},
                  {"name": "init", "ready": initialized, "restartCount": 1,
                   "state": {"terminated": {"exitCode": 0, "reason": "Completed"}} if initialized
                   else {"waiting": {"reason": "PodInitializing"}}}],
              "containerStatuses": [{"name": "c", "ready": app_state is not None, "restartCount": 0,
                                     "state": app_state or {"waiting": {"reason": "PodInitializing"}}}]}
    return obj("po", {
        "metadata": {"name": "web", "namespace": "ns", "creationTimestamp": YESTERDAY},
        "spec": {"initContainers": [{"name": "side", "image": "b", "restartPolicy": "Always"},
                                    {"name": "init", "image": "b"}],
                 "containers": [{"name": "c", "image": "nginx"}]},
        "status": status})


def test_pod_table_counts_sidecars_as_kubectl():
    # READY counts sidecars, RESTARTS counts init containers' restarts too.
    kind, pod = _sidecar_pod({"running": {}}, True, True, True, {"running": {}})
    assert printers.table(kind, [pod], headers=False, now=NOW) == "web   2/2   Running   4   24h"
    # a started sidecar does not hold the pod at Init:0/2; the regular init after it does
    kind, pod = _sidecar_pod({"running": {}}, True, False, False)
    assert printers.table(kind, [pod], headers=False, now=NOW) == "web   0/2   Init:1/2   4   24h"
    kind, pod = _sidecar_pod({"running": {}}, False, False, False)
    assert printers.table(kind, [pod], headers=False, now=NOW) == "web   0/2   Init:0/2   4   24h"
    # a sidecar crash-looping after initialization: the pod's status is not Init:...
    kind, pod = _sidecar_pod({"waiting": {"reason": "CrashLoopBackOff"}}, False, False, True, {"running": {}})
    assert printers.table(kind, [pod], headers=False, now=NOW) == "web   1/2   Running   4   24h"
    page = describe(kind, pod)
    assert "Init Containers:\n  side:\n" in page and "Restart Policy:     Always" in page
    assert page.index("Init Containers:") < page.index("Containers:\n  c:")


def test_node_table_puts_age_before_version_and_internal_ip():
    kind, n = node()
    assert printers.table(kind, [n], now=NOW).splitlines() == [
        "NAME   STATUS                     ROLES           AGE   VERSION   INTERNAL-IP",
        "n1     Ready,SchedulingDisabled   control-plane   24h   v1.0      10.0.0.5"]
    wide = printers.table(kind, [n], wide=True, now=NOW).splitlines()
    assert wide[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP", "OS-IMAGE",
                               "KERNEL-VERSION", "CONTAINER-RUNTIME"]
    assert wide[1].split()[-3:] == ["Debian", "6.1", "docker://27"]
    # cluster-scoped: no NAMESPACE column even with -A
    assert printers.table(kind, [n], all_namespaces=True, now=NOW).startswith("NAME ")


def test_events_have_a_table_of_their_own_oldest_first():
    kind = kinds.lookup("events")
    older = codec.decode(kind.message, {
        "metadata": {"name": "e1", "namespace": "ns", "resourceVersion": "9"},
        "involvedObject": {"kind": "Pod", "name": "web"}, "type": "Normal", "reason": "Scheduled",
        "message": "assigned", "lastTimestamp": YESTERDAY})
    newer = codec.decode(kind.message, {
        "metadata": {"name": "e2", "namespace": "ns", "resourceVersion": "3", "labels": {"a": "b"}},
        "involvedObject": {"kind": "Pod", "name": "web"}, "type": "Warning", "reason": "BackOff",
        "message": "restarting", "count": 3, "lastTimestamp": "2026-01-01T12:00:00Z"})
    assert printers.table(kind, [newer, older], now=NOW).splitlines() == [
        "LAST SEEN   TYPE      REASON      OBJECT    MESSAGE",
        "24h         Normal    Scheduled   pod/web   assigned",
        "12h (x3)    Warning   BackOff     pod/web   restarting"]
    # --show-labels falls back to the generic table of the kind's columns
    assert printers.table(kind, [newer], show_labels=True, now=NOW).splitlines()[0].split() == [
        "NAME", "TYPE", "REASON", "OBJECT", "MESSAGE", "AGE", "LABELS"]


def test_describe_secret_shows_sizes_never_values():
    kind, secret = obj("secret", {"metadata": {"name": "s", "namespace": "ns"}, "type": "Opaque",
                                  "data": {"password": "aHVudGVyMg=="}})
    page = describe(kind, secret)
    assert "Data:\n  password:  7 bytes" in page
    assert "aHVudGVyMg" not in page and "hunter2" not in page


def test_describe_pod_has_its_section_and_a_generic_page_for_others():
    kind, pod = obj("po", {
        "metadata": {"name": "web", "namespace": "ns"},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "nginx"}]},
        "status": {"phase": "Pending"}})
    page = describe(kind, pod)
    assert "Node:               n1\n" in page and "Containers:\n  c:\n    Image:              nginx" in page
    kind, n = node()
    page = describe(kind, n)
    assert page.startswith("Name:               n1\nLabels:") and "Namespace:" not in page
    assert "Spec:\n  unschedulable: true" in page and page.endswith("Events:  <none>")


def test_describe_pod_shows_the_reason_and_message_of_an_evicted_pod():
    msg = "Pod ephemeral local storage usage exceeds the total limit of containers 10Mi. "
    kind, pod = obj("po", {
        "metadata": {"name": "hog", "namespace": "ns"},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "nginx"}]},
        "status": {"phase": "Failed", "reason": "Evicted", "message": msg}})
    page = describe(kind, pod)
    assert "Reason:             Evicted\n" in page and f"Message:            {msg}".rstrip() in page
    kind, pending = obj("po", {"metadata": {"name": "p", "namespace": "ns"},
                               "spec": {"containers": [{"name": "c", "image": "nginx"}]}})
    assert "Reason:" not in describe(kind, pending) and "Message:" not in describe(kind, pending)


def test_describe_pod_shows_each_probe_as_kubectl():
    kind, pod = obj("po", {
        "metadata": {"name": "web", "namespace": "ns"},
        "spec": {"containers": [{
            "name": "c", "image": "app",
            "livenessProbe": {"grpc": {"port": 9000}, "timeoutSeconds": 1, "periodSeconds": 10,
                              "successThreshold": 1, "failureThreshold": 3},
            "readinessProbe": {"grpc": {"port": 9000, "service": "skiff.Echo"}, "initialDelaySeconds": 2,
                               "timeoutSeconds": 2, "periodSeconds": 1, "successThreshold": 2, "failureThreshold": 1},
            "startupProbe": {"httpGet": {"port": 8080, "path": "/healthz", "scheme": "HTTP"},
                             "timeoutSeconds": 1, "periodSeconds": 5, "successThreshold": 1, "failureThreshold": 30},
        }]}})
    page = describe(kind, pod)
    assert ("    Liveness:           grpc <pod>:9000 delay=0s timeout=1s period=10s #success=1 #failure=3\n"
            "    Readiness:          grpc <pod>:9000 skiff.Echo delay=2s timeout=2s period=1s #success=2 #failure=1\n"
            "    Startup:            http-get http://:8080/healthz delay=0s timeout=1s period=5s #success=1 #failure=30"
            ) in page
    kind, pod = obj("po", {"metadata": {"name": "web"}, "spec": {"containers": [{
        "name": "c", "image": "app", "livenessProbe": {"exec": {"command": ["cat", "/ok"]}},
        "readinessProbe": {"tcpSocket": {"port": "http"}}}]}})
    page = describe(kind, pod)
    assert "Liveness:           exec [cat /ok] delay=0s" in page
    assert "Readiness:          tcp-socket :http delay=0s" in page and "Startup:" not in page


def test_pdb_table_and_describe_as_kubectl():
    kind, by_min = obj("pdb", {
        "metadata": {"name": "web", "namespace": "ns", "creationTimestamp": YESTERDAY},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
        "status": {"disruptionsAllowed": 1, "currentHealthy": 3, "desiredHealthy": 2, "expectedPods": 3}})
    _, by_max = obj("poddisruptionbudgets", {
        "metadata": {"name": "db", "namespace": "ns", "creationTimestamp": YESTERDAY},
        "spec": {"maxUnavailable": "25%", "selector": {}}})
    assert printers.table(kind, [by_min, by_max], now=NOW).splitlines() == [
        "NAME   MIN AVAILABLE   MAX UNAVAILABLE   ALLOWED DISRUPTIONS   AGE",
        "web    2               N/A               1                     24h",
        "db     N/A             25%               0                     24h"]
    page = describe(kind, by_min)
    for line in ("Min available:", "Selector:", "app=web", "Allowed disruptions:  1", "Current:", "Total:"):
        assert line in page, page


def test_rbac_tables_as_kubectl():
    kind, role = obj("clusterroles", {"metadata": {"name": "view", "creationTimestamp": YESTERDAY},
                                      "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]})
    assert printers.table(kind, [role], now=NOW).splitlines() == [
        "NAME   CREATED AT",
        "view   2026-01-01T00:00:00Z"]
    kind, role = obj("roles", {"metadata": {"name": "r", "namespace": "dev", "creationTimestamp": YESTERDAY}})
    assert printers.table(kind, [role], all_namespaces=True, now=NOW).splitlines()[0].split() == [
        "NAMESPACE", "NAME", "CREATED", "AT"]
    kind, rb = obj("rolebindings", {
        "metadata": {"name": "devs", "namespace": "dev", "creationTimestamp": YESTERDAY},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"kind": "User", "name": "alice"}, {"kind": "User", "name": "bob"},
                     {"kind": "Group", "name": "devs"}, {"kind": "ServiceAccount", "name": "ci"}]})
    assert printers.table(kind, [rb], wide=True, now=NOW).splitlines() == [
        "NAME   ROLE               AGE   USERS        GROUPS   SERVICEACCOUNTS",
        "devs   ClusterRole/edit   24h   alice, bob   devs     dev/ci"]
