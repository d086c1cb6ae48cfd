"""The store's Batcher: proposals queued while a batch is being proposed go out
together, within the count and byte caps, in order, each waiter getting its own result."""

import threading

import pytest

from controlplane.store.commands import Batch, Update
from controlplane.store.raft import FAIL_REASON
from controlplane.store.store import Batcher

MIB = 1024 * 1024


class HeldConsumer:
    """A stand-in for the Raft consumer: holds the first batch until released, then
    answers every batch at once with one result per command (its request id)."""

    def __init__(self):
        self.batches = []
        self.first_in_flight = threading.Event()
        self.release = threading.Event()

    def apply(self, cmd, callback):
        assert isinstance(cmd, Batch)
        self.batches.append(cmd.commands)
        if len(self.batches) == 1:
            self.first_in_flight.set()
            self.release.wait(10)
        callback([("ok", c.request_id) for c in cmd.commands], FAIL_REASON.SUCCESS)


def write(i, size):
    return Update(f"r{i}", b"x" * size)


@pytest.mark.parametrize("sizes, expect", [
    ([100] * 300, [256, 44]),                         # count cap
    ([MIB] * 10, [4, 4, 2]),                          # byte cap: 4 MiB per entry
    ([3 * MIB, 2 * MIB, 1 * MIB, 5 * MIB], [1, 2, 1]),  # an over-cap proposal still goes, alone
    ([10], [1]),
])
def test_queued_proposals_are_batched_within_the_caps(sizes, expect):
    consumer = HeldConsumer()
    b = Batcher(consumer)
    try:
        first = b.submit(write("first", 1))
        assert consumer.first_in_flight.wait(10)
        waiting = [b.submit(write(i, s)) for i, s in enumerate(sizes)]
        consumer.release.set()
        for p in [first] + waiting:
            assert p.done.wait(10) and p.error is None
        assert [len(x) for x in consumer.batches] == [1] + expect
        assert [p.result[1] for p in waiting] == [f"r{i}" for i in range(len(sizes))]
    finally:
        b.close()
