"""Schedules: next(after) in the schedule's zone, @every, daylight-saving changes."""

import datetime
import zoneinfo

import pytest

from skiff.api import cronschedule

UTC = datetime.timezone.utc
PARIS = zoneinfo.ZoneInfo("Europe/Paris")


def at(text, tz=UTC):
    return datetime.datetime.fromisoformat(text).replace(tzinfo=tz)


@pytest.mark.parametrize("schedule,after,expected", [
    ("*/1 * * * *", "2026-01-01T00:00:00", "2026-01-01T00:01:00"),       # strictly after
    ("*/1 * * * *", "2026-01-01T00:00:59.500", "2026-01-01T00:01:00"),
    ("*/5 * * * *", "2026-01-01T00:03:00", "2026-01-01T00:05:00"),
    ("@hourly", "2026-01-01T00:00:00", "2026-01-01T01:00:00"),
    ("@daily", "2026-01-01T10:00:00", "2026-01-02T00:00:00"),
    ("@midnight", "2026-01-01T10:00:00", "2026-01-02T00:00:00"),
    ("@weekly", "2026-01-01T10:00:00", "2026-01-04T00:00:00"),             # Sunday
    ("@monthly", "2026-01-15T10:00:00", "2026-02-01T00:00:00"),
    ("@yearly", "2026-01-15T10:00:00", "2027-01-01T00:00:00"),
    ("@annually", "2026-01-15T10:00:00", "2027-01-01T00:00:00"),
    ("30 6-16/4 * * 1-5", "2026-01-02T15:00:00", "2026-01-05T06:30:00"),   # Friday -> Monday
    ("0 9 1 * MON", "2026-01-01T10:00:00", "2026-01-05T09:00:00"),        # day of month OR day of week
    ("@every 90s", "2026-01-01T00:00:10.250", "2026-01-01T00:01:40"),
    ("@every 1h30m", "2026-01-01T00:00:00", "2026-01-01T01:30:00"),
    ("@every 200ms", "2026-01-01T00:00:00", "2026-01-01T00:00:01"),        # at least a second
])
def test_next_in_utc(schedule, after, expected):
    assert cronschedule.parse(schedule).next(at(after)) == at(expected)


def test_the_zone_decides_the_wall_clock():
    sched = cronschedule.parse("0 9 * * *", PARIS)
    # 09:00 in Paris is 08:00 UTC in winter, 07:00 UTC in summer
    assert sched.next(at("2026-01-10T12:00:00")) == at("2026-01-11T08:00:00")
    assert sched.next(at("2026-07-10T12:00:00")) == at("2026-07-11T07:00:00")
    assert sched.next(at("2026-07-10T12:00:00")).tzinfo == UTC


def test_dst_spring_forward_runs_a_skipped_wall_time_right_after_the_gap():
    # 2026-03-29 in Paris: 02:00 jumps to 03:00; 02:30 does not exist that day
    sched = cronschedule.parse("30 2 * * *", PARIS)
    first = sched.next(at("2026-03-28T23:00:00"))      # 00:00 Paris
    assert first.astimezone(PARIS).strftime("%m-%d %H:%M") == "03-29 03:00"
    assert sched.next(first).astimezone(PARIS).strftime("%m-%d %H:%M") == "03-30 02:30"


def test_dst_fall_back_runs_a_repeated_wall_time_twice_an_hour_apart():
    # 2026-10-25 in Paris: 03:00 goes back to 02:00; 02:30 happens twice
    sched = cronschedule.parse("30 2 * * *", PARIS)
    first = sched.next(at("2026-10-24T22:00:00"))      # 00:00 Paris
    second = sched.next(first)
    assert first == at("2026-10-25T00:30:00") and second == at("2026-10-25T01:30:00")
    assert sched.next(second).astimezone(PARIS).strftime("%m-%d %H:%M") == "10-26 02:30"


def test_a_schedule_that_never_matches_says_so():
    with pytest.raises(ValueError):
        cronschedule.parse("0 0 31 2 *").next(at("2026-01-01T00:00:00"))


def test_zones():
    assert cronschedule.load_zone("Europe/Paris") == PARIS
    with pytest.raises(ValueError, match="unknown time zone Nowhere/Land"):
        cronschedule.load_zone("Nowhere/Land")
    assert cronschedule.load_zone(None) is not None     # the process's own zone


def test_local_zone_follows_tz(monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    assert cronschedule.local_zone() == zoneinfo.ZoneInfo("Asia/Tokyo")
    monkeypatch.setenv("TZ", ":UTC")
    assert cronschedule.local_zone() == zoneinfo.ZoneInfo("UTC")
