"""Helpers for the state machine's unit tests: commands carry encoded envelopes, results
carry encoded objects."""

from skiff.api import kinds
from skiff.api import objects_pb2 as pb

NOW = "2026-01-01T00:00:00Z"


def env(msg) -> bytes:
    """A typed object as a command carries it (the envelope, deterministically encoded)."""
    return kinds.encode(kinds.wrap(msg))


def result_obj(result):
    """The typed object of an ("ok", outcome, bytes, rv) result; fails on an error result."""
    assert result[0] == "ok", result
    e = pb.Object()
    e.ParseFromString(result[2])
    return kinds.unwrap(e)[1]
