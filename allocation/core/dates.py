"""Dates a user gives: the date of the notices (`notices --date`), a Benehmen's letter date and its deadline.

Every such date lies between 1 January 1900 and 31 December 2999, the budget years a levy-year folder accepts
(`year init --year`), so no date arithmetic on it (a deadline six weeks on, a due date one month after a change
notice) can leave the calendar (Python's dates end with the year 9999). Within that range a date the user
typed must also fit the budget year, so that a typing error in the year (2202 for 2022) stops before a letter
goes out:
- notices: from 1 January of the year before the budget year (the statute may be adopted before the year
  begins) to 31 December of the fourth year after it (change notices after a settlement or a court decision);
- Benehmen: from 1 January two years before the planned budget year (a double budget) to 31 December of it;
- a Benehmen's deadline: after the letter's date and at most one year after it.
The default date (today) is not checked against the budget year: it is never a typing error, so a late change
notice is dated by leaving `--date` out. Problems are `usage-bad-date` / `usage-deadline-before-date`, exit 2.
"""
from __future__ import annotations

import datetime as _dt

from .problems import ExitCode, Location, Problem, ProblemsError

__all__ = ["FIRST", "LAST", "DateError", "parse_date", "budget_year_problems", "deadline_problems",
           "NOTICE_YEARS", "BENEHMEN_YEARS", "DEADLINE_DAYS"]

FIRST = _dt.date(1900, 1, 1)  # the budget years of a levy-year folder: 1900–2999
LAST = _dt.date(2999, 12, 31)
NOTICE_YEARS = (1, 4)  # a notice date: from the year before the budget year to the fourth year after it
BENEHMEN_YEARS = (2, 0)  # a Benehmen letter: from two years before the planned budget year to that year
DEADLINE_DAYS = 366  # a Benehmen's deadline: at most one year after the letter's date
FORMAT = "JJJJ-MM-TT"


class DateError(ProblemsError):
    exit_code = ExitCode.USAGE
    title = "Das Datum ist nicht verwendbar"


def parse_date(text: str, option: str) -> _dt.date:
    """`text` (JJJJ-MM-TT) as a date from FIRST to LAST; `DateError` located at `option` otherwise."""
    shown = text if len(text) <= 40 else text[:40] + "…"
    try:
        day = _dt.date.fromisoformat(text) if len(text) <= 40 else None
    except ValueError:
        day = None
    if day is None:
        raise DateError([Problem("usage-bad-date", Location(option), f"{shown!r} ist kein Datum", found=shown,
                                 expected=f"ein Datum {FORMAT}, z. B. 2022-03-15",
                                 hint=f"das Datum als {FORMAT} angeben (Jahr, Monat, Tag mit Bindestrichen)")])
    if not FIRST <= day <= LAST:
        raise DateError([Problem("usage-bad-date", Location(option), f"Das Datum {shown} liegt außerhalb der "
                                 f"Jahre {FIRST.year} bis {LAST.year}", found=shown,
                                 expected=f"ein Datum von {FIRST.isoformat()} bis {LAST.isoformat()}",
                                 hint="die Jahreszahl prüfen (Tippfehler?)")])
    return day


def budget_year_problems(day: _dt.date, year: int, option: str, what: str, years: tuple[int, int]) -> list[Problem]:
    """A typed date (`what`: "Das Datum der Bescheide") that does not fit budget year `year`: from 1 January
    `years[0]` years before to 31 December `years[1]` years after."""
    earliest, latest = _dt.date(year - years[0], 1, 1), _dt.date(year + years[1], 12, 31)
    if earliest <= day <= latest:
        return []
    return [Problem("usage-bad-date", Location(option), f"{what} {day.isoformat()} passt nicht zum Haushaltsjahr "
                    f"{year}", found=day.isoformat(),
                    expected=f"ein Datum von {earliest.isoformat()} bis {latest.isoformat()}",
                    hint=f"die Jahreszahl prüfen (Tippfehler?); für ein Datum außerhalb dieses Zeitraums {option} "
                         "weglassen: dann gilt das heutige Datum")]


def deadline_problems(day: _dt.date, deadline: _dt.date, day_given: bool = True) -> list[Problem]:
    """A deadline for statements (`--deadline`) must come after the letter's date `day` (`--date`, or today when
    not `day_given`), and at most DEADLINE_DAYS after it."""
    shown = f"--date {day.isoformat()}" if day_given else f"heute ({day.isoformat()}, ohne --date)"
    if deadline <= day:
        return [Problem("usage-deadline-before-date", Location("--deadline"),
                        f"Die Frist {deadline.isoformat()} liegt nicht nach dem Datum der Schreiben {day.isoformat()}",
                        found=f"--deadline {deadline.isoformat()}, Datum der Schreiben {shown}",
                        expected=f"eine Frist nach dem {day.isoformat()}",
                        hint="eine spätere Frist angeben, das Datum der Schreiben mit --date berichtigen oder "
                             "--deadline weglassen (dann 6 Wochen nach dem Datum)")]
    if (deadline - day).days > DEADLINE_DAYS:
        latest = day + _dt.timedelta(days=DEADLINE_DAYS)
        return [Problem("usage-bad-date", Location("--deadline"),
                        f"Die Frist {deadline.isoformat()} liegt mehr als ein Jahr nach dem Datum der Schreiben "
                        f"{day.isoformat()}", found=f"--deadline {deadline.isoformat()}, Datum der Schreiben {shown}",
                        expected=f"eine Frist bis zum {latest.isoformat()}",
                        hint="die Jahreszahl prüfen (Tippfehler?)")]
    return []
