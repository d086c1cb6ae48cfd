"""`skiff drain`: kubectl's pod filters and its evictor (retry on 429, wait for the pod to go)."""

import pytest

from skiff import client as clientmod
from skiff.api import objects_pb2 as pb
from skiff.api.kinds import policy
from skiff.cli import drain
from skiff.cli.errors import CliError


def pod(name, owner="ReplicaSet", phase="Running", uid=None):
    p = pb.Pod(metadata=pb.ObjectMeta(name=name, namespace="ns", uid=uid or f"uid-{name}"))
    if owner:
        p.metadata.owner_references.add(kind=owner, name="o", uid="o-1", controller=True)
    p.status.phase = phase
    return p


@pytest.fixture
def daemon_kind(monkeypatch):
    """A kind whose pods run one per node (DaemonSet's role), registered for the test only."""
    import dataclasses
    from skiff.api import kinds
    fake = dataclasses.replace(kinds.BY_NAME["ReplicaSet"], name="FakeDaemonSet", daemon=True)
    monkeypatch.setitem(kinds.BY_NAME, "FakeDaemonSet", fake)
    return fake


@pytest.mark.parametrize("case,pods,ignore_ds,force,victims,warnings,errors", [
    ("managed pods are evicted", [pod("a"), pod("b")], False, False, ["a", "b"], [], []),
    ("unmanaged refused without --force", [pod("a"), pod("s", owner=None)], False, False, ["a"], [],
     ["cannot delete Pods that declare no controller (use --force to override): ns/s"]),
    ("unmanaged deleted with --force", [pod("s", owner=None)], False, True, ["s"],
     ["deleting Pods that declare no controller: ns/s"], []),
    ("a finished unmanaged pod needs no --force", [pod("done", owner=None, phase="Succeeded")], False, False,
     ["done"], [], []),
    ("daemon pods refused", [pod("d", owner="FakeDaemonSet")], False, False, [], [],
     ["cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): ns/d"]),
    ("daemon pods left with --ignore-daemonsets", [pod("d", owner="FakeDaemonSet"), pod("a")], True, False, ["a"],
     ["ignoring DaemonSet-managed Pods: ns/d"], []),
])
def test_select(daemon_kind, case, pods, ignore_ds, force, victims, warnings, errors):
    out = drain.select(pods, ignore_ds, force)
    assert [p.metadata.name for p in out.victims] == victims, case
    assert (out.warnings, out.errors) == (warnings, errors), case


class FakeClient:
    """evict() refuses with 429 `refusals` times, then accepts; the pod is gone `gets_until_gone`
    reads after that."""

    def __init__(self, refusals=0, gets_until_gone=1, evict_error=None):
        self.refusals = refusals
        self.gets_until_gone = gets_until_gone
        self.evict_error = evict_error
        self.calls = []

    def evict(self, name, namespace, grace_period_s=None):
        self.calls.append(("evict", name, namespace, grace_period_s))
        if self.evict_error:
            raise self.evict_error
        if self.refusals:
            self.refusals -= 1
            raise clientmod.TooManyRequests(policy.BUDGET_VIOLATED)

    def delete(self, kind, name, namespace, uid="", grace_period_seconds=None):
        self.calls.append(("delete", name, namespace, grace_period_seconds))

    def get(self, kind, name, namespace):
        self.gets_until_gone -= 1
        if self.gets_until_gone <= 0:
            raise clientmod.NotFound(f'pods "{name}" not found')
        return pod(name)


class NoSleep:
    """A stop event whose waits return at once, counting the seconds asked for."""

    def __init__(self):
        self.waited = []

    def is_set(self):
        return False

    def wait(self, seconds):
        self.waited.append(seconds)
        return False


def run(client, **kw):
    lines = []
    stop = NoSleep()
    ev = drain.Evictor(client, pod("web-1"), stop=stop, say=lambda line, err=False: lines.append(line),
                       use_eviction=kw.pop("use_eviction", True), grace_s=kw.pop("grace_s", None))
    ev.run()
    return ev, lines, stop.waited


def test_refused_eviction_is_retried_every_5s_with_kubectls_message():
    client = FakeClient(refusals=2, gets_until_gone=3)
    ev, lines, waited = run(client)
    assert lines == ["evicting pod ns/web-1"] + [
        'error when evicting pods/"web-1" -n "ns" (will retry after 5s): '
        "Cannot evict pod as it would violate the pod's disruption budget."] * 2 + ["pod/web-1 evicted"]
    assert waited == [5.0, 5.0, drain.DELETE_POLL_S, drain.DELETE_POLL_S]
    assert ev.done and not ev.error
    assert [c[0] for c in client.calls] == ["evict"] * 3


def test_other_eviction_errors_give_up_on_the_pod():
    client = FakeClient(evict_error=clientmod.ApiError("This pod has more than one PodDisruptionBudget"))
    ev, lines, _ = run(client)
    assert not ev.done and 'error when evicting pods/"web-1" -n "ns": This pod has more than one' in ev.error
    assert len(client.calls) == 1


def test_disable_eviction_deletes_with_the_grace_period():
    client = FakeClient()
    ev, lines, _ = run(client, use_eviction=False, grace_s=3)
    assert client.calls == [("delete", "web-1", "ns", 3)]
    assert lines == ["pod/web-1 deleted"] and ev.done


def test_a_pod_already_gone_counts_as_evicted():
    client = FakeClient(evict_error=clientmod.NotFound('pods "web-1" not found'))
    ev, lines, _ = run(client)
    assert ev.done and lines[-1] == "pod/web-1 evicted"


def test_drain_refuses_to_start_with_kubectls_reasons():
    class Nodes(FakeClient):
        def get(self, kind, name, namespace, linearizable=False):
            return pb.Node(metadata=pb.ObjectMeta(name=name))

        def update(self, obj):
            return obj

        def list(self, kind, field_selector=""):
            return [pod("s", owner=None)], "1"

    out = []
    with pytest.raises(CliError, match='unable to drain node "n1" due to error: cannot delete Pods that declare'):
        drain.drain(Nodes(), "n1", say=lambda line, err=False: out.append(line))
    assert out == ["node/n1 cordoned"]
