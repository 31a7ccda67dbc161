"""Schedule expressions: EventBridge Scheduler's grammar, checked before AWS sees it, and when each runs next.

A mistake is a 400 that says what is wrong (:func:`check` raises ``InvalidSchedule``):

- ``rate(<n> <unit>)``: n a positive whole number, unit ``minute|hour|day`` for 1 and ``minutes|hours|days``
  above. It runs when it is created and then every n units; a day is 24 hours, whatever daylight saving does.
- ``cron(minutes hours day-of-month month day-of-week year)``: AWS's six fields (day-of-week 1-7 is SUN-SAT;
  exactly one of day-of-month and day-of-week is ``?``; ``L``, ``W`` and ``#`` as AWS documents them), read at
  minute granularity in the schedule's timezone. A wall time the clocks skip (spring forward) does not run,
  one they repeat (fall back) runs once, as Scheduler does.
- ``at(yyyy-mm-ddThh:mm:ss)``: once, at that wall time in the schedule's timezone; it must be in the future.

``next_after`` on each parsed expression gives the first run strictly after a moment (UTC); the local
schedule clock fires by it, and a cron that can never run again is refused when it is written. AWS's cron
syntax is checked here, field by field, so each message names the field at fault; its days and times are
then walked by croniter (the years, up to 2199 where croniter stops at 2099, and daylight saving stay here).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from stepwise.errors import InvalidSchedule

__all__ = [
    "AtExpression",
    "CronExpression",
    "Expression",
    "RateExpression",
    "check",
    "check_timezone",
    "next_run",
    "parse_expression",
]

# --- timezones -------------------------------------------------------------------------------------


# Files in the zone database that are not zone names (``localtime`` is this machine's own zone).
_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})


@cache
def _known_zones() -> frozenset[str]:
    return frozenset(available_timezones()) - _NOT_ZONES


def check_timezone(name: str) -> ZoneInfo:
    """The IANA time zone called ``name``; InvalidSchedule when there is none."""
    problem = f"timezone '{name}' is not an IANA time zone name such as 'UTC' or 'Europe/Paris'"
    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise InvalidSchedule(problem) from error
    known = _known_zones()
    if name in _NOT_ZONES or (known and name not in known):
        raise InvalidSchedule(problem)
    return zone


def _exists(wall: datetime, zone: ZoneInfo) -> bool:
    """False for a wall time the clocks skip (it does not survive a round trip through UTC)."""
    back = wall.astimezone(UTC).astimezone(zone)
    return back.replace(tzinfo=None) == wall.replace(tzinfo=None)


# --- rate ------------------------------------------------------------------------------------------

_RATE = re.compile(r"^rate\((?P<value>[^ )]*) (?P<unit>[^ )]*)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86_400}


@dataclass(frozen=True)
class RateExpression:
    """``rate(value unit)``: every ``value`` units from the schedule's start."""

    value: int
    unit: str  # singular: minute, hour or day

    @property
    def period(self) -> timedelta:
        """The time between two runs."""
        return timedelta(seconds=self.value * _UNIT_SECONDS[self.unit])

    def next_after(self, after: datetime, zone: ZoneInfo, anchor: datetime) -> datetime | None:
        """The first run strictly after ``after``, counting from ``anchor`` (the schedule's start, a run)."""
        if after < anchor:
            return anchor
        return anchor + ((after - anchor) // self.period + 1) * self.period


def _parse_rate(text: str) -> RateExpression:
    match = _RATE.match(text)
    if not match:
        raise InvalidSchedule(f"'{text}' is not rate(<value> <unit>), e.g. rate(5 minutes) or rate(1 hour)")
    raw_value, unit = match["value"], match["unit"]
    if not raw_value.isdigit() or int(raw_value) < 1:
        raise InvalidSchedule(f"'{text}': the rate value must be a positive whole number, got '{raw_value}'")
    value = int(raw_value)
    singular = unit.removesuffix("s")
    if singular not in _UNIT_SECONDS:
        raise InvalidSchedule(f"'{text}': the rate unit must be minute(s), hour(s) or day(s), got '{unit}'")
    if value == 1 and unit != singular:
        raise InvalidSchedule(f"'{text}': a value of 1 takes the singular unit: rate(1 {singular})")
    if value > 1 and unit == singular:
        raise InvalidSchedule(f"'{text}': a value above 1 takes the plural unit: rate({value} {singular}s)")
    return RateExpression(value=value, unit=singular)


# --- at --------------------------------------------------------------------------------------------

_AT = re.compile(r"^at\((\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\)$")


@dataclass(frozen=True)
class AtExpression:
    """``at(yyyy-mm-ddThh:mm:ss)``: once, at a wall time in the schedule's timezone."""

    wall: datetime  # naive

    def moment(self, zone: ZoneInfo) -> datetime:
        """The run's instant (UTC); InvalidSchedule when the clocks skip that wall time in ``zone``."""
        local = self.wall.replace(tzinfo=zone)
        if not _exists(local, zone):
            raise InvalidSchedule(
                f"at({self.wall.isoformat()}) does not exist in {zone.key}: the clocks skip it (daylight saving)"
            )
        return local.astimezone(UTC)

    def next_after(self, after: datetime, zone: ZoneInfo, anchor: datetime | None = None) -> datetime | None:
        """The run if it is strictly after ``after``, else None."""
        local = self.wall.replace(tzinfo=zone)
        if not _exists(local, zone):
            return None
        moment = local.astimezone(UTC)
        return moment if moment > after else None


def _parse_at(text: str) -> AtExpression:
    match = _AT.match(text)
    if not match:
        raise InvalidSchedule(f"'{text}' is not at(yyyy-mm-ddThh:mm:ss), e.g. at(2030-01-31T09:30:00)")
    year, month, day, hour, minute, second = (int(part) for part in match.groups())
    try:
        wall = datetime(year, month, day, hour, minute, second)  # a wall time: the zone comes later
    except ValueError as error:
        raise InvalidSchedule(f"'{text}' is not a real date and time: {error}") from error
    return AtExpression(wall=wall)


# --- cron ------------------------------------------------------------------------------------------

_MONTHS = {
    name: number
    for number, name in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], 1
    )
}
_WEEKDAYS = {name: number for number, name in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], 1)}


