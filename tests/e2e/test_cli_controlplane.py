"""The control-plane slice of the lab, through the CLI only: kubectl habits, bad input,
endpoint failover, and chaos on the Raft leader."""

import json
import os
import threading
import time

import pytest
import yaml

from skiff import client as clientmod
from skiff.api import objects_pb2 as pb
from tests.e2e.conftest import lab_down, lab_up
from tests.helpers import ROOT, wait_until

DEMO = os.path.join(ROOT, "examples", "demo.yaml")


def state_dump(lab) -> str:
    """Everything in the store, via the CLI (compared before/after rejected input)."""
    out = []
    for kind in ("ns", "cm", "secret", "deploy", "rs", "svc", "po", "no"):
        out.append(lab.out("get", kind, "-A", "-o", "json"))
    return "\n".join(out)


def test_apply_get_describe_delete_like_kubectl(lab, tmp_path):
    out = lab.out("apply", "-f", DEMO)
    assert out.splitlines() == ["namespace/demo created", "configmap/web-config created",
                                "secret/web-secret created", "deployment.apps/web created",
                                "service/web created"]
    assert "deployment.apps/web unchanged" in lab.out("apply", "-f", DEMO)
    changed = open(DEMO).read().replace("replicas: 3", "replicas: 5")
    assert "deployment.apps/web configured" in lab.out("apply", "-f", "-", input=changed)

    table = lab.out("get", "deploy", "-n", "demo")
    assert table.split("\n")[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert table.split("\n")[1].split()[:2] == ["web", "0/5"]
    svc = lab.out("get", "svc", "web", "--namespace", "demo", "-o", "wide")
    assert "ClusterIP" in svc and "80/TCP" in svc and "app=web" in svc
    assert lab.out("get", "cm", "-A", "--show-labels").count("web-config") == 1
    assert lab.out("get", "secret", "-n", "demo", "-o", "name") == "secret/web-secret\n"
    doc = yaml.safe_load(lab.out("get", "deploy", "web", "-n", "demo", "-o", "yaml"))
    assert doc["kind"] == "Deployment" and doc["spec"]["replicas"] == 5
    assert doc["metadata"]["generation"] == 2
    listed = json.loads(lab.out("get", "deployments.apps", "-n", "demo", "-o", "json"))
    assert listed["kind"] == "List" and listed["items"][0]["metadata"]["name"] == "web"
    assert "web" in lab.out("get", "deploy", "-A", "-l", "app=web")
    assert lab.run("get", "deploy", "-A", "-l", "app notin (web)").stderr.startswith("No resources found")
    secret = yaml.safe_load(lab.out("get", "secret", "web-secret", "-n", "demo", "-o", "yaml"))
    assert secret["data"]["token"] == "czNjcjN0"  # stringData was merged, base64 like Kubernetes

    page = lab.out("describe", "deploy", "web", "-n", "demo")
    assert "Name:" in page and "Namespace:          demo" in page and "replicas: 5" in page

    missing = lab.run("get", "po", "nope", "-n", "demo", check=False)
    assert missing.returncode == 1 and 'pods "nope" not found' in missing.stderr

    assert lab.out("delete", "svc", "web", "-n", "demo") == "service/web deleted\n"
    out = lab.out("delete", "-f", DEMO, check=False)
    assert "deployment.apps/web deleted" in out and "namespace/demo deleted" in out
    assert "demo" not in lab.out("get", "ns")


def test_short_names_and_namespace_flag_everywhere(lab):
    lab.out("create", "-f", "-", input="apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n")
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: '1'}\n"
    assert lab.out("apply", "-n", "team", "-f", "-", input=cm) == "configmap/settings created\n"
    for word in ("cm", "configmap", "configmaps"):
        assert "settings" in lab.out("get", word, "-n", "team")
    assert "settings" in lab.out("get", "cm/settings", "-n", "team")
    assert "Namespace:          team" in lab.out("describe", "cm", "settings", "-n", "team")
    mismatch = lab.run("apply", "-n", "other", "-f", "-", check=False,
                       input=cm.replace("name: settings}", "name: settings, namespace: team}"))
    assert mismatch.returncode == 1 and "does not match the namespace" in mismatch.stderr
    for word in ("ns", "no", "po", "svc", "deploy", "rs", "secret"):
        assert lab.run("get", word, "-A").returncode == 0
    lab.out("delete", "ns", "team")


