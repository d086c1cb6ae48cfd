"""What the loops of the toolkit share: the quiet exception, waiting for informers, error logs."""

import logging

from skiff import client as clientmod

POLL_S = 0.2    # how often a waiting loop looks at its stop event


class Quiet(Exception):
    """Raised by a sync to stop working on the current item without a log or a retry,
    because someone else takes over (e.g. this replica is no longer the leader; its
    supervisor stops the loop soon)."""


def wait_for_informers(informers, stop, poll_s: float = POLL_S) -> bool:
    """Block until every informer has synced; False if `stop` (an Event) was set first.
    A loop never acts on a partial cache: an object missing from it would look deleted."""
    for inf in informers:
        while not inf.wait_synced(poll_s):
            if stop.is_set():
                return False
    return not stop.is_set()


def log_failure(log: logging.Logger, exc: BaseException, what: str, **fields) -> None:
    """One line per failed sync: an API error (expected: retried) at info without a
    traceback, anything else (a bug) with its traceback."""
    text = " ".join(f"{k}={v}" for k, v in fields.items())
    if isinstance(exc, clientmod.ApiError):
        log.info("event=%s_retry %s error=%s", what, text, str(exc)[:160].replace(" ", "_"))
    else:
        log.error("event=%s_failed %s", what, text, exc_info=exc)
