"""Schedules: what a user writes, what the API shows, what Scheduler delivers, and the expression grammar.

Expressions are EventBridge Scheduler's own, checked here before AWS sees them, so a mistake is a 400
that says what is wrong (``check`` raises ``InvalidSchedule``):

- ``rate(<n> <unit>)``: n a positive whole number, unit ``minute|hour|day`` for 1 and ``minutes|hours|days``
  above. It runs when it is created and then every n units; a day is 24 hours, whatever daylight saving does.
- ``cron(minutes hours day-of-month month day-of-week year)``: AWS's six fields (day-of-week 1-7 is SUN-SAT;
  exactly one of day-of-month and day-of-week is ``?``; ``L``, ``W`` and ``#`` as AWS documents them), read at
  minute granularity in the schedule's timezone. A wall time the clocks skip (spring forward) does not run,
  one they repeat (fall back) runs once, as Scheduler does.
- ``at(yyyy-mm-ddThh:mm:ss)``: once, at that wall time in the schedule's timezone; it must be in the future.

``next_after`` on each parsed expression gives the first run strictly after a moment (UTC); the local
schedule clock fires by it, and a cron that can never run again is refused when it is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from stepwise.errors import InvalidSchedule

SCHEDULE_ID_PATTERN = r"^sch_[0-9A-HJKMNP-TV-Z]{26}$"
WORKFLOW_ID_PATTERN = r"^wf_[0-9A-HJKMNP-TV-Z]{26}$"
DEFAULT_TIMEZONE = "UTC"

# --- API models ------------------------------------------------------------------------------------


class ScheduleInput(BaseModel):
    """A schedule as a user creates it."""

    model_config = ConfigDict(extra="forbid")

    expression: str = Field(
        min_length=1,
        max_length=256,
        description="rate(<n> minutes|hours|days), cron(<6 AWS fields>) or at(yyyy-mm-ddThh:mm:ss)",
        examples=["rate(15 minutes)", "cron(0 9 ? * MON-FRI *)", "at(2030-01-01T09:00:00)"],
    )
    timezone: str = Field(
        default=DEFAULT_TIMEZONE, min_length=1, max_length=64, description="IANA time zone the expression is read in"
    )
    variables: dict[str, Any] = Field(
        default_factory=dict, description="variables of every run it starts, over the workflow's defaults"
    )
    enabled: bool = True
    description: str | None = Field(default=None, max_length=512)


class SchedulePatch(BaseModel):
    """A change to a schedule: only the fields sent change (``description: null`` clears it)."""

    model_config = ConfigDict(extra="forbid")

    expression: str | None = Field(default=None, min_length=1, max_length=256)
    timezone: str | None = Field(default=None, min_length=1, max_length=64)
    variables: dict[str, Any] | None = None
    enabled: bool | None = None
    description: str | None = Field(default=None, max_length=512)


class ScheduleView(BaseModel):
    """A schedule as the API shows it (and as the table stores it)."""

    id: str
    workflowId: str
    expression: str
    timezone: str
    variables: dict[str, Any]
    enabled: bool
    description: str | None
    owner: str
    createdAt: str
    updatedAt: str


class ScheduleDelivery(BaseModel):
    """What Scheduler hands the scheduler function: the target's Input once context attributes are filled."""

    scheduleId: str = Field(pattern=SCHEDULE_ID_PATTERN)
    workflowId: str = Field(pattern=WORKFLOW_ID_PATTERN)
    scheduledTime: AwareDatetime = Field(description="the tick's own time, the same on every retry of it")
    attemptNumber: int | None = Field(default=None, ge=1)


