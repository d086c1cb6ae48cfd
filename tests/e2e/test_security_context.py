"""Pod and container securityContext on the real lab (1 node, its engine and agent),
driven through the CLI and checked from inside the containers with `skiff exec`:

- user, group and groups (`id`): runAsUser/runAsGroup from the pod, fsGroup and
  supplementalGroups added, a container's runAsUser winning over the pod's;
- /proc/self/status: capabilities (drop ALL -> CapEff/CapBnd 0; add NET_ADMIN; privileged
  -> CAP_SYS_ADMIN), NoNewPrivs (allowPrivilegeEscalation: false), Seccomp 2 (RuntimeDefault,
  and the default) vs 0 (Unconfined);
- readOnlyRootFilesystem: writing / fails, the emptyDir stays writable for the non-root user
  through fsGroup (the file it makes belongs to the fsGroup: setgid directory);
- a sysctl of the pod (net.ipv4.ip_unprivileged_port_start) read back in the container;
- a Localhost seccomp profile (in the agent's data dir on the node) that forbids mkdir;
- runAsNonRoot on an image that runs as root, or as a named user: the container waits with
  CreateContainerConfigError and kubelet's message, which `describe` shows; runAsGroup alone
  keeps the image's (numeric, non-root) user. Those images are the lab's busybox with a
  Config.User, loaded with `skiff lab load`.
"""

import json
import os

import pytest
import yaml

from skiff.lab import images
from tests.e2e.conftest import node_docker, nodes_lab
from tests.helpers import wait_until

IMAGE = "skiff/busybox:latest"
NS = "skiff-secctx"
CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21


NAMED_USER_IMAGE = "skiff/busybox-e2e:user-nobody"     # Config.User "nobody"
NUMERIC_USER_IMAGE = "skiff/busybox-e2e:user-1000"    # Config.User "1000"


@pytest.fixture(scope="module")
def lab(request, tmp_path_factory):
    with nodes_lab(request, "secctx", 1) as cli:
        tmp = tmp_path_factory.mktemp("skiff-secctx-img")
        for tag, user in ((NAMED_USER_IMAGE, "nobody"), (NUMERIC_USER_IMAGE, "1000")):
            path = str(tmp / (tag.rsplit(":", 1)[1] + ".tar"))
            with open(path, "wb") as f:
                f.write(images.busybox_archive(tags=tag, user=user))
            cli.out("lab", "load", path, timeout=180)
        cli.out("apply", "-f", "-", input=yaml.safe_dump({"apiVersion": "v1", "kind": "Namespace",
                                                          "metadata": {"name": NS}}))
        yield cli


def apply(lab, doc):
    return lab.out("apply", "-f", "-", input=yaml.safe_dump(doc))


def sleeper(name, security_context=None, **extra):
    c = {"name": name, "image": IMAGE, "imagePullPolicy": "Never", "command": ["sleep", "3600"], **extra}
    if security_context is not None:
        c["securityContext"] = security_context
    return c


def pod(name, containers, pod_security_context=None, **spec):
    spec = {"containers": containers, "terminationGracePeriodSeconds": 1, **spec}
    if pod_security_context is not None:
        spec["securityContext"] = pod_security_context
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS}, "spec": spec}


def get_pod(lab, name) -> dict:
    return json.loads(lab.out("get", "po", name, "-n", NS, "-o", "json"))


def running(lab, name) -> bool:
    st = get_pod(lab, name).get("status", {})
    return st.get("phase") == "Running" and bool(st.get("containerStatuses")) and all(
        "running" in cs.get("state", {}) for cs in st["containerStatuses"])


def sh(lab, name, container, script, check=True):
    return lab.run("exec", name, "-n", NS, "-c", container, "--", "sh", "-c", script, check=check)


def status_of(lab, name, container) -> dict:
    """/proc/self/status of a process in the container, as {field: value}."""
    out = sh(lab, name, container, "cat /proc/self/status").stdout
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}


def caps(status, field) -> int:
    return int(status[field], 16)


