"""CronJob schedules: parsing (for admission and the controller) and "the next time after t".

Kubernetes parses spec.schedule with robfig/cron's ParseStandard (k8s.io/kubernetes
pkg/apis/batch/validation and pkg/controller/cronjob/utils.go). Its grammar, which
this module accepts and nothing more:
- exactly five fields (minute hour day-of-month month day-of-week); each field a
  comma list of `*`, `?`, `N`, `N-M`, any of them with `/STEP`; names (jan..dec,
  sun..sat, any case) in the month and day-of-week fields; day-of-week 0-6 (0 is
  Sunday; 7 is refused, as robfig refuses it);
- the macros @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly;
- `@every DURATION` (a Go duration such as 90s, 1h30m): runs DURATION apart, counted
  from the previous run (whole seconds, at least 1 s), whatever the time zone.
croniter (pinned in pyproject.toml) computes the five-field and macro times; the
extensions croniter has and robfig has not (a seconds or year field, `L`, `W`, `#`,
`H`) are refused here so a schedule skiff accepts is one Kubernetes accepts.
A schedule naming its zone inline (`TZ=...` / `CRON_TZ=...`) is refused by
admission, as Kubernetes refuses it on create: spec.timeZone says where.

Times: next(after) is the first scheduled instant strictly after `after` (an aware
datetime), computed in the schedule's zone and returned as an aware UTC datetime.
Across a daylight-saving change croniter's rules apply: a wall time that does not
exist that day (02:30 when clocks jump 02:00 -> 03:00) runs at the first instant
after the gap (03:00), and a wall time that occurs twice (02:30 when clocks go back)
runs twice, an hour apart; both are tested (tests/unit/test_cronschedule.py).
"""

import datetime
import os
import re
import zoneinfo

from croniter import croniter
from croniter.croniter import CroniterError

UTC = datetime.timezone.utc

MACROS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
_FIELDS = ("minute", "hour", "day of month", "month", "day of week")
_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
_NAMES = {
    3: ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
    4: ("sun", "mon", "tue", "wed", "thu", "fri", "sat"),
}
_VALUE = r"(?:[0-9]+|[a-z]{3})"
_TERM = re.compile(rf"(?:\*|\?|{_VALUE}(?:-{_VALUE})?)(?:/[0-9]+)?")
_GO_DURATION = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|ms|s|m|h)")
_GO_UNITS_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class Schedule:
    """A parsed schedule in a zone; next(after) -> aware UTC datetime, or raises
    ValueError when no time ever matches (e.g. 30 February)."""

    def __init__(self, expr: str, zone, every_s: int = 0):
        self.expr = expr          # five fields (macros expanded); "" for @every
        self.zone = zone
        self.every_s = every_s

    def next(self, after: datetime.datetime) -> datetime.datetime:
        if self.every_s:
            # robfig's ConstantDelaySchedule: the next whole second, then the delay
            start = after.replace(microsecond=0)
            return (start + datetime.timedelta(seconds=self.every_s)).astimezone(UTC)
        local = after.astimezone(self.zone)
        if local.microsecond:
            local = local.replace(microsecond=0)   # "strictly after" at whole seconds, as robfig
        try:
            nxt = croniter(self.expr, local).get_next(datetime.datetime)
        except CroniterError as exc:
            raise ValueError(str(exc)) from None
        return nxt.astimezone(UTC)


def load_zone(name: str | None):
    """The zone for spec.timeZone; None = the control plane's local zone. ValueError for an
    unknown name, with Kubernetes' wording."""
    if name is None:
        return local_zone()
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {name}") from None


def local_zone():
    """This process's zone, as kube-controller-manager uses its own when timeZone is unset:
    $TZ, else /etc/localtime's zone name, else UTC."""
    for name in (os.environ.get("TZ", "").lstrip(":"), _etc_localtime_name()):
        if name:
            try:
                return zoneinfo.ZoneInfo(name)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
                continue
    return UTC


def _etc_localtime_name() -> str:
    try:
        target = os.path.realpath("/etc/localtime")
    except OSError:
        return ""
    marker = "/zoneinfo/"
    return target.split(marker, 1)[1] if marker in target else ""


def parse(schedule: str, zone=UTC) -> Schedule:
    """Parse a schedule (the grammar in the module docstring); ValueError says what is wrong."""
    text = schedule.strip()
    if text.startswith("@"):
        if text.startswith("@every"):
            return Schedule("", zone, _every_seconds(text[len("@every"):].strip()))
        expr = MACROS.get(text)   # case-sensitive, as robfig's descriptors
        if expr is None:
            raise ValueError(f"unrecognized descriptor: {text}")
        return Schedule(expr, zone)
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(f"expected exactly 5 fields, found {len(fields)}: {text}")
    for i, value in enumerate(fields):
        _check_field(i, value.lower())
    if not croniter.is_valid(" ".join(fields)):
        raise ValueError(f"invalid schedule: {text}")
    return Schedule(" ".join(fields), zone)


def _check_field(i: int, value: str) -> None:
    for term in value.split(","):
        if not _TERM.fullmatch(term):
            raise ValueError(f"{_FIELDS[i]}: unsupported syntax {term!r}")
        for word in re.findall(r"[a-z]+", term):
            if word not in _NAMES.get(i, ()):
                raise ValueError(f"{_FIELDS[i]}: unknown name {word!r}")
        lo, hi = _BOUNDS[i]
        for number in re.findall(r"[0-9]+", term.split("/")[0]):
            if int(number) > hi:
                raise ValueError(f"{_FIELDS[i]}: end of range ({number}) above maximum ({hi})")
            if int(number) < lo:
                raise ValueError(f"{_FIELDS[i]}: beginning of range ({number}) below minimum ({lo})")
        if "/" in term and int(term.split("/")[1]) == 0:
            raise ValueError(f"{_FIELDS[i]}: step of range should be a positive number")


def _every_seconds(text: str) -> int:
    """A Go duration (time.ParseDuration) as whole seconds, at least 1 (robfig's Every)."""
    if text in ("0", "+0", "-0"):
        seconds = 0.0
    else:
        body = text[1:] if text[:1] in "+-" else text
        if not body or _GO_DURATION.sub("", body) or any(not n or n == "." for n, _ in _GO_DURATION.findall(body)):
            raise ValueError(f"failed to parse duration @every {text}: invalid duration {text!r}")
        seconds = sum(float(n) * _GO_UNITS_S[u] for n, u in _GO_DURATION.findall(body))
        if text.startswith("-"):
            seconds = -seconds
    return max(1, int(seconds))