class FireResult(BaseModel):
    """What one delivery did; the scheduler function returns it (Scheduler ignores it, logs and tests read it)."""

    outcome: Literal["started", "duplicate", "skipped", "disabled", "failed"]
    scheduleId: str
    executionId: str | None = None
    reason: str | None = None


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
    """``cron(...)``, parsed: the values each field allows, and the day-of-month / day-of-week rule."""

    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: frozenset[int]
    years: frozenset[int]
    month_days: frozenset[int] | None = None  # day-of-month values
    last_day_of_month: bool = False  # L
    nearest_weekday: int | None = None  # 15W
    weekdays: frozenset[int] | None = None  # day-of-week values, 1 = SUN
    last_weekday: int | None = None  # 6L: the month's last Friday
    nth_weekday: tuple[int, int] | None = None  # 3#2: the month's second Tuesday

    def matches_day(self, day: date) -> bool:
        """True when the date's year, month and day fields allow it."""
        if day.year not in self.years or day.month not in self.months:
            return False
        month_length = _month_length(day.year, day.month)
        weekday = day.isoweekday() % 7 + 1  # AWS: 1 = SUN ... 7 = SAT
        if self.month_days is not None:
            return day.day in self.month_days
        if self.last_day_of_month:
            return day.day == month_length
        if self.nearest_weekday is not None:
            return day.day == _nearest_weekday(day.year, day.month, self.nearest_weekday)
        if self.weekdays is not None:
            return weekday in self.weekdays
        if self.last_weekday is not None:
            return weekday == self.last_weekday and day.day + 7 > month_length
        if self.nth_weekday is not None:
            return weekday == self.nth_weekday[0] and (day.day - 1) // 7 + 1 == self.nth_weekday[1]
        return False

    def next_after(self, after: datetime, zone: ZoneInfo, anchor: datetime | None = None) -> datetime | None:
        """The first run strictly after ``after`` (UTC), or None when there is none before year 2200."""
        day = after.astimezone(zone).date()
        last_year = max(self.years)
        while day.year <= last_year:
            if day.year not in self.years:
                day = date(day.year + 1, 1, 1)
                continue
            if day.month not in self.months:
                day = date(day.year + 1, 1, 1) if day.month == 12 else date(day.year, day.month + 1, 1)
                continue
            if self.matches_day(day):
                for hour in self.hours:
                    for minute in self.minutes:
                        wall = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
                        moment = wall.astimezone(UTC)
                        # fold=0 is the first of a repeated wall time: a fall-back hour runs once.
                        if moment > after and _exists(wall, zone):
                            return moment
            day += timedelta(days=1)
        return None


def _month_length(year: int, month: int) -> int:
    following = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
    return (following - timedelta(days=1)).day


def _nearest_weekday(year: int, month: int, wanted: int) -> int | None:
    """The weekday (MON-FRI) nearest the ``wanted`` day, in the same month; None when the month is shorter."""
    length = _month_length(year, month)
    if wanted > length:
        return None
    weekday = date(year, month, wanted).weekday()  # MON = 0
    if weekday == 5:  # Saturday: the Friday before, or the Monday after the 1st
        return wanted - 1 if wanted > 1 else wanted + 2
    if weekday == 6:  # Sunday: the Monday after, or the Friday before the month's last day
        return wanted + 1 if wanted < length else wanted - 2
    return wanted


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


def _parse_day_of_month(text: str) -> dict[str, Any]:
    if text == "L":
        return {"last_day_of_month": True}
    if text == "LW":
        raise _CronError("'LW' (the month's last weekday) is not supported; use L, or a day with W such as 15W")
    if text.endswith("W"):
        day = text.removesuffix("W")
        if not day.isdigit():
            raise _CronError(f"'{text}': W follows one day of the month, as in 15W")
        return {"nearest_weekday": _value(_DAY_OF_MONTH, day)}
    if "L" in text or "W" in text:
        raise _CronError(f"'{text}': L and W stand alone (L, or a day with W such as 15W)")
    return {"month_days": _values(_DAY_OF_MONTH, text)}


def _parse_day_of_week(text: str) -> dict[str, Any]:
    if "#" in text:
        if "," in text:
            raise _CronError(f"'{text}': with # the field holds one expression, such as 3#2")
        weekday, _, nth = text.partition("#")
        if not nth.isdigit() or not 1 <= int(nth) <= 5:
            raise _CronError(f"'{text}': the number after # must be 1-5 (which week of the month)")
        return {"nth_weekday": (_value(_DAY_OF_WEEK, weekday), int(nth))}
    if text == "L":
        return {"weekdays": frozenset({7})}  # the last day of the week: Saturday
    if text.upper().endswith("L") and len(text) > 1 and text.upper() not in _WEEKDAYS:
        return {"last_weekday": _value(_DAY_OF_WEEK, text[:-1])}
    return {"weekdays": _values(_DAY_OF_WEEK, text)}


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
    parts: dict[str, Any] = {}
    label = _MINUTES.label
    try:
        for field, raw in ((_MINUTES, minutes), (_HOURS, hours), (_MONTH, month), (_YEAR, year)):
            label = field.label
            if raw == "?":
                raise _CronError("'?' is only for day-of-month or day-of-week")
            parts[field.label] = _values(field, raw)
        label = _DAY_OF_MONTH.label
        if month_day != "?":
            parts.update(_parse_day_of_month(month_day))
        label = _DAY_OF_WEEK.label
        if week_day != "?":
            parts.update(_parse_day_of_week(week_day))
    except _CronError as error:
        raise InvalidSchedule(f"'{text}': {label} field: {error}") from error
    return CronExpression(
        minutes=tuple(sorted(parts.pop("minutes"))),
        hours=tuple(sorted(parts.pop("hours"))),
        months=parts.pop("month"),
        years=parts.pop("year"),
        **parts,
    )


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


__all__ = [
    "AtExpression",
    "CronExpression",
    "Expression",
    "FireResult",
    "RateExpression",
    "ScheduleDelivery",
    "ScheduleInput",
    "SchedulePatch",
    "ScheduleView",
    "check",
    "check_timezone",
    "next_run",
    "parse_expression",
]
