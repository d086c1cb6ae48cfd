"""How often gRPC's blocking waits wake up in a daemon: every DAEMON_MAX_WAIT_S, not 10 times a second.

grpcio's synchronous API waits for a stream's next message (and for a unary answer, a
future) in slices of grpc._common.MAXIMUM_WAIT_TIMEOUT, 0.1 s (grpc/_common.py `wait`:
https://github.com/grpc/grpc/issues/19464), so that a signal handler is never held up
by a main thread blocked in a call. Every open watch therefore wakes its thread 10
times a second with nothing to do: an idle agent's six informers 60 times, a leader's
fourteen 140 times a second (about 0.07 % of a core per informer thread, profiled on an
idle 20-node lab: most of an idle agent's own CPU).

The control plane and the agent block in gRPC only on worker threads; their main threads
wait on an Event, which Python (3.2+, POSIX) interrupts for signals anyway. So in those
processes a slice of DAEMON_MAX_WAIT_S (1 s) is safe: a message still wakes its waiter
at once (the wait is a Condition notified by gRPC's completion-queue thread); the slice
only bounds how long a missed notification could go unnoticed. The CLI and tests keep
grpcio's 0.1 s (Ctrl-C on a `skiff get -w`).

grpcio is pinned (pyproject.toml); relax_blocking_waits() refuses to guess if the
constant moved (tests/unit/test_grpcwait.py fails on such an upgrade).
"""

import logging

log = logging.getLogger("skiff.grpcwait")

DAEMON_MAX_WAIT_S = 1.0


def relax_blocking_waits(max_wait_s: float = DAEMON_MAX_WAIT_S) -> bool:
    """Set grpcio's wait slice for this process (call once at start, before any call).
    Returns False, changing nothing, if this grpcio has no such setting."""
    from grpc import _common   # noqa: PLC2701 - grpcio's own knob, see the module docstring
    if not isinstance(getattr(_common, "MAXIMUM_WAIT_TIMEOUT", None), (int, float)):
        log.warning("event=grpc_wait_slice_unchanged reason=no_MAXIMUM_WAIT_TIMEOUT")
        return False
    _common.MAXIMUM_WAIT_TIMEOUT = max_wait_s
    return True
