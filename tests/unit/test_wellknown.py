"""The shared vocabulary: one RFC 3339 helper for every API timestamp."""

import datetime

import pytest

from skiff.api import wellknown

UTC = datetime.timezone.utc


@pytest.mark.parametrize("when, text", [
    (0, ""),
    (None, ""),
    (1714564800.9, "2024-05-01T12:00:00Z"),                                   # epoch: whole seconds
    (datetime.datetime(2024, 5, 1, 12, 0, 0, 999, tzinfo=UTC), "2024-05-01T12:00:00Z"),
    (datetime.datetime(2024, 5, 1, 14, 0, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=2))),
     "2024-05-01T12:00:00Z"),                                                 # converted to UTC
    (datetime.datetime(2024, 5, 1, 12, 0, 0), "2024-05-01T12:00:00Z"),        # naive: taken as UTC
])
def test_rfc3339(when, text):
    assert wellknown.rfc3339(when) == text


@pytest.mark.parametrize("text, expected", [
    ("", None),
    ("garbage", None),
    ("2024-05-01T12:00:00Z", datetime.datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)),
    ("2024-05-01T12:00:00.5Z", datetime.datetime(2024, 5, 1, 12, 0, 0, 500000, tzinfo=UTC)),
])
def test_parse_rfc3339(text, expected):
    assert wellknown.parse_rfc3339(text) == expected


def test_now_round_trips():
    now = wellknown.now_rfc3339()
    parsed = wellknown.parse_rfc3339(now)
    assert wellknown.rfc3339(parsed) == now
    assert abs((datetime.datetime.now(UTC) - parsed).total_seconds()) < 5


def test_copies_are_the_shared_ones():
    """The names other modules export are the shared values, not copies that could drift."""
    from controlplane.controllers import nodeipam_plan, nodelifecycle_plan, podutil
    from controlplane.scheduler import filters
    from nodeagent.network import names
    from nodeagent.proxy import proxier
    assert names.CLUSTER_CIDR_ANNOTATION is wellknown.CLUSTER_CIDR_ANNOTATION
    assert proxier.CLUSTER_CIDR_ANNOTATION is wellknown.CLUSTER_CIDR_ANNOTATION
    assert nodeipam_plan.BACKEND_ANNOTATION is wellknown.BACKEND_ANNOTATION
    assert nodelifecycle_plan.UNREACHABLE_TAINT is wellknown.TAINT_UNREACHABLE
    assert filters.UNSCHEDULABLE_TAINT_KEY is wellknown.TAINT_UNSCHEDULABLE
    assert podutil.now_rfc3339 is wellknown.now_rfc3339
    assert podutil.TERMINATED_PHASES == wellknown.POD_FINISHED_PHASES