BAD_INPUTS = {
    "malformed.yaml": ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [oops\n", "line"),
    "duplicate.yaml": ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  name: b\n",
                       'duplicate key "name"'),
    "unknown-kind.yaml": ("apiVersion: v1\nkind: Frobnicator\nmetadata: {name: a}\n", "unknown kind"),
    "bad-apiversion.yaml": ("apiVersion: apps/v2\nkind: Deployment\nmetadata: {name: a}\n", "apiVersion"),
    "wrong-type.yaml": ("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n"
                        "  - {name: c, image: x, ports: [{containerPort: '80'}]}\n",
                        "spec.containers[0].ports[0].containerPort"),
    "unknown-field.yaml": ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndatta: {}\n",
                           "datta: unknown field"),
    "bad-name.yaml": ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name}\n", "metadata.name"),
    "bad-quantity.yaml": ("apiVersion: v1\nkind: Pod\nmetadata: {name: q}\nspec:\n  containers:\n"
                          "  - {name: c, image: x, resources: {limits: {cpu: 12x}}}\n",
                          "spec.containers[0].resources.limits[cpu]"),
    "bad-port.yaml": ("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports: [{port: 70000}]\n",
                      "spec.ports[0].port"),
    "bad-selector.yaml": ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n"
                          "  selector: {matchLabels: {app: a}}\n  template:\n    metadata: {labels: {app: b}}\n"
                          "    spec: {containers: [{name: c, image: x}]}\n", "spec.selector"),
    "not-a-mapping.yaml": ("- just\n- a list\n", "document 1"),
    "bomb.yaml": ("a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                  "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
                  "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
                  "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
                  "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata: {x: *h}\n", "alias"),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_is_rejected_clearly_and_changes_nothing(lab, tmp_path, name):
    text, expect = BAD_INPUTS[name]
    path = tmp_path / name
    path.write_text(text)
    before = state_dump(lab)
    r = lab.run("apply", "-f", path, check=False, timeout=30)
    assert r.returncode == 1, r.stdout
    assert name in r.stderr and expect in r.stderr, r.stderr
    assert state_dump(lab) == before
    assert "leader" in lab.out("cluster", "status")  # daemons alive


def test_huge_document_is_refused(lab, tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: huge}\ndata:\n  big: "
                    + "x" * (5 * 1024 * 1024) + "\n")
    r = lab.run("apply", "-f", path, check=False)
    assert r.returncode == 1 and "huge.yaml" in r.stderr
    # Just under the file limit but over the object limit: refused by the server.
    path.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: huge}\ndata:\n  big: "
                    + "x" * (1536 * 1024) + "\n")
    r = lab.run("apply", "-f", path, check=False)
    assert r.returncode == 1 and ("limit" in r.stderr or "1 MiB" in r.stderr or "bytes" in r.stderr), r.stderr
    assert lab.run("get", "cm", "huge", check=False).returncode == 1


def test_multi_document_json_and_directory_input(lab, tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "from-json"}, "data": {"k": "v"}}))
    (tmp_path / "b.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: doc-1}\n---\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: doc-2}\n")
    out = lab.out("apply", "-f", tmp_path)
    assert out.splitlines() == ["configmap/from-json created", "configmap/doc-1 created",
                                "configmap/doc-2 created"]
    assert lab.out("delete", "-f", tmp_path).count("deleted") == 3


def test_watch_prints_changes(lab):
    proc = lab.popen("get", "cm", "-w", "-n", "default")
    try:
        time.sleep(0)  # the watch starts from the listing's version: nothing can be missed
        lab.out("create", "-f", "-", input="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: watched}\n")
        lines = []

        def reader():
            for line in proc.stdout:
                lines.append(line)
                if "watched" in line:
                    return

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        t.join(20)
        assert any(line.startswith("watched") for line in lines), lines
    finally:
        proc.kill()
        proc.wait()
        lab.run("delete", "cm", "watched", check=False)