@dataclass(frozen=True)
class _Field:
    label: str
    low: int
    high: int
    names: dict[str, int] | None = None
    step: bool = True


_MINUTES = _Field("minutes", 0, 59)
_HOURS = _Field("hours", 0, 23)
_DAY_OF_MONTH = _Field("day-of-month", 1, 31)
_MONTH = _Field("month", 1, 12, _MONTHS)
_DAY_OF_WEEK = _Field("day-of-week", 1, 7, _WEEKDAYS, step=False)
_YEAR = _Field("year", 1970, 2199)
_FIELDS = "minutes hours day-of-month month day-of-week year"


@dataclass(frozen=True)
class CronExpression:
    """``cron(...)``, parsed: its day and time fields as croniter reads them, and the years it runs in.

    ``schedule`` is a five-field Unix cron (minute hour day-of-month month day-of-week, day-of-week 0 =
    SUN), in plain numbers, ``L``, ``nW``, ``Ld`` (the month's last weekday d) and ``d#n``.
    """

    schedule: str
    years: frozenset[int]

    def next_after(self, after: datetime, zone: ZoneInfo, anchor: datetime | None = None) -> datetime | None:
        """The first run strictly after ``after`` (UTC), or None when there is none before year 2200."""
        # Imported here: croniter costs the API's cold start about 9 ms, and only cron schedules need it.
        from croniter import CroniterBadDateError, croniter

        # croniter walks wall times (naive): whether one exists, and which instant it is, is decided here.
        start = after.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0, fold=0)
        walls = croniter(self.schedule, start)
        while True:
            try:
                wall: datetime = walls.get_next(datetime)
            except CroniterBadDateError:  # no such day within croniter's horizon (30 February)
                return None
            if wall.year not in self.years:
                later = [year for year in self.years if year > wall.year]
                if not later:
                    return None
                walls = croniter(self.schedule, datetime(min(later), 1, 1) - timedelta(minutes=1))
                continue
            local = wall.replace(tzinfo=zone)
            moment = local.astimezone(UTC)
            # fold=0 is the first of a repeated wall time: a fall-back hour runs once.
            if moment > after and _exists(local, zone):
                return moment


class _CronError(Exception):
    pass


def _value(field: _Field, token: str) -> int:
    if token.isdigit():
        number = int(token)
    elif field.names and token.upper() in field.names:
        number = field.names[token.upper()]
    else:
        names = f" or a name such as {next(iter(field.names))}" if field.names else ""
        raise _CronError(f"'{token}' is not a number{names}")
    if not field.low <= number <= field.high:
        raise _CronError(f"{number} is out of range {field.low}-{field.high}")
    return number


def _values(field: _Field, text: str) -> frozenset[int]:
    """A field of numbers (or names), ``*``, ranges ``a-b``, steps ``x/n`` and lists of them."""
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise _CronError("has an empty item (a comma too many)")
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not field.step:
                raise _CronError("does not take '/'")
            if not step_text.isdigit() or int(step_text) < 1:
                raise _CronError(f"the step after '/' must be a positive whole number, got '{step_text}'")
            step = int(step_text)
        if base == "*":
            low, high = field.low, field.high
        elif "-" in base:
            first, _, last = base.partition("-")
            low, high = _value(field, first), _value(field, last)
            if low > high:
                raise _CronError(f"the range {base} runs backwards")
        else:
            low = _value(field, base)
            high = field.high if slash else low
        values.update(range(low, high + 1, step))
    return frozenset(values)


def _listed(values: frozenset[int], shift: int = 0) -> str:
    return ",".join(str(value + shift) for value in sorted(values))


