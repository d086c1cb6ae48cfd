"""securityContext -> Docker arguments (nodeagent/runtime/security.py), table-driven:
pod and container settings merged (the container's win), the user and groups Docker
gets, no-new-privileges, seccomp, sysctls on the sandbox, and kubelet's runAsNonRoot
verdicts against the image's user."""

import pytest

from nodeagent.runtime import security
from nodeagent.runtime.spec import container_kwargs, sandbox_kwargs
from skiff.api import codec, kinds

REF = 'web_ns(u1)'


def pod(pod_sc=None, c_sc=None, host_network=False):
    spec = {"containers": [{"name": "app", "image": "img:1"}]}
    if pod_sc is not None:
        spec["securityContext"] = pod_sc
    if c_sc is not None:
        spec["containers"][0]["securityContext"] = c_sc
    if host_network:
        spec["hostNetwork"] = True
    p = codec.decode(kinds.BY_NAME["Pod"].message, {"apiVersion": "v1", "kind": "Pod",
                                                     "metadata": {"name": "web", "namespace": "ns", "uid": "u1"},
                                                     "spec": spec})
    return p, p.spec.containers[0]


MICROSERVICES_POD = {"fsGroup": 1000, "runAsGroup": 1000, "runAsNonRoot": True, "runAsUser": 1000}
MICROSERVICES_CONTAINER = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                           "privileged": False, "readOnlyRootFilesystem": True}

KWARGS = [
    # (id, pod securityContext, container securityContext, image user, expected security kwargs)
    ("none", None, None, "", {}),
    ("user only", None, {"runAsUser": 1000}, "", {"user": "1000"}),
    ("user and group", None, {"runAsUser": 1000, "runAsGroup": 2000}, "", {"user": "1000:2000"}),
    ("pod user, container group", {"runAsUser": 1000}, {"runAsGroup": 2000}, "", {"user": "1000:2000"}),
    ("container user wins", {"runAsUser": 1000, "runAsGroup": 1000}, {"runAsUser": 7}, "", {"user": "7:1000"}),
    ("group only keeps the image user", None, {"runAsGroup": 2000}, "app:app", {"user": "app:2000"}),
    ("group only on a root image", {"runAsGroup": 2000}, None, "", {"user": "0:2000"}),
    ("group only, numeric image user", None, {"runAsGroup": 5}, "1001", {"user": "1001:5"}),
    ("fsGroup and supplementalGroups", {"fsGroup": 3000, "supplementalGroups": [4000, 3000, 5000]}, None, "",
     {"group_add": ["3000", "4000", "5000"]}),
    ("privileged", None, {"privileged": True}, "", {"privileged": True}),
    ("privileged false", None, {"privileged": False}, "", {}),
    ("read-only root", None, {"readOnlyRootFilesystem": True}, "", {"read_only": True}),
    ("capabilities", None, {"capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}}, "",
     {"cap_add": ["NET_ADMIN"], "cap_drop": ["ALL"]}),
    ("no privilege escalation", None, {"allowPrivilegeEscalation": False}, "",
     {"security_opt": ["no-new-privileges"]}),
    ("privilege escalation allowed", None, {"allowPrivilegeEscalation": True}, "", {}),
    ("seccomp runtime default is the engine's", {"seccompProfile": {"type": "RuntimeDefault"}}, None, "", {}),
    ("seccomp unconfined from the pod", {"seccompProfile": {"type": "Unconfined"}}, None, "",
     {"security_opt": ["seccomp=unconfined"]}),
    ("container seccomp wins", {"seccompProfile": {"type": "Unconfined"}},
     {"seccompProfile": {"type": "RuntimeDefault"}}, "", {}),
    ("microservices-demo", MICROSERVICES_POD, MICROSERVICES_CONTAINER, "",
     {"user": "1000:1000", "group_add": ["1000"], "read_only": True, "cap_drop": ["ALL"],
      "security_opt": ["no-new-privileges"]}),
]


@pytest.mark.parametrize("pod_sc,c_sc,image_user,want", [r[1:] for r in KWARGS], ids=[r[0] for r in KWARGS])
def test_security_kwargs(pod_sc, c_sc, image_user, want):
    p, c = pod(pod_sc, c_sc)
    assert security.security_kwargs(p, c, image_user) == want


def test_localhost_seccomp_sends_the_profile_json():
    p, c = pod(None, {"seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/a.json"}})
    assert security.security_kwargs(p, c, "", '{"defaultAction":"SCMP_ACT_ALLOW"}') == {
        "security_opt": ['seccomp={"defaultAction":"SCMP_ACT_ALLOW"}']}


