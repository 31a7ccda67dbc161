"""Schedule expressions: what is refused (and the message that says why), and when a schedule runs next."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from croniter import croniter

from stepwise import ids
from stepwise.errors import InvalidSchedule
from stepwise.schedule_expressions import (
    AtExpression,
    CronExpression,
    RateExpression,
    check,
    next_run,
    parse_expression,
)

NOW = datetime(2030, 6, 15, 12, 0, 0, tzinfo=UTC)
EPOCH = datetime(2030, 1, 1, tzinfo=UTC)


def runs(expression: str, timezone: str, after: datetime, count: int, anchor: datetime = EPOCH) -> list[datetime]:
    found: list[datetime] = []
    moment: datetime | None = after
    while len(found) < count:
        assert moment is not None
        moment = next_run(expression, timezone, moment, anchor=anchor)
        if moment is None:
            break
        found.append(moment)
    return found


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- accepted -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("rate(1 minute)", RateExpression),
        ("rate(15 minutes)", RateExpression),
        ("rate(1 hour)", RateExpression),
        ("rate(36 hours)", RateExpression),
        ("rate(1 day)", RateExpression),
        ("rate(7 days)", RateExpression),
        ("cron(0 10 * * ? *)", CronExpression),
        ("cron(15 12 * * ? *)", CronExpression),
        ("cron(0 18 ? * MON-FRI *)", CronExpression),
        ("cron(0 8 1 * ? *)", CronExpression),
        ("cron(0/15 * * * ? *)", CronExpression),
        ("cron(*/5 8-17 ? * mon-fri *)", CronExpression),
        ("cron(0/10 * ? * MON-FRI *)", CronExpression),
        ("cron(0,30 9 1,15 JAN,JUL ? 2030-2035)", CronExpression),
        ("cron(0 9 L * ? *)", CronExpression),
        ("cron(0 9 15W * ? *)", CronExpression),
        ("cron(0 9 ? * 6L *)", CronExpression),
        ("cron(0 9 ? * 3#2 *)", CronExpression),
        ("cron(0 9 ? * L *)", CronExpression),
        ("cron(0 0 1 1/3 ? *)", CronExpression),
        ("at(2031-01-01T09:00:00)", AtExpression),
    ],
)
def test_valid_expressions_parse(text: str, kind: type) -> None:
    assert isinstance(parse_expression(text), kind)
    check(text, "UTC", NOW)


# --- refused, with a message that says what is wrong --------------------------------------------

REFUSED = [
    ("daily", "must be rate(...), cron(...) or at(...)"),
    ("", "must be rate(...), cron(...) or at(...)"),
    ("rate(5minutes)", "is not rate(<value> <unit>)"),
    ("rate(0 minutes)", "the rate value must be a positive whole number, got '0'"),
    ("rate(-1 minutes)", "the rate value must be a positive whole number, got '-1'"),
    ("rate(1.5 hours)", "the rate value must be a positive whole number, got '1.5'"),
    ("rate(1 minutes)", "a value of 1 takes the singular unit: rate(1 minute)"),
    ("rate(1 days)", "a value of 1 takes the singular unit: rate(1 day)"),
    ("rate(5 minute)", "a value above 1 takes the plural unit: rate(5 minutes)"),
    ("rate(2 hour)", "a value above 1 takes the plural unit: rate(2 hours)"),
    ("rate(3 weeks)", "the rate unit must be minute(s), hour(s) or day(s), got 'weeks'"),
    ("rate(3 seconds)", "got 'seconds'"),
    ("cron(0 9 * * *)", "has 5 fields; cron takes 6: minutes hours day-of-month month day-of-week year"),
    ("cron(0 9 * * ? * *)", "has 7 fields"),
    ("cron(0 9 * * MON *)", "exactly one of day-of-month and day-of-week must be '?'"),
    ("cron(0 9 * * * *)", "exactly one of day-of-month and day-of-week must be '?'"),
    ("cron(0 9 ? * ? *)", "exactly one of day-of-month and day-of-week must be '?'"),
    ("cron(60 * * * ? *)", "minutes field: 60 is out of range 0-59"),
    ("cron(0 24 * * ? *)", "hours field: 24 is out of range 0-23"),
    ("cron(0 9 32 * ? *)", "day-of-month field: 32 is out of range 1-31"),
    ("cron(0 9 0 * ? *)", "day-of-month field: 0 is out of range 1-31"),
    ("cron(0 9 1 13 ? *)", "month field: 13 is out of range 1-12"),
    ("cron(0 9 1 FOO ? *)", "month field: 'FOO' is not a number or a name such as JAN"),
    ("cron(0 9 ? * 0 *)", "day-of-week field: 0 is out of range 1-7"),
    ("cron(0 9 ? * 8 *)", "day-of-week field: 8 is out of range 1-7"),
    ("cron(0 9 ? * FRI-MON *)", "day-of-week field: the range FRI-MON runs backwards"),
    ("cron(0 9 ? * MON/2 *)", "day-of-week field: does not take '/'"),
    ("cron(0 9 ? * 3#6 *)", "the number after # must be 1-5"),
    ("cron(0 9 ? * 3#1,5#2 *)", "with # the field holds one expression"),
    ("cron(0 9 LW * ? *)", "'LW' (the month's last weekday) is not supported"),
    ("cron(0 9 W * ? *)", "W follows one day of the month"),
    ("cron(0 9 1,L * ? *)", "L and W stand alone"),
    ("cron(0 9 * * ? 1969)", "year field: 1969 is out of range 1970-2199"),
    ("cron(0 9 * * ? 2200)", "year field: 2200 is out of range 1970-2199"),
    ("cron(0/0 * * * ? *)", "the step after '/' must be a positive whole number, got '0'"),
    ("cron(1,,2 * * * ? *)", "has an empty item"),
    ("cron(? 9 * * ? *)", "minutes field: '?' is only for day-of-month or day-of-week"),
    ("cron(x 9 * * ? *)", "minutes field: 'x' is not a number"),
    ("cron(0 9 * * ? 2029)", "never runs again"),
    ("cron(0 9 30 2 ? *)", "never runs again"),
    ("at(2030-06-15 13:00:00)", "is not at(yyyy-mm-ddThh:mm:ss)"),
    ("at(2030-06-15T13:00)", "is not at(yyyy-mm-ddThh:mm:ss)"),
    ("at(2030-02-30T09:00:00)", "is not a real date and time: day is out of range for month"),
    ("at(2030-06-15T24:00:00)", "is not a real date and time"),
    ("at(2030-06-15T11:59:59)", "is in the past: it is now 2030-06-15T12:00:00 in UTC"),
]


@pytest.mark.parametrize(("text", "expected"), REFUSED)
def test_a_bad_expression_is_refused_with_what_is_wrong(text: str, expected: str) -> None:
    with pytest.raises(InvalidSchedule) as refused:
        check(text, "UTC", NOW)

    assert refused.value.status_code == 400
    assert expected in refused.value.message
    if text:
        assert text in refused.value.message  # the message quotes what was sent


@pytest.mark.parametrize("timezone", ["Mars/Olympus", "utc", "../../etc/passwd", "/etc/localtime", "localtime", " "])
def test_a_timezone_that_is_not_an_iana_name_is_refused(timezone: str) -> None:
    with pytest.raises(InvalidSchedule) as refused:
        check("rate(1 hour)", timezone, NOW)

    assert f"timezone '{timezone}' is not an IANA time zone name" in refused.value.message


@pytest.mark.parametrize("timezone", ["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Etc/GMT+5"])
def test_iana_timezones_are_accepted(timezone: str) -> None:
    check("cron(0 9 * * ? *)", timezone, NOW)


def test_an_at_in_a_wall_time_the_clocks_skip_is_refused() -> None:
    with pytest.raises(InvalidSchedule) as refused:
        check("at(2031-03-09T02:30:00)", "America/New_York", NOW)

    assert "does not exist in America/New_York" in refused.value.message


def test_an_at_is_in_the_past_or_future_in_its_own_timezone() -> None:
    # 12:30 in Paris (summer, UTC+2) is 10:30 UTC: before NOW; in New York (UTC-4) it is 16:30 UTC: after
    with pytest.raises(InvalidSchedule, match="in the past"):
        check("at(2030-06-15T12:30:00)", "Europe/Paris", NOW)
    check("at(2030-06-15T12:30:00)", "America/New_York", NOW)


# --- next runs: rate --------------------------------------------------------------------------------


def test_a_rate_runs_at_its_start_and_every_period_after() -> None:
    start = utc("2030-06-15T12:00:07")

    assert runs("rate(5 minutes)", "UTC", start - timedelta(hours=1), 3, anchor=start) == [
        start,
        start + timedelta(minutes=5),
        start + timedelta(minutes=10),
    ]
    assert next_run("rate(5 minutes)", "UTC", start, anchor=start) == start + timedelta(minutes=5)
    assert next_run("rate(5 minutes)", "UTC", start + timedelta(minutes=4, seconds=59), anchor=start) == (
        start + timedelta(minutes=5)
    )


def test_a_daily_rate_is_24_hours_across_daylight_saving() -> None:
    start = utc("2031-03-08T17:00:00")  # noon in New York, the day before the clocks spring forward

    assert runs("rate(1 day)", "America/New_York", start, 2, anchor=start) == [
        utc("2031-03-09T17:00:00"),  # 13:00 local: a day is 24 hours, not "the same wall time"
        utc("2031-03-10T17:00:00"),
    ]


# --- next runs: cron ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("aws", "unix"),
    [
        ("cron(0 10 * * ? *)", "0 10 * * *"),
        ("cron(15 12 * * ? *)", "15 12 * * *"),
        ("cron(0/15 * * * ? *)", "0/15 * * * *"),
        ("cron(5,35 8-17 ? * MON-FRI *)", "5,35 8-17 * * 1-5"),
        ("cron(0 18 ? * 1,7 *)", "0 18 * * 0,6"),
        ("cron(0 8 1 * ? *)", "0 8 1 * *"),
        ("cron(30 2 1,15 */2 ? *)", "30 2 1,15 */2 *"),
        ("cron(0 0 29 2 ? *)", "0 0 29 2 *"),
        ("cron(10-20/5 3 ? JUN-AUG SAT *)", "10-20/5 3 * 6-8 6"),
    ],
)
def test_cron_next_runs_agree_with_croniter_in_utc(aws: str, unix: str) -> None:
    expected = croniter(unix, NOW).all_next(datetime)
    wanted = [next(expected).astimezone(UTC) for _ in range(25)]

    assert runs(aws, "UTC", NOW, 25) == wanted


@pytest.mark.parametrize(
    ("expression", "first_three"),
    [
        # L: the month's last day
        ("cron(0 9 L * ? 2031)", ["2031-01-31T09:00", "2031-02-28T09:00", "2031-03-31T09:00"]),
        # 15W: the weekday nearest the 15th (2031-02-15 is a Saturday, 2031-06-15 a Sunday)
        ("cron(0 9 15W FEB,JUN,JUL ? 2031)", ["2031-02-14T09:00", "2031-06-16T09:00", "2031-07-15T09:00"]),
        # 1W on a Saturday moves forward to Monday the 3rd (2031-02-01 is a Saturday)
        ("cron(0 9 1W FEB ? 2031)", ["2031-02-03T09:00"]),
        # 6L: the month's last Friday
        ("cron(0 9 ? * 6L 2031)", ["2031-01-31T09:00", "2031-02-28T09:00", "2031-03-28T09:00"]),
        # 3#2: the month's second Tuesday
        ("cron(0 9 ? * 3#2 2031)", ["2031-01-14T09:00", "2031-02-11T09:00", "2031-03-11T09:00"]),
        # L in day-of-week: the week's last day, Saturday
        ("cron(0 9 ? JAN L 2031)", ["2031-01-04T09:00", "2031-01-11T09:00", "2031-01-18T09:00"]),
        # the year field ends the schedule
        ("cron(0 0 1 JAN ? 2031-2032)", ["2031-01-01T00:00", "2032-01-01T00:00"]),
        # years past 2099 (where croniter's own year field stops) run too, up to AWS's 2199
        ("cron(0 12 1 JAN ? 2150,2199)", ["2150-01-01T12:00", "2199-01-01T12:00"]),
    ],
)
def test_cron_special_characters(expression: str, first_three: list[str]) -> None:
    assert runs(expression, "UTC", NOW, 3) == [utc(text) for text in first_three]


def test_cron_runs_in_the_schedules_timezone() -> None:
    winter = utc("2031-01-10T00:00:00")
    summer = utc("2031-07-10T00:00:00")

    assert runs("cron(0 9 * * ? *)", "Europe/Paris", winter, 1) == [utc("2031-01-10T08:00:00")]  # UTC+1
    assert runs("cron(0 9 * * ? *)", "Europe/Paris", summer, 1) == [utc("2031-07-10T07:00:00")]  # UTC+2
    assert runs("cron(0 9 * * ? *)", "Asia/Kolkata", winter, 1) == [utc("2031-01-10T03:30:00")]  # UTC+5:30
    # the day fields are read in the timezone too: Monday 00:30 in Tokyo is Sunday in UTC
    assert runs("cron(30 0 ? * MON *)", "Asia/Tokyo", winter, 1) == [utc("2031-01-12T15:30:00")]


def test_a_wall_time_the_clocks_skip_does_not_run() -> None:
    # 2031-03-09: New York springs forward from 02:00 to 03:00
    found = runs("cron(30 2 * * ? *)", "America/New_York", utc("2031-03-07T12:00:00"), 3)

    assert found == [utc("2031-03-08T07:30:00"), utc("2031-03-10T06:30:00"), utc("2031-03-11T06:30:00")]


def test_a_wall_time_the_clocks_repeat_runs_once() -> None:
    # 2031-11-02: New York falls back from 02:00 to 01:00, so 01:30 happens twice that night
    found = runs("cron(30 1 * * ? *)", "America/New_York", utc("2031-11-01T12:00:00"), 3)

    assert found == [utc("2031-11-02T05:30:00"), utc("2031-11-03T06:30:00"), utc("2031-11-04T06:30:00")]


def test_every_minute_across_the_repeated_hour_never_goes_back_in_time() -> None:
    found = runs("cron(* * * * ? *)", "America/New_York", utc("2031-11-02T05:58:00"), 4)

    assert found == [
        utc("2031-11-02T05:59:00"),  # 01:59 EDT
        utc("2031-11-02T07:00:00"),  # 02:00 EST: the repeated 01:00-01:59 EST does not run again
        utc("2031-11-02T07:01:00"),
        utc("2031-11-02T07:02:00"),
    ]


def test_a_cron_with_no_run_left_has_no_next_run() -> None:
    assert next_run("cron(0 9 * * ? 2030)", "UTC", utc("2030-12-31T09:00:00"), anchor=EPOCH) is None


# --- next runs: at --------------------------------------------------------------------------------------


def test_an_at_runs_once_at_its_wall_time_in_its_timezone() -> None:
    assert runs("at(2031-01-10T09:00:00)", "Europe/Paris", NOW, 5) == [utc("2031-01-10T08:00:00")]
    assert next_run("at(2031-01-10T09:00:00)", "UTC", utc("2031-01-10T09:00:00"), anchor=EPOCH) is None


# --- derived ids ------------------------------------------------------------------------------------------


def test_a_derived_id_is_well_formed_deterministic_and_sorts_by_time() -> None:
    earlier = ids.derived_id("exe", 1_900_000_000_000, "sch_A@1")
    again = ids.derived_id("exe", 1_900_000_000_000, "sch_A@1")
    other_seed = ids.derived_id("exe", 1_900_000_000_000, "sch_B@1")
    later = ids.derived_id("exe", 1_900_000_000_001, "sch_A@1")

    assert ids.is_id(earlier, "exe")
    assert earlier == again
    assert other_seed != earlier
    assert earlier[:14] == other_seed[:14]  # 10 characters of time after "exe_"
    assert earlier < later
    assert ids.new_id("exe") < ids.derived_id("exe", int(datetime(2200, 1, 1, tzinfo=UTC).timestamp() * 1000), "x")


def test_a_derived_id_refuses_a_time_outside_48_bits() -> None:
    with pytest.raises(ValueError, match="48 bits"):
        ids.derived_id("exe", -1, "seed")
    with pytest.raises(ValueError, match="48 bits"):
        ids.derived_id("exe", 1 << 48, "seed")