def _day_of_month(text: str) -> str:
    """An AWS day-of-month field (not ``?``) as croniter's."""
    if text == "L":
        return "L"
    if text == "LW":
        raise _CronError("'LW' (the month's last weekday) is not supported; use L, or a day with W such as 15W")
    if text.endswith("W"):
        day = text.removesuffix("W")
        if not day.isdigit():
            raise _CronError(f"'{text}': W follows one day of the month, as in 15W")
        return f"{_value(_DAY_OF_MONTH, day)}W"
    if "L" in text or "W" in text:
        raise _CronError(f"'{text}': L and W stand alone (L, or a day with W such as 15W)")
    return _listed(_values(_DAY_OF_MONTH, text))


def _day_of_week(text: str) -> str:
    """An AWS day-of-week field (not ``?``; 1 = SUN) as croniter's (0 = SUN)."""
    if "#" in text:
        if "," in text:
            raise _CronError(f"'{text}': with # the field holds one expression, such as 3#2")
        weekday, _, nth = text.partition("#")
        if not nth.isdigit() or not 1 <= int(nth) <= 5:
            raise _CronError(f"'{text}': the number after # must be 1-5 (which week of the month)")
        return f"{_value(_DAY_OF_WEEK, weekday) - 1}#{nth}"
    if text == "L":
        return "6"  # the last day of the week: Saturday
    if text.upper().endswith("L") and len(text) > 1 and text.upper() not in _WEEKDAYS:
        return f"L{_value(_DAY_OF_WEEK, text[:-1]) - 1}"  # 6L: the month's last Friday
    return _listed(_values(_DAY_OF_WEEK, text), shift=-1)


def _parse_cron(text: str) -> CronExpression:
    if not (text.startswith("cron(") and text.endswith(")")):
        raise InvalidSchedule(f"'{text}' is not cron(<{_FIELDS}>)")
    fields = text[len("cron(") : -1].split()
    if len(fields) != 6:
        hint = " (AWS cron has a year field: add * at the end)" if len(fields) == 5 else ""
        raise InvalidSchedule(f"'{text}' has {len(fields)} fields; cron takes 6: {_FIELDS}{hint}")
    minutes, hours, month_day, month, week_day, year = fields
    if (month_day == "?") == (week_day == "?"):
        raise InvalidSchedule(
            f"'{text}': exactly one of day-of-month and day-of-week must be '?' (the other says which days), "
            "e.g. cron(0 9 * * ? *) or cron(0 9 ? * MON-FRI *)"
        )
    parts: dict[str, frozenset[int]] = {}
    label = _MINUTES.label
    try:
        for field, raw in ((_MINUTES, minutes), (_HOURS, hours), (_MONTH, month), (_YEAR, year)):
            label = field.label
            if raw == "?":
                raise _CronError("'?' is only for day-of-month or day-of-week")
            parts[field.label] = _values(field, raw)
        label = _DAY_OF_MONTH.label
        days = _day_of_month(month_day) if month_day != "?" else "*"
        label = _DAY_OF_WEEK.label
        weekdays = _day_of_week(week_day) if week_day != "?" else "*"
    except _CronError as error:
        raise InvalidSchedule(f"'{text}': {label} field: {error}") from error
    schedule = " ".join(
        [_listed(parts[_MINUTES.label]), _listed(parts[_HOURS.label]), days, _listed(parts[_MONTH.label]), weekdays]
    )
    return CronExpression(schedule=schedule, years=parts[_YEAR.label])


# --- the grammar -----------------------------------------------------------------------------------

Expression = RateExpression | CronExpression | AtExpression


def parse_expression(text: str) -> Expression:
    """Parse a schedule expression; InvalidSchedule says what is wrong with it."""
    if text.startswith("rate("):
        return _parse_rate(text)
    if text.startswith("cron("):
        return _parse_cron(text)
    if text.startswith("at("):
        return _parse_at(text)
    raise InvalidSchedule(
        f"expression '{text}' must be rate(...), cron(...) or at(...), e.g. rate(1 hour), "
        "cron(0 9 ? * MON-FRI *) or at(2030-01-31T09:30:00)"
    )


def check(expression: str, timezone: str, now: datetime) -> tuple[Expression, ZoneInfo]:
    """Parse and check an expression with its timezone, as of ``now``: it must be able to run again."""
    parsed = parse_expression(expression)
    zone = check_timezone(timezone)
    if isinstance(parsed, AtExpression):
        moment = parsed.moment(zone)
        if moment <= now:
            local_now = now.astimezone(zone).replace(tzinfo=None, microsecond=0).isoformat()
            raise InvalidSchedule(f"'{expression}' is in the past: it is now {local_now} in {zone.key}")
    elif isinstance(parsed, CronExpression) and parsed.next_after(now, zone) is None:
        raise InvalidSchedule(f"'{expression}' never runs again: no date after now matches all its fields")
    return parsed, zone


def next_run(expression: str, timezone: str, after: datetime, *, anchor: datetime) -> datetime | None:
    """The first run strictly after ``after`` (UTC); ``anchor`` is where a rate counts from (its first run)."""
    return parse_expression(expression).next_after(after, check_timezone(timezone), anchor)
