"""securityContext validation: Kubernetes' messages at the exact path, one error per case;
the microservices-demo settings and every safe sysctl pass."""

import copy

import pytest

from skiff.api.securitycontext_validation import SAFE_SYSCTLS, normalize_sysctl
from tests.unit.test_validation import errors_of

POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
       "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}}


def pod(pod_sc=None, c_sc=None, **spec):
    doc = copy.deepcopy(POD)
    doc["spec"].update(spec)
    if pod_sc is not None:
        doc["spec"]["securityContext"] = pod_sc
    if c_sc is not None:
        doc["spec"]["containers"][0]["securityContext"] = c_sc
    return doc


C = "spec.containers[0].securityContext"
P = "spec.securityContext"
INVALID = [
    # (id, doc, path, text in the detail)
    ("negative runAsUser", pod(None, {"runAsUser": -1}), f"{C}.runAsUser",
     "Invalid value: -1: must be between 0 and 2147483647, inclusive"),
    ("huge runAsGroup", pod({"runAsGroup": 2147483648}), f"{P}.runAsGroup", "must be between 0 and 2147483647"),
    ("negative fsGroup", pod({"fsGroup": -5}), f"{P}.fsGroup", "must be between 0 and 2147483647"),
    ("negative supplemental group", pod({"supplementalGroups": [1, -2]}), f"{P}.supplementalGroups[1]",
     "must be between 0 and 2147483647"),
    ("privileged without escalation", pod(None, {"privileged": True, "allowPrivilegeEscalation": False}), C,
     "cannot set `allowPrivilegeEscalation` to false and `privileged` to true"),
    ("SYS_ADMIN without escalation", pod(None, {"allowPrivilegeEscalation": False,
                                                "capabilities": {"add": ["SYS_ADMIN"]}}), C,
     "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN"),
    ("seccomp type", pod({"seccompProfile": {"type": "Default"}}), f"{P}.seccompProfile.type",
     'Unsupported value: "Default": supported values: "Localhost", "RuntimeDefault", "Unconfined"'),
    ("seccomp type missing", pod(None, {"seccompProfile": {}}), f"{C}.seccompProfile.type", "Required value"),
    ("localhost without profile", pod(None, {"seccompProfile": {"type": "Localhost"}}),
     f"{C}.seccompProfile.localhostProfile", "must be set when seccomp type is Localhost"),
    ("profile without localhost", pod({"seccompProfile": {"type": "RuntimeDefault", "localhostProfile": "a.json"}}),
     f"{P}.seccompProfile.localhostProfile", "can only be set when seccomp type is Localhost"),
    ("profile escaping the directory", pod({"seccompProfile": {"type": "Localhost", "localhostProfile": "../a"}}),
     f"{P}.seccompProfile.localhostProfile", "must not contain '..'"),
    ("sysctl name", pod({"sysctls": [{"name": "Net.IPv4", "value": "1"}]}), f"{P}.sysctls[0].name",
     "must have at most 253 characters and match regex"),
    ("sysctl without name", pod({"sysctls": [{"value": "1"}]}), f"{P}.sysctls[0].name", "Required value"),
    ("duplicate sysctl", pod({"sysctls": [{"name": "kernel.shm_rmid_forced", "value": "1"},
                                          {"name": "kernel/shm_rmid_forced", "value": "0"}]}),
     f"{P}.sysctls[1].name", "Duplicate value"),
    ("unsafe sysctl", pod({"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}), f"{P}.sysctls[0].name",
     'Forbidden: forbidden sysctl: "kernel.msgmax" not allowlisted'),
    ("net sysctl with hostNetwork", pod({"sysctls": [{"name": "net.ipv4.tcp_syncookies", "value": "1"}]},
                                        hostNetwork=True),
     f"{P}.sysctls[0].name", "may not be specified when 'hostNetwork' is true"),
]


@pytest.mark.parametrize("doc,path,text", [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid(doc, path, text):
    errors = errors_of(doc)
    shown = "\n".join(str(e) for e in errors)
    assert [e.path for e in errors] == [path], shown
    assert text in errors[0].detail, shown


VALID = [
    pod({"fsGroup": 1000, "runAsGroup": 1000, "runAsNonRoot": True, "runAsUser": 1000},
        {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "privileged": False,
         "readOnlyRootFilesystem": True}),
    pod({"sysctls": [{"name": n, "value": "1"} for n in SAFE_SYSCTLS]}),
    pod({"sysctls": [{"name": "kernel.shm_rmid_forced", "value": "1"}]}, hostNetwork=True),
    pod(None, {"privileged": True, "allowPrivilegeEscalation": True}),
    pod({"seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/audit.json"}}),
    pod(None, {"runAsUser": 0, "runAsGroup": 0}),
]


@pytest.mark.parametrize("doc", VALID)
def test_valid(doc):
    assert errors_of(doc) == []


@pytest.mark.parametrize("name,dotted", [
    ("net.ipv4.tcp_syncookies", "net.ipv4.tcp_syncookies"),
    ("net/ipv4/tcp_syncookies", "net.ipv4.tcp_syncookies"),
    ("net/ipv4/conf/eno2.100/rp_filter", "net.ipv4.conf.eno2/100.rp_filter"),
])
def test_normalize_sysctl(name, dotted):
    assert normalize_sysctl(name) == dotted
