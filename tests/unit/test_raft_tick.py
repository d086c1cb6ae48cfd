"""The Raft tick's wait: until the next Raft timer, within [min, max] (controlplane/store/raft.py)."""

import pytest

from controlplane.store.raft import TICK_MAX_WAIT_S, TICK_MIN_WAIT_S, _TimerPoller, make_conf, tick_wait_s


@pytest.mark.parametrize("leader, now, append_at, election_at, want", [
    # leader: until its next heartbeat
    (True, 100.0, 100.03, 100.5, 0.03),
    (True, 100.0, 100.05, 100.01, 0.05),        # a leader ignores the election deadline
    # follower / candidate: until the election deadline, at most the max wait
    (False, 100.0, 100.01, 100.04, 0.04),
    (False, 100.0, 0.0, 100.6, TICK_MAX_WAIT_S),
    # a timer already due: the min wait, never a busy loop
    (True, 100.0, 99.0, 0.0, TICK_MIN_WAIT_S),
    (False, 100.0, 0.0, 0.0, TICK_MIN_WAIT_S),   # a transfer set the deadline to 0
    (False, 100.0, 0.0, 99.5, TICK_MIN_WAIT_S),  # reaches no peer: keeps a past deadline
])
def test_tick_waits_until_the_next_raft_timer(leader, now, append_at, election_at, want):
    assert tick_wait_s(leader, now, append_at, election_at) == pytest.approx(want)


class _FakePoller:
    def __init__(self):
        self.polls = []
        self.subscribed = []

    def poll(self, timeout):
        self.polls.append(timeout)

    def subscribe(self, *args):
        self.subscribed.append(args)


def test_timer_poller_shortens_waits_and_delegates_the_rest():
    inner = _FakePoller()
    poller = _TimerPoller(inner, lambda: 0.02)
    poller.poll(0.1)       # PySyncObj's autoTickPeriod: cut to the next timer
    poller.poll(0.0)       # a single non-blocking tick stays non-blocking
    poller.poll(0.01)      # shorter than the timer: kept
    poller.subscribe(3, "cb", 1)
    assert inner.polls == [0.02, 0.0, 0.01]
    assert inner.subscribed == [(3, "cb", 1)]


def test_conf_caps_the_tick_wait(tmp_path):
    conf = make_conf(str(tmp_path), "x" * 20, min_timeout_s=0.4, max_timeout_s=0.8, heartbeat_s=0.05,
                     compaction_min_entries=10, compaction_min_time_s=10)
    assert conf.autoTickPeriod == TICK_MAX_WAIT_S
    # The cap is above the heartbeat: the leader's wait is the heartbeat timer, not the cap.
    assert TICK_MAX_WAIT_S >= 0.05
