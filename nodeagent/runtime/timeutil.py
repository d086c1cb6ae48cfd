"""Timestamps: Docker's (RFC 3339 with nanoseconds), the API's (RFC 3339, seconds), epoch floats.

Everything the planner compares is an epoch float (wall clock, because Docker's
StartedAt/FinishedAt are wall-clock times); the API gets whole seconds like Kubernetes.
"""

import datetime
import re

_DOCKER = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})")


def parse(text: str) -> float:
    """Epoch seconds of an RFC 3339 time; 0.0 for "", Docker's zero time (0001-01-01) or garbage."""
    if not text:
        return 0.0
    m = _DOCKER.fullmatch(text.strip())
    if not m:
        return 0.0
    year, month, day, hour, minute, second, frac, zone = m.groups()
    if int(year) < 1971:
        return 0.0
    tz = datetime.timezone.utc
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        tz = datetime.timezone(sign * datetime.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    dt = datetime.datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=tz)
    return dt.timestamp() + (float("0." + frac) if frac else 0.0)


def rfc3339(epoch: float) -> str:
    """"2024-05-01T12:00:00Z" (whole seconds, UTC); "" for 0."""
    if not epoch:
        return ""
    return datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def go_duration(seconds: float) -> str:
    """Go's time.Duration.String(): 10s, 1m20s, 5m0s, 200ms, 1.5s (kubelet messages use it)."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        ms = seconds * 1000
        return f"{ms:g}ms" if ms >= 1 else f"{seconds * 1e6:g}µs"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    secs_text = f"{secs:.9f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{int(hours)}h{int(minutes)}m{secs_text}"
    if minutes:
        return f"{int(minutes)}m{secs_text}"
    return secs_text
