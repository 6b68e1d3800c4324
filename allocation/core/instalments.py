"""Instalments (Abschläge): when a levy amount falls due and in which parts. Pure; amounts are int cents.

A `Schedule` comes from the rule file's `instalments:` key (parsed in `notice_settings.py`): monthly on a day of the
month (NRW/Brandenburg 15, Sachsen-Anhalt 20, Bavaria 25) or quarterly on four dates. Every due date is a real
date in the budget year: a day 29, 30 or 31 that a month lacks becomes that month's last day (monthly day 31 →
28/29 February, 30 April; a quarterly "02-29" → 28 February outside leap years).

How the amount is split (`split`):
- `equal` (default): equal parts in cents, the cents left over one each on the first instalments.
- `saarland` (§ 25 KFAG Saarland): the levy is first rounded down to a full euro amount divisible by 12
  ("auf einen vollen und durch 12 teilbaren Betrag in Euro abzurunden"); that amount is then paid in exactly
  equal whole-euro instalments. The number of instalments must divide 12 (monthly 12, quarterly 4).

Instalments always add up exactly to the levy as fixed (`fixed_amount`): the run's amount, or under `saarland`
the rounded-down amount. All rounding goes through `money.py`.

A change notice (`change_plan`) keeps the instalments already due by the notice date and either spreads the
difference over the remaining instalments (`spread`, split like the schedule) or puts it on the next one
(`at_once`); when none remains, the difference is due one month after the notice date.
"""
from __future__ import annotations

import calendar
import datetime as _dt
from dataclasses import dataclass

from .money import round_down_to_multiple, split_evenly

__all__ = ["SCHEDULES", "SPLITS", "CHANGE_POLICIES", "QUARTERLY_DEFAULT", "Schedule", "Instalment", "ChangeLine",
           "ChangePlan", "due_date", "fixed_amount", "plan", "change_plan", "one_month_after", "SettlementLine",
           "settlement_plan", "provisional_instalment"]

SCHEDULES = ("monthly", "quarterly")
SPLITS = ("equal", "saarland")
CHANGE_POLICIES = ("spread", "at_once")
QUARTERLY_DEFAULT = ((2, 15), (5, 15), (8, 15), (11, 15))
SAARLAND_MULTIPLE = 1200  # cents: a full euro amount divisible by 12


@dataclass(frozen=True, slots=True)
class Schedule:
    """When instalments fall due: (month, day) pairs as written (days 29–31 clamped per year), and the split."""

    kind: str
    days: tuple[tuple[int, int], ...]
    split: str = "equal"

    @classmethod
    def monthly(cls, day: int, split: str = "equal") -> "Schedule":
        return cls("monthly", tuple((month, day) for month in range(1, 13)), split)

    @classmethod
    def quarterly(cls, days: tuple[tuple[int, int], ...] = QUARTERLY_DEFAULT, split: str = "equal") -> "Schedule":
        return cls("quarterly", tuple(days), split)

    def due_dates(self, year: int) -> tuple[_dt.date, ...]:
        return tuple(due_date(year, month, day) for month, day in self.days)

    def describe(self) -> str:
        """German text for the notice: "monatlich zum 15." / "vierteljährlich zum 15.02., 15.05., ..."."""
        if self.kind == "monthly":
            return f"monatlich zum {self.days[0][1]}."
        return "vierteljährlich zum " + ", ".join(f"{day:02d}.{month:02d}." for month, day in self.days)


@dataclass(frozen=True, slots=True)
class Instalment:
    number: int
    due: _dt.date
    amount: int


@dataclass(frozen=True, slots=True)
class ChangeLine:
    """One instalment of a change notice: its amount before and after, and whether it was due already."""

    number: int
    due: _dt.date
    old: int
    new: int
    already_due: bool

    @property
    def difference(self) -> int:
        return self.new - self.old


@dataclass(frozen=True, slots=True)
class ChangePlan:
    old_amount: int
    new_amount: int
    policy: str
    lines: tuple[ChangeLine, ...]

    @property
    def difference(self) -> int:
        return self.new_amount - self.old_amount

    @property
    def due_before(self) -> int:
        return sum(line.old for line in self.lines if line.already_due)


def due_date(year: int, month: int, day: int) -> _dt.date:
    """The date (year, month, day), a day the month lacks clamped to its last day."""
    if not 1 <= month <= 12 or not 1 <= day <= 31:
        raise ValueError(f"no such day: {day}.{month}.")
    return _dt.date(year, month, min(day, calendar.monthrange(year, month)[1]))


def one_month_after(day: _dt.date) -> _dt.date:
    month = day.month % 12 + 1
    return due_date(day.year + (day.month == 12), month, day.day)


def _unit(schedule: Schedule) -> int:
    return 100 if schedule.split == "saarland" else 1


def fixed_amount(amount: int, schedule: Schedule) -> int:
    """The levy as fixed for payment: the amount itself, or under `saarland` rounded down to 12 full euros."""
    if schedule.split == "saarland":
        if 12 % len(schedule.days):
            raise ValueError("saarland needs a number of instalments that divides 12")
        return round_down_to_multiple(amount, SAARLAND_MULTIPLE)
    return amount