def test_localhost_profile_is_read_from_the_data_dir(tmp_path):
    (tmp_path / "seccomp" / "profiles").mkdir(parents=True)
    (tmp_path / "seccomp" / "profiles" / "a.json").write_text("{}")
    assert security.read_localhost_profile(str(tmp_path), "profiles/a.json") == "{}"
    with pytest.raises(security.SecurityError) as err:
        security.read_localhost_profile(str(tmp_path), "profiles/missing.json")
    assert 'cannot load seccomp profile "' in str(err.value) and err.value.reason == "CreateContainerConfigError"


def test_container_kwargs_carry_the_security_settings():
    p, c = pod(MICROSERVICES_POD, MICROSERVICES_CONTAINER)
    kw = container_kwargs(p, c, name="n", labels={}, sandbox_id="s", env=[], command=[], args=[], mounts=[])
    assert kw["user"] == "1000:1000" and kw["group_add"] == ["1000"] and kw["read_only"] is True
    assert kw["cap_drop"] == ["ALL"] and kw["security_opt"] == ["no-new-privileges"]


NON_ROOT = [
    # (id, pod sc, container sc, image user, message or None)
    ("not asked", None, None, "", None),
    ("asked false", {"runAsNonRoot": False}, None, "", None),
    ("root image", {"runAsNonRoot": True}, None, "",
     f'container has runAsNonRoot and image will run as root (pod: "{REF}", container: app)'),
    ("image uid 0 with group", None, {"runAsNonRoot": True}, "0:0",
     f'container has runAsNonRoot and image will run as root (pod: "{REF}", container: app)'),
    ("numeric non-root image", None, {"runAsNonRoot": True}, "1000:1000", None),
    ("named image user", {"runAsNonRoot": True}, None, "nginx",
     "container has runAsNonRoot and image has non-numeric user (nginx), cannot verify user is non-root "
     f'(pod: "{REF}", container: app)'),
    ("runAsUser decides", {"runAsNonRoot": True, "runAsUser": 1000}, None, "", None),
    ("runAsUser 0", {"runAsNonRoot": True}, {"runAsUser": 0}, "1000",
     f'container\'s runAsUser breaks non-root policy (pod: "{REF}", container: app)'),
    ("container lifts the pod's", {"runAsNonRoot": True}, {"runAsNonRoot": False}, "", None),
    ("runAsGroup does not make it non-root", {"runAsNonRoot": True, "runAsGroup": 1000}, None, "",
     f'container has runAsNonRoot and image will run as root (pod: "{REF}", container: app)'),
]


@pytest.mark.parametrize("pod_sc,c_sc,image_user,want", [r[1:] for r in NON_ROOT], ids=[r[0] for r in NON_ROOT])
def test_run_as_non_root(pod_sc, c_sc, image_user, want):
    p, c = pod(pod_sc, c_sc)
    assert security.non_root_error(p, c, image_user) == want


@pytest.mark.parametrize("pod_sc,c_sc,needed", [
    (None, None, False),
    ({"runAsNonRoot": True}, None, True),
    ({"runAsNonRoot": True, "runAsUser": 5}, None, False),
    (None, {"runAsGroup": 5}, True),
    ({"runAsUser": 1}, {"runAsGroup": 5}, False),
])
def test_the_image_is_inspected_only_when_needed(pod_sc, c_sc, needed):
    p, c = pod(pod_sc, c_sc)
    assert security.needs_image_user(p, c) is needed


def test_sysctls_go_on_the_sandbox_in_dotted_form():
    p, _ = pod({"sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "80"},
                            {"name": "kernel/shm_rmid_forced", "value": "1"}]})
    kw = sandbox_kwargs(p, name="s", labels={}, image="pause")
    assert kw["sysctls"] == {"net.ipv4.ip_unprivileged_port_start": "80", "kernel.shm_rmid_forced": "1"}
    p, _ = pod({"runAsUser": 1})
    assert "sysctls" not in sandbox_kwargs(p, name="s", labels={}, image="pause")
