"""`skiff rollout` and `skiff set image`: kubectl's messages, history, rollback and image pairs."""

import pytest

from skiff.api import objects_pb2 as pb
from skiff.cli import main as climain
from skiff.cli.errors import CliError
from skiff.cli.rollout_cmds import (history_rows, parse_duration_s, parse_images, replica_set_for_revision,
                                    rollback, set_images, status_message)


def deploy(replicas=3, generation=2, observed=2, updated=3, total=3, available=3, timed_out=False):
    d = pb.Deployment(metadata=pb.ObjectMeta(name="web", namespace="default", uid="d-uid", generation=generation))
    d.spec.replicas = replicas
    d.spec.template.metadata.labels["app"] = "web"
    d.spec.template.spec.containers.add(name="main", image="app:2")
    d.status.observed_generation = observed
    d.status.updated_replicas, d.status.replicas, d.status.available_replicas = updated, total, available
    if timed_out:
        d.status.conditions.add(type="Progressing", status="False", reason="ProgressDeadlineExceeded")
    return d


STATUS = [
    ("spec not observed yet", dict(generation=3, observed=2), "Waiting for deployment spec update to be observed...",
     False),
    ("new replicas coming", dict(updated=2, total=4),
     'Waiting for deployment "web" rollout to finish: 2 out of 3 new replicas have been updated...', False),
    ("old replicas going", dict(updated=3, total=4),
     'Waiting for deployment "web" rollout to finish: 1 old replicas are pending termination...', False),
    ("new not all available", dict(available=1),
     'Waiting for deployment "web" rollout to finish: 1 of 3 updated replicas are available...', False),
    ("done", {}, 'deployment "web" successfully rolled out', True),
]


@pytest.mark.parametrize("kw, message, done", [c[1:] for c in STATUS], ids=[c[0] for c in STATUS])
def test_status_messages(kw, message, done):
    assert status_message(deploy(**kw)) == (message, done)


def test_status_fails_past_the_progress_deadline():
    with pytest.raises(CliError, match='deployment "web" exceeded its progress deadline'):
        status_message(deploy(updated=1, timed_out=True))


def rs(revision, image, cause=None, extra=None):
    r = pb.ReplicaSet(metadata=pb.ObjectMeta(name=f"web-{revision}", namespace="default"))
    r.metadata.annotations["deployment.kubernetes.io/revision"] = str(revision)
    if cause:
        r.metadata.annotations["kubernetes.io/change-cause"] = cause
    r.metadata.annotations.update(extra or {})
    r.spec.template.metadata.labels.update({"app": "web", "pod-template-hash": f"h{revision}"})
    r.spec.template.spec.containers.add(name="main", image=image)
    return r


def test_history_rows_oldest_first_with_change_causes():
    rows = history_rows([rs(3, "app:3", "skiff set image deployment/web main=app:3"), rs(1, "app:1")])
    assert rows == [["REVISION", "CHANGE-CAUSE"], ["1", "<none>"],
                    ["3", "skiff set image deployment/web main=app:3"]]


def test_revision_lookup():
    d = deploy()
    rss = [rs(1, "app:1"), rs(3, "app:3"), rs(2, "app:2")]
    assert replica_set_for_revision(d, rss, 0).metadata.name == "web-2"   # the one before the newest
    assert replica_set_for_revision(d, rss, 1).metadata.name == "web-1"
    with pytest.raises(CliError, match="unable to find specified revision 7 in history"):
        replica_set_for_revision(d, rss, 7)
    with pytest.raises(CliError, match='no rollout history found for deployment "web"'):
        replica_set_for_revision(d, rss[:1], 0)


def test_rollback_copies_the_template_without_hash_and_the_annotations():
    d = deploy()
    d.metadata.annotations.update({"deployment.kubernetes.io/revision": "3", "team": "x",
                                   "kubectl.kubernetes.io/last-applied-configuration": "{}"})
    old = rs(1, "app:1", "first", extra={"deployment.kubernetes.io/desired-replicas": "3"})
    assert rollback(d, old) is True
    assert d.spec.template.spec.containers[0].image == "app:1"
    assert dict(d.spec.template.metadata.labels) == {"app": "web"}
    assert dict(d.metadata.annotations) == {"deployment.kubernetes.io/revision": "3",
                                            "kubectl.kubernetes.io/last-applied-configuration": "{}",
                                            "kubernetes.io/change-cause": "first"}
    assert rollback(d, old) is False       # the template already matches


def test_set_images():
    spec = pb.PodSpec()
    spec.containers.add(name="main", image="app:1")
    spec.containers.add(name="side", image="side:1")
    assert set_images(spec, parse_images(["main=app:2"])) is True
    assert [c.image for c in spec.containers] == ["app:2", "side:1"]
    assert set_images(spec, {"main": "app:2"}) is False
    assert set_images(spec, parse_images(["*=all:9"])) is True
    assert {c.image for c in spec.containers} == {"all:9"}
    with pytest.raises(CliError, match='unable to find container named "nope"'):
        set_images(spec, {"nope": "x"})
    with pytest.raises(CliError, match="expected CONTAINER_NAME=CONTAINER_IMAGE"):
        parse_images(["main"])


@pytest.mark.parametrize("text, want", [("0", 0), ("90", 90), ("90s", 90), ("5m", 300), ("1m30s", 90),
                                        ("1h", 3600)])
def test_durations(text, want):
    assert parse_duration_s(text) == want


def test_parser_takes_names_after_flags():
    """`skiff set image deployment/web -n demo main=app:2`: kubectl takes the pair after the flag."""
    seen = {}
    parser = climain.build_parser()
    args, extra = parser.parse_known_args(["set", "image", "deployment/web", "-n", "demo", "main=app:2"])
    args.names.extend(extra)
    seen["names"], seen["ns"] = args.names, args.namespace
    assert seen == {"names": ["deployment/web", "main=app:2"], "ns": "demo"}
    args = parser.parse_args(["rollout", "undo", "deploy/web", "--to-revision", "2"])
    assert (args.names, args.to_revision) == (["deploy/web"], 2)
    args = parser.parse_args(["rollout", "status", "deploy/web", "--watch=false", "--timeout", "2m"])
    assert (args.watch, args.timeout) == (False, "2m")


def test_rollout_refuses_kinds_without_a_viewer(capsys):
    assert climain.main(["rollout", "history", "service/web", "--server", "127.0.0.1:1"]) == 1
    assert "no history viewer has been implemented for services" in capsys.readouterr().err


def test_describe_deployment_shows_kubectls_rollout_lines():
    from skiff.api import kinds
    d = deploy(updated=2, total=4, available=3)
    d.spec.strategy.type = "RollingUpdate"
    d.spec.strategy.rolling_update.max_unavailable.str_val = "25%"
    d.spec.strategy.rolling_update.max_surge.int_val = 1
    d.status.unavailable_replicas = 1
    d.status.conditions.add(type="Progressing", status="True", reason="ReplicaSetUpdated")
    lines = kinds.lookup("deploy").describe(d).splitlines()
    assert lines[0] == "Replicas:               3 desired | 2 updated | 4 total | 3 available | 1 unavailable"
    assert lines[3] == "RollingUpdateStrategy:  25% max unavailable, 1 max surge"
    assert lines[-1].split() == ["Progressing", "True", "ReplicaSetUpdated"]


def test_restart_refuses_kinds_without_a_pod_template(capsys):
    assert climain.main(["rollout", "restart", "configmap/x", "--server", "127.0.0.1:1"]) == 1
    assert "no restarter has been implemented for configmaps" in capsys.readouterr().err