def plan(amount: int, schedule: Schedule, year: int) -> tuple[Instalment, ...]:
    """The instalments of `amount` cents in budget year `year`; they add up exactly to `fixed_amount`."""
    total = fixed_amount(amount, schedule)
    parts = split_evenly(total, len(schedule.days), _unit(schedule))
    return tuple(Instalment(number, due, part)
                 for number, (due, part) in enumerate(zip(schedule.due_dates(year), parts), start=1))


def change_plan(old_amount: int, new_amount: int, schedule: Schedule, year: int, notice_date: _dt.date,
                policy: str = "spread", old_plan: "tuple[Instalment, ...] | None" = None) -> ChangePlan:
    """Old and new instalments when the amount changes by a notice dated `notice_date`.

    Instalments due on or before the notice date stay as they were. The difference (of the fixed amounts) goes
    to the remaining instalments: spread in equal parts (remaining units on the first ones) or all on the next
    one (`at_once`). If none remains, one extra line falls due one month after the notice date. `old_plan`: the
    instalments the earlier notice actually set, where they are not the plain `plan` (a first notice that settled
    provisional instalments, `settlement_plan`); they add up to the old fixed amount.
    """
    if policy not in CHANGE_POLICIES:
        raise ValueError(f"unknown change policy {policy!r}")
    old = plan(old_amount, schedule, year) if old_plan is None else tuple(old_plan)
    if old_plan is not None and sum(i.amount for i in old) != fixed_amount(old_amount, schedule):
        raise ValueError("the earlier plan does not add up to the old amount")
    old_fixed, new_fixed = fixed_amount(old_amount, schedule), fixed_amount(new_amount, schedule)
    difference = new_fixed - old_fixed
    open_lines = [i for i in old if i.due > notice_date]
    lines = [ChangeLine(i.number, i.due, i.amount, i.amount, True) for i in old if i.due <= notice_date]
    if not open_lines:
        if difference:
            lines.append(ChangeLine(max(i.number for i in old) + 1, one_month_after(notice_date), 0, difference,
                                    False))
        return ChangePlan(old_fixed, new_fixed, policy, tuple(lines))
    if policy == "at_once":
        shares = [difference] + [0] * (len(open_lines) - 1)
    else:
        shares = split_evenly(difference, len(open_lines), _unit(schedule))
    lines += [ChangeLine(i.number, i.due, i.amount, i.amount + share, False) for i, share in zip(open_lines, shares)]
    return ChangePlan(old_fixed, new_fixed, policy, tuple(lines))


# --- the provisional period continued (Art. 19 Abs. 3 BayFAG) ------------------------------------------------


@dataclass(frozen=True, slots=True)
class SettlementLine:
    """One instalment of a first notice dated during the year, where the previous year's instalments ran on.

    kind: "vorläufig" (due before the notice, paid at the provisional amount), "Abrechnung" (the next due date:
    its regular amount plus what the provisional instalments fell short of the regular ones, or minus what
    they exceeded), "regulär" (the later ones), "Abrechnung nach Jahresende" (no due date left in the year)."""

    number: int
    due: _dt.date
    amount: int
    kind: str
    regular: int  # the instalment of the final amount for this due date (0 for an extra line)


def provisional_instalment(previous_amount: int, schedule: Schedule, previous_year: int) -> int:
    """The provisional instalment: the last one the previous year's amount was paid in ("in Höhe der im
    abgelaufenen Haushaltsjahr zuletzt erhobenen monatlichen Teilbeträge", Art. 19 Abs. 3 Satz 1 BayFAG)."""
    return plan(previous_amount, schedule, previous_year)[-1].amount


def settlement_plan(amount: int, schedule: Schedule, year: int, notice_date: _dt.date,
                    provisional: int) -> tuple[SettlementLine, ...]:
    """The instalments of the year when the levy is fixed by a notice dated `notice_date`, after provisional
    instalments of `provisional` cents each (Art. 19 Abs. 3 Satz 2 BayFAG: "über diese vorläufigen Zahlungen zum
    nächsten Fälligkeitszeitpunkt … abzurechnen").

    Instalments due on or before the notice date were paid at `provisional`. The next due date carries its
    regular instalment (1/12 of the fixed amount, `plan`) plus the sum of (regular − provisional) of those
    paid; the later ones are regular. With no due date left in the year, one extra line falls due one month
    after the notice. The lines add up exactly to `fixed_amount(amount, schedule)`."""
    regular = plan(amount, schedule, year)
    paid = [i for i in regular if i.due <= notice_date]
    open_ = [i for i in regular if i.due > notice_date]
    shortfall = sum(i.amount - provisional for i in paid)
    lines = [SettlementLine(i.number, i.due, provisional, "vorläufig", i.amount) for i in paid]
    if not open_:
        if paid:
            lines.append(SettlementLine(len(regular) + 1, one_month_after(notice_date), shortfall,
                                        "Abrechnung nach Jahresende", 0))
        return tuple(lines)
    first, *rest = open_
    lines.append(SettlementLine(first.number, first.due, first.amount + shortfall,
                                "Abrechnung" if paid else "regulär", first.amount))
    lines += [SettlementLine(i.number, i.due, i.amount, "regulär", i.amount) for i in rest]
    return tuple(lines)