def test_server_flag_env_and_failover_to_next_endpoint(lab):
    servers = clientmod.resolve_endpoints(config_path=lab.config)
    dead = "127.0.0.1:1"
    r = lab.run("--server", f"{dead},{servers[1]}", "get", "ns", "default")
    assert "default" in r.stdout
    # SKIFF_SERVER replaces the servers; the credentials still come from the config file.
    env_lab = type(lab)(lab.lab_dir, lab.config)
    env_lab.env["SKIFF_SERVER"] = ",".join([dead] + servers)
    assert "default" in env_lab.out("get", "ns")
    nothing = type(lab)(lab.lab_dir, "/nonexistent/config")
    r = nothing.run("get", "ns", check=False)
    assert r.returncode == 1 and "--server" in r.stderr


def test_chaos_leader_kill_under_cli_config_writes(lab):
    """kill -9 the leader while a client (from the CLI config) writes; nothing acked is lost."""
    c = clientmod.Client.from_config(config_path=lab.config, call_timeout_s=3)
    acked, stop = [], threading.Event()

    def write():
        i = 0
        while not stop.is_set():
            name = f"chaos-{i}"
            try:
                c.create(pb.ConfigMap(metadata=pb.ObjectMeta(name=name, namespace="default")))
            except clientmod.AlreadyExists:
                pass
            except clientmod.ApiError:
                continue
            acked.append((name, time.monotonic()))
            i += 1

    t = threading.Thread(target=write, daemon=True)
    t.start()
    try:
        wait_until(lambda: len(acked) > 100, 30, "writes flowing")
        status = lab.out("cluster", "status")
        leader = next(line.split()[0] for line in status.splitlines() if " leader " in line)
        t_kill = time.monotonic()
        assert f"killed control-plane replica {leader}" in lab.out("chaos", "kill-controlplane", "leader")
        wait_until(lambda: any(ts > t_kill for _, ts in acked), 15, "writes resume after the kill")
        gap = min(ts for _, ts in acked if ts > t_kill) - t_kill
        down = lab.out("cluster", "status")
        assert f"{leader}" in down and "no (" in down
        lab.out("chaos", "start-controlplane", leader)
        count = len(acked)
        wait_until(lambda: len(acked) > count + 50, 30, "writes continue")
    finally:
        stop.set()
        t.join(30)
        c.close()
    print(f"write gap after leader kill: {gap:.2f}s")
    assert gap < 6.0  # the 2 s figure is measured in bench/; this only guards a regression

    servers = clientmod.resolve_endpoints(config_path=lab.config)
    names = {n for n, _ in acked}

    def caught_up():
        for s in servers:
            one = clientmod.Client.from_config(server=s, config_path=lab.config)
            try:
                items, _ = one.list("cm", namespace="default")
            finally:
                one.close()
            if not names <= {o.metadata.name for o in items}:
                return False
        return True

    wait_until(caught_up, 30, "every acknowledged write on every replica (incl. the restarted one)")
    lab.run("delete", "cm", "-l", "", "--all", check=False)


def test_lab_down_after_a_crashed_up_and_up_again(tmp_path):
    cli = lab_up("crash")
    try:
        # Simulate the tooling dying: forget nothing, but kill the replicas uncleanly.
        status = cli.out("lab", "status")
        assert status.count("running") == 3
        for line in cli.out("lab", "status").splitlines()[1:]:
            pid = int(line.split("pid=")[1].split()[0])
            os.kill(pid, 9)
        base = int(clientmod.resolve_endpoints(config_path=cli.config)[0].rsplit(":", 1)[1])
        again = cli.run("lab", "up", "--nodes", "0", "--api-port", base, "--raft-port", base + 3,
                        timeout=120)
        assert "cleaning up the remains" in again.stdout and "skiff lab is up" in again.stdout
    finally:
        lab_down(cli)
    assert not os.path.exists(cli.lab_dir)
    leftovers = [p for p in os.listdir("/proc") if p.isdigit() and cli.lab_dir.encode()
                 in open(f"/proc/{p}/cmdline", "rb").read()] if os.path.isdir("/proc") else []
    assert not leftovers
