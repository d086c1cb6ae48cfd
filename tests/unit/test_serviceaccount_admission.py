"""The ServiceAccount admission plugin and the serviceaccounts controller's planner.

Admission (through admit(), as the API server calls it): serviceAccountName defaults to
`default`; a missing named account refuses the pod as Kubernetes does; the token mount
is decided from the pod, else the account. Planner: which namespaces lack `default`.
"""

import pytest

from controlplane.apiserver import admission
from controlplane.apiserver.admission import AdmissionError, DictView
from controlplane.controllers.serviceaccount_plan import missing_defaults, needs_default
from skiff.api import kinds
from skiff.api import objects_pb2 as pb

POD = kinds.BY_NAME["Pod"]


def ns(name, terminating=False):
    n = pb.Namespace(metadata=pb.ObjectMeta(name=name))
    if terminating:
        n.metadata.deletion_timestamp = "2026-12-07T10:00:00Z"
        n.status.phase = "Terminating"
    return n


def sa(name, namespace="team", automount=None):
    s = pb.ServiceAccount(metadata=pb.ObjectMeta(name=name, namespace=namespace))
    if automount is not None:
        s.automount_service_account_token = automount
    return s


def pod(account="", automount=None):
    p = pb.Pod(metadata=pb.ObjectMeta(name="web", namespace="team"))
    p.spec.containers.add(name="web", image="nginx:1.27")
    p.spec.service_account_name = account
    if automount is not None:
        p.spec.automount_service_account_token = automount
    return p


def admit(p, *objs, creating=True, old=None):
    admission.admit(POD, p, creating=creating, old=old, view=DictView.of(ns("team"), *objs))
    return p


@pytest.mark.parametrize("account, pod_automount, objs, want_name, want_automount", [
    ("", None, [sa("default")], "default", True),                  # the default account, mounted
    ("", None, [], "default", True),                               # `default` not made yet: admitted
    ("robot", None, [sa("robot")], "robot", True),
    ("robot", None, [sa("robot", automount=False)], "robot", False),   # the account opts out
    ("robot", True, [sa("robot", automount=False)], "robot", True),    # the pod wins
    ("robot", False, [sa("robot", automount=True)], "robot", False),
    ("", False, [sa("default")], "default", False),
])
def test_account_and_token_mount(account, pod_automount, objs, want_name, want_automount):
    p = admit(pod(account, pod_automount), *objs)
    assert p.spec.service_account_name == want_name
    assert p.spec.HasField("automount_service_account_token")
    assert p.spec.automount_service_account_token is want_automount


def test_a_missing_account_refuses_the_pod_as_kubernetes_does():
    with pytest.raises(AdmissionError) as exc:
        admit(pod("robot"), sa("default"))
    assert exc.value.code == "forbidden"
    assert str(exc.value) == ('pods "web" is forbidden: error looking up service account team/robot: '
                              'serviceaccount "robot" not found')


def test_an_account_in_another_namespace_does_not_count():
    with pytest.raises(AdmissionError):
        admit(pod("robot"), sa("robot", namespace="elsewhere"))


def test_only_creates_are_checked():
    old = admit(pod("robot"), sa("robot"))
    new = pb.Pod()
    new.CopyFrom(old)
    new.metadata.labels["x"] = "y"
    admission.admit(POD, new, creating=False, old=old, view=DictView.of(ns("team")))   # the account is gone


def test_a_reapplied_manifest_keeps_the_account_and_mount_admission_filled_in():
    stored = admit(pod(), sa("default", automount=False))
    again = pod()          # the same manifest, applied again: no serviceAccountName, no automount
    admission.admit(POD, again, creating=False, old=stored, view=DictView.of(ns("team")))
    assert again.spec.service_account_name == "default"
    assert again.spec.automount_service_account_token is False


def puller(name, *secrets):
    s = sa(name)
    for secret in secrets:
        s.image_pull_secrets.add(name=secret)
    return s


@pytest.mark.parametrize("account, pod_secrets, objs, want", [
    ("robot", [], [puller("robot", "regcred", "other")], ["regcred", "other"]),   # copied, in order
    ("robot", ["mine"], [puller("robot", "regcred")], ["mine"]),                   # the pod's own win
    ("", [], [puller("default", "regcred")], ["regcred"]),
    ("", [], [], []),                                  # `default` not made yet: nothing to copy
])
def test_the_accounts_image_pull_secrets_are_copied_into_pods_that_list_none(account, pod_secrets, objs, want):
    p = pod(account)
    for name in pod_secrets:
        p.spec.image_pull_secrets.add(name=name)
    admit(p, *objs)
    assert [r.name for r in p.spec.image_pull_secrets] == want


def test_a_reapplied_manifest_keeps_the_pull_secrets_admission_filled_in():
    stored = admit(pod("robot"), puller("robot", "regcred"))
    again = pod("robot")
    admission.admit(POD, again, creating=False, old=stored, view=DictView.of(ns("team")))
    assert [r.name for r in again.spec.image_pull_secrets] == ["regcred"]


@pytest.mark.parametrize("namespace, names, want", [
    (ns("team"), set(), True),
    (ns("team"), {"robot"}, True),
    (ns("team"), {"default", "robot"}, False),
    (ns("team", terminating=True), set(), False),
    (None, set(), False),
])
def test_needs_default(namespace, names, want):
    assert needs_default(namespace, names) is want


def test_missing_defaults():
    namespaces = [ns("a"), ns("b"), ns("c", terminating=True), ns("d")]
    accounts = [sa("default", "a"), sa("robot", "b"), sa("default", "zz")]
    assert missing_defaults(namespaces, accounts) == ["b", "d"]
