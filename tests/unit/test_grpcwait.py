"""skiff/grpcwait.py: a daemon's gRPC waits wake once a second, and a message still wakes them at once."""

import threading
import time
from concurrent import futures

import grpc
import pytest
from grpc import _common

from skiff import grpcwait


@pytest.fixture
def restore_slice():
    before = _common.MAXIMUM_WAIT_TIMEOUT
    yield
    _common.MAXIMUM_WAIT_TIMEOUT = before


def test_the_pinned_grpcio_has_the_slice_and_uses_it(restore_slice):
    assert _common.MAXIMUM_WAIT_TIMEOUT == 0.1          # grpcio's default: 10 wakes a second
    assert grpcwait.relax_blocking_waits() is True
    assert _common.MAXIMUM_WAIT_TIMEOUT == grpcwait.DAEMON_MAX_WAIT_S
    slices = []

    def wait_fn(timeout):
        slices.append(timeout)
        time.sleep(0.001)
        return False

    t = time.monotonic()
    _common.wait(wait_fn, lambda: len(slices) >= 3)     # the path of a stream's next()
    assert slices == [grpcwait.DAEMON_MAX_WAIT_S] * 3 and time.monotonic() - t < 1.0


def test_a_stream_message_still_wakes_its_reader_at_once(restore_slice):
    """A server stream that sends one message 0.3 s after the call: the client gets it
    then, not at the end of its wait slice (5 s here, so a loaded machine cannot blur it)."""
    grpcwait.relax_blocking_waits(5.0)
    gate = threading.Event()

    def handler(request, context):
        gate.wait(5)
        yield b"x"

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "skiff.test.Wait", {"Stream": grpc.unary_stream_rpc_method_handler(handler)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            stream = ch.unary_stream("/skiff.test.Wait/Stream")(b"", timeout=10)
            threading.Timer(0.3, gate.set).start()
            t = time.monotonic()
            assert next(stream) == b"x"
            took = time.monotonic() - t
        assert 0.25 < took < 3.0, took
    finally:
        server.stop(0)