@pytest.fixture(scope="module")
def secured(lab):
    """One pod: a restricted container as microservices-demo asks (non-root, groups, drop ALL,
    no escalation, read-only root) and a neighbour overriding the pod's user and seccomp."""
    apply(lab, pod("secured", [
        sleeper("restricted", {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                               "privileged": False, "readOnlyRootFilesystem": True},
                volumeMounts=[{"name": "data", "mountPath": "/data"}]),
        sleeper("override", {"runAsUser": 0, "runAsGroup": 0, "seccompProfile": {"type": "Unconfined"},
                             "capabilities": {"add": ["NET_ADMIN"]}}),
    ], {"runAsUser": 1000, "runAsGroup": 3000, "runAsNonRoot": False, "fsGroup": 2000,
        "supplementalGroups": [4000], "seccompProfile": {"type": "RuntimeDefault"},
        "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "80"}]},
        volumes=[{"name": "data", "emptyDir": {}}]))
    wait_until(lambda: running(lab, "secured"), 120, "pod secured running")
    return "secured"


def test_user_group_and_groups_come_from_the_pod(lab, secured):
    out = sh(lab, secured, "restricted", "id -u; id -g; id -G").stdout.split("\n")
    assert out[0] == "1000" and out[1] == "3000", out
    assert {"3000", "2000", "4000"} <= set(out[2].split()), out


def test_the_container_user_wins_over_the_pod(lab, secured):
    out = sh(lab, secured, "override", "id -u; id -g; id -G").stdout.split("\n")
    assert out[0] == "0" and out[1] == "0", out
    assert {"2000", "4000"} <= set(out[2].split()), out      # pod-level groups still added


def test_drop_all_no_new_privs_and_runtime_default_seccomp(lab, secured):
    st = status_of(lab, secured, "restricted")
    assert caps(st, "CapEff") == 0 and caps(st, "CapBnd") == 0 and caps(st, "CapPrm") == 0, st
    assert st["NoNewPrivs"] == "1" and st["Seccomp"] == "2", st


def test_added_capability_unconfined_seccomp_and_escalation_allowed(lab, secured):
    st = status_of(lab, secured, "override")
    assert caps(st, "CapEff") & (1 << CAP_NET_ADMIN), st
    assert not caps(st, "CapEff") & (1 << CAP_SYS_ADMIN), st
    assert st["NoNewPrivs"] == "0" and st["Seccomp"] == "0", st


def test_read_only_root_and_an_emptydir_written_through_fs_group(lab, secured):
    r = sh(lab, secured, "restricted", "touch /probe", check=False)
    assert r.returncode != 0 and "Read-only file system" in r.stdout + r.stderr, r
    out = sh(lab, secured, "restricted",
             "echo hi > /data/f && stat -c '%g %a' /data && stat -c '%u %g' /data/f").stdout.split("\n")
    assert out[0] == "2000 2777", out            # group fsGroup, setgid, world-writable (emptyDir)
    assert out[1] == "1000 2000", out            # made by the user, owned by the fsGroup


def test_sysctl_is_set_in_the_pods_namespaces(lab, secured):
    assert sh(lab, secured, "restricted", "cat /proc/sys/net/ipv4/ip_unprivileged_port_start").stdout.strip() \
        == "80"


def test_the_default_seccomp_is_the_runtime_default(lab):
    apply(lab, pod("plain", [sleeper("plain")]))
    wait_until(lambda: running(lab, "plain"), 120, "pod plain running")
    st = status_of(lab, "plain", "plain")
    assert st["Seccomp"] == "2" and not caps(st, "CapEff") & (1 << CAP_SYS_ADMIN), st


def _host_has_every_capability() -> bool:
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    with open("/proc/self/status") as f:
        bnd = next(int(line.split()[1], 16) for line in f if line.startswith("CapBnd:"))
    return bnd == (1 << (last + 1)) - 1


def test_privileged_container(lab):
    """privileged reaches the engine. Where the host's own bounding set lacks capabilities
    (this sandbox lacks CAP_SYS_RESOURCE) no privileged container can start on any engine,
    so there the proof is the created container's HostConfig and the engine's refusal in
    the pod's status, rather than a skip."""
    apply(lab, pod("priv", [sleeper("priv", {"privileged": True})]))
    if _host_has_every_capability():
        wait_until(lambda: running(lab, "priv"), 120, "pod priv running")
        st = status_of(lab, "priv", "priv")
        assert caps(st, "CapEff") & (1 << CAP_SYS_ADMIN) and st["Seccomp"] == "0", st
        return
    engine = node_docker(lab, "node1")
    try:
        def created():
            found = engine.containers.list(all=True, filters={"label": [
                "io.skiff.pod.name=priv", f"io.skiff.pod.namespace={NS}", "io.skiff.container.name=priv"]})
            return found[0] if found else None
        container = wait_until(created, 120, "the privileged container created on node1's engine")
        assert container.attrs["HostConfig"]["Privileged"] is True
        assert "no-new-privileges" not in (container.attrs["HostConfig"].get("SecurityOpt") or [])
    finally:
        engine.close()

    def refused():
        statuses = get_pod(lab, "priv").get("status", {}).get("containerStatuses") or []
        state = statuses[0].get("state", {}) if statuses else {}
        detail = state.get("waiting") or state.get("terminated") or {}
        return detail if detail.get("message") else None
    detail = wait_until(refused, 60, "the engine's refusal in the pod's status")
    assert detail.get("reason"), detail


def test_run_as_non_root_on_a_root_image_waits_with_kubelets_message(lab):
    apply(lab, pod("rootimg", [sleeper("app")], {"runAsNonRoot": True}))
    uid = get_pod(lab, "rootimg")["metadata"]["uid"]
    message = (f'container has runAsNonRoot and image will run as root (pod: "rootimg_{NS}({uid})", '
               "container: app)")

    def waiting():
        statuses = get_pod(lab, "rootimg").get("status", {}).get("containerStatuses") or []
        w = statuses[0].get("state", {}).get("waiting", {}) if statuses else {}
        return w if w.get("reason") == "CreateContainerConfigError" else None

    w = wait_until(waiting, 90, "rootimg waiting with CreateContainerConfigError")
    assert w["message"] == message
    wait_until(lambda: message in lab.out("describe", "po", "rootimg", "-n", NS), 30, "describe shows the message")
    # runAsUser makes the same image acceptable
    lab.out("delete", "po", "rootimg", "-n", NS)
    apply(lab, pod("rootimg2", [sleeper("app")], {"runAsNonRoot": True, "runAsUser": 1234}))
    wait_until(lambda: running(lab, "rootimg2"), 120, "pod rootimg2 running")
    assert sh(lab, "rootimg2", "app", "id -u").stdout.strip() == "1234"


def test_localhost_seccomp_profile_from_the_nodes_data_dir(lab):
    """A profile that allows everything but mkdir (EPERM), in <agent dataDir>/seccomp/ on the node."""
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
    path = os.path.join(lab.plan.node_paths("node1").agent_data, "seccomp", "skiff-e2e", "no-mkdir.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(profile, f)
    apply(lab, pod("local", [sleeper("app", {"seccompProfile": {"type": "Localhost",
                                                                "localhostProfile": "skiff-e2e/no-mkdir.json"}})]))
    wait_until(lambda: running(lab, "local"), 120, "pod local running")
    assert status_of(lab, "local", "app")["Seccomp"] == "2"
    r = sh(lab, "local", "app", "mkdir /tmp/skiff-d", check=False)
    assert r.returncode != 0 and "Operation not permitted" in r.stdout + r.stderr, r
    assert sh(lab, "local", "app", "touch /tmp/skiff-f && echo ok").stdout.strip() == "ok"


def waiting_state(lab, name) -> dict:
    statuses = get_pod(lab, name).get("status", {}).get("containerStatuses") or []
    return statuses[0].get("state", {}).get("waiting", {}) if statuses else {}


def test_run_as_non_root_on_an_image_with_a_named_user(lab):
    apply(lab, pod("named", [sleeper("app", image=NAMED_USER_IMAGE)], {"runAsNonRoot": True}))
    uid = get_pod(lab, "named")["metadata"]["uid"]
    w = wait_until(lambda: (lambda w: w if w.get("reason") == "CreateContainerConfigError" else None)(
        waiting_state(lab, "named")), 90, "named waiting with CreateContainerConfigError")
    assert w["message"] == ("container has runAsNonRoot and image has non-numeric user (nobody), cannot verify "
                            f'user is non-root (pod: "named_{NS}({uid})", container: app)')


def test_run_as_group_alone_keeps_the_images_numeric_user(lab):
    apply(lab, pod("grouponly", [sleeper("app", image=NUMERIC_USER_IMAGE)], {"runAsNonRoot": True,
                                                                               "runAsGroup": 3333}))
    wait_until(lambda: running(lab, "grouponly"), 120, "pod grouponly running")
    assert sh(lab, "grouponly", "app", "id -u; id -g").stdout.split() == ["1000", "3333"]


def test_admission_refuses_an_unsafe_sysctl(lab):
    r = lab.run("apply", "-f", "-", check=False, input=yaml.safe_dump(
        pod("unsafe", [sleeper("app")], {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]})))
    assert r.returncode != 0
    assert 'spec.securityContext.sysctls[0].name: Forbidden: forbidden sysctl: "kernel.msgmax" not allowlisted' \
        in r.stderr, r.stderr
