"""Leadership (the supervisor, the guarded client) and the replica config's controllers: section."""

import threading
import time

import pytest

from controlplane import config as cfgmod
from controlplane.controllers.guard import LeaderGuardedClient, NotLeader
from controlplane.leader import LeaderSupervisor
from tests.helpers import wait_until, write_replica_config


# ---------------------------------------------------------------- leadership

class FakeStore:
    def __init__(self):
        self.leader = False
        self.listeners = []

    def add_state_listener(self, listener):
        self.listeners.append(listener)

    def become(self, leader: bool):
        """A Raft state change: the flag, then the listeners (as Store._state_changed)."""
        self.leader = leader
        for listener in self.listeners:
            listener(0, 2 if leader else 0)

    def is_leader(self):
        return self.leader

    def is_ready(self):
        return True


class FakeManager:
    def __init__(self, log):
        self.log = log

    def start(self):
        self.log.append("start")

    def stop(self):
        self.log.append("stop")


def test_supervisor_runs_the_loops_only_while_leading():
    store, log = FakeStore(), []
    sup = LeaderSupervisor(store, lambda: FakeManager(log), period_s=0.01)
    sup.start()
    try:
        time.sleep(0.05)
        assert log == [] and not sup.leading
        store.leader = True
        wait_until(lambda: log == ["start"], 2, "loops started on leadership")
        store.leader = False
        wait_until(lambda: log == ["start", "stop"], 2, "loops stopped on losing it")
        store.leader = True
        wait_until(lambda: log == ["start", "stop", "start"], 2, "a fresh set for the next term")
        assert sup.terms == 2
    finally:
        sup.stop()
    assert log[-1] == "stop"


def test_a_raft_state_change_wakes_the_supervisor_at_once():
    store, log = FakeStore(), []
    sup = LeaderSupervisor(store, lambda: FakeManager(log), period_s=30.0)   # polls would be too late
    sup.start()
    try:
        time.sleep(0.05)
        t = time.monotonic()
        store.become(True)
        wait_until(lambda: log == ["start"], 2, "loops started on the state change")
        store.become(False)
        wait_until(lambda: log == ["start", "stop"], 2, "loops stopped on the state change")
        assert time.monotonic() - t < 2.0
    finally:
        sup.stop()


def test_guarded_client_refuses_writes_once_not_leader():
    calls = []

    class Client:
        def create(self, obj):
            calls.append(("create", obj))
            return obj

        def get(self, *a):
            calls.append(("get",) + a)
            return "x"

    leading = threading.Event()
    guarded = LeaderGuardedClient(Client(), leading.is_set)
    assert guarded.get("pods", "a") == "x"
    with pytest.raises(NotLeader):
        guarded.create("obj")
    leading.set()
    assert guarded.create("obj") == "obj"
    assert calls == [("get", "pods", "a"), ("create", "obj")]


# ---------------------------------------------------------------- config

def test_controllers_section_defaults(tmp_path):
    cfg = cfgmod.load(write_replica_config(tmp_path)[0])
    assert cfg.controllers == cfgmod.ControllersConfig(True, 5.0, 5.0)
    assert "\ncontrollers:" not in cfgmod.dump(cfg, "pw")


def test_controllers_section_values_and_round_trip(tmp_path):
    path, pw = write_replica_config(tmp_path, "controllers:\n  nodeMonitorGracePeriodS: 40\n"
                                      "  podEvictionTimeoutS: 300\n  enabled: false\n")
    cfg = cfgmod.load(path)
    assert cfg.controllers == cfgmod.ControllersConfig(False, 40.0, 300.0)
    (tmp_path / "again.yaml").write_text(cfgmod.dump(cfg, pw))
    assert cfgmod.load(str(tmp_path / "again.yaml")).controllers == cfg.controllers


@pytest.mark.parametrize("section, error", [
    ("controllers: 5\n", "expected a mapping"),
    ("controllers:\n  graceS: 1\n", "unknown field"),
    ("controllers:\n  nodeMonitorGracePeriodS: 0\n", "nodeMonitorGracePeriodS must be a number of seconds > 0"),
    ("controllers:\n  podEvictionTimeoutS: soon\n", "podEvictionTimeoutS must be"),
    ("controllers:\n  enabled: maybe\n", "enabled must be true or false"),
])
def test_controllers_section_errors(tmp_path, section, error):
    with pytest.raises(cfgmod.ConfigError, match=error):
        cfgmod.load(write_replica_config(tmp_path, section)[0])


def test_not_leader_is_an_api_error_that_the_loops_drop_quietly():
    from skiff import client as clientmod
    from skiff.reconcile import Loop, Quiet

    assert issubclass(NotLeader, clientmod.ApiError) and issubclass(NotLeader, Quiet)
    calls = []

    class Synced:
        def wait_synced(self, timeout_s):
            return True

    def sync(key):
        calls.append(key)
        raise NotLeader("no longer the leader")

    loop = Loop("t", sync, informers=(Synced(),), base_delay_s=0.01).start()
    try:
        loop.enqueue("a")
        wait_until(lambda: calls, 2, "the sync")
        time.sleep(0.1)
        assert calls == ["a"] and loop.queue.failures("a") == 0     # not retried: the new leader does it
    finally:
        loop.stop()
